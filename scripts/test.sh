#!/usr/bin/env bash
# Builds digitflow and runs every test: installs missing Debian packages, fetches MNIST
# (once), configures with warnings as errors, builds, runs ctest.
# Environment: BUILD_DIR (default build), JOBS (default: cores), DIGITFLOW_DATA.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${BUILD_DIR:-build}"
jobs="${JOBS:-$(nproc)}"

scripts/deps.sh
scripts/fetch-mnist.sh
# playwright-core for the browser tests, from the lock file (never a browser download)
[[ -d tests/browser/node_modules ]] || (cd tests/browser && npm ci --no-audit --no-fund)

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DDIGITFLOW_STRICT=ON >/dev/null
cmake --build "$build_dir" -j "$jobs"
cd "$build_dir"
ctest --output-on-failure -j "$jobs" --timeout 900
