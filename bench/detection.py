#!/usr/bin/env python3
# Detection benchmark (issue 13) in the namespace lab: with the default probe settings, how soon
# a dead upstream is seen and how many new LAN connections fail meanwhile, with and without LAN
# traffic (runs interleaved), how many false failovers happen along the way, and a soak at 5 %
# loss that must change no WAN's state. Writes bench/results/detection.md, or with --markdown one
# section of bench/RESULTS.md (bench/run.sh).
"""Measure how fast wanbalance detects a dead upstream (needs root and a built daemon).

One lab, one wanbalanced with the article config and the default probe settings (300 ms,
600 ms, down_after 3, up_after 5). Runs of two kinds alternate (quiet, traffic, traffic, quiet,
...), each at a random point of the probe schedule: charter's ISP stops forwarding (its gateway
still pings), then forwards again once charter was down, and the next run starts after wan-up.

  quiet    no LAN traffic: only the probes can tell
  traffic  a LAN client opens RATE (default 100) new TCP connections per second (30 sources,
           0.5 s timeout each), so unanswered connections can start the confirmation burst

Per run, from the start of the fault command: wan-down (the daemon's log line), map (the
balance map no longer sends anything to charter: from then on every new connection succeeds),
and for traffic runs recovered (start of the first attempt after which none failed) and the
failed attempts. A false failover is any state change other than the fault's wan-down and the
repair's wan-up (integra changing, charter going down twice or before the fault). The soak puts
5 % random loss (lab.sh loss) on both WANs for --soak-seconds (600; --quick 30) and counts
state changes (target: 0).

Targets (issue 13): median wan-down <= 0.8 s quiet and <= 0.5 s with traffic; failed
connections per failover at least halved from 68 (<= 34); no false failover.
"""

from __future__ import annotations

import argparse
import os
import random
import re
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
from benchkit import (Figures, add_section_arguments, fail, finish, lab_problem,  # noqa: E402
                      md_table, progress, section_head)
from failover import Client, outage_of, recovered_at  # noqa: E402
from labwatch import EventWatch, balance_map  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "detection.md"
INTERVAL_S = 0.3         # the default probe.interval_ms, for the random phase
WARMUP_S = 0.8           # traffic runs: the client runs this long before the fault
AFTER_DOWN_S = 1.5       # kept measuring after wan-down, to see failures that come late
CONNECT_TIMEOUT_S = 0.5
BEFORE_FAILED = 68       # failed connections per failover before issue 13 (bench/RESULTS.md)
TARGETS = {"quiet": 0.8, "traffic": 0.5}
KINDS = ("quiet", "traffic")
# "charter: 3 new connections got no reply within 50 ms; confirming with probes now"
HINT = re.compile(r"(no reply|unanswered).*confirm|confirm.*(no reply|unanswered)", re.I)


class MapWatch:
    """Polls the balance map from a thread until no bucket sends to `wan`; .at is then the
    time.monotonic() of the first poll that saw it so."""

    def __init__(self, lab: labkit.Lab, wan: str = "charter", poll: float = 0.02):
        self.lab, self.wan, self.poll = lab, wan, poll
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.wan not in balance_map(self.lab).values():
                self.at = time.monotonic()
                return
            time.sleep(self.poll)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(10)
        return self.at


def state_events(watch: EventWatch, since: float) -> list:
    return [e for e in watch.select(since=since) if e.kind in ("wan-down", "wan-up", "all-down")]


def false_failovers(events: list, fault: float) -> int:
    """State changes of one run other than charter's one wan-down after the fault and its one
    wan-up after the repair."""
    expected = {("wan-down", "charter"): 1, ("wan-up", "charter"): 1}
    seen = Counter((e.kind, e.wan) for e in events if e.at >= fault)
    early = sum(1 for e in events if e.at < fault)
    return early + sum(n - expected.get(key, 0) for key, n in seen.items()
                       if n > expected.get(key, 0))


def hint_lines(watch: EventWatch, since: float) -> int:
    """Log lines of charter's confirmation burst started by unanswered new connections."""
    return sum(1 for at, line in watch.lines if at >= since and HINT.search(line)
               and "charter" in line)


def one_run(lab: labkit.Lab, d: labkit.Daemon, watch: EventWatch, kind: str,
            rate: float) -> dict:
    client = Client(lab, "ipv4", rate, CONNECT_TIMEOUT_S) if kind == "traffic" else None
    try:
        if client:   # its interpreter is running and connecting
            labkit.wait_until(lambda: len(client.attempts) >= 10, 10, "the LAN client")
        start = time.monotonic()
        time.sleep((WARMUP_S if client else 0.3) + random.uniform(0, INTERVAL_S))
        maps = MapWatch(lab)
        at = time.monotonic()
        lab.upstream("charter", up=False)
        issued = time.monotonic() - at
        down = watch.wait("wan-down", "charter", since=at, timeout=15)
        time.sleep(AFTER_DOWN_S + (CONNECT_TIMEOUT_S if client else 0))
        map_at = maps.stop()
        run = {"down": down.at - at, "map": None if map_at is None else map_at - at,
               "issued": issued, "reason": down.reason, "hints": hint_lines(watch, at)}
        if client:
            before = client.between(start, at)
            if not before or any(not a["ok"] for a in before):
                raise labkit.LabError("connections failed before the fault: "
                                      f"{Counter(a['wan'] for a in before)}")
            after = client.between(at, time.monotonic() - CONNECT_TIMEOUT_S)
            back = recovered_at(after, at)
            run |= {"recovered": None if back is None else back - at,
                    "outage": outage_of(after, back), "failed": sum(not a["ok"] for a in after),
                    "attempts": len(after)}
    finally:
        if client:
            client.stop()
    healed = time.monotonic()
    lab.upstream("charter", up=True)
    watch.wait("wan-up", "charter", since=healed, timeout=15)
    time.sleep(0.3)
    run["false"] = false_failovers(state_events(watch, start), at)
    return run


def soak(lab: labkit.Lab, d: labkit.Daemon, watch: EventWatch, seconds: float,
         fig: Figures) -> dict:
    """5 % loss on both WANs for `seconds`; a point every 5 s: state changes so far."""
    points = fig.series("soak", "state changes (wan-down, wan-up, all-down) since the start",
                        {"t": "s since the start", "probes_sent": "both WANs, since the start",
                         "probes_lost": "both WANs, since the start",
                         "transitions": "status transitions of both WANs since the start"},
                        loss_pct=5, wans=["charter", "integra"])

    def totals() -> dict:
        wans = d.status()["wans"]
        return {k: sum(w[k] for w in wans) for k in ("probes_sent", "probes_lost", "transitions")}
    first = totals()
    for wan in ("charter", "integra"):
        lab.loss(wan, 5)
    start = time.monotonic()
    next_report = start + 60
    try:
        while True:
            now = time.monotonic()
            t = now - start
            current = totals()
            fig.point("soak", len(state_events(watch, start)), t=round(t, 2),
                      **{k: current[k] - first[k] for k in current})
            if t >= seconds:
                break
            if now >= next_report:
                progress(f"soak {t:.0f}/{seconds:.0f} s: {points[-1]['value']} state changes")
                next_report += 60
            time.sleep(min(5.0, max(0.0, seconds - t)))
    finally:
        for wan in ("charter", "integra"):
            lab.loss(wan, 0)
    dropped = sum(lab.counters(wan)["loss"] for wan in ("charter", "integra"))
    last = points[-1]
    return {"seconds": last["t"], "changes": last["value"], "transitions": last["transitions"],
            "sent": last["probes_sent"], "lost": last["probes_lost"], "dropped": dropped}


def ms(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds * 1000:.0f} ms"


def record(fig: Figures, runs: dict[str, list[dict]]) -> None:
    fields = {"map": "s from the fault command until the balance map no longer sends to charter",
              "fault_command": "s the fault command took",
              "false_failovers": "state changes other than the fault's down and the repair's up",
              "hint_lines": "log lines: burst started by unanswered new connections",
              "position": "the run's place in the interleaved sequence (1 = first)"}
    traffic = {"recovered": "s from the fault command until every new connection succeeds "
                            "(null: never within the run)",
               "outage": "s from the first failed attempt until every new connection succeeds",
               "failed": "connection attempts that failed", "attempts": "attempts after the fault"}
    for kind in KINDS:
        fig.series(kind, "s from the fault command to wan-down in the log",
                   fields | (traffic if kind == "traffic" else {}), fault="upstream",
                   wan="charter", lan_traffic=kind == "traffic")
        for i, r in enumerate(runs[kind]):
            extra = ({k: r[k] for k in ("recovered", "outage", "failed", "attempts")}
                     if kind == "traffic" else {})
            fig.point(kind, r["down"], run=i + 1, map=r["map"], fault_command=r["issued"],
                      false_failovers=r["false"], hint_lines=r["hints"],
                      position=r["position"], **extra)


def summarize(fig: Figures, runs: dict[str, list[dict]], soaked: dict | None) -> tuple[str, str]:
    """The table and the verdicts; every figure they show is recorded in fig's summary."""
    rows, lines = [], []

    def stat(kind: str, name: str, statistic: str, field: str, values: list, unit: str = "s"):
        of = kind if field == "value" else f"{kind}:{field}"
        values = [v for v in values if v is not None]
        fn = {"median": statistics.median, "max": max, "sum": sum}[statistic]
        return fig.summarize(f"{kind}: {name}", statistic, of, fn(values), unit) if values \
            else None

    for kind in KINDS:
        rs = runs[kind]
        down = stat(kind, "wan-down, median", "median", "value", [r["down"] for r in rs])
        worst = stat(kind, "wan-down, worst", "max", "value", [r["down"] for r in rs])
        maps = stat(kind, "map switched, median", "median", "map", [r["map"] for r in rs])
        false = stat(kind, "false failovers, sum", "sum", "false_failovers",
                     [r["false"] for r in rs], "state changes")
        row = [kind, ms(down), ms(worst), ms(maps), "—", "—", "—", f"{false:.0f}",
               str(len(rs))]
        ok = down <= TARGETS[kind]
        fig.outcome[f"{kind}_median_within_target"] = ok
        lines.append(f"{kind}: median wan-down {ms(down)} (target ≤ "
                     f"{TARGETS[kind] * 1000:.0f} ms, ratio {down / TARGETS[kind]:.2f}): "
                     f"{'met' if ok else 'NOT met'}")
        if kind == "traffic":
            back = stat(kind, "all new connections succeed, median", "median", "recovered",
                        [r["recovered"] for r in rs])
            failed = stat(kind, "failed connections per failover, median", "median", "failed",
                          [r["failed"] for r in rs], "connections")
            worst_failed = stat(kind, "failed connections per failover, worst", "max", "failed",
                                [r["failed"] for r in rs], "connections")
            hints = stat(kind, "traffic hint lines, sum", "sum", "hint_lines",
                         [r["hints"] for r in rs], "log lines")
            row[4:7] = [ms(back), f"{failed:.0f}", f"{worst_failed:.0f}"]
            lines.append(f"Confirmation bursts started by unanswered new connections (log "
                         f"lines) over the {len(rs)} traffic runs: {hints:.0f}")
            ok = failed <= BEFORE_FAILED / 2
            fig.outcome["failed_at_most_half"] = ok
            lines.append(f"Failed connections per failover, median {failed:.0f} (was "
                         f"{BEFORE_FAILED}; target ≤ {BEFORE_FAILED // 2}, ratio "
                         f"{failed / (BEFORE_FAILED / 2):.2f}): {'met' if ok else 'NOT met'}")
        rows.append(row)
    false_total = sum(r["false"] for kind in KINDS for r in runs[kind])
    if soaked is not None:
        changes = fig.summarize("soak: state changes", "last", "soak", soaked["changes"],
                                "state changes")
        fig.summarize("soak: probes lost", "last", "soak:probes_lost", soaked["lost"], "probes")
        fig.summarize("soak: probes sent", "last", "soak:probes_sent", soaked["sent"], "probes")
        fig.outcome["soak_no_state_change"] = changes == 0
        lines.append(f"Soak, 5 % loss on both WANs for {soaked['seconds']:.0f} s: "
                     f"{changes:.0f} state changes, {soaked['lost']}/{soaked['sent']} probes lost "
                     f"(the lab dropped {soaked['dropped']} packets): "
                     f"{'met' if changes == 0 else 'NOT met'} (0 state changes)")
        false_total += changes
    fig.outcome["no_false_failover"] = false_total == 0
    lines.append(f"False failovers, all runs and the soak: {false_total:.0f} "
                 f"({'met' if false_total == 0 else 'NOT met'}: 0)")
    header = ["LAN traffic", "wan-down, median", "worst", "map switched, median",
              "all new connections succeed, median", "failed connections, median", "worst",
              "false failovers", "runs"]
    return md_table(header, rows), "\n\n".join(lines)


def measure(args: argparse.Namespace, fig: Figures) -> tuple[dict, dict | None]:
    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
    with labkit.Lab() as lab:
        d = lab.start_daemon(lab.article_config())
        d.wait_ready()
        labkit.wait_until(lambda: all(w["rtt_ms"] for w in d.status()["wans"]), 10,
                          "both WANs to answer probes")
        lab.ensure_server()
        watch = EventWatch(d)
        try:
            position = 0
            for i in range(args.runs):
                for kind in (KINDS if i % 2 == 0 else KINDS[::-1]):
                    position += 1
                    r = one_run(lab, d, watch, kind, args.rate)
                    r["position"] = position
                    runs[kind].append(r)
                    progress(f"{kind} run {i + 1}/{args.runs}: wan-down {ms(r['down'])}, map "
                             f"{ms(r['map'])}"
                             + (f", all succeed after {ms(r['recovered'])}, {r['failed']}/"
                                f"{r['attempts']} failed" if kind == "traffic" else "")
                             + f", hint lines {r['hints']}, false failovers {r['false']}")
            soaked = soak(lab, d, watch, args.soak_seconds, fig) if args.soak_seconds else None
        finally:
            watch.stop()
            d.stop()
    return runs, soaked


def describe(args: argparse.Namespace, table: str, verdicts: str) -> str:
    head = section_head(args, "detection.py", 2 if args.quick else 10, "## Detection",
                        "# Detection benchmark")
    return f"""{head}
wanbalanced with the article config and the default probe settings (every 300 ms, timeout
600 ms, down_after 3, up_after 5; probes to 192.0.2.53/.54). {args.runs} runs of each kind,
interleaved (quiet, traffic, traffic, quiet, ...), each at a random point of the probe schedule:
charter's ISP stops forwarding (`lab.sh upstream`; its gateway still pings), and forwards again
once charter is down. *quiet*: no LAN traffic. *traffic*: a LAN client opens {args.rate:g} new
TCP connections per second from 30 sources, each with a {CONNECT_TIMEOUT_S} s timeout.

Times from the start of the fault command. "Map switched": the balance map no longer sends to
charter (polled every 20 ms), from then on every new connection succeeds. "All new connections
succeed": the start of the first attempt after which none failed (attempts up to
{AFTER_DOWN_S} s after wan-down). A false failover is any state change other than the fault's
wan-down and the repair's wan-up (the soak's: any at all).

{table}

{verdicts}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="runs of each kind (default 10; --quick 2)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 runs of each kind, a 30 s soak")
    parser.add_argument("--rate", type=float, default=100,
                        help="traffic runs: new connections per second (100)")
    parser.add_argument("--soak-seconds", type=float,
                        help="5 %% loss soak length, 0 for none (default 600; --quick 30)")
    add_section_arguments(parser, "## Detection", RESULTS)
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 2 if args.quick else 10
    if args.soak_seconds is None:
        args.soak_seconds = 30 if args.quick else 600
    if args.runs < 1 or args.soak_seconds < 0:
        parser.error("--runs must be at least 1, --soak-seconds at least 0")
    problem = lab_problem(args)
    if problem:
        return fail("detection.py", problem)
    fig = Figures("detection", "detection.py", {
        "runs_per_kind": args.runs, "kinds": list(KINDS), "connections_per_second": args.rate,
        "connect_timeout_s": CONNECT_TIMEOUT_S, "soak_seconds": args.soak_seconds,
        "probe": "defaults", "targets_s": TARGETS, "failed_before": BEFORE_FAILED,
        "cpus": os.cpu_count(), "kernel": os.uname().release})
    try:
        runs, soaked = measure(args, fig)
    except (labkit.LabError, TimeoutError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        return fail("detection.py", str(e) or type(e).__name__)
    record(fig, runs)
    table, verdicts = summarize(fig, runs, soaked)
    return finish(describe(args, table, verdicts), args.markdown or args.output, fig, args.json)


if __name__ == "__main__":
    sys.exit(main())
