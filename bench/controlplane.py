#!/usr/bin/env python3
# Control-plane benchmark: for 2, 8, 32 and 63 WANs, how long the daemon takes to apply a config
# (start, reload) and one WAN's down and up, and which kernel notifications each change causes,
# watched from outside the daemon with `nft monitor` and `ip monitor`.
"""Measure wanbalanced's control plane at 2, 8, 32 and 63 WANs (needs root and a built daemon).

Lab: bench/multiwan.py (router with N veth WANs to one upstream, probes to 192.0.2.53 every
300 ms). `nft monitor` and `ip -o monitor link route rule` run in the router namespace for the
whole run; every notification is stamped on arrival. Per N and repetition:

  start        daemon started -> READY=1 on its NOTIFY_SOCKET (it sends it after the first
               ruleset, routes and rules are in the kernel); "kernel" is the last notification
  reload       weight of one WAN changed (1 <-> 2), and a reload with the file unchanged;
               request on the control socket -> last notification (or the reply, if none)
  set down/auto  `set WAN down` then `set WAN auto` on the control socket -> last notification
               (map and main multipath route changed; checked against `nft list`/`ip route`)
  carrier      the WAN's veth peer goes down: the kernel's NO-CARRIER notification -> last
               notification of the daemon's change; carrier back -> WAN back (this one includes
               probe.up_after successful rounds, so it is probe time, not control plane)

A health change must touch only the balance map and the one route: per change the script counts
nftables element additions/deletions, other nftables objects (table/chain/set/rule), route
changes in the balanced table's default route (table 100), other routes and ip rules.
Build first: meson setup build && ninja -C build wanbalanced ctl/wanbalancectl
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import Figures, add_json_argument, fail, finish, md_table, problems_text  # noqa: E402

import multiwan as mw  # noqa: E402
from multiwan import LabError, progress  # noqa: E402
from labcore import BALANCED_TABLE  # noqa: E402

SIZES = (2, 8, 32, 63)
NFT_VERBS = ("add", "delete", "replace", "flush", "destroy", "update")


# -- what a burst of notifications contains -------------------------------------------------

def classify(events: list[tuple[float, str, str]]) -> dict:
    c = {"elem_add": 0, "elem_del": 0, "elem_other_sets": 0, "nft_objects": 0,
         "transactions": 0, "default_route": 0, "other_routes": 0, "rules": 0, "links": 0,
         "unexpected": []}
    for _, source, line in events:
        if source == "nft":
            if line.startswith("# new generation"):
                c["transactions"] += 1
                continue
            words = line.split()
            if len(words) >= 5 and words[0] in NFT_VERBS and words[1] == "element":
                if words[4] != "balance":
                    c["elem_other_sets"] += 1
                    c["unexpected"].append(line)
                else:
                    c["elem_add" if words[0] == "add" else "elem_del"] += 1
            elif words and words[0] in NFT_VERBS:
                c["nft_objects"] += 1
                c["unexpected"].append(line)
            continue
        kind, _, body = line.partition("]")
        body = body.removeprefix("Deleted ")
        if kind == "[ROUTE":
            if body.startswith("default ") and f" table {BALANCED_TABLE} " in body + " ":
                c["default_route"] += 1
            else:
                c["other_routes"] += 1
                c["unexpected"].append(line)
        elif kind == "[RULE":
            c["rules"] += 1
            c["unexpected"].append(line)
        elif kind == "[LINK":
            c["links"] += 1
    return c


def health_change_ok(c: dict) -> bool:
    """Only the balance map's elements and the one balanced default route changed, in one
    nftables transaction."""
    return (c["elem_add"] + c["elem_del"] > 0 and c["default_route"] == 1 and not c["unexpected"]
            and c["transactions"] == 1)


def describe(c: dict) -> str:
    parts = [f"{c['elem_del']} element deletions", f"{c['elem_add']} element additions",
             f"{c['default_route']} balanced default route", f"{c['transactions']} nft transactions"]
    for key, word in (("nft_objects", "other nftables objects"), ("other_routes", "other routes"),
                      ("rules", "rules"), ("elem_other_sets", "elements of other sets")):
        if c[key]:
            parts.append(f"{c[key]} {word}")
    return ", ".join(parts)


def total_messages(c: dict) -> int:
    """Kernel notifications the change caused (links and generation markers not counted)."""
    return (c["elem_add"] + c["elem_del"] + c["elem_other_sets"] + c["nft_objects"]
            + c["default_route"] + c["other_routes"] + c["rules"])


def route_has(event_line: str, k: int) -> bool:
    return re.search(rf"dev {mw.wan_iface(k)}\b", event_line) is not None


def main_default_events(events) -> list[str]:
    out = []
    for _, source, line in events:
        body = line.partition("]")[2]
        if source == "ip" and line.startswith("[ROUTE]") and body.startswith("default ") \
                and f" table {BALANCED_TABLE} " in body + " ":
            out.append(body)
    return out


# -- the bench on one lab -------------------------------------------------------------------

class Bench:
    def __init__(self, lab: mw.MultiWanLab, reps: int, up_after_s: float):
        self.lab, self.n, self.reps, self.up_after_s = lab, lab.n, reps, up_after_s
        self.mon = mw.KernelMonitor(lab)
        self.config = lab.config()
        self.daemon = None
        self.results: dict[str, list[float]] = {}
        self.counts: dict[str, list[dict]] = {}
        self.problems: list[str] = []

    def record(self, key: str, seconds: float, c: dict | None = None) -> None:
        self.results.setdefault(key, []).append(seconds)
        if c is not None:
            self.counts.setdefault(key, []).append(c)

    def all_up(self) -> bool:
        st = mw.control(self.daemon, {"command": "status"})["status"]
        return all(w["state"] == "up" and w["rtt_ms"] is not None for w in st["wans"])

    def wait_all_up(self) -> None:
        mw.labkit.wait_until(self.all_up, 30, f"all {self.n} WANs up and answering probes",
                             interval=0.1)

    def kernel_check(self, k: int, present: bool) -> None:
        """The kernel's state after a change: WAN k in the map and the route, or in neither."""
        nft = self.lab.run("rtr", "nft list map inet wanbalance balance").stdout
        route = self.lab.run("rtr", f"ip -o route show default table {BALANCED_TABLE}").stdout
        in_map = re.search(rf"\bwan_{mw.wan_name(k)}\b", nft) is not None
        in_route = route_has(route, k)
        if (in_map, in_route) != (present, present):
            raise LabError(f"N={self.n}: after the change WAN {mw.wan_name(k)} is "
                           f"{'in' if in_map else 'not in'} the map and "
                           f"{'in' if in_route else 'not in'} the default route")

    # start -> READY, repeated; the last daemon keeps running
    def starts(self) -> None:
        for r in range(self.reps):
            progress(f"N={self.n}: start {r + 1}/{self.reps} ...")
            ready = mw.ReadyListener(self.lab.workdir)
            index = self.mon.mark()
            t0 = time.monotonic()
            self.daemon = self.lab.start_daemon(self.config, env=ready.env())
            try:
                t_ready = ready.wait_ready(60)
            finally:
                ready.close()
            events = self.mon.settle(index, lambda ev: len(main_default_events(ev)) > 0, 30,
                                     quiet=0.5)
            self.record("start", t_ready - t0, classify(events))
            self.record("start_seen", max(e[0] for e in events) - t0)
            if r < self.reps - 1:
                if self.daemon.stop() != 0:
                    raise LabError(f"wanbalanced exited non-zero; log:\n{self.daemon.log_tail()}")
                self.mon.settle(self.mon.mark(), lambda ev: True, 30, quiet=0.5)
        self.wait_all_up()

    def reload(self, weights: dict[int, int], changes: bool) -> tuple[float, float, dict]:
        """(request -> reply, request -> last notification seen, what changed)."""
        self.lab.write_config(self.daemon, self.lab.config(weights=weights))
        index = self.mon.mark()
        t0 = time.monotonic()
        reply = mw.control(self.daemon, {"command": "reload"})
        t_reply = time.monotonic()
        # A weight change changes the multipath route's weights too: wait for that route.
        done = (lambda ev: main_default_events(ev)) if changes else (lambda ev: True)
        events = self.mon.settle(index, done, 10, quiet=0.5, start=t0)
        last = max([t_reply] + [t for t, _, _ in events])
        c = classify(events)
        c["summary"] = reply.get("summary", "")
        return t_reply - t0, last - t0, c

    def reloads(self) -> None:
        for r in range(self.reps):
            progress(f"N={self.n}: reload {r + 1}/{self.reps} ...")
            for key, weights, changes in (("reload_change", {1: 2}, True),
                                          ("reload_same", {1: 2}, False),
                                          ("reload_change", {}, True)):  # back to weight 1
                reply, seen, c = self.reload(weights, changes)
                self.record(key, reply, c)
                self.record(key + "_seen", seen)
                if changes and c["default_route"] != 1:
                    self.problems.append(f"N={self.n}: a weight change caused {describe(c)}")
                if not changes and total_messages(c):
                    self.problems.append(f"N={self.n}: a reload with nothing changed caused "
                                         f"{describe(c)} (daemon: {c['summary']})")

    def change(self, request: dict, k: int, present: bool) -> tuple[float, float, dict]:
        """(request -> reply, request -> last notification seen, what changed)."""
        index = self.mon.mark()
        t0 = time.monotonic()
        mw.control(self.daemon, request)
        t_reply = time.monotonic()
        done = lambda ev: any(route_has(b, k) == present for b in main_default_events(ev))
        events = self.mon.settle(index, done, 10, start=t0)
        self.kernel_check(k, present)
        return t_reply - t0, max(t for t, _, _ in events) - t0, classify(events)

    def check_health_change(self, key: str, c: dict) -> None:
        if not health_change_ok(c):
            self.problems.append(f"N={self.n} {key}: {describe(c)}"
                                 + (f"; e.g. {c['unexpected'][0]!r}" if c["unexpected"] else ""))

    def operator(self) -> None:
        for r in range(self.reps):
            k = 1 + (r * 7) % self.n
            progress(f"N={self.n}: set {mw.wan_name(k)} down/auto {r + 1}/{self.reps} ...")
            for key, mode, present in (("set_down", "down", False), ("set_auto", "auto", True)):
                reply, seen, c = self.change({"command": "set", "wan": mw.wan_name(k),
                                              "mode": mode}, k, present)
                self.record(key, reply, c)
                self.record(key + "_seen", seen)
                self.check_health_change(key, c)
            self.wait_all_up()

    def carrier_change(self, k: int, up: bool) -> tuple[float, dict]:
        index = self.mon.mark()
        self.lab.carrier(k, up)
        iface = mw.wan_iface(k)

        def link_seen(ev):
            for t, src, line in ev:
                if src == "ip" and line.startswith("[LINK]") and f" {iface}@" in line \
                        and ("NO-CARRIER" in line) != up:
                    return t
            return None
        done = lambda ev: link_seen(ev) and any(route_has(b, k) == up
                                                for b in main_default_events(ev))
        events = self.mon.settle(index, done, 10 + self.up_after_s, start=time.monotonic())
        self.kernel_check(k, up)
        t_link = link_seen(events)
        return max(t for t, _, _ in events) - t_link, classify(events)

    def carrier(self) -> None:
        for r in range(self.reps):
            k = 1 + (r * 7 + 3) % self.n
            progress(f"N={self.n}: carrier loss on {mw.wan_iface(k)} {r + 1}/{self.reps} ...")
            for key, up in (("carrier_down", False), ("carrier_up", True)):
                seconds, c = self.carrier_change(k, up)
                self.record(key, seconds, c)
                self.check_health_change(key, c)
            self.wait_all_up()

    def run(self) -> None:
        try:
            self.starts()
            self.reloads()
            self.operator()
            self.carrier()
            if self.daemon.stop() != 0:
                raise LabError(f"wanbalanced exited non-zero; log:\n{self.daemon.log_tail()}")
        finally:
            self.mon.stop()


# -- report ---------------------------------------------------------------------------------

def ms(values: list[float]) -> str:
    med = statistics.median(values) * 1000
    lo, hi = min(values) * 1000, max(values) * 1000
    return f"{med:.0f} ms ({lo:.0f}–{hi:.0f})" if len(values) > 1 else f"{med:.0f} ms"


def msgs(counts: list[dict]) -> str:
    totals = [total_messages(c) for c in counts]
    med = statistics.median(totals)
    return f"{med:.0f}" + (f" ({min(totals)}–{max(totals)})" if min(totals) != max(totals) else "")


def detail(c: dict) -> str:
    """Median composition of a change, e.g. '255 del + 255 add elements, 1 route'."""
    med = lambda key: statistics.median(x[key] for x in c)
    parts = []
    if med("elem_del") or med("elem_add"):
        parts.append(f"{med('elem_del'):.0f} del + {med('elem_add'):.0f} add elements")
    if med("nft_objects"):
        parts.append(f"{med('nft_objects'):.0f} table/chain/set/rule")
    if med("default_route"):
        parts.append(f"{med('default_route'):.0f} route")
    if med("other_routes"):
        parts.append(f"{med('other_routes'):.0f} other routes")
    if med("rules"):
        parts.append(f"{med('rules'):.0f} rules")
    return ", ".join(parts) or "nothing"


WHAT = {
    "start": "daemon start -> READY=1", "start_seen": "daemon start -> last notification",
    "reload_change": "reload with a weight changed: request -> reply",
    "reload_change_seen": "reload with a weight changed: request -> last notification",
    "reload_same": "reload, nothing changed: request -> reply",
    "reload_same_seen": "reload, nothing changed: request -> last notification or reply",
    "set_down": "set WAN down: request -> reply",
    "set_down_seen": "set WAN down: request -> last notification",
    "set_auto": "set WAN auto: request -> reply",
    "set_auto_seen": "set WAN auto: request -> last notification",
    "carrier_down": "carrier loss: link notification -> last notification",
    "carrier_up": "carrier back: link notification -> last notification (incl. up_after)"}
COUNTED = ("elem_add", "elem_del", "elem_other_sets", "nft_objects", "transactions",
           "default_route", "other_routes", "rules", "links")
HEALTH = ("set_down", "set_auto", "carrier_down", "carrier_up")


def figures(benches: list[Bench], reps: int, up_after_s: float) -> Figures:
    """Every repetition of every change at every WAN count: its time as the value and, where
    the monitors were read, what the change caused as counted fields."""
    fig = Figures("controlplane", "controlplane.py", {
        "sizes": [b.n for b in benches], "reps": reps, "probe_interval_ms": 300,
        "up_after_s": up_after_s, "cpus": os.cpu_count()})
    units = {k: "kernel notifications" for k in COUNTED} | {
        "messages": "kernel notifications (links and generation markers not counted)",
        "transactions": "nftables transactions", "links": "link notifications"}
    for b in benches:
        for key, values in b.results.items():
            counts = b.counts.get(key)
            fig.series(f"{b.n}wans.{key}", "s", units if counts else None, wans=b.n,
                       change=key, what=WHAT.get(key, key))
            for i, seconds in enumerate(values):
                fields = {}
                if counts:
                    c = counts[i]
                    fields = {k: c[k] for k in COUNTED} | {"messages": total_messages(c)}
                    if c["unexpected"]:
                        fields["unexpected"] = c["unexpected"][:20]
                    if c.get("summary"):
                        fields["reply"] = c["summary"]
                fig.point(f"{b.n}wans.{key}", seconds, run=i + 1, **fields)
    return fig


def report(benches: list[Bench], reps: int, quick: bool, up_after_s: float,
           fig: Figures) -> str:
    applied, seen, messages = [], [], []

    def ms_of(b: Bench, key: str) -> str:
        """ms(), recording the median, min and max shown."""
        values = b.results[key]
        for statistic, fn in (("median", statistics.median), ("min", min), ("max", max)):
            fig.summarize(f"{b.n} WANs: {WHAT[key]}, {statistic}", statistic,
                          f"{b.n}wans.{key}", fn(values) * 1000, "ms", scale=1000)
        return ms(values)

    def detail_of(b: Bench, key: str) -> str:
        """detail(), recording the median of each kind of notification."""
        for field in ("elem_del", "elem_add", "nft_objects", "default_route", "other_routes",
                      "rules"):
            fig.summarize(f"{b.n} WANs: {WHAT[key]}: {field}, median", "median",
                          f"{b.n}wans.{key}:{field}",
                          statistics.median(c[field] for c in b.counts[key]),
                          "kernel notifications")
        return detail(b.counts[key])

    def msgs_of(b: Bench) -> str:
        """msgs() over every health change, recording the median, min and max."""
        totals = [total_messages(c) for k in HEALTH for c in b.counts[k]]
        for statistic, fn in (("median", statistics.median), ("min", min), ("max", max)):
            fig.summarize(f"{b.n} WANs: notifications per health change, {statistic}", statistic,
                          [f"{b.n}wans.{k}:messages" for k in HEALTH], fn(totals),
                          "kernel notifications")
        return msgs([c for k in HEALTH for c in b.counts[k]])

    fig.outcome["health_change_map_and_one_route_only"] = {}
    for b in benches:
        C = b.counts
        health = C["set_down"] + C["set_auto"] + C["carrier_down"] + C["carrier_up"]
        met = all(health_change_ok(c) for c in health)
        fig.outcome["health_change_map_and_one_route_only"][str(b.n)] = met
        applied.append([str(b.n)] + [ms_of(b, k) for k in ("start", "reload_change",
                                                             "reload_same", "set_down",
                                                             "set_auto")])
        seen.append([str(b.n)] + [ms_of(b, k) for k in ("start_seen", "reload_change_seen",
                                                          "set_down_seen", "set_auto_seen",
                                                          "carrier_down", "carrier_up")])
        messages.append([str(b.n), detail_of(b, "start"), detail_of(b, "reload_change"),
                         detail_of(b, "reload_same"), detail_of(b, "set_down"),
                         detail_of(b, "set_auto"), detail_of(b, "carrier_down"),
                         detail_of(b, "carrier_up"), msgs_of(b), "met" if met else "NOT met"])
    t1 = md_table(["WANs", "start → READY", "reload, weight changed", "reload, nothing changed",
                "set WAN down", "set WAN auto (back up)"], applied)
    t1b = md_table(["WANs", "start", "reload, weight changed", "set WAN down", "set WAN auto",
                 "carrier loss → WAN out", f"carrier back → WAN in (incl. up_after "
                 f"{up_after_s * 1000:.0f} ms of probes)"], seen)
    t2 = md_table(["WANs", "start", "reload, weight changed", "reload, unchanged", "set down",
                "set auto", "carrier loss", "carrier back", "notifications per health change",
                "health change = map + one route only"], messages)
    problems = [p for b in benches for p in b.problems]
    fig.outcome["problems"] = problems
    mode = " --quick" if quick else ""
    text = f"""## Control plane: applying configs and health changes at 2–63 WANs

`bench/controlplane.py{mode}`: {reps} repetitions per figure, median (min–max). A router namespace
with N veth WANs to one upstream namespace (bench/multiwan.py), probes every 300 ms to a target
beyond each gateway, all WANs up and balanced. Requests go straight to the daemon's control
socket (no `wanbalancectl` process start in the figures). Kernel notifications are watched from
outside the daemon with `nft monitor` and `ip -o monitor link route rule` in the router namespace,
stamped on arrival; after each down/up the balance map (`nft list map`) and the balanced default
route (`ip route`) are checked to hold, or lack, that WAN.

Applied: daemon start → `READY=1` on its notify socket (sent once the first ruleset, routes and
rules are in the kernel); reload / `set WAN down|auto` request → the daemon's reply (sent after
the change is applied and every netlink message acknowledged).

{t1}

Seen from outside: the same changes → the last kernel notification they caused, as printed by
the monitors (large bursts, e.g. ~1000 map elements at 2 WANs, include `nft monitor`'s own
printing time). Carrier: the WAN's veth peer is set down/up; measured from the kernel's link
notification for the router's interface.

{t1b}

Kernel notifications per change (median composition; a health change is a down or up by
operator or carrier). The target (issue 5): a health change touches only the balance map and the
one route, never rebuilds the table: met when every health change was exactly one nftables
transaction of element deletions/additions in map `balance` plus one change of the main
multipath default route, and nothing else (no table, chain, set, rule, other route or ip rule).

{t2}
"""
    return text + problems_text(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 repetitions (smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions per figure (default 7, quick 2)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma list of WAN counts (default 2,8,32,63)")
    parser.add_argument("--markdown", type=Path, help="write the markdown section here")
    add_json_argument(parser)
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 7)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes numbers")
    if reps < 1 or any(not 2 <= n <= mw.MAX_WANS for n in sizes):
        parser.error(f"--reps must be at least 1, sizes 2..{mw.MAX_WANS}")
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    if reason := mw.preflight():
        print(f"controlplane.py: {reason}", file=sys.stderr)
        return 1
    mw.exit_on_hangup()

    up_after_s = 5 * 0.3
    benches = []
    try:
        for n in sizes:
            progress(f"N={n}: building the lab ...")
            with mw.MultiWanLab(n) as lab:
                bench = Bench(lab, reps, up_after_s)
                bench.run()
                benches.append(bench)
                progress(f"N={n}: start {ms(bench.results['start'])}, set down "
                         f"{ms(bench.results['set_down'])}, "
                         f"{'health changes OK' if not bench.problems else bench.problems[0]}")
    except (LabError, TimeoutError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        return fail("controlplane.py", str(e) or type(e).__name__)
    fig = figures(benches, reps, up_after_s)
    text = report(benches, reps, args.quick, up_after_s, fig)
    return finish(text, args.markdown, fig, args.json)


if __name__ == "__main__":
    sys.exit(main())
