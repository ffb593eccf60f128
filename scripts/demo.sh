#!/usr/bin/env bash
# Reads the bundled sample job (examples/sample-job: scanned checks as PNG, JPEG, a
# multi-page TIFF and a PDF) with the shipped model: installs missing Debian packages,
# builds digitflow where needed, runs it, prints the summary, a score against the sample's
# truth, and where the results and overlays are.
# Environment: BUILD_DIR (default build), OUT (default out/sample-job), JOBS (default: cores).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${BUILD_DIR:-build}"
out="${OUT:-out/sample-job}"
jobs="${JOBS:-$(nproc)}"
job="examples/sample-job"

scripts/deps.sh
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  echo "demo: configuring $build_dir"
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
echo "demo: building digitflow (only what changed)"
cmake --build "$build_dir" --target digitflow -j "$jobs" | grep -E "error|warning|Linking" || true
digitflow="$build_dir/apps/digitflow"
[[ -x "$digitflow" ]] || { echo "demo: $digitflow was not built; see the messages above" >&2; exit 1; }

echo
echo "demo: reading $job ($(find "$job" -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.tif' -o -name '*.pdf' \) | wc -l) files)"
status=0
"$digitflow" run "$job" --out "$out" --template "$job/template.yaml" --overlays || status=$?
if [[ $status -ne 0 && $status -ne 3 ]]; then
  echo "demo: digitflow run failed (exit status $status)" >&2
  exit "$status"
fi

echo
echo "demo: first strings read (results.csv: page, page_index, string, text, confidence, box, field, valid):"
head -n 9 "$out/results.csv" | cut -c1-120
echo
echo "demo: against the sample's truth ($job/truth.jsonl):"
"$digitflow" score "$out/results.jsonl" "$job/truth.jsonl"
echo
echo "demo: results in $out/"
echo "  results.jsonl   one JSON object per page (strings, digits with top 3, fields)"
echo "  results.csv     one row per string"
echo "  summary.json    counts, seconds per stage, pages/s"
echo "  overlays/       each page with the boxes and text drawn ($(find "$out/overlays" -name '*.png' | wc -l) images)"
