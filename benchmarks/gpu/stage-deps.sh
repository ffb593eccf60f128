#!/usr/bin/env bash
# Run HERE (the development machine) before benchmarks/gpu/run.sh goes to the GPU machine:
# that machine has CUDA, CMake and PyTorch but no oneTBB, nlohmann-json or GoogleTest and no
# network, so this copies them (Debian 12's builds: headers, libraries, CMake package files,
# in their prefix layout) and the MNIST IDX files (gzipped) into .gpu-carry/ at the repo root,
# which git ignores and the device call carries:  carry [".gpu-carry"].
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_dir="${1:-${DIGITFLOW_DATA:-$repo_root/data/mnist}}"
stage="$repo_root/.gpu-carry"
multiarch="lib/x86_64-linux-gnu"

rm -rf "$stage"
mkdir -p "$stage/prefix/include" "$stage/prefix/$multiarch/cmake" "$stage/prefix/share/cmake" "$stage/mnist"
copy() { cp -a "$@"; }
copy /usr/include/nlohmann /usr/include/tbb /usr/include/oneapi /usr/include/gtest /usr/include/gmock "$stage/prefix/include/"
copy /usr/share/cmake/nlohmann_json "$stage/prefix/share/cmake/"
copy /usr/$multiarch/cmake/TBB /usr/$multiarch/cmake/GTest "$stage/prefix/$multiarch/cmake/"
copy /usr/$multiarch/libtbb*.so* /usr/$multiarch/libgtest*.a /usr/$multiarch/libgmock*.a "$stage/prefix/$multiarch/"

for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [[ -f "$data_dir/$f" ]] || { echo "stage-deps: $data_dir/$f is missing (scripts/fetch-mnist.sh)" >&2; exit 1; }
  gzip -1 -c "$data_dir/$f" > "$stage/mnist/$f.gz"
done
echo "stage-deps: $(du -sh "$stage" | cut -f1) in $stage"
