#!/usr/bin/env python3
# Failover benchmark in the namespace lab: how long after a WAN's upstream dies (gateway still
# pinging), or its carrier drops, until every new LAN connection succeeds again; and when the
# daemon logged wan-down. Prints a table and writes it to bench/results/failover.md, or with
# --markdown one section of bench/RESULTS.md (bench/run.sh).
"""Measure wanbalance's failover time in the lab (needs root and a built daemon).

A LAN client opens a new TCP connection every 1/RATE s, each with a short timeout, and records
per attempt its start time, success and the WAN the server saw. For each run one WAN (charter)
fails; the figures are, from the start of the fault command:

  wan-down   when the daemon's wan-down line appeared in its log
  recovered  the start of the first attempt after which no attempt failed, i.e. the moment from
             which every new connection succeeds (with the default classifier about half of the
             attempts during the outage hit the dead WAN, so "first success through the live
             WAN" would say nothing)

The fault is then repaired, and the next run starts once charter is back up.
--markdown OUT.md writes a "## Failover" section there (for bench/run.sh) instead of
bench/results/failover.md; --json FILE writes every run's figures and the statistics above
(bench/README.md); --quick is a smoke test with 2 runs per fault kind.
Build first: meson setup build && ninja -C build wanbalanced wanbalancectl
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import labkit  # noqa: E402
from benchkit import Figures, add_json_argument, save, with_json_note  # noqa: E402
from labwatch import EventWatch  # noqa: E402

CLIENT = Path(__file__).resolve().parent / "failover_client.py"
RESULTS = Path(__file__).resolve().parent / "results" / "failover.md"
WARMUP_S = 0.6      # client running before the fault: both WANs must carry connections
AFTER_DOWN_S = 1.5  # kept measuring after wan-down, to see failures that come late


class Client:
    """failover_client.py in the LAN namespace; attempts collected by a reader thread."""

    def __init__(self, lab: labkit.Lab, rate: float, timeout: float):
        argv = [labkit.PYTHON, str(CLIENT), "--dst", labkit.SERVER, "--port", str(labkit.TCP_PORT),
                "--src", labkit.LAN_HOSTS, "--rate", str(rate), "--timeout", str(timeout)]
        self.proc = lab.popen("lan", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        self.attempts: list[dict] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            attempt = json.loads(line)
            attempt["wan"] = labkit.WAN_OF_SOURCE.get(attempt["seen"]) if attempt["ok"] else None
            with self.lock:
                self.attempts.append(attempt)

    def between(self, start: float, end: float) -> list[dict]:
        with self.lock:
            return sorted((a for a in self.attempts if start <= a["t"] < end), key=lambda a: a["t"])

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(5)
        if self.proc.returncode not in (0, None):
            raise labkit.LabError(f"failover client exited {self.proc.returncode}: "
                                  f"{self.proc.stderr.read().strip()}")


def recovered_at(attempts: list[dict], fault: float) -> float | None:
    """Start of the first attempt after the last failed one (attempts sorted by start)."""
    last_failed = max((i for i, a in enumerate(attempts) if not a["ok"]), default=None)
    if last_failed is None:
        return fault  # nothing failed at all
    rest = attempts[last_failed + 1:]
    return rest[0]["t"] if rest else None


def one_run(lab: labkit.Lab, client: Client, watch: EventWatch, kind: str, timeout: float,
            interval: float) -> dict:
    knob = lab.upstream if kind == "upstream" else lab.carrier
    warm_start = time.monotonic()
    # A random phase: each run starts right after wan-up, i.e. right after a probe round, and
    # a fixed wait would hit the same point of the probe schedule every time.
    time.sleep(WARMUP_S + random.uniform(0, interval))
    fault = time.monotonic()
    knob("charter", False)
    issued = time.monotonic() - fault
    down = watch.wait("wan-down", "charter", since=fault, timeout=15)
    time.sleep(AFTER_DOWN_S + timeout)
    end = time.monotonic() - timeout  # attempts started after this may not have finished yet

    before = client.between(warm_start, fault)
    if not before or any(not a["ok"] for a in before):
        raise labkit.LabError(f"connections failed before the fault: {Counter(a['wan'] for a in before)}")
    after = client.between(fault, end)
    back = recovered_at(after, fault)
    failed = sum(not a["ok"] for a in after)

    healed = time.monotonic()
    knob("charter", True)
    watch.wait("wan-up", "charter", since=healed, timeout=15)
    time.sleep(0.3)
    return {"down": down.at - fault, "recovered": None if back is None else back - fault,
            "failed": failed, "attempts": len(after), "issued": issued,
            "wans_before": Counter(a["wan"] for a in before)}


def fmt_ms(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds * 1000:.0f} ms"


def record_runs(fig: Figures, kind: str, runs: list[dict], window: str) -> None:
    """Every run of one fault kind: wan-down time as the value, the rest as fields."""
    fig.series(kind, "s from the fault command to wan-down in the log",
               {"recovered": "s from the fault command until every new connection succeeds "
                             "(null: never within the run)",
                "failed": "connection attempts that failed", "attempts": "attempts after the fault",
                "fault_command": "s the fault command took",
                "before_charter": "successful attempts through charter before the fault",
                "before_integra": "successful attempts through integra before the fault"},
               fault=kind, wan="charter", detection_window=window)
    for i, r in enumerate(runs):
        fig.point(kind, r["down"], run=i + 1, recovered=r["recovered"], failed=r["failed"],
                  attempts=r["attempts"], fault_command=r["issued"],
                  **{f"before_{w}": n for w, n in r["wans_before"].items()})


def summarize(kind: str, runs: list[dict], window: str, fig: Figures) -> dict:
    """The table row of one fault kind; every figure in it is recorded in fig's summary."""
    downs = [r["down"] for r in runs]
    backs = [r["recovered"] for r in runs]
    finite = [b for b in backs if b is not None]

    def ms(name: str, statistic: str, field: str, value: float) -> float:
        of = kind if field == "value" else f"{kind}:{field}"
        return fig.summarize(f"{kind}: {name}", statistic, of, value, "s")

    failed = statistics.median(r["failed"] for r in runs)
    fig.summarize(f"{kind}: failed connections per run, median", "median", f"{kind}:failed",
                  failed, "connections")
    return {
        "fault": kind,
        "runs": len(runs),
        "window": window,
        "down_median": fmt_ms(ms("wan-down logged, median", "median", "value",
                                 statistics.median(downs))),
        "down_worst": fmt_ms(ms("wan-down logged, worst", "max", "value", max(downs))),
        "down_worst_s": max(downs),
        "back_median": fmt_ms(ms("all new connections succeed, median of the runs that "
                                 "recovered", "median", "recovered", statistics.median(finite)))
        if finite else "never",
        "back_worst": "never" if None in backs else fmt_ms(
            ms("all new connections succeed, worst", "max", "recovered", max(backs))),
        "failed_median": f"{failed:.0f}",
        "issued_median": fmt_ms(ms("fault command, median", "median", "fault_command",
                                   statistics.median(r["issued"] for r in runs))),
    }


COLUMNS = [("fault", "fault on charter"), ("window", "detection window"),
           ("down_median", "wan-down logged, median"), ("down_worst", "worst"),
           ("back_median", "all new connections succeed, median"), ("back_worst", "worst"),
           ("failed_median", "failed connections per run, median"), ("runs", "runs")]


def table(rows: list[dict]) -> str:
    cells = [[title for _, title in COLUMNS]] + [[str(r[key]) for key, _ in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))) + " |"
             for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="runs per fault kind (default 10; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 runs per fault kind")
    parser.add_argument("--markdown", type=Path, metavar="OUT.md",
                        help="write a '## Failover' section to this file instead of --output")
    parser.add_argument("--interval-ms", type=int, default=300, help="probe.interval_ms (300)")
    parser.add_argument("--timeout-ms", type=int, default=600, help="probe.timeout_ms (600)")
    parser.add_argument("--down-after", type=int, default=3, help="probe.down_after (3)")
    parser.add_argument("--up-after", type=int, default=5, help="probe.up_after (5)")
    parser.add_argument("--rate", type=float, default=100, help="new connections per second (100)")
    parser.add_argument("--connect-timeout", type=float, default=0.5,
                        help="per connection attempt, seconds (0.5)")
    parser.add_argument("--faults", default="upstream,carrier",
                        help="comma list of upstream, carrier (default both)")
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    add_json_argument(parser)
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"markdown file to write (default {RESULTS.relative_to(REPO)})")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 2 if args.quick else 10
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if any(f not in ("upstream", "carrier") for f in faults) or args.runs < 1:
        parser.error("--faults takes upstream and/or carrier; --runs must be at least 1")
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    ok, reason = labkit.lab_available()
    if not ok:
        print(f"failover.py: {reason}", file=sys.stderr)
        return 1
    try:
        labkit.program("wanbalanced")
    except FileNotFoundError as e:
        print(f"failover.py: {e}", file=sys.stderr)
        return 1

    probe = {"interval_ms": args.interval_ms, "timeout_ms": args.timeout_ms,
             "down_after": args.down_after, "up_after": args.up_after}
    window_s = (args.interval_ms * args.down_after + args.timeout_ms) / 1000
    windows = {"upstream": f"{window_s * 1000:.0f} ms ({args.interval_ms} ms × {args.down_after} "
                           f"+ {args.timeout_ms} ms)",
               "carrier": "netlink event (target < 300 ms)"}
    fig = Figures("failover", "failover.py", {
        "runs_per_fault": args.runs, "faults": faults, "probe": probe,
        "connections_per_second": args.rate, "connect_timeout_s": args.connect_timeout,
        "cpus": os.cpu_count(), "kernel": os.uname().release})
    try:
        rows = measure(args, faults, probe, windows, fig)
    except (labkit.LabError, TimeoutError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        print(f"failover.py: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return 1

    text = table(rows)
    for row in rows:
        if row["fault"] == "carrier":
            verdict = "met" if row["down_worst_s"] < 0.3 else "NOT met"
            fig.outcome["carrier_within_300_ms"] = row["down_worst_s"] < 0.3
            text += (f"\n\nCarrier loss detected within 300 ms (worst wan-down of {row['runs']} "
                     f"runs, {row['down_worst']}): {verdict}")
    print(text)
    issued = ", ".join(f"{row['fault']} {row['issued_median']}" for row in rows)
    command = f"python3 bench/failover.py --runs {args.runs}"
    title = "# Failover benchmark"
    if args.markdown:
        command = "python3 bench/failover.py" + (" --quick" if args.quick else
                                                 f" --runs {args.runs}")
        title = "## Failover"
    report = f"""{title}

`{command}` on {time.strftime('%Y-%m-%d')}, kernel
{os.uname().release}, {os.cpu_count()} CPUs. Lab of docs/design.md, The lab; probes to 192.0.2.53/.54 beyond
the ISP every {args.interval_ms} ms, timeout {args.timeout_ms} ms, down_after {args.down_after},
up_after {args.up_after}; default classifier (both-addresses-and-ports). A LAN client opens
{args.rate:g} new TCP connections per second from 30 source addresses, each with a
{args.connect_timeout:g} s timeout.

Times are measured from the start of the fault command (`lab.sh upstream|carrier`; it takes
{issued} (median), and the fault is in place at some point within that). "All new connections
succeed" is the start of the first attempt after which no attempt failed; attempts started up
to {AFTER_DOWN_S} s after wan-down are included; 0 ms means no attempt failed at all. Each fault
is injected at a random point of the probe schedule.

{text}

The upstream figure is bounded by the detection window: the last good answer can arrive just
before the fault, then down_after rounds must fail and the last one waits for its timeout.
Failed connections are the attempts that hit charter between the fault and the map change.
"""
    save(with_json_note(report, args.json), args.markdown or args.output, fig, args.json)
    return 0


def measure(args: argparse.Namespace, faults: list[str], probe: dict,
            windows: dict[str, str], fig: Figures) -> list[dict]:
    rows = []
    with labkit.Lab() as lab:
        d = lab.start_daemon(lab.article_config(probe=probe))
        d.wait_ready()
        labkit.wait_until(lambda: all(w["rtt_ms"] for w in d.status()["wans"]), 10,
                          "both WANs to answer probes")
        watch = EventWatch(d)
        lab.ensure_server()
        client = Client(lab, args.rate, args.connect_timeout)
        try:
            for kind in faults:
                runs = []
                for i in range(args.runs):
                    r = one_run(lab, client, watch, kind, args.connect_timeout,
                                args.interval_ms / 1000)
                    runs.append(r)
                    print(f"{kind} run {i + 1}/{args.runs}: wan-down {fmt_ms(r['down'])}, "
                          f"all new connections succeed after {fmt_ms(r['recovered'])}, "
                          f"{r['failed']}/{r['attempts']} attempts failed "
                          f"(fault command {fmt_ms(r['issued'])})", file=sys.stderr, flush=True)
                record_runs(fig, kind, runs, windows[kind])
                rows.append(summarize(kind, runs, windows[kind], fig))
        finally:
            client.stop()
            watch.stop()
            d.stop()
    return rows


if __name__ == "__main__":
    sys.exit(main())
