#!/usr/bin/env bash
# Installs what building, testing and the demo need (Debian 12). Fast when already installed.
# Usage: tools/deps.sh [build|test|bench|system|fuzz|all]   (default: all)
#   test: iperf3 fills a shaped queue in tests/integration/test_detection.py (and the benchmarks);
#   keepalived and conntrackd run the HA pair lab (tests/integration/labha.py, issue 14)
#   bench: what bench/run.sh needs on top of test (iptables for the classic comparison,
#   hping3 for the new-connection flood of bench/rules.py)
#   system: the unit checks, the .deb (debhelper, lintian, scdoc) and the real-systemd tests
#   (debootstrap, systemd-nspawn)
#   fuzz: clang 14 with libFuzzer and the sanitizer runtimes (libclang-rt-14-dev)
set -euo pipefail

build=(g++ meson ninja-build pkg-config libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev
       nlohmann-json3-dev libsystemd-dev doctest-dev)
runtime=(nftables iproute2 conntrack iputils-ping procps kmod dnsmasq-base)
test=(python3 python3-pytest socat iperf3 keepalived conntrackd)
bench=(iptables hping3)
system=(debhelper dpkg-dev lintian scdoc man-db systemd systemd-container debootstrap
        python3-jsonschema binutils)
# libFuzzer ships in libclang-rt-14-dev on bookworm (clang-14 only recommends it). Sanitizer
# stack traces use addr2line (binutils) when llvm-symbolizer is absent: llvm-14 is not needed.
fuzz=(clang-14 libclang-rt-14-dev binutils)

case "${1:-all}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${runtime[@]}" "${test[@]}") ;;
  bench) want=("${build[@]}" "${runtime[@]}" "${test[@]}" "${bench[@]}") ;;
  system) want=("${build[@]}" "${system[@]}") ;;
  fuzz) want=("${build[@]}" "${fuzz[@]}") ;;
  all) want=("${build[@]}" "${runtime[@]}" "${test[@]}" "${bench[@]}" "${system[@]}" "${fuzz[@]}") ;;
  -h|--help) echo "Usage: tools/deps.sh [build|test|bench|system|fuzz|all]"; exit 0 ;;
  *) echo "tools/deps.sh: unknown set '$1' (build, test, bench, system, fuzz or all)" >&2; exit 1 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # keepalived's and conntrackd's packages start and enable their services on a host with
  # systemd. The lab runs its own in namespaces: the host's are neither started nor enabled
  # when this script installs them (policy-rc.d refuses the starts for this install only).
  services=()
  for p in keepalived conntrackd; do
    [[ " ${missing[*]} " == *" $p "* ]] && services+=("$p")
  done
  policy=""
  if ((${#services[@]})) && [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# tools/deps.sh: no service starts while it installs\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -z "$policy" ]] || rm -f "$policy"
  for s in "${services[@]}"; do
    systemctl disable "$s" >/dev/null 2>&1 || true
  done
fi
