#!/usr/bin/env bash
# Accuracy and speed of digitflow run on the same synthetic pages scanned at other
# resolutions, in grey and in black and white, with the resolution stated in the files or
# not (digitflow synth --dpi / --bitonal / --untagged): exact-match, digit accuracy, false
# strings per page, exact among the strings kept at confidence >= 0.99 and their share, and
# pages/s, one row per scan.
# Usage: benchmarks/scan_resolution.sh [--kind checks|forms|free] [--pages N] [--seed S]
#        [--threads T] [--work DIR]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kind=checks pages=200 seed=2026 threads=2 work=/tmp/digitflow-resolution
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kind) kind="$2"; shift 2 ;;
    --pages) pages="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "scan_resolution: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
digitflow="$root/build/apps/digitflow"
[[ -x "$digitflow" ]] || { echo "scan_resolution: build first: cmake --build build --target digitflow" >&2; exit 1; }
mkdir -p "$work"
cp "$digitflow" "$work/digitflow"  # a rebuild during the run must not pull it away
digitflow="$work/digitflow"

# name | synth options | run options
scans=(
  "300 dpi, grey|--dpi 300|"
  "200 dpi, grey, stated|--dpi 200|"
  "200 dpi, grey, not stated|--dpi 200 --untagged|"
  "200 dpi, grey, not stated, assume_dpi=200|--dpi 200 --untagged|--set pipeline.assume_dpi=200"
  "200 dpi, black and white, stated|--dpi 200 --bitonal|"
  "200 dpi, black and white, not stated|--dpi 200 --bitonal --untagged|"
  "300 dpi, black and white|--dpi 300 --bitonal|"
  "600 dpi, grey, stated|--dpi 600|"
  "600 dpi, grey, not stated|--dpi 600 --untagged|"
)
echo "digitflow run on $pages $kind pages (seed $seed) per scan, $threads threads"
printf '| %s | %s | %s | %s | %s | %s |\n' "scan" "exact-match" "digit accuracy" "false strings / page" ">= 0.99: exact among kept / kept" "pages/s"
printf '| --- | --- | --- | --- | --- | --- |\n'
for scan in "${scans[@]}"; do
  IFS='|' read -r name synth_options run_options <<< "$scan"
  job="$work/$kind-$pages-$seed-$(tr -c 'a-z0-9\n' '-' <<< "$synth_options" | tr -s '-')"
  if [[ ! -f "$job/truth.jsonl" ]]; then
    # shellcheck disable=SC2086  # options are words
    "$digitflow" synth --out "$job" --pages "$pages" --seed "$seed" --kind "$kind" $synth_options --force >/dev/null
  fi
  out="$work/out-$(basename "$job")$(tr -c 'a-z0-9\n' '-' <<< "$run_options")"
  rm -rf "$out"
  # shellcheck disable=SC2086
  "$digitflow" run "$job" --out "$out" --threads "$threads" $run_options >/dev/null 2>&1 || [[ $? -eq 3 ]]
  "$digitflow" score "$out/results.jsonl" "$job/truth.jsonl" --json > "$out/score.json"
  python3 - "$name" "$out/score.json" "$out/summary.json" <<'EOF'
import json, sys
name, score, summary = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
at99 = next(t for t in score["thresholds"] if abs(t["threshold"] - 0.99) < 1e-9)
print(f"| {name} | {100 * score['exact_rate']:.2f}% | {100 * score['digit_accuracy']:.2f}% | "
      f"{score['false_per_page']:.3f} | {100 * at99['exact_rate']:.2f}% / {100 * at99['truth_kept_rate']:.1f}% | "
      f"{summary['pages_per_s']:.2f} |")
EOF
done
