#!/usr/bin/env bash
# Installs the Debian packages digitflow builds with, skipping those already present.
# Usage: scripts/deps.sh [EXTRA_PACKAGE...]   (run as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtbb-dev libyaml-cpp-dev libboost-program-options-dev nlohmann-json3-dev
  libopencv-dev libpoppler-cpp-dev libpoppler-private-dev libtiff-dev zlib1g-dev libgtest-dev libbenchmark-dev libdnnl-dev libopenblas-dev
  libsqlite3-dev libpqxx-dev postgresql
  libcpp-httplib-dev libsodium-dev libzip-dev
  fonts-dejavu-core
  chromium
  ca-certificates
  "$@"
)
# npm may come from another Node.js distribution than Debian's: only its command counts.
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
