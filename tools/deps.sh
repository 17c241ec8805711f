#!/usr/bin/env bash
# Installs what building, testing and the demo need (Debian 12). Fast when already installed.
# Usage: tools/deps.sh [build|test|system|all]   (default: all)
#   system: the unit checks, the .deb (debhelper, lintian, scdoc) and the real-systemd tests
#   (debootstrap, systemd-nspawn)
set -euo pipefail

build=(g++ meson ninja-build pkg-config libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev
       nlohmann-json3-dev libsystemd-dev doctest-dev)
runtime=(nftables iproute2 conntrack iputils-ping procps kmod)
test=(python3 python3-pytest socat)
system=(debhelper dpkg-dev lintian scdoc man-db systemd systemd-container debootstrap
        python3-jsonschema binutils)

case "${1:-all}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${runtime[@]}" "${test[@]}") ;;
  system) want=("${build[@]}" "${system[@]}") ;;
  all) want=("${build[@]}" "${runtime[@]}" "${test[@]}" "${system[@]}") ;;
  -h|--help) echo "Usage: tools/deps.sh [build|test|system|all]"; exit 0 ;;
  *) echo "tools/deps.sh: unknown set '$1' (build, test, system or all)" >&2; exit 1 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
