#!/usr/bin/env bash
# Runs the whole test suite: unit tests, kernel tests in network namespaces, the lab
# integration tests, and the system tests (unit checks, the .deb, a real systemd in nspawn).
# Needs root (namespaces). Installs what it needs first.
# Usage: sudo ./test.sh [--quick]   (--quick: unit tests only)
set -euo pipefail
cd "$(dirname "$0")"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,5p' "$0" | sed 's/^# //'
  exit 0
fi
if [[ $EUID -ne 0 ]]; then echo "test.sh: run as root (the tests create network namespaces)" >&2; exit 1; fi

tools/deps.sh all
build=${WANBALANCE_BUILD_DIR:-build}
[[ -f "$build/build.ninja" ]] || meson setup "$build" >/dev/null
echo "==> building"
ninja -C "$build" >/dev/null

echo "==> unit tests"
meson test -C "$build" --suite unit --print-errorlogs
[[ "${1:-}" == "--quick" ]] && exit 0

echo "==> kernel tests (network namespaces)"
meson test -C "$build" --suite kernel --print-errorlogs

echo "==> integration tests (the lab: router, two ISPs, internet, LAN in namespaces)"
WANBALANCE_BUILD_DIR="$PWD/$build" /usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider

echo "==> system tests (systemd-analyze on the unit, the .deb and lintian, wanbalance under systemd in nspawn)"
deb_out=$(mktemp -d /tmp/wanbalance-deb-out.XXXXXX)
trap 'rm -rf "$deb_out"' EXIT
# The unit suite already ran above: the package build skips it.
deb=$(DEB_BUILD_OPTIONS=nocheck packaging/build-deb.sh "$deb_out" | tail -n 1)
WANBALANCE_BUILD_DIR="$PWD/$build" WANBALANCE_DEB="$deb" \
  /usr/bin/python3 -m pytest tests/system -q -p no:cacheprovider
echo "==> all tests passed"
