#!/usr/bin/env python3
# Soak benchmark: ten minutes of one WAN flapping every few seconds; the daemon's memory and file
# descriptors over time, and every kernel object it owns counted at the end (exactly one copy).
"""Soak wanbalanced with a flapping WAN (needs root and a built daemon).

The article's lab (tests/lab/lab.sh), wanbalanced with probes every 100 ms (down after 2 lost
rounds, up after 2 answered). Every 3 s charter's link goes down — its carrier and its upstream
in turn — until the daemon logs wan-down, stays down 0.5 s, and comes back until it logs wan-up.
The daemon's VmRSS and open fds are sampled every second. At the end the nftables table, the
proto-wanbalance rules and routes and the balance map must be exactly as before the soak.
The soak itself lives in tests/integration/soak.py (the integration test runs it for 60 s).
Build first: meson setup build && ninja -C build wanbalanced ctl/wanbalancectl
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from benchkit import Figures, add_json_argument, fail, finish, problems_text  # noqa: E402

import labkit  # noqa: E402
import soak  # noqa: E402

FULL_S = 600
QUICK_S = 60
PROGRESS_EVERY_S = 30
RSS_BOUND_KIB = 1024  # second half's RSS peak over the first half's


def mib(kib: int) -> str:
    return f"{kib / 1024:.2f} MiB"


def figures(r: soak.SoakResult, seconds: float) -> Figures:
    """Every sample (t since the soak started), and the counts read once or at both ends."""
    fig = Figures("soak", "soak.py", {"seconds": seconds, "probe": soak.SOAK_PROBE,
                                      "flap_period_s": soak.FLAP_PERIOD_S,
                                      "down_hold_s": soak.DOWN_HOLD_S,
                                      "rss_bound_kib": RSS_BOUND_KIB})
    fig.series("samples", "KiB VmRSS", {"t": "s since the soak started",
                                        "fds": "open file descriptors"})
    for s in r.samples:
        fig.point("samples", s.rss_kib, t=s.at, fds=s.fds)
    for key, unit, value in (
            ("duration", "s", r.seconds), ("flaps", "down + up cycles driven", r.flaps),
            ("transitions", "state changes counted by the daemon", r.transitions),
            ("events", "wan-down / wan-up log lines", r.events),
            ("foreign_repairs", "log lines taking own changes for someone else's",
             r.foreign_repairs)):
        fig.series(key, unit)
        fig.point(key, value)
    fig.series("fds", "open file descriptors")
    fig.point("fds", r.fds_start, when="start")
    fig.point("fds", r.fds_end, when="end")
    start, end = r.counts(r.objects_start), r.counts(r.objects_end)
    for key in start:
        fig.series(f"objects.{key.replace(' ', '_')}", key, object=key)
        fig.point(f"objects.{key.replace(' ', '_')}", start[key], when="start")
        fig.point(f"objects.{key.replace(' ', '_')}", end[key], when="end")
    fig.outcome = {"kernel_same": r.kernel_same, "missed": r.missed,
                   "problems": r.problems(RSS_BOUND_KIB)}
    return fig


def report(r: soak.SoakResult, command: str, fig: Figures) -> str:
    rss = r.rss_summary()
    start, end = r.counts(r.objects_start), r.counts(r.objects_end)
    problems = r.problems(RSS_BOUND_KIB)
    growth = r.rss_growth_kib()
    for name, statistic in (("start", "first"), ("min", "min"), ("max", "max"), ("end", "last")):
        fig.summarize(f"VmRSS {name}", statistic, "samples", rss[name], "KiB")
    half = len(r.samples) // 2
    if half:  # rss_growth_kib: the second half's peak minus the first half's
        fig.summarize("VmRSS growth (2nd half's peak - 1st half's)", "max", f"samples[{half}:]",
                      growth, "KiB", minus={"statistic": "max", "of": f"samples[:{half}]"})
    rows = [
        ("duration", f"{r.seconds:.0f} s", ""),
        ("flaps (down + up cycles)", str(r.flaps), "carrier and upstream in turn, one every "
                                                   f"{soak.FLAP_PERIOD_S:.0f} s"),
        ("transitions counted by the daemon", str(r.transitions),
         "met" if r.transitions == 2 * r.flaps else f"NOT met (expected {2 * r.flaps})"),
        ("wan-down / wan-up log lines", str(r.events),
         "met" if r.events == 2 * r.flaps else f"NOT met (expected {2 * r.flaps})"),
        ("VmRSS start / min / max / end",
         f"{mib(rss['start'])} / {mib(rss['min'])} / {mib(rss['max'])} / {mib(rss['end'])}", ""),
        ("VmRSS growth (2nd half's peak − 1st half's)", f"{growth:+d} KiB",
         f"target ≤ {RSS_BOUND_KIB} KiB: " + ("met" if growth <= RSS_BOUND_KIB else "NOT met")),
        ("open fds start → end", f"{r.fds_start} → {r.fds_end}",
         "met (no leak)" if r.fds_end == r.fds_start else "NOT met"),
        ("foreign-change repairs (own changes mistaken)", str(r.foreign_repairs),
         "met" if not r.foreign_repairs else "NOT met"),
    ]
    for key in start:
        ok = end[key] == start[key] and (key != "tables" or end[key] == 1)
        rows.append((f"{key} at the end", f"{end[key]} (before: {start[key]})",
                     "met: exactly one copy" if ok else "NOT met"))
    rows.append(("kernel state identical to before", "yes" if r.kernel_same else "no",
                 "met" if r.kernel_same else "NOT met"))
    table = ["| measure | value | target |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    # RSS over time, one line per 30 s (and the last sample).
    over_time = ["| t (s) | VmRSS | open fds |", "|---|---|---|"]
    last = None
    for s in r.samples:
        if last is None or s.at - last >= PROGRESS_EVERY_S or s is r.samples[-1]:
            over_time.append(f"| {s.at:.0f} | {mib(s.rss_kib)} | {s.fds} |")
            last = s.at
    minutes = round(r.seconds / 60)
    length = f"{r.seconds:.0f} s" if r.seconds < 120 else f"{minutes} minutes"
    probe, period = soak.SOAK_PROBE, soak.FLAP_PERIOD_S
    text = f"""## Soak: a WAN flapping for {length}

`{command}`: the article's lab, wanbalanced probing every {probe['interval_ms']} ms (down
after {probe['down_after']} lost rounds, up after {probe['up_after']}). Every {period:.0f} s charter goes down (its carrier and its
upstream in turn) until the daemon logs wan-down, stays down {soak.DOWN_HOLD_S} s, and comes back
until it logs wan-up. The daemon's VmRSS and open fds are read from /proc every second; at the
end the nftables table, the proto-wanbalance rules and routes and the balance map are counted
and compared with the state before the soak (`nft list ruleset`, `ip rule`, `ip route`).

{chr(10).join(table)}

RSS over time:

{chr(10).join(over_time)}
"""
    return text + problems_text(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_S} s soak (smoke test)")
    parser.add_argument("--seconds", type=float,
                        help=f"soak length (default {FULL_S}, quick {QUICK_S})")
    parser.add_argument("--markdown", type=Path, help="write the markdown section here")
    add_json_argument(parser)
    args = parser.parse_args()
    seconds = args.seconds or (QUICK_S if args.quick else FULL_S)
    if seconds <= 0:
        parser.error("--seconds must be positive")
    ok, reason = labkit.lab_available()
    if ok:
        try:
            labkit.program("wanbalanced")
            labkit.program("wanbalancectl")
        except FileNotFoundError as e:
            ok, reason = False, str(e)
    if not ok:
        print(f"soak.py: {reason}", file=sys.stderr)
        return 1

    def interrupted(signum, frame):
        raise SystemExit(f"interrupted by signal {signum}")
    signal.signal(signal.SIGHUP, interrupted)
    signal.signal(signal.SIGINT, interrupted)

    command = "bench/soak.py" + (" --quick" if args.quick else "") + \
        (f" --seconds {args.seconds:g}" if args.seconds else "")
    labkit.progress(f"soak: {seconds:.0f} s with charter flapping every {soak.FLAP_PERIOD_S:.0f} s ...")
    try:
        with labkit.Lab() as lab:
            d = soak.start_daemon(lab)
            result = soak.run_soak(lab, d, seconds, progress_every=PROGRESS_EVERY_S)
            code = d.stop()
            if code != 0:
                raise labkit.LabError(f"wanbalanced exited {code} on SIGTERM")
    except (labkit.LabError, RuntimeError, TimeoutError, subprocess.TimeoutExpired, OSError,
            ValueError) as e:
        return fail("soak.py", str(e) or type(e).__name__)
    fig = figures(result, seconds)
    finish(report(result, command, fig), args.markdown, fig, args.json)
    problems = result.problems(RSS_BOUND_KIB)
    if problems:
        print(f"soak.py: {problems[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
