#!/usr/bin/env bash
# The one benchmark command: runs every section script of bench/ in the namespace lab, one after
# the other, and assembles bench/RESULTS.md (machine header, summary, one section per script).
set -uo pipefail

readonly SECTIONS=(dataplane spread failover controlplane footprint soak)
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$BENCH")
readonly BENCH REPO
PYTHON=/usr/bin/python3

usage() {
    cat <<EOF
Usage: sudo bench/run.sh [--quick] [--only SECTION[,SECTION...]] [--output FILE] [--timeout S]

Runs the benchmark sections in this order, each as
  $PYTHON bench/SECTION.py [--quick] --markdown FRAGMENT
and writes their markdown, after a header describing the machine and the build, to
bench/RESULTS.md (or --output). A section that fails or is missing is reported as failed in
the file, with its reason, and the others still run. Exit 0 if every section succeeded, else 1.

  --quick          smoke test: every section with --quick (seconds each, not minutes)
  --only LIST      run only these sections (comma list), e.g. --only dataplane,spread
  --output FILE    write here instead of bench/RESULTS.md
  --timeout S      stop a section after S seconds (default 3600; with --quick 600)

Sections: ${SECTIONS[*]}
Needs root (network namespaces) and a built daemon: \$WANBALANCE_BUILD_DIR, else build/
(meson setup build && ninja -C build wanbalanced wanbalancectl). Builds nothing itself;
installs the packages of tools/deps.sh bench. Run it on a quiet machine: the data-plane
figures compete with everything else for CPU (the header records the load average).
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }

quick=0
only=""
output="$BENCH/RESULTS.md"
timeout_s=""
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --quick) quick=1 ;;
        --only) [[ $# -ge 2 ]] || die "--only needs a list of sections"; only=$2; shift ;;
        --only=*) only=${1#--only=} ;;
        --output) [[ $# -ge 2 ]] || die "--output needs a file"; output=$2; shift ;;
        --output=*) output=${1#--output=} ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; timeout_s=$2; shift ;;
        --timeout=*) timeout_s=${1#--timeout=} ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done
[[ -n "$timeout_s" ]] || timeout_s=$((quick ? 600 : 3600))
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout takes whole seconds, got '$timeout_s'"

selected=()
if [[ -n "$only" ]]; then
    IFS=, read -r -a wanted <<<"$only"
    for s in "${wanted[@]}"; do
        [[ " ${SECTIONS[*]} " == *" $s "* ]] || die "unknown section '$s' (${SECTIONS[*]})"
    done
    for s in "${SECTIONS[@]}"; do   # keep the canonical order
        [[ ",$only," == *",$s,"* ]] && selected+=("$s")
    done
else
    selected=("${SECTIONS[@]}")
fi

((EUID == 0)) || die "needs root (the benchmarks build network namespaces)"
command_line="bench/run.sh"
((quick)) && command_line+=" --quick"
[[ -n "$only" ]] && command_line+=" --only $only"

"$REPO/tools/deps.sh" bench || die "tools/deps.sh bench failed"
build=${WANBALANCE_BUILD_DIR:-$REPO/build}
daemon=""
for candidate in "$build/wanbalanced" "$build/daemon/wanbalanced"; do
    [[ -x "$candidate" ]] && { daemon=$candidate; break; }
done
[[ -n "$daemon" ]] || die "no wanbalanced in $build: build it first (meson setup build &&" \
                          "ninja -C build wanbalanced wanbalancectl) or set WANBALANCE_BUILD_DIR"
export WANBALANCE_BUILD_DIR=$build
"$REPO/tests/lab/lab.sh" gc >/dev/null 2>&1 || true   # labs left behind by a crashed run

work=$(mktemp -d /tmp/wanbalance-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
commit=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "unknown (not a git checkout)")
if [[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit+=" with uncommitted changes"
fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(loadavg)

declare -A status reason seconds
failed=0
for s in "${selected[@]}"; do
    script="$BENCH/$s.py"
    fragment="$work/$s.md"
    log="$work/$s.stderr"
    args=()
    ((quick)) && args+=(--quick)
    echo "==> $s (bench/$s.py${args[*]:+ ${args[*]}})" >&2
    start=$SECONDS
    if [[ ! -f "$script" ]]; then
        status[$s]=missing
        reason[$s]="bench/$s.py does not exist"
        echo "run.sh: ${reason[$s]}" >&2
    else
        # The section's stderr is its progress: shown live and kept for the failure reason.
        timeout --signal=TERM --kill-after=30 "$timeout_s" \
            "$PYTHON" "$script" "${args[@]}" --markdown "$fragment" 2> >(tee "$log" >&2)
        rc=$?
        wait   # for tee
        if ((rc == 0)) && [[ -s "$fragment" ]]; then
            status[$s]=ok
        else
            status[$s]=failed
            if ((rc == 124)); then
                reason[$s]="stopped after the ${timeout_s} s timeout"
            elif ((rc == 0)); then
                reason[$s]="exited 0 but wrote no markdown"
            else
                last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
                reason[$s]="exit ${rc}${last:+: $last}"
            fi
        fi
    fi
    seconds[$s]=$((SECONDS - start))
    [[ "${status[$s]}" == ok ]] || failed=1
    echo "==> $s: ${status[$s]} (${seconds[$s]} s)" >&2
done

{
    echo "# wanbalance benchmark results"
    echo
    echo "- command: \`sudo $command_line\`"
    echo "- date: $started"
    echo "- wanbalance: commit $commit; $("$daemon" --version 2>/dev/null | head -n 1) from ${build#"$REPO"/}"
    echo "- machine: \`$(uname -a)\`"
    echo "- CPU: ${cpu:-unknown} × $(nproc) (load average $load_before at the start, $(loadavg) at the end)"
    echo "- kernel $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), $(nft --version 2>/dev/null), $(iperf3 --version 2>/dev/null | head -n 1 | cut -d' ' -f1-2), $(iptables-nft --version 2>/dev/null)"
    echo
    echo "| section | result | seconds |"
    echo "|---|---|---|"
    for s in "${selected[@]}"; do
        echo "| $s | ${status[$s]}${reason[$s]:+: ${reason[$s]//|/\\|}} | ${seconds[$s]} |"
    done
    for s in "${selected[@]}"; do
        echo
        if [[ "${status[$s]}" == ok ]]; then
            cat "$work/$s.md"
        else
            echo "## $s: ${status[$s]^^}"
            echo
            echo "\`$PYTHON bench/$s.py${args[*]:+ ${args[*]}} --markdown …\`: ${reason[$s]}"
        fi
    done
} >"$work/RESULTS.md"
mkdir -p "$(dirname "$output")"
mv "$work/RESULTS.md" "$output"
echo "wrote $output" >&2
exit "$failed"
