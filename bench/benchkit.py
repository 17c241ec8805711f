"""What every benchmark section shares (bench/README.md): markdown tables, figures as
"median (min–max)", the one-line failure, printing + writing the section at the end, and the
section's raw figures as JSON (`--json FILE`, class Figures; the format and the statistics that
bench/check_results.py recomputes are defined here once)."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORMAT = 1          # of the JSON document below; bump on incompatible changes
STARTED = time.monotonic()


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(script: str, message: str) -> int:
    """The contract's failure: one line on stderr, exit status 1."""
    first = message.splitlines()[0] if message else "failed"
    print(f"{script}: {first}", file=sys.stderr)
    return 1


def command_args() -> list[str]:
    """This run's arguments, without where the markdown and the JSON go."""
    out, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a in ("--markdown", "--json"):
            skip = True
        elif not a.startswith(("--markdown=", "--json=")):
            out.append(a)
    return out


def md_table(header: list[str], rows: list[list[str]]) -> str:
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(r[i].ljust(widths[i]) for i in range(len(header))) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def spread_text(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def with_json_note(text: str, json_path: Path | None) -> str:
    """The section, ending with where its raw figures are when they go to a JSON file."""
    return text.rstrip("\n") + "\n\n" + json_note(json_path) + "\n" if json_path else text


def save(text: str, markdown: Path | None, figures: Figures | None = None,
         json_path: Path | None = None) -> None:
    """Writes the section where --markdown said and, with --json, the raw figures (the JSON
    holds the same markdown, so RESULTS.md can be checked against it)."""
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text)
        progress(f"wrote {markdown}")
    if json_path:
        if figures is None:
            raise ValueError("--json without figures")
        figures.write(json_path, text)
        progress(f"wrote {json_path}")


def finish(text: str, markdown: Path | None, figures: Figures | None = None,
           json_path: Path | None = None, status: int = 0) -> int:
    """Prints the section and saves it (markdown, JSON); returns status, the exit status."""
    text = with_json_note(text, json_path)
    print(text)
    save(text, markdown, figures, json_path)
    return status


def problems_text(problems: list[str], most: int = 20) -> str:
    """The "Problems seen" list that ends a section, or "" when there were none."""
    if not problems:
        return ""
    return "\nProblems seen:\n\n" + "\n".join(f"- {p}" for p in problems[:most]) + "\n"


# -- raw figures as JSON ------------------------------------------------------------------------
#
# One document per section (bench/README.md, "Raw figures"):
#
#   {"format": 1, "section": "dataplane", "commit": SHA, "subject": "first line of its message",
#    "uncommitted_changes": false, "date": "... UTC", "seconds": 312.5,
#    "command": "python3 bench/dataplane.py", "parameters": {...},
#    "raw": {KEY: {"unit": "Gbit/s", "labels": {"config": "a", ...}, "field_units": {...},
#                  "points": [{"round": 1, "value": 17.7, ...}, ...]}, ...},
#    "summary": [{"name": "...", "statistic": "median", "of": KEY, "value": 17.7,
#                 "unit": "Gbit/s"}, ...],
#    "outcome": {...}, "markdown": "## ..."}
#
# "raw" holds every figure measured: one point per round / run / repetition / sample, "value" in
# the series' unit, other fields as named (their units in "field_units"). "summary" holds every
# statistic the section reports, each recomputable from "raw" with evaluate():
#
#   of          "KEY", "KEY:FIELD" (that field instead of "value"), either with a slice "[a:b]"
#               of the points, or a list of those (concatenated)
#   divided_by  optional, the same form: of's values are divided by these, point by point (the
#               two lists must be as long; points that both have a round/rep/run number must
#               have the same)
#   statistic   one of STATISTICS, on the values left once nulls (no figure) are dropped
#   scale       optional factor applied last (e.g. 1000: seconds shown as ms)
#   minus       optional, another such expression whose value is subtracted


def _delta(xs: list, points: list[dict]) -> float:
    return xs[-1] - xs[0]


def _rate(xs: list, points: list[dict]) -> float:
    """Change per second: (last - first) / (t of the last point - t of the first)."""
    if "t" not in points[0] or "t" not in points[-1]:
        raise FigureError("rate needs points with a time t")
    return (xs[-1] - xs[0]) / (points[-1]["t"] - points[0]["t"])


STATISTICS = {
    "median": lambda xs, points: statistics.median(xs),
    "mean": lambda xs, points: statistics.fmean(xs),
    "min": lambda xs, points: min(xs),
    "max": lambda xs, points: max(xs),
    "sum": lambda xs, points: sum(xs),
    "count": lambda xs, points: len(xs),
    "first": lambda xs, points: xs[0],
    "last": lambda xs, points: xs[-1],
    "delta": _delta,
    "rate": _rate,
}
PAIRED_BY = ("round", "rep", "run")
_REF = re.compile(r"^(?P<key>[^:\[\]]+)(?::(?P<field>[^:\[\]]+))?"
                  r"(?:\[(?P<a>-?\d*):(?P<b>-?\d*)\])?$")  # KEY[:FIELD][[a:b]]


class FigureError(ValueError):
    pass


def _select(raw: dict, of) -> list[tuple[object, dict]]:
    """(value, point) for every point named by an "of" / "divided_by" reference."""
    out = []
    for ref in ([of] if isinstance(of, str) else of):
        m = _REF.match(ref) if isinstance(ref, str) else None
        if not m:
            raise FigureError(f"bad reference {ref!r}")
        if m["key"] not in raw:
            raise FigureError(f"no raw series {m['key']!r}")
        points = raw[m["key"]]["points"]
        if m["a"] is not None or m["b"] is not None:
            points = points[int(m["a"]) if m["a"] else None:int(m["b"]) if m["b"] else None]
        field = m["field"] or "value"
        for p in points:
            if field not in p:
                raise FigureError(f"a point of {m['key']!r} has no {field!r}")
            out.append((p[field], p))
    return out


def series_of(expr: dict) -> set[str]:
    """The raw series keys a summary entry is computed from (of, divided_by, minus)."""
    out = set()
    for key in ("of", "divided_by"):
        refs = expr.get(key)
        for ref in [refs] if isinstance(refs, str) else refs or []:
            m = _REF.match(ref) if isinstance(ref, str) else None
            if m:
                out.add(m["key"])
    return out | (series_of(expr["minus"]) if isinstance(expr.get("minus"), dict) else set())


def evaluate(expr: dict, raw: dict) -> float:
    """The value of a summary entry (its statistic, of, divided_by, scale, minus) from raw."""
    statistic = STATISTICS.get(expr.get("statistic"))
    if statistic is None:
        raise FigureError(f"unknown statistic {expr.get('statistic')!r}")
    pairs = _select(raw, expr["of"])
    if "divided_by" in expr:
        under = _select(raw, expr["divided_by"])
        if len(under) != len(pairs):
            raise FigureError(f"{expr['of']!r} has {len(pairs)} points, {expr['divided_by']!r} "
                              f"{len(under)}")
        divided = []
        for (x, p), (y, q) in zip(pairs, under):
            for key in PAIRED_BY:
                if key in p and key in q and p[key] != q[key]:
                    raise FigureError(f"{key} {p[key]} of {expr['of']!r} paired with {key} "
                                      f"{q[key]} of {expr['divided_by']!r}")
            divided.append((None if x is None or y is None else x / y, p))
        pairs = divided
    pairs = [(x, p) for x, p in pairs if x is not None]
    if not pairs:
        raise FigureError(f"no values in {expr['of']!r}")
    for x, _ in pairs:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise FigureError(f"{expr['of']!r} holds {x!r}, not a number")
    value = statistic([x for x, _ in pairs], [p for _, p in pairs]) * expr.get("scale", 1)
    if "minus" in expr:
        value -= evaluate(expr["minus"], raw)
    return value


def same_value(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _git(*argv: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def dirty_files() -> list[str]:
    """Tracked files that differ from HEAD, except the results themselves (run.sh's rule)."""
    out = _git("diff", "--name-only", "HEAD", "--", ".", ":(exclude)bench/results",
               ":(exclude)bench/RESULTS.md")
    return out.splitlines() if out else []


def identity() -> dict:
    """The commit the figures come from: bench/run.sh's (WANBALANCE_BENCH_COMMIT, fixed at its
    start), else this checkout's HEAD; with its subject line and whether the tree differed."""
    commit = os.environ.get("WANBALANCE_BENCH_COMMIT") or _git("rev-parse", "HEAD") or "unknown"
    dirty = os.environ.get("WANBALANCE_BENCH_DIRTY")
    return {"commit": commit,
            "subject": _git("log", "-1", "--format=%s", commit) if commit != "unknown" else None,
            "uncommitted_changes": bool(dirty_files()) if dirty is None else dirty == "1"}


def display_path(path: Path) -> str:
    """path relative to the repository when inside it (bench/results/x.json), else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def json_note(path: Path) -> str:
    return (f"Raw figures (every run): `{display_path(path)}`; `bench/check_results.py` "
            f"recomputes the statistics above from them.")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write every raw figure measured (each round/run/sample) and the "
                             "statistics computed from them to this JSON file")


def add_section_arguments(parser: argparse.ArgumentParser, title: str, results: Path) -> None:
    """--markdown, --output, --build-dir and --json: what every lab section takes."""
    parser.add_argument("--markdown", type=Path, metavar="OUT.md",
                        help=f"write a '{title}' section to this file instead of --output")
    parser.add_argument("--output", type=Path, default=results,
                        help=f"markdown file to write (default {results.relative_to(REPO)})")
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    add_json_argument(parser)


def section_head(args: argparse.Namespace, script: str, default_runs: int, section: str,
                 alone: str) -> str:
    """A section's title (`section` in RESULTS.md, `alone` in its own file) and first line: the
    command that made it (with --quick and --runs when not the default), the date, the machine."""
    command = f"python3 bench/{script}" + (" --quick" if args.quick else "")
    if args.runs != default_runs:
        command += f" --runs {args.runs}"
    return (f"{section if args.markdown else alone}\n\n`{command}` on {time.strftime('%Y-%m-%d')}, "
            f"kernel {os.uname().release}, {os.cpu_count()} CPUs.")


def lab_problem(args: argparse.Namespace, programs: tuple[str, ...] = ("wanbalanced",)
                ) -> str | None:
    """Points the lab at --build-dir; why a lab section cannot run here (not root, no
    namespaces, a program not built), or None."""
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    if str(REPO / "tests" / "integration") not in sys.path:
        sys.path.insert(0, str(REPO / "tests" / "integration"))
    import labkit
    ok, reason = labkit.lab_available()
    if not ok:
        return reason
    try:
        for program in programs:
            labkit.program(program)
    except FileNotFoundError as e:
        return str(e)
    return None


def _holds_dict(obj) -> bool:
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    return any(isinstance(v, dict) or _holds_dict(v) for v in items)


def _dump(obj, indent: int = 0) -> str:
    """JSON with one line per point: a dict without nested dicts, or a short list of such,
    goes on one line."""
    flat = json.dumps(obj, ensure_ascii=False)
    if not isinstance(obj, (dict, list)) or not _holds_dict(obj) and (
            isinstance(obj, dict) or len(flat) <= 100):
        return flat
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dump(v, indent + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}" if items else "{}"
    items = [inner + _dump(v, indent + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]" if items else "[]"


class Figures:
    """A section's raw figures and the statistics it reports from them, written with --json."""

    def __init__(self, section: str, script: str, parameters: dict | None = None):
        self.section, self.script = section, script
        self.parameters = dict(parameters or {})
        self.raw: dict[str, dict] = {}
        self.summary: list[dict] = []
        self.outcome: dict = {}

    def series(self, key: str, unit: str, field_units: dict | None = None,
               **labels) -> list[dict]:
        """Declares a raw series (labels: which configuration it measures); its point list."""
        if not _REF.match(key) or ":" in key:
            raise ValueError(f"series key {key!r} may not contain ':', '[' or ']'")
        if key in self.raw:
            raise ValueError(f"series {key!r} declared twice")
        entry = self.raw[key] = {"unit": unit, "labels": labels}
        if field_units:
            entry["field_units"] = field_units
        entry["points"] = []
        return entry["points"]

    def point(self, key: str, value=None, **fields) -> None:
        """One measured figure of series key (declared first); value None means no figure."""
        first = {k: fields.pop(k) for k in PAIRED_BY if k in fields}
        self.raw[key]["points"].append({**first, "value": value, **fields})

    def summarize(self, name: str, statistic: str, of, value: float, unit: str,
                  **expr) -> float:
        """Records a statistic the section computed (and shows) as value; returns value.
        expr: divided_by, scale, minus (see evaluate)."""
        entry = {"name": name, "statistic": statistic, "of": of, **expr, "value": value,
                 "unit": unit}
        self.summary.append(entry)
        return value

    def spread(self, name: str, of, values: list[float], fmt: str, unit: str, **expr) -> str:
        """spread_text(values, fmt), recording its median, min and max as computed."""
        for statistic, fn in (("median", statistics.median), ("min", min), ("max", max)):
            self.summarize(f"{name}, {statistic}", statistic, of, fn(values), unit, **expr)
        return spread_text(values, fmt)

    def document(self, markdown: str | None) -> dict:
        doc = {"format": FORMAT, "section": self.section, **identity(),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                   "%Y-%m-%d %H:%M:%S UTC"),
               "seconds": round(time.monotonic() - STARTED, 1),
               "command": shlex.join(["python3", f"bench/{self.script}", *command_args()]),
               "parameters": self.parameters, "raw": self.raw, "summary": self.summary,
               "outcome": self.outcome}
        if markdown is not None:
            doc["markdown"] = markdown
        return doc

    def write(self, path: Path, markdown: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(_dump(self.document(markdown)) + "\n")
        tmp.replace(path)
