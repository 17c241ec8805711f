#!/usr/bin/env python3
"""Checks that each folder includes only the folders docs/design.md (Include rules) allows.

Usage: tools/check_layers.py [REPO]   (default: the repository this script is in)
Prints each include that breaks a rule as FILE:LINE: ... and exits 1 if there is any.
"""
import pathlib
import re
import sys

# folder -> folders of ours it may include (besides itself)
ALLOWED = {
    "base": set(),
    "config": {"base"},
    "rules": {"config", "base"},
    "probe": {"config", "base"},
    "core": {"rules", "config", "base", "probe/health.hpp"},
    "netlink": {"rules", "config", "base"},
    "control": {"base"},
    "daemon": {"base", "config", "rules", "probe", "core", "netlink", "control"},
    "ctl": {"config", "rules", "control", "base"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main():
    repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    bad = 0
    for folder, allowed in ALLOWED.items():
        for f in sorted((repo / folder).glob("*.[ch]pp")):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                m = INCLUDE.match(line)
                if not m or "/" not in m[1]:
                    continue
                target = m[1]
                top = target.split("/")[0]
                if top == folder or top not in ALLOWED or top in allowed or target in allowed:
                    continue
                print(f"{f.relative_to(repo)}:{n}: {folder}/ may not include {target}")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
