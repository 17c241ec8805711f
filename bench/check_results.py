#!/usr/bin/env python3
# Checks bench/results/*.json against themselves and against bench/RESULTS.md: every statistic a
# section reports must recompute from the raw figures of its runs kept in the same file.
"""Check the benchmark results: every statistic recomputes from its raw runs.

For every SECTION.json (and SECTION.failed.json, the raw figures of a section that failed) in
the results directory, each entry of its "summary" is recomputed from its "raw" series with the
statistic it names (median, min, max, mean, sum, count, first, last, delta, rate; see
bench/benchkit.py, evaluate) and compared with the value it reports. Unless --no-markdown, the
markdown file (RESULTS.md) is checked too: its header names a commit and the raw figures, it
holds each SECTION.json's section verbatim (so the figures shown are those of that JSON), the
header names the commit of every such JSON, and every section it lists as ok or kept has its
JSON. Exit 0 when all of it holds, else 1 with one line per mismatch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from benchkit import FigureError, evaluate, same_value  # noqa: E402


def check_json(path: Path, problems: list[str]) -> dict | None:
    """Recomputes the summary of one JSON file; returns the document (None if unreadable)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        problems.append(f"{path.name}: not readable JSON: {e}")
        return None
    missing = [k for k in ("section", "commit", "raw", "summary") if k not in doc]
    if missing:
        problems.append(f"{path.name}: no {', '.join(missing)}")
        return None
    for entry in doc["summary"]:
        name = entry.get("name", "?")
        try:
            again = evaluate(entry, doc["raw"])
        except (FigureError, KeyError, TypeError, ZeroDivisionError, ValueError) as e:
            problems.append(f"{path.name}: {name!r}: cannot recompute: {e}")
            continue
        value = entry.get("value")
        if not isinstance(value, (int, float)) or not same_value(value, again):
            problems.append(f"{path.name}: {name!r} reports {value!r}, but the "
                            f"{entry['statistic']} of {entry['of']!r}"
                            + (f" / {entry['divided_by']!r}" if "divided_by" in entry else "")
                            + f" is {again!r}")
    return doc


def check_markdown(markdown: Path, docs: dict[Path, dict], results: Path,
                   problems: list[str]) -> None:
    try:
        text = markdown.read_text()
    except OSError as e:
        problems.append(f"{markdown}: {e.strerror}")
        return
    header = text.split("\n## ", 1)[0]
    if not re.search(r"^- wanbalance: commit [0-9a-f]{40}\b", header, re.M):
        problems.append(f"{markdown.name}: no '- wanbalance: commit SHA' line in the header")
    if not re.search(r"^- raw figures: ", header, re.M):
        problems.append(f"{markdown.name}: no '- raw figures: ...' line in the header")
    for path, doc in docs.items():
        if path.name.endswith(".failed.json"):
            continue
        if doc.get("markdown") is None:
            problems.append(f"{path.name}: holds no markdown to compare with {markdown.name}")
        elif doc["markdown"] not in text:
            problems.append(f"{markdown.name} does not hold the section of {path.name} as its "
                            f"run wrote it (from another run, or edited)")
        elif path.name not in doc["markdown"]:
            problems.append(f"{path.name}: its section does not name the file")
        if doc["commit"] not in header:
            problems.append(f"{markdown.name}: the header does not name commit {doc['commit']} "
                            f"of {path.name}")
    for section in re.findall(r"^\| (\w+) \| (?:ok|kept)\b", header, re.M):
        if not (results / f"{section}.json").is_file():
            problems.append(f"{markdown.name} lists {section} as ok, but there is no "
                            f"{results / (section + '.json')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE.json",
                        help="check only these (then the markdown only with --markdown)")
    parser.add_argument("--results", type=Path, default=BENCH / "results",
                        help="directory of the JSON files (default bench/results)")
    parser.add_argument("--markdown", type=Path,
                        help="the results markdown (default bench/RESULTS.md, or none when "
                             "FILE.json are given)")
    parser.add_argument("--no-markdown", action="store_true", help="check the JSON files only")
    args = parser.parse_args()
    files = args.files or sorted(args.results.glob("*.json"))
    markdown = None if args.no_markdown else args.markdown or (
        None if args.files else BENCH / "RESULTS.md")
    if not files:
        print(f"check_results.py: no JSON files in {args.results}", file=sys.stderr)
        return 1
    problems: list[str] = []
    docs = {}
    for path in files:
        doc = check_json(path, problems)
        if doc is not None:
            docs[path] = doc
    if markdown is not None:
        check_markdown(markdown, docs, args.results, problems)
    entries = sum(len(d["summary"]) for d in docs.values())
    for p in problems:
        print(f"check_results.py: {p}", file=sys.stderr)
    what = f"{len(files)} JSON files, {entries} statistics" + (
        f", {markdown}" if markdown is not None else "")
    if problems:
        print(f"check_results.py: {len(problems)} mismatches ({what})", file=sys.stderr)
        return 1
    print(f"check_results.py: ok: {what} recompute from their raw runs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
