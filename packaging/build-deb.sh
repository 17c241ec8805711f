#!/usr/bin/env bash
# Builds the wanbalance .deb: assembles a build tree in a temporary directory from the source
# (debian/ comes from packaging/debian), runs dpkg-buildpackage -b, and leaves the .deb (and
# its .buildinfo and .changes) in OUTDIR. Prints the path of the .deb on the last line.
#
# Usage: packaging/build-deb.sh [--git|--worktree] OUTDIR
#   --worktree  (default) the working tree as it is: tracked and untracked files, minus what
#               .gitignore ignores (build directories); uncommitted changes are included
#   --git       the committed tree (git archive HEAD)
# Environment: DEB_BUILD_OPTIONS is passed on (e.g. "nocheck" skips the unit tests).
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
source_kind=worktree
outdir=
while (($#)); do
    case "$1" in
        --git) source_kind=git ;;
        --worktree) source_kind=worktree ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "build-deb.sh: unknown option $1" >&2; usage >&2; exit 1 ;;
        *) [[ -z "$outdir" ]] || { echo "build-deb.sh: one OUTDIR only" >&2; exit 1; }; outdir=$1 ;;
    esac
    shift
done
[[ -n "$outdir" ]] || { usage >&2; exit 1; }

top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# The package version is the project's: refuse to build a .deb that says otherwise.
meson_version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$top/meson.build" | head -n1)
deb_version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
if [[ "$meson_version" != "$deb_version" ]]; then
    echo "build-deb.sh: meson.build says version $meson_version but packaging/debian/changelog says" \
         "$deb_version; add a changelog entry" >&2
    exit 1
fi

work=$(mktemp -d /tmp/wanbalance-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree="$work/wanbalance-$meson_version"
mkdir -p "$tree"

if [[ "$source_kind" == git ]]; then
    git -C "$top" archive --format=tar HEAD | tar -x -C "$tree"
elif git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked files that are not ignored, and that still exist.
    (cd "$top" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -x -C "$tree"
else
    tar -C "$top" --exclude='./build*' --exclude='*/__pycache__' -cf - . | tar -x -C "$tree"
fi
rm -rf "$tree/debian"
cp -a "$top/packaging/debian" "$tree/debian"

echo "==> dpkg-buildpackage in $tree (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})" >&2
(cd "$tree" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed (last 60 lines above)" >&2
    exit 1
}
cp "$work/build.log" "$outdir/build.log"
shopt -s nullglob
debs=("$work"/wanbalance_*.deb)
((${#debs[@]} == 1)) || { echo "build-deb.sh: expected one .deb, got ${#debs[@]}" >&2; exit 1; }
cp "$work"/wanbalance_*.deb "$work"/wanbalance_*.buildinfo "$work"/wanbalance_*.changes "$outdir"/
echo "$outdir/$(basename "${debs[0]}")"
