#!/usr/bin/env python3
# Failover benchmark in the namespace lab: how long after a WAN's upstream dies (gateway still
# pinging), or its carrier drops, until every new LAN connection succeeds again; and when the
# daemon logged wan-down. IPv4 and IPv6 (an ISP's IPv6 upstream dies while its IPv4 works).
# Prints a table and writes it to bench/results/failover.md, or with --markdown one section of
# bench/RESULTS.md (bench/run.sh).
"""Measure wanbalance's failover time in the lab (needs root and a built daemon).

A LAN client opens a new TCP connection every 1/RATE s, each with a short timeout, and records
per attempt its start time, success and the WAN the server saw. For each run one WAN (charter)
fails; the figures are, from the start of the fault command:

  wan-down   when the daemon's wan-down line (for IPv6 faults: the one with family=ipv6)
             appeared in its log
  recovered  the start of the first attempt after which no attempt failed, i.e. the moment from
             which every new connection succeeds (with the default classifier about half of the
             attempts during the outage hit the dead WAN, so "first success through the live
             WAN" would say nothing)
  outage     from the start of the first failed attempt to "recovered": how long new
             connections saw the outage (0 when none failed)

Fault kinds (--faults, default all four):
  upstream   charter's ISP stops forwarding (both families); IPv4 connections, wanbalanced with
             the article config
  carrier    charter's link loses carrier; IPv4 connections, the article config
  upstream6  charter's ISP stops forwarding IPv6 only (`lab.sh upstream PREFIX isp1 down
             ipv6`); IPv6 connections from the LAN's ULA hosts to 2001:db8:ff::10, wanbalanced
             with the dual-stack config; an IPv4 client runs alongside and must see no failure
             and keep using both WANs
  carrier6   charter's link loses carrier; IPv6 connections (and the IPv4 client alongside),
             the dual-stack config

The fault is then repaired, and the next run starts once charter is back up (in every family
the fault took down).
--markdown OUT.md writes a "## Failover" section there (for bench/run.sh) instead of
bench/results/failover.md; --json FILE writes every run's figures and the statistics above
(bench/README.md); --quick is a smoke test with 2 runs per fault kind.
Build first: meson setup build && ninja -C build wanbalanced ctl/wanbalancectl
"""

from __future__ import annotations

import argparse
import dataclasses
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
from labwatch import Event, EventWatch  # noqa: E402

CLIENT = Path(__file__).resolve().parent / "failover_client.py"
RESULTS = Path(__file__).resolve().parent / "results" / "failover.md"
WARMUP_S = 0.6      # client running before the fault: both WANs must carry connections
AFTER_DOWN_S = 1.5  # kept measuring after wan-down, to see failures that come late
SOURCES = {"ipv4": labkit.LAN_HOSTS, "ipv6": "fd00:88::11-fd00:88::2e"}  # 30 hosts each
TITLE = {"ipv4": "IPv4", "ipv6": "IPv6"}
CARRIER_TARGET_S = 0.3


@dataclasses.dataclass(frozen=True)
class Fault:
    key: str      # --faults name and raw series key
    family: str   # whose new connections are measured, whose wan-down is timed
    knob: str     # lab.sh upstream or carrier
    title: str    # the table's first column

    @property
    def knob_family(self) -> str | None:
        """The family the knob acts on: upstream6 only IPv6; the others both."""
        return "ipv6" if self.knob == "upstream" and self.family == "ipv6" else None


FAULTS = {f.key: f for f in (
    Fault("upstream", "ipv4", "upstream", "upstream"),
    Fault("carrier", "ipv4", "carrier", "carrier"),
    Fault("upstream6", "ipv6", "upstream", "IPv6 upstream (IPv4 works)"),
    Fault("carrier6", "ipv6", "carrier", "carrier"),
)}


class Client:
    """failover_client.py in the LAN namespace for one family; attempts collected by a reader
    thread."""

    def __init__(self, lab: labkit.Lab, family: str, rate: float, timeout: float):
        self.family = family
        self.wan_of = lab.wan_sources()   # after wait_ipv6: integra's SLAAC address is known
        argv = [labkit.PYTHON, str(CLIENT), "--dst", labkit.server_of(family),
                "--port", str(labkit.TCP_PORT), "--src", SOURCES[family], "--rate", str(rate),
                "--timeout", str(timeout)]
        self.proc = lab.popen("lan", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        self.attempts: list[dict] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            attempt = json.loads(line)
            attempt["wan"] = (self.wan_of.get(attempt["seen"], "other") if attempt["ok"]
                              else None)
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
            raise labkit.LabError(f"{TITLE[self.family]} failover client exited "
                                  f"{self.proc.returncode}: {self.proc.stderr.read().strip()}")


def recovered_at(attempts: list[dict], fault: float) -> float | None:
    """Start of the first attempt after the last failed one (attempts sorted by start)."""
    last_failed = max((i for i, a in enumerate(attempts) if not a["ok"]), default=None)
    if last_failed is None:
        return fault  # nothing failed at all
    rest = attempts[last_failed + 1:]
    return rest[0]["t"] if rest else None


def outage_of(attempts: list[dict], back: float | None) -> float | None:
    """From the start of the first failed attempt to the recovery (0: none failed)."""
    failed = [a["t"] for a in attempts if not a["ok"]]
    if not failed:
        return 0.0
    return None if back is None else back - failed[0]


def wait_event(watch: EventWatch, kind: str, family: str, since: float,
               timeout: float = 15) -> Event:
    """The first `kind` event of charter for `family`, or one naming no family (a line about
    the whole link), seen at or after `since`."""
    def found():
        events = [e for e in watch.select(kind, "charter", since)
                  if e.family in (family, None)]
        return events[0] if events else None
    return labkit.wait_until(found, timeout, f"a {kind} charter {family} event",
                             interval=0.005)


def one_run(lab: labkit.Lab, clients: dict[str, Client], watch: EventWatch, fault: Fault,
            families: tuple[str, ...], timeout: float, interval: float) -> dict:
    """One fault on charter and its repair; families: those the daemon runs (a carrier fault
    takes charter down in each)."""
    def knob(up: bool) -> None:
        if fault.knob == "upstream":
            lab.upstream("charter", up, fault.knob_family)
        else:
            lab.carrier("charter", up)

    warm_start = time.monotonic()
    # A random phase: each run starts right after wan-up, i.e. right after a probe round, and
    # a fixed wait would hit the same point of the probe schedule every time.
    time.sleep(WARMUP_S + random.uniform(0, interval))
    at = time.monotonic()
    knob(False)
    issued = time.monotonic() - at
    down = wait_event(watch, "wan-down", fault.family, since=at)
    time.sleep(AFTER_DOWN_S + timeout)
    end = time.monotonic() - timeout  # attempts started after this may not have finished yet

    for client in clients.values():
        before = client.between(warm_start, at)
        if not before or any(not a["ok"] for a in before):
            raise labkit.LabError(f"{TITLE[client.family]} connections failed before the fault: "
                                  f"{Counter(a['wan'] for a in before)}")
    measured = clients[fault.family]
    after = measured.between(at, end)
    back = recovered_at(after, at)
    run = {"down": down.at - at, "recovered": None if back is None else back - at,
           "outage": outage_of(after, back), "failed": sum(not a["ok"] for a in after),
           "attempts": len(after), "issued": issued,
           "wans_before": Counter(a["wan"] for a in measured.between(warm_start, at))}
    for family, client in clients.items():   # the other family's connections meanwhile
        if family != fault.family:
            during = client.between(at, end)
            run["alongside"] = {"family": family, "attempts": len(during),
                                "failed": sum(not a["ok"] for a in during),
                                "wans": Counter(a["wan"] for a in during if a["ok"])}

    healed = time.monotonic()
    knob(True)
    for family in ([fault.knob_family] if fault.knob_family else families):
        wait_event(watch, "wan-up", family, since=healed)
    time.sleep(0.3)
    return run


def fmt_ms(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds * 1000:.0f} ms"


def record_runs(fig: Figures, fault: Fault, runs: list[dict], window: str) -> None:
    """Every run of one fault kind: wan-down time as the value, the rest as fields."""
    fields = {"recovered": "s from the fault command until every new connection succeeds "
                           "(null: never within the run)",
              "outage": "s from the first failed attempt until every new connection succeeds "
                        "(0: none failed; null: never recovered)",
              "failed": "connection attempts that failed", "attempts": "attempts after the fault",
              "fault_command": "s the fault command took",
              "before_charter": "successful attempts through charter before the fault",
              "before_integra": "successful attempts through integra before the fault"}
    other = runs[0].get("alongside", {}).get("family")
    if other:
        t = TITLE[other]
        fields |= {f"{other}_attempts": f"{t} attempts after the fault (a client alongside)",
                   f"{other}_failed": f"{t} attempts after the fault that failed",
                   f"{other}_charter": f"successful {t} attempts through charter after the fault",
                   f"{other}_integra": f"successful {t} attempts through integra after the fault"}
    fig.series(fault.key, "s from the fault command to wan-down in the log", fields,
               fault=fault.knob, family=fault.family, wan="charter", detection_window=window,
               **({"knob_family": fault.knob_family} if fault.knob_family else {}))
    for i, r in enumerate(runs):
        extra = {}
        if "alongside" in r:
            a = r["alongside"]
            extra = {f"{other}_attempts": a["attempts"], f"{other}_failed": a["failed"],
                     f"{other}_charter": a["wans"].get("charter", 0),
                     f"{other}_integra": a["wans"].get("integra", 0)}
        fig.point(fault.key, r["down"], run=i + 1, recovered=r["recovered"], outage=r["outage"],
                  failed=r["failed"], attempts=r["attempts"], fault_command=r["issued"],
                  **{f"before_{w}": n for w, n in r["wans_before"].items()}, **extra)


def summarize(fault: Fault, runs: list[dict], window: str, fig: Figures) -> dict:
    """The table row of one fault kind; every figure in it is recorded in fig's summary."""
    kind = fault.key
    downs = [r["down"] for r in runs]
    backs = [r["recovered"] for r in runs]
    finite = [b for b in backs if b is not None]
    outages = [r["outage"] for r in runs]

    def ms(name: str, statistic: str, field: str, value: float) -> float:
        of = kind if field == "value" else f"{kind}:{field}"
        return fig.summarize(f"{kind}: {name}", statistic, of, value, "s")

    failed = statistics.median(r["failed"] for r in runs)
    fig.summarize(f"{kind}: failed connections per run, median", "median", f"{kind}:failed",
                  failed, "connections")
    row = {
        "key": kind,
        "fault": fault.title,
        "family": TITLE[fault.family],
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
        "outage_median": fmt_ms(ms("new connections failing for, median of the runs that "
                                   "recovered", "median", "outage",
                                   statistics.median(o for o in outages if o is not None)))
        if finite else "never",
        "outage_worst": "never" if None in outages else fmt_ms(
            ms("new connections failing for, worst", "max", "outage", max(outages))),
        "failed_median": f"{failed:.0f}",
        "issued_median": fmt_ms(ms("fault command, median", "median", "fault_command",
                                   statistics.median(r["issued"] for r in runs))),
    }
    if "alongside" in runs[0]:
        other = runs[0]["alongside"]["family"]
        total = {}
        for field, statistic in (("attempts", "sum"), ("failed", "sum"), ("charter", "min"),
                                 ("integra", "min")):
            values = [r["alongside"]["attempts"] if field == "attempts"
                      else r["alongside"]["failed"] if field == "failed"
                      else r["alongside"]["wans"].get(field, 0) for r in runs]
            total[field] = fig.summarize(
                f"{kind}: {TITLE[other]} attempts alongside, {field}, {statistic} over the runs",
                statistic, f"{kind}:{other}_{field}",
                sum(values) if statistic == "sum" else min(values), "connections")
        row["alongside"] = {"family": other, **total}
    return row


COLUMNS = [("fault", "fault on charter"), ("family", "connections"),
           ("window", "detection window"),
           ("down_median", "wan-down logged, median"), ("down_worst", "worst"),
           ("back_median", "all new connections succeed, median"), ("back_worst", "worst"),
           ("outage_median", "new connections failing for, median"), ("outage_worst", "worst"),
           ("failed_median", "failed connections per run, median"), ("runs", "runs")]


def table(rows: list[dict]) -> str:
    cells = [[title for _, title in COLUMNS]] + [[str(r[key]) for key, _ in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))) + " |"
             for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def verdicts(rows: list[dict], fig: Figures) -> str:
    """The targets: carrier loss seen within 300 ms in each family (the IPv4 target, which
    issue 11 sets for IPv6 too); IPv4 untouched while only charter's IPv6 upstream is down."""
    lines = []
    for row in rows:
        fam = row["family"]
        if row["key"] in ("carrier", "carrier6"):
            ok = row["down_worst_s"] < CARRIER_TARGET_S
            fig.outcome["carrier_within_300_ms" if row["key"] == "carrier"
                        else "carrier6_within_300_ms"] = ok
            lines.append(f"{fam} carrier loss detected within 300 ms (worst wan-down of "
                         f"{row['runs']} runs, {row['down_worst']}): "
                         f"{'met' if ok else 'NOT met'}")
        elif "alongside" in row and row["key"] == "upstream6":
            a = row["alongside"]
            ok = a["failed"] == 0 and a["charter"] > 0 and a["integra"] > 0
            fig.outcome["ipv4_unaffected_by_ipv6_upstream"] = ok
            lines.append(f"{TITLE[a['family']]} while charter's IPv6 upstream was down: "
                         f"{a['attempts']:.0f} new connections over the {row['runs']} runs, "
                         f"{a['failed']:.0f} failed, each run at least {a['charter']:.0f} "
                         f"through charter and {a['integra']:.0f} through integra: "
                         f"{'met' if ok else 'NOT met'} (none fails, both WANs kept)")
    return "\n\n".join(lines)


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
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma list of {', '.join(FAULTS)} (default all)")
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    add_json_argument(parser)
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"markdown file to write (default {RESULTS.relative_to(REPO)})")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 2 if args.quick else 10
    wanted = [f.strip() for f in args.faults.split(",") if f.strip()]
    if not wanted or any(f not in FAULTS for f in wanted) or args.runs < 1:
        parser.error(f"--faults takes {', '.join(FAULTS)}; --runs must be at least 1")
    faults = [f for f in FAULTS.values() if f.key in wanted]   # IPv4 first, one daemon each
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
    # The next round, then down_after rounds back to back, each lasting its adaptive deadline
    # (the 50 ms floor in this sub-millisecond lab; timeout_ms is only the ceiling).
    floor_ms = min(50, args.timeout_ms)
    window_s = (args.interval_ms + args.down_after * floor_ms) / 1000
    probe_window = (f"{window_s * 1000:.0f} ms ({args.interval_ms} ms + {args.down_after} "
                    f"× {floor_ms} ms deadline)")
    windows = {"upstream": probe_window, "carrier": "netlink event (target < 300 ms)"}
    fig = Figures("failover", "failover.py", {
        "runs_per_fault": args.runs, "faults": [f.key for f in faults], "probe": probe,
        "connections_per_second": args.rate, "connect_timeout_s": args.connect_timeout,
        "sources": {f: SOURCES[f] for f in sorted({f.family for f in faults} | {"ipv4"})},
        "cpus": os.cpu_count(), "kernel": os.uname().release})
    try:
        rows = measure(args, faults, probe, windows, fig)
    except (labkit.LabError, TimeoutError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        print(f"failover.py: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return 1

    text = table(rows)
    targets = verdicts(rows, fig)
    if targets:
        text += "\n\n" + targets
    print(text)
    save(with_json_note(describe(args, faults, rows, text), args.json),
         args.markdown or args.output, fig, args.json)
    return 0


def describe(args: argparse.Namespace, faults: list[Fault], rows: list[dict], text: str) -> str:
    issued = ", ".join(f"{row['key']} {row['issued_median']}" for row in rows)
    command = f"python3 bench/failover.py --runs {args.runs}"
    title = "# Failover benchmark"
    if args.markdown:
        command = "python3 bench/failover.py" + (" --quick" if args.quick else
                                                 f" --runs {args.runs}")
        title = "## Failover"
    if [f.key for f in faults] != list(FAULTS):
        command += f" --faults {','.join(f.key for f in faults)}"
    families = {f.family for f in faults}
    ipv6 = ""
    if "ipv6" in families:
        ipv6 = f"""
IPv6 rows: wanbalanced with the dual-stack config (charter's static `gateway6`, integra's
`"auto"` from isp2's router advertisements), probes also to 2001:db8:ff::53/.54 with the same
timing; the client opens {args.rate:g} new TCP connections per second from the LAN's ULA hosts
{SOURCES['ipv6'].replace('-', '–')} to 2001:db8:ff::10 (masqueraded by wanbalance), wan-down is
the event with `family=ipv6`, and an IPv4 client ({args.rate:g} per second from
{SOURCES['ipv4'].replace('-', '–')}) runs alongside. "IPv6 upstream" is
`lab.sh upstream PREFIX isp1 down ipv6`: charter's ISP forwards IPv4 on, and the daemon
must move IPv6 alone.
"""
    return f"""{title}

`{command}` on {time.strftime('%Y-%m-%d')}, kernel
{os.uname().release}, {os.cpu_count()} CPUs. Lab of docs/design.md, The lab; probes to 192.0.2.53/.54 beyond
the ISP every {args.interval_ms} ms, timeout {args.timeout_ms} ms, down_after {args.down_after},
up_after {args.up_after}; default classifier (both-addresses-and-ports). IPv4 rows: wanbalanced
with the article config; a LAN client opens {args.rate:g} new TCP connections per second from
30 source addresses to 192.0.2.10, each with a {args.connect_timeout:g} s timeout.
{ipv6}
Times are measured from the start of the fault command (`lab.sh upstream|carrier`; it takes
{issued} (median), and the fault is in place at some point within that). "All new connections
succeed" is the start of the first attempt after which no attempt failed; attempts started up
to {AFTER_DOWN_S} s after wan-down are included; 0 ms means no attempt failed at all. "Failing
for" runs from the start of the first failed attempt to that point. Each fault is injected at
a random point of the probe schedule.

{text}

The upstream figures are bounded by the detection window: the last good answer can arrive just
before the fault, the next round goes out up to an interval later, and it and the confirmation
rounds that follow at once each wait for their adaptive deadline (srtt + 4·rttvar, at least
50 ms; the lab's round trip is a fraction of a millisecond, so 50 ms).
Failed connections are the attempts that hit charter between the fault and the map change.
"""


def measure(args: argparse.Namespace, faults: list[Fault], probe: dict,
            windows: dict[str, str], fig: Figures) -> list[dict]:
    """The IPv4 faults on a daemon with the article config, then the IPv6 ones on a daemon
    with the dual-stack config, in one lab."""
    rows = []
    with labkit.Lab() as lab:
        for family in ("ipv4", "ipv6"):
            mine = [f for f in faults if f.family == family]
            if mine:
                rows += measure_family(lab, args, family, mine, probe, windows, fig)
    return rows


def measure_family(lab: labkit.Lab, args: argparse.Namespace, family: str, faults: list[Fault],
                   probe: dict, windows: dict[str, str], fig: Figures) -> list[dict]:
    if family == "ipv4":
        config, families = lab.article_config(probe=probe), ("ipv4",)
    else:
        lab.wait_ipv6(timeout=15)
        config, families = lab.dual_stack_config(probe=probe), ("ipv4", "ipv6")
    d = lab.start_daemon(config)
    d.wait_ready()

    def answering() -> bool:
        wans = d.status()["wans"]
        return all(w["rtt_ms"] and (family == "ipv4" or (w.get("ipv6") or {}).get("rtt_ms"))
                   for w in wans)
    labkit.wait_until(answering, 10, f"both WANs to answer probes ({', '.join(families)})")
    watch = EventWatch(d)
    clients: dict[str, Client] = {}
    rows = []
    try:
        for f in families:
            lab.ensure_server(family=f)
            clients[f] = Client(lab, f, args.rate, args.connect_timeout)
        for fault in faults:
            runs = []
            for i in range(args.runs):
                r = one_run(lab, clients, watch, fault, families, args.connect_timeout,
                            args.interval_ms / 1000)
                runs.append(r)
                alongside = r.get("alongside")
                print(f"{fault.key} run {i + 1}/{args.runs}: wan-down {fmt_ms(r['down'])}, "
                      f"all new connections succeed after {fmt_ms(r['recovered'])}, "
                      f"{r['failed']}/{r['attempts']} attempts failed "
                      f"(fault command {fmt_ms(r['issued'])})"
                      + (f"; {TITLE[alongside['family']]} alongside: {alongside['failed']}/"
                         f"{alongside['attempts']} failed, {dict(alongside['wans'])}"
                         if alongside else ""), file=sys.stderr, flush=True)
            record_runs(fig, fault, runs, windows[fault.knob])
            rows.append(summarize(fault, runs, windows[fault.knob], fig))
    finally:
        for client in clients.values():
            client.stop()
        watch.stop()
        d.stop()
    return rows


if __name__ == "__main__":
    sys.exit(main())
