#!/usr/bin/env bash
# digitflow beside PyTorch (Debian's python3-torch: libtorch 1.13, oneDNN convolutions) on the
# same model, in the same run: training images/s, inference digits/s at batch 256 and the
# batch-1 latency. The two alternate, ROUNDS times each; medians and ratios are printed.
# With INT8_MODEL, a model file of MODEL_YAML's architecture that holds its int8 calibration
# (models/digits.safetensors for config/models/default.yaml), also our int8 inference at
# batch 256 beside PyTorch's fp32 on the same architecture.
# Usage: benchmarks/compare_cpu.sh [MODEL_YAML] [THREADS] [ROUNDS] [INT8_MODEL]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
model="${1:-config/models/seed.yaml}"
threads="${2:-2}"
rounds="${3:-3}"
int8_model="${4:-}"
bin="${BUILD_DIR:-build}/apps/digitflow"
[[ -x "$bin" ]] || { echo "compare_cpu: $bin not built; run scripts/test.sh first" >&2; exit 1; }
scripts/deps.sh python3-torch python3-yaml >/dev/null
py=/usr/bin/python3

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cases=("train --images 2560" "infer --batch 256 --seconds 2" "infer --batch 1 --seconds 2")
for ((r = 1; r <= rounds; r++)); do
  for c in "${cases[@]}"; do
    # shellcheck disable=SC2086
    echo "ours $c $("$bin" bench $c --model "$model" --threads "$threads" --json)" >>"$out"
    # shellcheck disable=SC2086
    echo "torch $c $("$py" benchmarks/peer_torch.py $c --model "$model" --threads "$threads")" >>"$out"
  done
  if [[ -n "$int8_model" ]]; then
    c="infer --batch 256 --seconds 2"
    # shellcheck disable=SC2086
    echo "ours $c int8 $("$bin" bench $c --int8 --model "$int8_model" --threads "$threads" --json)" >>"$out"
    # shellcheck disable=SC2086
    echo "torch $c int8 $("$py" benchmarks/peer_torch.py $c --model "$model" --threads "$threads")" >>"$out"
  fi
done

"$py" - "$out" "$model" "$threads" "$rounds" <<'PY'
import json, statistics, sys
path, model, threads, rounds = sys.argv[1:]
runs = {}
for line in open(path):
    who, rest = line.split(" ", 1)
    case, js = rest[: rest.index("{")].strip(), json.loads(rest[rest.index("{"):])
    runs.setdefault((case, who), []).append(js)
print(f"model {model}, {threads} threads, medians of {rounds} alternating runs")
print(f"{'case':34} {'digitflow':>12} {'torch':>12} {'ratio':>7}")
for case in dict.fromkeys(c for c, _ in runs):
    key = "latency_us" if "--batch 1 " in case + " " else "images_per_s"
    ours = statistics.median(r[key] for r in runs[(case, "ours")])
    peer = statistics.median(r[key] for r in runs[(case, "torch")])
    ratio = peer / ours if key == "latency_us" else ours / peer
    unit = "us" if key == "latency_us" else "/s"
    print(f"{case:34} {ours:10.0f}{unit} {peer:10.0f}{unit} {ratio:6.2f}x")
print("ratio > 1: digitflow is faster ('int8': our int8 inference beside PyTorch's fp32)")
PY
