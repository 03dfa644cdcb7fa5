#!/usr/bin/env bash
# Installs NVRTC 11.8 (Debian's libnvrtc11.2, non-free) so every CUDA kernel compiles in CI without a GPU.
# Idempotent: does nothing when an NVRTC library is already on the loader path.
set -euo pipefail
if ldconfig -p | grep -q 'libnvrtc\.so'; then
  echo "NVRTC already present: $(ldconfig -p | grep -o 'libnvrtc\.so[^ ]*' | head -1)"
  exit 0
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
src=/etc/apt/sources.list.d/debian.sources
uri=$(awk '/^URIs:/{print $2; exit}' "$src" 2>/dev/null || true)
[ -n "$uri" ] || uri=http://deb.debian.org/debian
keyring=$(awk '/^Signed-By:/{print $2; exit}' "$src" 2>/dev/null || true)
[ -n "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
$sudo tee /etc/apt/sources.list.d/debian-non-free.sources >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: bookworm
Components: non-free
Signed-By: $keyring
SRC
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libnvrtc11.2 >/dev/null
echo "NVRTC installed: $(ldconfig -p | grep -o 'libnvrtc\.so[^ ]*' | head -1)"
