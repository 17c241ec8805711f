#!/usr/bin/env bash
# Fuzzes the config loader with libFuzzer (clang, ASan + UBSan + LeakSanitizer) for SECONDS
# (default 60). Installs clang and libFuzzer (tools/deps.sh fuzz), builds tests/fuzz/fuzz-config in
# its own build dir, seeds it with tests/configs/*/*.json and docs/examples/wanbalance.json.
# Fails on any crash, hang (over 2 s on one input), leak or out-of-memory, and prints the input.
# Usage: tests/fuzz/run.sh [SECONDS]   (WANBALANCE_FUZZ_BUILD_DIR: build dir, default build-fuzz)
# Reproduce a finding: build-fuzz/tests/fuzz/fuzz-config FILE
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,7p' "$0" | sed 's/^# //'
  exit 0
fi
seconds=${1:-60}
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "tests/fuzz/run.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 1
fi

if [[ $EUID -eq 0 ]]; then
  tools/deps.sh fuzz
else
  echo "==> not root: not installing packages (tools/deps.sh fuzz)"
fi

build=${WANBALANCE_FUZZ_BUILD_DIR:-build-fuzz}
if [[ ! -f "$build/build.ninja" ]]; then
  # Only the config, rules and base libraries are built here: no doctest, no man pages.
  CXX=clang++-14 meson setup "$build" -Dfuzz=true -Dtests=false -Dman=disabled >/dev/null
elif ! python3 -c 'import json, sys
opts = {o["name"]: o["value"] for o in json.load(open(sys.argv[1]))}
sys.exit(0 if opts.get("fuzz") else 1)' "$build/meson-info/intro-buildoptions.json"; then
  echo "tests/fuzz/run.sh: $build is not a -Dfuzz=true build dir (remove it or set WANBALANCE_FUZZ_BUILD_DIR)" >&2
  exit 1
fi
echo "==> building the fuzz target (clang, libFuzzer, ASan, UBSan)"
ninja -C "$build" tests/fuzz/fuzz-config >/dev/null
fuzzer="$build/tests/fuzz/fuzz-config"

# The corpus the fuzzer grows lives in the build dir, so later runs start where this one ended;
# the seeds are copied fresh each run from the test configs and the documented example.
corpus="$build/fuzz-corpus/config"
artifacts="$build/fuzz-artifacts/"
seeds=$(mktemp -d /tmp/wanbalance-fuzz-seeds.XXXXXX)
log=$(mktemp /tmp/wanbalance-fuzz-log.XXXXXX)
trap 'rm -rf "$seeds" "$log"' EXIT
mkdir -p "$corpus" "$artifacts"
for f in tests/configs/*/*.json docs/examples/wanbalance.json; do
  cp "$f" "$seeds/$(echo "$f" | tr / _)"
done

# LeakSanitizer is on (libFuzzer checks every input that allocated more than it freed); UBSan
# findings abort (-fno-sanitize-recover) and so count as crashes.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
if [[ -x /usr/bin/llvm-symbolizer-14 ]]; then export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14; fi

before=$(find "$artifacts" -type f | sort)
echo "==> fuzzing the config loader for ${seconds}s (corpus: $corpus)"
status=0
"$fuzzer" "$corpus" "$seeds" \
  -dict=tests/fuzz/config.dict -max_len=8192 -max_total_time="$seconds" -timeout=2 \
  -rss_limit_mb=2048 -malloc_limit_mb=2048 -detect_leaks=1 -print_final_stats=1 \
  -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')

if ((status != 0)) || [[ -n "$new" ]]; then
  # From the sanitizer's or libFuzzer's report on (what comes before is only seed loading).
  first=$(grep -n -m1 -E '^==[0-9]+==|ERROR: libFuzzer|runtime error|broken promise' "$log" | cut -d: -f1)
  if [[ -n "$first" ]]; then sed -n "${first},\$p" "$log" | head -n 80 >&2; else tail -n 80 "$log" >&2; fi
  echo "tests/fuzz/run.sh: the fuzzer failed (exit $status)" >&2
  for f in $new; do echo "reproducer: $f   (run: $fuzzer $f)" >&2; done
  exit 1
fi
grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE' "$log" || true
echo "==> fuzzing found nothing ($(find "$corpus" -type f | wc -l) inputs in the corpus)"
