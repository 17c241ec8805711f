#!/usr/bin/env python3
"""Lists C++ functions longer than a limit (default 80 lines), and files longer than a limit.

Usage: tools/long_functions.py [--max-lines N] [--max-file-lines N] PATH...
A PATH that is a directory stands for its *.cpp and *.hpp files (the file limit applies to .cpp).
A function is a top-level or class-level brace block whose opening line looks like a
definition (ends with ')' ... '{'); lambdas inside are counted with their function.
Exit status 1 when anything is over.
"""
import argparse
import pathlib
import re
import sys

DEF = re.compile(r'\)\s*(const)?\s*(noexcept)?\s*(override)?\s*(->\s*[\w:<>, ]+)?\s*\{\s*$')


def functions(lines):
    depth = 0
    start = None
    start_depth = 0
    for n, raw in enumerate(lines, 1):
        line = re.sub(r'//.*', '', raw)
        line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        if start is None and DEF.search(line) and not re.match(r'\s*(if|for|while|switch|catch)\b', line):
            # a definition at namespace or class scope (depth counts namespaces/classes too)
            start, start_depth = n, depth
        depth += line.count('{') - line.count('}')
        if start is not None and depth <= start_depth:
            yield start, n
            start = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--max-lines', type=int, default=80)
    ap.add_argument('--max-file-lines', type=int, default=0)
    ap.add_argument('files', nargs='+', metavar='PATH')
    a = ap.parse_args()
    bad = 0
    files = []
    for p in map(pathlib.Path, a.files):
        files += sorted(p.glob('*.[ch]pp')) if p.is_dir() else [p]
    for f in files:
        lines = f.read_text().splitlines()
        if a.max_file_lines and f.suffix == '.cpp' and len(lines) > a.max_file_lines:
            print(f'{f}: {len(lines)} lines (limit {a.max_file_lines})')
            bad += 1
        for s, e in functions(lines):
            if e - s + 1 > a.max_lines:
                print(f'{f}:{s}: function of {e - s + 1} lines: {lines[s - 1].strip()[:80]}')
                bad += 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
