#!/usr/bin/env bash
# The main job: the article's multi-WAN router in network namespaces — balancing, then a live
# failover and recovery, then an HA pair losing its primary, narrated. Needs root; installs what
# it needs and builds first. Usage: sudo ./demo.sh [--connections N] [--no-ha]
set -euo pipefail
cd "$(dirname "$0")"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,4p' "$0" | sed 's/^# //'
  exit 0
fi
if [[ $EUID -ne 0 ]]; then echo "demo.sh: run as root (the demo creates network namespaces)" >&2; exit 1; fi
tools/deps.sh all
build=${WANBALANCE_BUILD_DIR:-build}
[[ -f "$build/build.ninja" ]] || meson setup "$build" >/dev/null
echo "==> building (first time: a few minutes)"
ninja -C "$build" wanbalanced ctl/wanbalancectl >/dev/null
WANBALANCE_BUILD_DIR="$PWD/$build" exec /usr/bin/python3 demo/demo.py "$@"
