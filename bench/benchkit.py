"""What every benchmark section shares (bench/README.md): markdown tables, figures as
"median (min–max)", the one-line failure, and printing + writing the section at the end."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(script: str, message: str) -> int:
    """The contract's failure: one line on stderr, exit status 1."""
    first = message.splitlines()[0] if message else "failed"
    print(f"{script}: {first}", file=sys.stderr)
    return 1


def command_args() -> list[str]:
    """This run's arguments, without where the markdown goes."""
    out, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--markdown":
            skip = True
        elif not a.startswith("--markdown="):
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


def finish(text: str, markdown: Path | None) -> int:
    """Prints the section and writes it where --markdown said; the section's exit status."""
    print(text)
    if markdown:
        markdown.write_text(text)
        progress(f"wrote {markdown}")
    return 0


def problems_text(problems: list[str], most: int = 20) -> str:
    """The "Problems seen" list that ends a section, or "" when there were none."""
    if not problems:
        return ""
    return "\nProblems seen:\n\n" + "\n".join(f"- {p}" for p in problems[:most]) + "\n"
