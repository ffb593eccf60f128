#!/usr/bin/env bash
# Puts Fashion-MNIST (Debian's dataset-fashion-mnist package, gzipped IDX files) unpacked
# into <repo>/data/fashion-mnist, for `digitflow eval --data fashion-test` and for training
# with --data-dir data/fashion-mnist. Skips what is already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/data/fashion-mnist"
src=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
have_all=1
for f in "${files[@]}"; do [[ -s "$dest/$f" ]] || have_all=0; done
if [[ $have_all -eq 1 ]]; then echo "fashion-mnist: present in $dest"; exit 0; fi
"$root/scripts/deps.sh" dataset-fashion-mnist
mkdir -p "$dest"
for f in "${files[@]}"; do
  [[ -f "$src/$f.gz" ]] || { echo "fashion-mnist: $src/$f.gz missing after installing dataset-fashion-mnist" >&2; exit 1; }
  if ! gunzip -c "$src/$f.gz" > "$dest/$f.tmp"; then
    rm -f "$dest/$f.tmp"
    echo "fashion-mnist: cannot unpack $src/$f.gz" >&2
    exit 1
  fi
  mv "$dest/$f.tmp" "$dest/$f"
done
echo "fashion-mnist: unpacked into $dest"
