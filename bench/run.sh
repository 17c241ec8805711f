#!/usr/bin/env bash
# The one benchmark command: runs every section script of bench/ in the namespace lab, one after
# the other, and assembles bench/RESULTS.md (machine header, summary, one section per script) from
# one commit, with every run's raw figures in bench/results/SECTION.json, checked at the end.
set -uo pipefail

readonly SECTIONS=(dataplane spread failover detection ha controlplane footprint soak rules)
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$BENCH")
readonly BENCH REPO
PYTHON=/usr/bin/python3

usage() {
    cat <<EOF
Usage: sudo bench/run.sh [--quick] [--only SECTION[,SECTION...]] [--output FILE] [--timeout S]
                         [--allow-dirty]

Runs the benchmark sections in this order, each as
  $PYTHON bench/SECTION.py [--quick] --markdown FRAGMENT --json RESULTS/SECTION.json
and writes their markdown, after a header describing the machine and the build, to
bench/RESULTS.md (or --output). RESULTS is the directory results/ beside that file
(bench/results/): each SECTION.json holds every raw figure of its section (each round, run,
repetition or sample, with its unit and configuration), the statistics computed from them, the
commit, and the section's markdown. A section that fails or is missing is reported as failed in
the file, with its reason, and the others still run (a JSON file a failed section wrote is kept
as SECTION.failed.json). At the end bench/check_results.py recomputes every statistic from its
raw runs and checks the markdown against the JSON files. Exit 0 if every section succeeded and
the check passed, else 1.

One run = one commit: the header names \`git rev-parse HEAD\` and its subject, and run.sh
refuses to run while tracked files differ from HEAD (except bench/results/ and
bench/RESULTS.md).

  --quick          smoke test: every section with --quick (seconds each, not minutes); writes
                   to a new scratch directory /tmp/wanbalance-bench-quick.XXXXXX (RESULTS.md,
                   results/), not to bench/, unless --output is given; there uncommitted
                   changes are allowed (the header says so)
  --only LIST      run only these sections (comma list), e.g. --only dataplane,spread; the other
                   sections' JSON files are kept, their markdown is taken from them, and the
                   header says which sections come from which commit
  --output FILE    write here instead of bench/RESULTS.md, the JSON files to results/ beside it
  --timeout S      stop a section after S seconds (default 3600; with --quick 600)
  --allow-dirty    run although tracked files have uncommitted changes; the header then says
                   "commit SHA (subject) plus uncommitted changes"

Without --only every JSON file in the results directory is replaced, with --only those of the
sections run. If run.sh does not complete (error, Ctrl-C), the previous JSON files are put back.

Sections: ${SECTIONS[*]}
Needs root (network namespaces) and a built daemon: \$WANBALANCE_BUILD_DIR, else build/
(meson setup build && ninja -C build wanbalanced ctl/wanbalancectl). Builds nothing itself;
installs the packages of tools/deps.sh bench. Run it on a quiet machine: the data-plane
figures compete with everything else for CPU (the header records the load average).
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }

quick=0
only=""
output=""
timeout_s=""
allow_dirty=0
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
        --allow-dirty) allow_dirty=1 ;;
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

# One run = one commit: the figures are of HEAD, and of nothing else unless --allow-dirty.
commit=$(git -C "$REPO" rev-parse --verify HEAD 2>/dev/null) \
    || die "cannot name the commit: $REPO is not a git checkout (or git refuses it)"
subject=$(git -C "$REPO" log -1 --format=%s "$commit")
changed=$(git -C "$REPO" diff --name-only HEAD -- . ':(exclude)bench/results' \
              ':(exclude)bench/RESULTS.md') \
    || die "git diff failed: cannot tell whether the work tree is clean"
dirty=0
[[ -n "$changed" ]] && dirty=1
scratch_quick=0
((quick)) && [[ -z "$output" ]] && scratch_quick=1
if ((dirty && !allow_dirty && !scratch_quick)); then
    count=$(wc -l <<<"$changed")
    {
        echo "run.sh: refusing to run: $count tracked file(s) differ from commit ${commit:0:12}:"
        head -n 10 <<<"$changed" | sed 's/^/    /'
        ((count > 10)) && echo "    ..."
        echo "RESULTS.md must come from one commit: commit these changes first, or pass"
        echo "--allow-dirty (the header then says \"commit ${commit:0:12}... plus uncommitted changes\")."
    } >&2
    exit 1
fi
commit_text="commit $commit ($subject)"
((dirty)) && commit_text+=" plus uncommitted changes"

((EUID == 0)) || die "needs root (the benchmarks build network namespaces)"
command_line="bench/run.sh"
((quick)) && command_line+=" --quick"
[[ -n "$only" ]] && command_line+=" --only $only"
[[ -n "$output" ]] && command_line+=" --output $output"
((allow_dirty)) && command_line+=" --allow-dirty"

"$REPO/tools/deps.sh" bench || die "tools/deps.sh bench failed"
build=${WANBALANCE_BUILD_DIR:-$REPO/build}
daemon=""
for candidate in "$build/wanbalanced" "$build/daemon/wanbalanced"; do
    [[ -x "$candidate" ]] && { daemon=$candidate; break; }
done
[[ -n "$daemon" ]] || die "no wanbalanced in $build: build it first (meson setup build &&" \
                          "ninja -C build wanbalanced ctl/wanbalancectl) or set WANBALANCE_BUILD_DIR"
export WANBALANCE_BUILD_DIR=$build
"$REPO/tests/lab/lab.sh" gc >/dev/null 2>&1 || true   # labs left behind by a crashed run

if ((scratch_quick)); then
    output=$(mktemp -d /tmp/wanbalance-bench-quick.XXXXXX)/RESULTS.md
elif [[ -z "$output" ]]; then
    output="$BENCH/RESULTS.md"
fi
output=$(realpath -m "$output")
results=$(dirname "$output")/results
shown() {   # a path as RESULTS.md shows it: relative to the repository when inside it
    case "$1" in "$REPO"/*) echo "${1#"$REPO"/}" ;; *) echo "$1" ;; esac
}

work=$(mktemp -d /tmp/wanbalance-bench.XXXXXX)
# The JSON files this run replaces wait in $work/previous until it completes; if it does not,
# they are put back and the new ones of the sections run are removed.
completed=0
restore() {
    if ((!completed)) && [[ -d "$work/previous" ]]; then
        for s in "${selected[@]}"; do rm -f "$results/$s.json" "$results/$s.failed.json"; done
        find "$work/previous" -maxdepth 1 -name '*.json' -exec mv -f -t "$results" {} +
        echo "run.sh: did not complete: the previous JSON files are back in $(shown "$results")" >&2
    fi
    rm -rf "$work"
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
mkdir -p "$results" "$work/previous"
if [[ -n "$only" ]]; then
    for s in "${selected[@]}"; do
        for f in "$results/$s.json" "$results/$s.failed.json"; do
            [[ -e "$f" ]] && mv -f "$f" "$work/previous/"
        done
    done
else
    find "$results" -maxdepth 1 -name '*.json' -exec mv -f -t "$work/previous" {} +
fi
# The sections write this commit into their JSON (bench/benchkit.py), whatever HEAD is later.
export WANBALANCE_BENCH_COMMIT=$commit WANBALANCE_BENCH_DIRTY=$dirty

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
jget() {    # jget FILE KEY: one field of a section's JSON, as text
    "$PYTHON" -c 'import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
sys.stdout.write("" if v is None else v if isinstance(v, str) else json.dumps(v))' "$1" "$2"
}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(loadavg)

declare -A status reason seconds
failed=0
args=()
((quick)) && args+=(--quick)
for s in "${selected[@]}"; do
    script="$BENCH/$s.py"
    fragment="$work/$s.md"
    json="$results/$s.json"
    log="$work/$s.stderr"
    echo "==> $s (bench/$s.py${args[*]:+ ${args[*]}} --json $(shown "$json"))" >&2
    start=$SECONDS
    if [[ ! -f "$script" ]]; then
        status[$s]=missing
        reason[$s]="bench/$s.py does not exist"
        echo "run.sh: ${reason[$s]}" >&2
    else
        # The section's stderr is its progress: shown live and kept for the failure reason.
        timeout --signal=TERM --kill-after=30 "$timeout_s" \
            "$PYTHON" "$script" "${args[@]}" --markdown "$fragment" --json "$json" \
            2> >(tee "$log" >&2)
        rc=$?
        wait   # for tee
        if ((rc == 0)) && [[ -s "$fragment" && -s "$json" ]]; then
            status[$s]=ok
        else
            status[$s]=failed
            if ((rc == 124)); then
                reason[$s]="stopped after the ${timeout_s} s timeout"
            elif ((rc == 0)); then
                reason[$s]="exited 0 but wrote no markdown or no JSON"
            else
                last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
                reason[$s]="exit ${rc}${last:+: $last}"
            fi
            if [[ -s "$json" ]]; then   # its figures, apart from those RESULTS.md shows
                mv -f "$json" "$results/$s.failed.json"
                reason[$s]+=" (its raw figures: $(shown "$results/$s.failed.json"))"
            else
                rm -f "$json"
            fi
        fi
    fi
    seconds[$s]=$((SECONDS - start))
    [[ "${status[$s]}" == ok ]] || failed=1
    echo "==> $s: ${status[$s]} (${seconds[$s]} s)" >&2
done

# With --only, the sections not run keep the figures, and the markdown, of their last run.
shown_sections=()
kept=()
for s in "${SECTIONS[@]}"; do
    if [[ " ${selected[*]} " == *" $s "* ]]; then
        shown_sections+=("$s")
    elif [[ -n "$only" && -s "$results/$s.json" ]]; then
        f="$results/$s.json"
        shown_sections+=("$s")
        kept+=("$s")
        status[$s]=kept
        seconds[$s]=$(jget "$f" seconds)
        seconds[$s]=${seconds[$s]%.*}
        reason[$s]="from the run of $(jget "$f" date), commit $(jget "$f" commit | cut -c1-12)"
    fi
done
figures_line="all sections from this run"
if ((${#kept[@]})); then
    this_run="${selected[*]}"
    figures_line="${this_run// /, } from this run"
    for s in "${kept[@]}"; do
        f="$results/$s.json"
        line="$s from commit $(jget "$f" commit) ($(jget "$f" subject))"
        [[ "$(jget "$f" uncommitted_changes)" == true ]] && line+=" plus uncommitted changes"
        figures_line+="; $line, run on $(jget "$f" date) by \`$(jget "$f" command)\`"
    done
fi

{
    echo "# wanbalance benchmark results"
    echo
    echo "- command: \`sudo $command_line\`"
    echo "- date: $started"
    echo "- wanbalance: $commit_text; $("$daemon" --version 2>/dev/null | head -n 1) from ${build#"$REPO"/}"
    echo "- raw figures: $(shown "$results")/<section>.json (every run; \`bench/check_results.py\` recomputes every statistic from them)"
    echo "- figures: $figures_line"
    echo "- machine: \`$(uname -a)\`"
    echo "- CPU: ${cpu:-unknown} × $(nproc) (load average $load_before at the start, $(loadavg) at the end)"
    echo "- kernel $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), $(nft --version 2>/dev/null), $(iperf3 --version 2>/dev/null | head -n 1 | cut -d' ' -f1-2), $(iptables-nft --version 2>/dev/null), $(hping3 --version 2>/dev/null | head -n 1 | cut -d' ' -f1-3)"
    echo
    echo "| section | result | seconds |"
    echo "|---|---|---|"
    for s in "${shown_sections[@]}"; do
        echo "| $s | ${status[$s]}${reason[$s]:+: ${reason[$s]//|/\\|}} | ${seconds[$s]} |"
    done
    for s in "${shown_sections[@]}"; do
        echo
        if [[ "${status[$s]}" == ok ]]; then
            cat "$work/$s.md"
        elif [[ "${status[$s]}" == kept ]]; then
            jget "$results/$s.json" markdown
        else
            echo "## $s: ${status[$s]^^}"
            echo
            echo "\`$PYTHON bench/$s.py${args[*]:+ ${args[*]}} --markdown … --json …\`: ${reason[$s]}"
        fi
    done
} >"$work/RESULTS.md"
mkdir -p "$(dirname "$output")"
mv "$work/RESULTS.md" "$output"
completed=1
echo "wrote $output (raw figures in $results)" >&2
if ! "$PYTHON" "$BENCH/check_results.py" --results "$results" --markdown "$output"; then
    echo "run.sh: $(shown "$output") and the JSON files beside it do not check out (above)" >&2
    failed=1
fi
exit "$failed"
