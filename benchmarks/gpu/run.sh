#!/usr/bin/env bash
# The GPU run in one call, for the machine with the GPU (an H200: sm_90, CUDA, CMake and
# PyTorch, no network). Builds `kernels` alone (DIGITFLOW_KERNELS_ONLY) with the machine's
# nvcc and CMake, runs the CUDA tests, then times the seed and default models on our cuda and
# cudnn backends beside PyTorch on the same model, and prints one table. Every step has a
# time limit and the whole run a budget; a step that fails or runs out of time is named in
# the table's footer and the rest go on. --out (default $OUT, which the device call brings
# back, at most 8 files) receives three: table.md, results.jsonl (every figure, with each
# epoch's test accuracy) and logs.tar.gz (every step's log).
#
# Here first:   benchmarks/gpu/stage-deps.sh     (oneTBB, nlohmann-json, GoogleTest, MNIST
#               into .gpu-carry/, which the call carries)
# There:        DIGITFLOW_COMMIT=<hash> bash benchmarks/gpu/run.sh --carry .gpu-carry
#   or with the data and libraries in place:  bash benchmarks/gpu/run.sh --data DIR
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
carry=""
data_dir=""
out_dir="${OUT:-/tmp/digitflow-gpu-out}"
build_dir="/tmp/digitflow-gpu-build"
budget=540       # seconds for everything, under the device call's 600
full_epochs=15
quick=0

usage() {
  cat <<USAGE
usage: $0 [--carry DIR] [--data DIR] [--out DIR] [--build DIR] [--budget SECONDS]
          [--epochs N] [--quick]
  --carry DIR   what benchmarks/gpu/stage-deps.sh staged (prefix/ with oneTBB, nlohmann-json,
                GoogleTest; mnist/*.gz)
  --data DIR    the four MNIST IDX files (default: DIR/mnist of --carry, else data/mnist)
  --quick       build and test only, no timings
USAGE
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --carry) carry="$2"; shift 2 ;;
    --data) data_dir="$2"; shift 2 ;;
    --out) out_dir="$2"; shift 2 ;;
    --build) build_dir="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --epochs) full_epochs="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

[[ -n "$carry" ]] && carry="$(realpath -m "$carry")"
[[ -n "$data_dir" ]] && data_dir="$(realpath -m "$data_dir")"
cd "$repo_root" || exit 1
mkdir -p "$out_dir"
final_out="$out_dir"
out_dir="$(mktemp -d /tmp/digitflow-gpu-logs.XXXXXX)"  # the step logs; packed at exit
results="$out_dir/results.jsonl"
: > "$results"
pack() {
  cp "$results" "$final_out/results.jsonl" 2> /dev/null
  [[ -f "$out_dir/table.md" ]] && cp "$out_dir/table.md" "$final_out/table.md"
  tar czf "$final_out/logs.tar.gz" -C "$out_dir" . 2> /dev/null
}
trap pack EXIT
start=$(date +%s)
deadline=$((start + budget))
declare -a failures=()

note() { echo "== $*" | tee -a "$out_dir/run.log"; }

# step NAME LIMIT_S COMMAND...: runs COMMAND with its output in $out_dir/NAME.log (and the
# JSON lines it prints appended to results.jsonl), within LIMIT_S and the remaining budget.
step() {
  local name="$1" limit="$2"
  shift 2
  local left=$((deadline - $(date +%s) - 5))
  if ((left < 10)); then
    failures+=("$name: not run, the ${budget} s budget is spent")
    note "$name: skipped (budget spent)"
    return 1
  fi
  ((limit > left)) && limit=$left
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" > "$out_dir/$name.log" 2>&1
  rc=$?
  grep -h '^{' "$out_dir/$name.log" >> "$results" || true
  if ((rc == 124 || rc == 137)); then
    failures+=("$name: stopped at its ${limit} s limit (log: $out_dir/$name.log)")
    note "$name: TIMEOUT after ${limit} s"
  elif ((rc != 0)); then
    failures+=("$name: exit $rc: $(grep -v '^{' "$out_dir/$name.log" | tail -n 3 | tr '\n' ' ')")
    note "$name: FAILED (exit $rc), last lines:"
    tail -n 15 "$out_dir/$name.log"
  else
    note "$name: ok ($(($(date +%s) - t0)) s)"
  fi
  return $rc
}

note "digitflow GPU run, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit ${DIGITFLOW_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi -L 2>&1 | head -n 4 | tee -a "$out_dir/run.log"
  nvidia-smi --query-gpu=driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$out_dir/run.log"
else
  note "no nvidia-smi on this machine"
fi
command -v nvcc > /dev/null || export PATH="/usr/local/cuda/bin:$PATH"
note "$(nvcc --version | tail -n 1); $(cmake --version | head -n 1); $(python3 -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -n 1)"

# --- data -----------------------------------------------------------------------------
if [[ -z "$data_dir" && -n "$carry" ]]; then data_dir="$carry/mnist"; fi
data_dir="${data_dir:-data/mnist}"
if ls "$data_dir"/*.gz > /dev/null 2>&1; then
  mkdir -p /tmp/digitflow-mnist
  for f in "$data_dir"/*.gz; do gunzip -c "$f" > "/tmp/digitflow-mnist/$(basename "$f" .gz)"; done
  data_dir=/tmp/digitflow-mnist
fi
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [[ -f "$data_dir/$f" ]] || { echo "run.sh: MNIST file $data_dir/$f is missing (--data or --carry)" >&2; exit 1; }
done

# --- configure and build ----------------------------------------------------------------
cmake_args=(-S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DDIGITFLOW_KERNELS_ONLY=ON
            -DDIGITFLOW_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DDIGITFLOW_ONEDNN=OFF)
command -v ninja > /dev/null && cmake_args+=(-G Ninja)
[[ -n "$carry" ]] && cmake_args+=("-DCMAKE_PREFIX_PATH=$carry/prefix")
cudnn_lib=""
if [[ ! -f /usr/local/cuda/include/cudnn.h ]]; then
  # PyTorch's wheel brings cuDNN 9 (headers and libraries) as the package nvidia.cudnn.
  cudnn_root="$(python3 -c 'import nvidia.cudnn as c; print(list(c.__path__)[0])' 2>/dev/null || true)"
  if [[ -n "$cudnn_root" ]]; then
    cmake_args+=("-DDIGITFLOW_CUDNN_ROOT=$cudnn_root")
    cudnn_lib="$cudnn_root/lib"
  fi
fi
[[ -n "$cudnn_lib" ]] && export LD_LIBRARY_PATH="$cudnn_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[[ -n "$carry" ]] && export LD_LIBRARY_PATH="$carry/prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step configure 120 cmake "${cmake_args[@]}" || { note "configure failed: nothing to build"; cat "$out_dir/configure.log" | tail -n 30; exit 1; }
grep -E "digitflow:" "$out_dir/configure.log"
step build 240 cmake --build "$build_dir" -j "$(nproc)" --target bench_gpu || { note "build failed"; exit 1; }
tests_built=1
step build-tests 180 cmake --build "$build_dir" -j "$(nproc)" --target test_kernels || tests_built=0
bench="$build_dir/benchmarks/gpu/bench_gpu"
device_ok=1
step probe 30 "$bench" probe || device_ok=0
cat "$out_dir/probe.log"

# --- tests ------------------------------------------------------------------------------
if ((tests_built)); then
  step tests 180 "$build_dir/tests/test_kernels" --gtest_filter='Cuda*:Backend*' --gtest_brief=1
  grep -E "PASSED|FAILED|SKIPPED" "$out_dir/tests.log" | head -n 20
fi
if ((!device_ok)); then
  note "no usable CUDA device here, so no timings: $(cat "$out_dir/probe.log")"
  printf '%s\n' "${failures[@]}"
  exit 1
fi
((quick)) && { note "--quick: no timings"; printf '%s\n' "${failures[@]}"; exit 0; }

# --- timings ----------------------------------------------------------------------------
for model in seed default; do
  python3 benchmarks/gpu/gpu_peer_torch.py spec "config/models/$model.yaml" > "$out_dir/$model.json"
done
peer=benchmarks/gpu/gpu_peer_torch.py
for model in seed default; do
  for backend in cuda cudnn; do
    step "train-$model-$backend" 60 "$bench" train --model "$out_dir/$model.json" --data "$data_dir" --backend "$backend"
  done
  step "train-$model-torch" 60 python3 "$peer" train "config/models/$model.yaml" --data "$data_dir"
  for backend in cuda cudnn; do
    step "infer-$model-$backend" 60 "$bench" infer --model "$out_dir/$model.json" --data "$data_dir" --backend "$backend" --batches 1,256,8192
  done
  step "infer-$model-torch" 60 python3 "$peer" infer "config/models/$model.yaml" --data "$data_dir" --batches 1,256,8192
done
for backend in cuda cudnn; do
  step "full-default-$backend" 150 "$bench" full --model "$out_dir/default.json" --data "$data_dir" --backend "$backend" --epochs "$full_epochs"
done
step "full-default-torch" 150 python3 "$peer" full config/models/default.yaml --data "$data_dir" --epochs "$full_epochs"

# --- the table --------------------------------------------------------------------------
printf '%s\n' "${failures[@]}" > "$out_dir/failures.txt"
python3 - "$results" "$out_dir/failures.txt" "$(($(date +%s) - start))" <<'PY' | tee "$out_dir/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
failures = [l.strip() for l in open(sys.argv[2]) if l.strip()]
def peer(r): return r["backend"] if r["peer"] == "digitflow" else "torch"
def get(what, model, who, key, batch=None):
    for r in rows:
        if r["what"] == what and r["model"] == model and peer(r) == who and (batch is None or r.get("batch") == batch):
            return r.get(key)
    return None
def fmt(v, kind):
    if v is None: return "-"
    if kind == "rate": return f"{v:,.0f}"
    if kind == "s": return f"{v:.2f} s"
    if kind == "pct": return f"{100 * v:.2f}%"
    return str(v)
who = ["cuda", "cudnn", "torch"]
lines = ["| figure | model | digitflow cuda | digitflow cudnn | PyTorch |", "|---|---|---|---|---|"]
def row(label, model, values):
    lines.append(f"| {label} | {model} | " + " | ".join(values) + " |")
for model in ["seed", "default"]:
    row("training images/s", model, [fmt(get("train", model, w, "images_per_s"), "rate") for w in who])
    row("time per MNIST epoch (60,000)", model, [fmt(get("train", model, w, "epoch_s"), "s") for w in who])
def reached(w):
    t = get("full", "default", w, "time_to_target_s")
    e = get("full", "default", w, "epoch_reached")
    best = get("full", "default", w, "best_test_accuracy")
    if t is not None: return f"{t:.2f} s (epoch {e})"
    return "not reached" + (f" (best {100 * best:.2f}%)" if best is not None else "") if best is not None else "-"
row("time to 99.5% test accuracy", "default", [reached(w) for w in who])
row("best test accuracy, full run", "default", [fmt(get("full", "default", w, "best_test_accuracy"), "pct") for w in who])
for model in ["seed", "default"]:
    for batch in [1, 256, 8192]:
        row(f"inference digits/s, batch {batch}", model, [fmt(get("infer", model, w, "digits_per_s", batch), "rate") for w in who])
print("\n".join(lines))
print(f"\n(fp32 throughout, TF32 off; training: AdamW one-cycle, batch 128, augmentation on the device; "
      f"total run {sys.argv[3]} s)")
if failures:
    print("\nFAILED OR NOT RUN:")
    for f in failures: print("  - " + f)
else:
    print("\nevery step ran")
PY
[[ ${#failures[@]} -eq 0 ]]
