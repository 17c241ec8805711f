#!/usr/bin/env bash
# Runs the whole test suite: unit tests, kernel tests in network namespaces, and the lab
# integration tests. Needs root (namespaces). Installs what it needs first.
# Usage: sudo ./test.sh [--quick]   (--quick: unit tests only)
set -euo pipefail
cd "$(dirname "$0")"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,4p' "$0" | sed 's/^# //'
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
echo "==> all tests passed"
