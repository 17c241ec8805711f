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
JSON. For dataplane, failover, detection, ha and rules, every series their parameters promise
(each family's configurations, each fault kind, each rule count, system and kind of traffic,
each kind of detection run, each HA failure kind) must be there with one point per round or run and have its
statistics in the summary, and each target's verdict must follow from those statistics.
Exit 0 when all of it holds, else 1 with one line per mismatch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from benchkit import FigureError, evaluate, same_value, series_of  # noqa: E402


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


def _promised(doc: dict) -> tuple[list[str], int | None]:
    """The series a dataplane, failover, detection, ha or rules run must hold, and how many points
    each."""
    params = doc.get("parameters", {})
    if doc["section"] == "dataplane":
        suffix = {"ipv4": "", "ipv6": "6"}
        return ([f"{kind}{suffix[family]}.{config}"
                 for family in params.get("families", ["ipv4"])
                 for kind in ("tcp", "udp") for config in "abc"], params.get("rounds"))
    if doc["section"] == "failover":
        return list(params.get("faults", [])), params.get("runs_per_fault")
    if doc["section"] in ("detection", "ha"):
        return list(params.get("kinds", [])), params.get("runs_per_kind")
    if doc["section"] == "rules":
        return ([f"{metric}.{kind}.{system}{n}" for metric in params.get("metrics", [])
                 for kind in params.get("kinds", []) for n in params.get("counts", [])
                 for system in params.get("systems", [])], params.get("rounds"))
    return [], None


def _stat(doc: dict, name: str):
    return next((e["value"] for e in doc["summary"] if e.get("name") == name), None)


def _verdicts(doc: dict) -> list[tuple[str, object, bool]]:
    """(what, the outcome's verdict, the verdict its summary statistics give)."""
    outcome, out = doc.get("outcome", {}), []
    if doc["section"] == "dataplane":
        for t in outcome.get("targets", []):
            pair, bound = {"b/a >= 0.95": ("b/a", 0.95), "b/c >= 1": ("b/c", 1.0)}.get(
                t.get("target"), (None, None))
            value = _stat(doc, f"{t.get('metric')}: {pair} per round, median")
            if value is None:
                out.append((f"target {t.get('metric')} {t.get('target')}", t.get("met"), None))
            else:
                out.append((f"target {t.get('metric')} {t.get('target')}", t.get("met"),
                            value >= bound))
    if doc["section"] == "rules":
        for t in outcome.get("targets", []):
            value = _stat(doc, t.get("statistic"))
            bound, op = t.get("bound"), t.get("op")
            follows = (None if value is None or not isinstance(bound, (int, float))
                       or op not in (">=", "<") else value >= bound if op == ">=" else
                       value < bound)
            out.append((f"target {t.get('kind')}: {t.get('target')}", t.get("met"), follows))
    if doc["section"] == "failover":
        for key, fault in (("carrier_within_300_ms", "carrier"),
                           ("carrier6_within_300_ms", "carrier6")):
            if key in outcome:
                worst = _stat(doc, f"{fault}: wan-down logged, worst")
                out.append((key, outcome[key], None if worst is None else worst < 0.3))
        if "ipv4_unaffected_by_ipv6_upstream" in outcome:
            name = "upstream6: IPv4 attempts alongside, {}"
            failed = _stat(doc, name.format("failed, sum over the runs"))
            least = [_stat(doc, name.format(f"{wan}, min over the runs"))
                     for wan in ("charter", "integra")]
            out.append(("ipv4_unaffected_by_ipv6_upstream",
                        outcome["ipv4_unaffected_by_ipv6_upstream"],
                        None if None in (failed, *least) else failed == 0 and min(least) > 0))
    if doc["section"] == "detection":
        targets = doc.get("parameters", {}).get("targets_s", {})
        for kind, bound in targets.items():
            key = f"{kind}_median_within_target"
            if key in outcome:
                median = _stat(doc, f"{kind}: wan-down, median")
                out.append((key, outcome[key], None if median is None else median <= bound))
        if "failed_at_most_half" in outcome:
            failed = _stat(doc, "traffic: failed connections per failover, median")
            before = doc.get("parameters", {}).get("failed_before")
            out.append(("failed_at_most_half", outcome["failed_at_most_half"],
                        None if None in (failed, before) else failed <= before / 2))
        if "soak_no_state_change" in outcome:
            changes = _stat(doc, "soak: state changes")
            out.append(("soak_no_state_change", outcome["soak_no_state_change"],
                        None if changes is None else changes == 0))
    if doc["section"] == "ha":
        kinds = doc.get("parameters", {}).get("kinds", [])
        for key, name, follows in (
                ("gap_ms_within_target", "longest data gap, max", lambda v: v < 1500),
                ("new_ms_within_target", "first new connection, max", lambda v: v < 1000),
                ("lost_within_target", "connections lost, sum", lambda v: v == 0)):
            if key in outcome:
                values = [_stat(doc, f"{kind}: {name}") for kind in kinds]
                out.append((key, outcome[key], None if None in values or not values
                            else all(follows(v) for v in values)))
    return out


def check_promised(path: Path, doc: dict, problems: list[str]) -> None:
    """dataplane / failover / detection / ha / rules: each promised series (e.g. the IPv6 ones) is
    there, complete, and summarized; each verdict agrees with the statistics it rests on."""
    series, points = _promised(doc)
    summarized = set().union(*(series_of(e) for e in doc["summary"]))
    for key in series:
        if key not in doc["raw"]:
            problems.append(f"{path.name}: no raw series {key!r} (its parameters promise it)")
            continue
        n = len(doc["raw"][key].get("points", []))
        if points is not None and n != points:
            problems.append(f"{path.name}: series {key!r} has {n} points, its parameters say "
                            f"{points}")
        if key not in summarized:
            problems.append(f"{path.name}: no statistic in the summary is computed from {key!r}")
    if doc["section"] == "rules" and max(doc.get("parameters", {}).get("counts") or [0]):
        # The targets, for both kinds of traffic: not a weaker bound, not left out.
        have = {(t.get("kind"), t.get("op")): t.get("bound")
                for t in doc.get("outcome", {}).get("targets", [])}
        for kind in ("last", "none"):
            if not have.get((kind, ">="), 0) >= 0.9 or not have.get((kind, "<"), 2) <= 1:
                problems.append(f"{path.name}: the targets for {kind!r} traffic are not "
                                f"'>= 0.9 of the 0-rule rate' and 'iptables / wanbalance < 1'")
    for what, said, follows in _verdicts(doc):
        if follows is None:
            problems.append(f"{path.name}: {what}: the summary lacks the statistic it rests on")
        elif said != follows:
            problems.append(f"{path.name}: {what} says {said!r}, its statistics say {follows!r}")


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
            check_promised(path, doc, problems)
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
