#!/usr/bin/env bash
# Runs the whole test suite: unit, kernel and lab integration tests on an ASan+UBSan build, a
# bounded libFuzzer run on the config loader, and the system tests (unit checks, the .deb, a
# real systemd in nspawn). Needs root (namespaces). Installs what it needs first.
# Usage: sudo ./test.sh [--quick]   (--quick: unit tests only)
#
# The test build (build-test/, or WANBALANCE_BUILD_DIR) has AddressSanitizer, LeakSanitizer and
# UndefinedBehaviorSanitizer, and a report fails the run: UBSan does not recover, so UB ends the
# program with exit code 1 (its report goes to stderr: the daemon's log); ASan and LSan exit 1
# too (a daemon that leaks at a clean stop fails the tests that assert it exits 0 on SIGTERM)
# and also write every report to a directory checked after each stage, so a leak in a process
# whose exit code no test looks at (ctl, a daemon stopped by a fixture) fails the run as well.
# The plain optimized build is still tested: the system tests install the .deb, which
# dpkg-buildpackage builds without sanitizers. demo.sh keeps its own plain build/.
# WANBALANCE_FUZZ_SECONDS (default 60) bounds the fuzzing stage.
set -euo pipefail
cd "$(dirname "$0")"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,5p' "$0" | sed 's/^# //'
  exit 0
fi
if [[ $EUID -ne 0 ]]; then echo "test.sh: run as root (the tests create network namespaces)" >&2; exit 1; fi

tools/deps.sh all
build=${WANBALANCE_BUILD_DIR:-build-test}
# -g1 (line tables only) still gives sanitizer reports function names and file:line, and halves
# the compile time: full -g debug info of ASan-instrumented code is what makes such builds slow.
sanitize=(-Db_sanitize=address,undefined "-Dcpp_args=-fno-sanitize-recover=all -g1")
if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" "${sanitize[@]}" >/dev/null
elif ! python3 -c 'import json, sys
opts = {o["name"]: o["value"] for o in json.load(open(sys.argv[1]))}
sys.exit(0 if opts["b_sanitize"] == "address,undefined" and
         opts["cpp_args"] == ["-fno-sanitize-recover=all", "-g1"] else 1)' \
    "$build/meson-info/intro-buildoptions.json"; then
  meson configure "$build" "${sanitize[@]}" >/dev/null
fi
echo "==> building (ASan + UBSan)"
ninja -C "$build" >/dev/null

# Every ASan/LSan report goes to $san_logs/report.PID as well as failing the process. Tests that
# bound a process's RSS read WANBALANCE_SANITIZERS: ASan's quarantine makes RSS grow by design.
export WANBALANCE_SANITIZERS=address,undefined
# A skipped test is a failure here: a missing tool or privilege must not pass as a green run.
export WANBALANCE_NO_SKIPS=1
san_logs=$(mktemp -d /tmp/wanbalance-sanitizer.XXXXXX)
deb_out=
trap 'rm -rf "$san_logs" ${deb_out:+"$deb_out"}' EXIT
# (print_stacktrace is UBSan's own flag: ASan would warn about it, and the warning is a report.
# GCC's UBSan ignores log_path when it runs with ASan: its reports stay on stderr.)
export ASAN_OPTIONS="log_path=$san_logs/report:detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
sanitizer_check() {
  local reports=("$san_logs"/report.*)
  [[ -e "${reports[0]}" ]] || return 0
  echo "test.sh: sanitizer reports during the $1:" >&2
  for r in "${reports[@]}"; do echo "--- $r" >&2; head -n 60 "$r" >&2; done
  exit 1
}

echo "==> unit tests"
# meson test, failing on a skipped test too (exit 77: a kernel test without namespaces, say).
meson_suite() {
  local out
  out=$(mktemp)
  meson test -C "$build" --suite "$1" --print-errorlogs | tee "$out"
  if ! grep -Eq '^Skipped: +0 *$' "$out"; then echo "test.sh: the $1 suite skipped tests" >&2; rm -f "$out"; exit 1; fi
  rm -f "$out"
}
meson_suite unit
sanitizer_check "unit tests"
# The core, the kernel sync and the protocol need no privilege: prove it as an unprivileged user
# (copies, since the build dir may sit where that user cannot read).
unprivileged=$(mktemp -d /tmp/wanbalance-unprivileged.XXXXXX)
for t in wan_state reconcile kernel_sync protocol; do cp "$build/tests/test-$t" "$unprivileged/"; done
chmod -R a+rX "$unprivileged"
for t in wan_state reconcile kernel_sync protocol; do
  (cd "$unprivileged" && ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 setpriv --reuid=nobody --regid=nogroup \
     --clear-groups "./test-$t" --minimal) || { echo "test.sh: test-$t failed as user nobody" >&2; exit 1; }
done
rm -rf "$unprivileged"
echo "unit tests of the core, kernel sync and protocol: passed as user nobody"
[[ "${1:-}" == "--quick" ]] && exit 0

echo "==> kernel tests (network namespaces)"
meson_suite kernel
sanitizer_check "kernel tests"

echo "==> integration tests (the lab: router, two ISPs, internet, LAN in namespaces)"
WANBALANCE_BUILD_DIR="$PWD/$build" /usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider
sanitizer_check "integration tests"

echo "==> fuzzing the config loader (libFuzzer, ${WANBALANCE_FUZZ_SECONDS:-60}s)"
(unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; tests/fuzz/run.sh "${WANBALANCE_FUZZ_SECONDS:-60}")

echo "==> system tests (systemd-analyze on the unit, the .deb and lintian, wanbalance under systemd in nspawn)"
deb_out=$(mktemp -d /tmp/wanbalance-deb-out.XXXXXX)
# The unit suite already ran above: the package build skips it.
deb=$(DEB_BUILD_OPTIONS=nocheck packaging/build-deb.sh "$deb_out" | tail -n 1)
WANBALANCE_BUILD_DIR="$PWD/$build" WANBALANCE_DEB="$deb" \
  /usr/bin/python3 -m pytest tests/system -q -p no:cacheprovider
sanitizer_check "system tests"
echo "==> all tests passed"
