#!/usr/bin/env bash
# Throughput and memory of digitflow run on synthetic A4 forms at 300 dpi:
#  1. pages/s of the whole pipeline beside decode + clean alone (--decode-clean-only), same
#     pages, same threads, with the per-stage seconds from summary.json; and the whole
#     pipeline again without the screening model (model.screen), without the partner model
#     (model.partner) and in fp32 (runtime.int8);
#  2. peak RSS on a folder of 100 pages and one of 2,000 (hard links to the same page files,
#     so the folder costs no disk): memory must stay flat as the folder grows.
# With --one-pdf the pages are one PDF, as a sheet-fed scanner stores a batch (rendered by
# poppler at 300 dpi instead of decoded from PNG and JPEG).
# Usage: benchmarks/pipeline_throughput.sh [--pages N] [--threads T] [--seed S] [--work DIR]
#        [--memory-pages "100 2000"] [--kind forms|checks|free] [--one-pdf]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pages=40 threads=2 seed=4242 work=/tmp/digitflow-throughput memory_pages="100 2000" kind=forms one_pdf=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pages) pages="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --memory-pages) memory_pages="$2"; shift 2 ;;
    --kind) kind="$2"; shift 2 ;;
    --one-pdf) one_pdf=(--one-pdf); shift ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *) echo "pipeline_throughput: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
digitflow="$root/build/apps/digitflow"
[[ -x "$digitflow" ]] || { echo "pipeline_throughput: build first: cmake --build build --target digitflow" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "pipeline_throughput: needs GNU time (Debian package 'time')" >&2; exit 1; }

mkdir -p "$work"
# A copy of the binary: a rebuild during a long run must not pull it away.
cp "$digitflow" "$work/digitflow"
digitflow="$work/digitflow"
job="$work/$kind-$pages-$seed${one_pdf:+-pdf}"
if [[ ! -f "$job/truth.jsonl" ]]; then
  "$digitflow" synth --out "$job" --pages "$pages" --seed "$seed" --kind "$kind" "${one_pdf[@]}" --force >/dev/null 2>&1
fi

stage() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['pages_per_s'], ' '.join(f'{k}={v}' for k,v in s['stage_seconds'].items() if v), '| images', s.get('images_scored', 0), 'in full', s.get('images_read_in_full', 0))" "$1"; }
run() {  # run NAME extra-args...
  local name="$1"; shift
  rm -rf "$work/out-$name"
  "$digitflow" run "$job" --out "$work/out-$name" --threads "$threads" "$@" >/dev/null 2>&1 || [[ $? -eq 3 ]]
  stage "$work/out-$name/summary.json"
}

echo "digitflow run on $pages $kind pages ($job), $threads threads, $(nproc) cores"
read -r clean_rate clean_stages < <(run decode-clean --decode-clean-only)
read -r full_rate full_stages < <(run full)
read -r alone_rate alone_stages < <(run alone --set model.screen=)
read -r single_rate single_stages < <(run single --set model.partner=)
read -r fp32_rate fp32_stages < <(run fp32 --set runtime.int8=false)
echo "decode + clean only  : $clean_rate pages/s   ($clean_stages)"
echo "whole pipeline       : $full_rate pages/s   ($full_stages)"
echo "  without the screen : $alone_rate pages/s   ($alone_stages)"
echo "  without the partner: $single_rate pages/s   ($single_stages)"
echo "  in fp32 (no int8)  : $fp32_rate pages/s   ($fp32_stages)"
python3 -c "import sys; a,b,c,d,e=map(float,sys.argv[1:]); print(f'whole / (decode + clean) = {b/a:.2f} ({c/a:.2f} without the screening model, {e/a:.2f} without the partner, {d/a:.2f} in fp32)')" "$clean_rate" "$full_rate" "$alone_rate" "$fp32_rate" "$single_rate"

echo
echo "peak RSS (GNU time, max resident set):"
singles=()
for f in "$job"/batch*/*; do [[ "$f" == *.png || "$f" == *.jpg ]] && singles+=("$f"); done
for n in $memory_pages; do
  if [[ ${#singles[@]} -eq 0 ]]; then
    echo "  $n pages: not measured (the job has no single-page PNG or JPEG files to link)"
    continue
  fi
  farm="$work/farm-$n"
  if [[ ! -d "$farm" || $(find "$farm" -type f | wc -l) -ne $n ]]; then
    rm -rf "$farm"; mkdir -p "$farm"
    for ((i = 0; i < n; i++)); do
      src="${singles[$((i % ${#singles[@]}))]}"
      ln "$src" "$farm/$(printf 'p%06d' "$i").${src##*.}"
    done
  fi
  rm -rf "$work/out-farm-$n"
  /usr/bin/time -f "%M %e" -o "$work/time-$n" "$digitflow" run "$farm" --out "$work/out-farm-$n" --threads "$threads" >/dev/null 2>&1
  read -r kb seconds < "$work/time-$n"
  echo "  $n pages: $((kb / 1024)) MiB peak, $seconds s"
done
