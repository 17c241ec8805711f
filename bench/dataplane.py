#!/usr/bin/env python3
# Data-plane benchmark in the namespace lab: TCP throughput and small-packet UDP rate from the LAN
# through the router, for plain routing, wanbalance's ruleset and the classic iptables setup, in
# IPv4 and IPv6.
"""Compare the router's forwarding cost under three configurations (needs root, a built daemon).

  a  plain routing + masquerade: one default route via charter, one nft masquerade rule
  b  wanbalance: wanbalanced running with the lab's article config (IPv4), or the dual-stack
     config (IPv6: charter's static gateway6, integra's "auto" from router advertisements)
  c  the same policy the classic way (mwan3 style) with iptables / ip6tables: mangle PREROUTING
     CONNMARK --restore-mark, new LAN connections marked by HMARK (hash of addresses and ports,
     mod 2) then CONNMARK --save-mark, one ip rule per mark to a per-WAN table, MASQUERADE per
     WAN; routes, rules and src_valid_mark exactly as wanbalance sets them

--family ipv4|ipv6|both (default both): IPv4 from 192.168.88.11, .12, ... to 192.0.2.10, IPv6
from the LAN's ULA hosts fd00:88::11, ::12, ... to 2001:db8:ff::10 (masqueraded to the WAN's
address: the ISPs drop other sources). Each round runs the families one after the other.

Rounds interleave the configurations (a b c, b c a, c a b, ...) in ONE lab, because throughput in
the lab swings 2.5x between runs (docs/design.md, Kernel facts). Every configuration is removed after its
measurement and the router is checked to be back to its initial state (nft ruleset, ip and ip -6
rules and routes, iptables, sysctls) before the next one; conntrack is flushed in between.

Traffic: CLIENTS iperf3 clients in the LAN, each bound to its own source address (.11, .12, ...)
with STREAMS parallel streams, to their own iperf3 server in the internet namespace. What the
router forwarded is read from nft counters in the internet namespace, per ingress link (isp1 =
charter, isp2 = integra) over a fixed window in the middle of the run: TCP as IP bytes, and
64-byte UDP datagrams (iperf3 -u -l 64 -b 0), which are counted and dropped there so that no
receiving application limits the figure. Each measurement must have passed traffic, through
charter only for a and through both WANs for b and c.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from benchkit import Figures, add_json_argument, command_args, fail, finish, md_table  # noqa: E402

import labkit  # noqa: E402
from labkit import SERVER, SERVER6, WAN_GATEWAY, WAN_GATEWAY6, progress  # noqa: E402

CONFIGS = ("a", "b", "c")
TITLES = {"a": "a: plain routing + masquerade", "b": "b: wanbalance",
          "c": "c: iptables (mwan3 style)"}
MARKS = {"charter": 0x100, "integra": 0x101}  # what HMARK --hmark-offset 0x100 --hmark-mod 2 yields
TABLES = {"charter": 101, "integra": 102}
BALANCED_TABLE = labkit.BALANCED_TABLE
RULE_PRIORITY = 20000  # wanbalance's default rule_priority: suppress rule, fwmark rules, balanced
HASH_SEED = "0x77616e62"  # pinned, as wanbalance pins its jhash seed


@dataclasses.dataclass(frozen=True)
class Family:
    """What differs between the IPv4 and the IPv6 measurements; everything else is one path."""
    name: str          # ipv4 / ipv6, as --family and labkit name it
    title: str         # IPv4 / IPv6
    ip: str            # the `ip` command for this family
    nft: str           # nft table family
    iptables: str      # iptables / ip6tables
    server: str        # the iperf3 servers' address in the internet namespace
    key: str           # series keys: tcp.a (IPv4, as before IPv6 existed), tcp6.a (IPv6)
    base_port: int     # iperf3 servers listen on base_port, base_port + 1, ...
    # Charter's default for a: IPv6 has integra's RA default (metric 1024) in main already, so
    # a's route must win over it; IPv4's main table has no default.
    plain_metric: str

    def source(self, i: int) -> str:
        """The LAN address of iperf3 client i."""
        return f"192.168.88.{11 + i}" if self.name == "ipv4" else f"fd00:88::{0x11 + i:x}"

    def sources_text(self, n: int) -> str:
        return (f"192.168.88.11–.{10 + n}" if self.name == "ipv4"
                else f"fd00:88::11–::{0x10 + n:x}")

    def listening(self, port: int) -> str:
        """How `ss` shows a server listening on (server, port)."""
        return f"{self.server}:{port} " if self.name == "ipv4" else f"[{self.server}]:{port} "


FAMILIES = {
    "ipv4": Family("ipv4", "IPv4", "ip -4", "ip", "iptables", SERVER, "", 5301, ""),
    "ipv6": Family("ipv6", "IPv6", "ip -6", "ip6", "ip6tables", SERVER6, "6", 5401, " metric 1"),
}


def gateways(lab: labkit.Lab, fam: Family) -> dict[str, str]:
    """Each WAN's gateway: integra's IPv6 one is isp2's link-local address, from its RAs."""
    if fam.name == "ipv4":
        return dict(WAN_GATEWAY)
    integra = lab.ra_gateway()
    if not integra:
        raise labkit.LabError("no IPv6 default route from isp2's router advertisements on ether2")
    return {"charter": WAN_GATEWAY6["charter"], "integra": integra}


# -- router configurations ---------------------------------------------------------------------

class Plain:
    """a: one default route via charter and a masquerade rule."""

    def __init__(self, lab: labkit.Lab, fam: Family):
        self.lab, self.fam = lab, fam
        self.route = ""

    def setup(self) -> None:
        gateway = gateways(self.lab, self.fam)["charter"]
        self.route = f"default via {gateway} dev ether1{self.fam.plain_metric}"
        self.lab.run("rtr", f"{self.fam.ip} route add {self.route}")
        self.lab.nft("rtr", f"""
table {self.fam.nft} benchmasq {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "ether1" masquerade
    }}
}}
""")

    def teardown(self) -> None:
        self.lab.run("rtr", f"nft delete table {self.fam.nft} benchmasq", check=False)
        if self.route:
            self.lab.run("rtr", f"{self.fam.ip} route del {self.route}", check=False)


class Wanbalance:
    """b: wanbalanced with the article config (IPv4) or the dual-stack one (IPv6), both WANs
    up in the family measured."""

    def __init__(self, lab: labkit.Lab, fam: Family):
        self.lab, self.fam = lab, fam
        self.daemon: labkit.Daemon | None = None

    def _all_up(self) -> bool:
        wans = self.daemon.status()["wans"]
        if self.fam.name == "ipv4":
            return all(w["state"] == "up" for w in wans)
        return all(w["state"] == "up" and (w.get("ipv6") or {}).get("state") == "up"
                   for w in wans)

    def setup(self) -> None:
        config = (self.lab.article_config() if self.fam.name == "ipv4"
                  else self.lab.dual_stack_config())
        self.daemon = self.lab.start_daemon(config)
        self.daemon.wait_ready()
        labkit.wait_until(self._all_up, 15, f"both WANs up for {self.fam.title}")

    def teardown(self) -> None:
        if self.daemon is not None:
            code = self.daemon.stop()
            self.daemon = None
            if code != 0:
                raise labkit.LabError(f"wanbalanced exited {code} on SIGTERM")


class Iptables:
    """c: the classic mwan3-style policy routing with iptables or ip6tables."""

    def __init__(self, lab: labkit.Lab, backend: str, fam: Family):
        self.lab, self.fam, self.backend = lab, fam, backend
        self.ipt = f"{fam.iptables}-{backend}"

    def rules(self) -> list[str]:
        # ip6tables' HMARK hashes the whole 128-bit addresses for "src,dst".
        hmark = (f"-j HMARK --hmark-tuple src,dst,sport,dport --hmark-mod 2 "
                 f"--hmark-offset {MARKS['charter']:#x} --hmark-rnd {HASH_SEED}")
        return [
            "-t mangle -A PREROUTING -j CONNMARK --restore-mark",
            "-t mangle -A PREROUTING -i ether1 -m conntrack --ctstate NEW "
            f"-j MARK --set-mark {MARKS['charter']:#x}",
            "-t mangle -A PREROUTING -i ether2 -m conntrack --ctstate NEW "
            f"-j MARK --set-mark {MARKS['integra']:#x}",
            "-t mangle -A PREROUTING -i ether3 -m conntrack --ctstate NEW "
            f"-m addrtype ! --dst-type LOCAL {hmark}",
            "-t mangle -A PREROUTING -m conntrack --ctstate NEW -j CONNMARK --save-mark",
            "-t mangle -A OUTPUT -m connmark ! --mark 0 -j CONNMARK --restore-mark",
            "-t nat -A POSTROUTING -o ether1 -j MASQUERADE",
            "-t nat -A POSTROUTING -o ether2 -j MASQUERADE",
        ]

    def setup(self) -> None:
        """Tables, rules and priorities as wanbalance's: a default per WAN table, the balanced
        multipath default in its own table, `suppress_prefixlength 0` on main first (so the
        IPv6 RA default in main does not take the traffic), then one rule per mark."""
        run, ip = self.lab.run, self.fam.ip
        gw = gateways(self.lab, self.fam)
        nexthops = []
        for wan, table in TABLES.items():
            iface = labkit.WAN_INTERFACE[wan]
            if self.fam.name == "ipv4":
                run("rtr", f"sysctl -q -w net.ipv4.conf.{iface}.src_valid_mark=1")
            run("rtr", f"{ip} route add default via {gw[wan]} dev {iface} table {table}")
            nexthops.append(f"nexthop via {gw[wan]} dev {iface} weight 1")
        run("rtr", f"{ip} route add default table {BALANCED_TABLE} {' '.join(nexthops)}")
        run("rtr", f"{ip} rule add priority {RULE_PRIORITY} lookup main suppress_prefixlength 0")
        for i, wan in enumerate(TABLES):
            run("rtr", f"{ip} rule add priority {RULE_PRIORITY + 1 + i} fwmark {MARKS[wan]:#x} "
                       f"lookup {TABLES[wan]}")
        run("rtr", f"{ip} rule add priority {RULE_PRIORITY + 1 + len(TABLES)} "
                   f"lookup {BALANCED_TABLE}")
        for rule in self.rules():
            run("rtr", f"{self.ipt} -w {rule}")

    def teardown(self) -> None:
        run = lambda cmd: self.lab.run("rtr", cmd, check=False)  # noqa: E731
        ip = self.fam.ip
        for table in ("mangle", "nat"):
            run(f"{self.ipt} -w -t {table} -F")
            run(f"{self.ipt} -w -t {table} -X")
        if self.backend == "nft":
            # iptables-nft leaves its (now empty) tables behind; they still hook every packet.
            run(f"nft delete table {self.fam.nft} mangle")
            run(f"nft delete table {self.fam.nft} nat")
        for prio in range(RULE_PRIORITY, RULE_PRIORITY + 2 + len(TABLES)):
            run(f"{ip} rule del priority {prio}")
        for table in (*TABLES.values(), BALANCED_TABLE):
            run(f"{ip} route flush table {table}")
        if self.fam.name == "ipv4":
            for iface in ("ether1", "ether2"):
                run(f"sysctl -q -w net.ipv4.conf.{iface}.src_valid_mark=0")


def router_state(lab: labkit.Lab, backend: str) -> dict[str, str]:
    """nft ruleset, both families' rules, routes and sysctls, and with --iptables legacy the
    x_tables rules of both (labkit.Lab.kernel_state normalizes counters and RA lifetimes)."""
    state = lab.kernel_state("rtr", families=labkit.FAMILIES)
    if backend == "legacy":
        for tool in ("iptables", "ip6tables"):
            saved = lab.run("rtr", f"{tool}-legacy-save").stdout
            state[f"{tool}-legacy"] = "\n".join(l for l in saved.splitlines()
                                                if l.startswith("-A"))
    return state


def check_clean(lab: labkit.Lab, backend: str, baseline: dict[str, str], after: str) -> None:
    now = router_state(lab, backend)
    for key, value in baseline.items():
        if now.get(key) != value:
            raise labkit.LabError(f"router not back to its initial state after {after}: {key} "
                                  f"differs:\n{now.get(key)}")


# -- traffic -----------------------------------------------------------------------------------

SINK = """
table {family} bench {{
    counter tcp_isp1 {{ }}
    counter tcp_isp2 {{ }}
    counter udp_isp1 {{ }}
    counter udp_isp2 {{ }}
    chain prerouting {{
        type filter hook prerouting priority raw - 10; policy accept;
        {family} daddr {server} tcp dport {first}-{last} iifname "isp1" counter name "tcp_isp1"
        {family} daddr {server} tcp dport {first}-{last} iifname "isp2" counter name "tcp_isp2"
        # iperf3's UDP handshake datagram has 4 bytes of payload: let it through. Data is
        # counted and dropped here so no receiving application limits the rate.
        {family} daddr {server} udp dport {first}-{last} udp length > 40 iifname "isp1" \\
            counter name "udp_isp1" drop
        {family} daddr {server} udp dport {first}-{last} udp length > 40 iifname "isp2" \\
            counter name "udp_isp2" drop
    }}
}}
"""


class Traffic:
    """One family's iperf3 servers in the internet namespace and their counters there."""

    def __init__(self, lab: labkit.Lab, fam: Family, clients: int, streams: int):
        self.lab, self.fam, self.clients, self.streams = lab, fam, clients, streams
        self.last: dict = {}  # the last measurement's counter deltas and window
        last = fam.base_port + clients - 1
        lab.nft("inet", SINK.format(family=fam.nft, server=fam.server, first=fam.base_port,
                                    last=last))
        self.servers = [lab.popen("inet", ["iperf3", "-s", "-B", fam.server,
                                           "-p", str(fam.base_port + i)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for i in range(clients)]
        labkit.wait_until(self._listening, 10, f"{fam.title} iperf3 servers to listen")

    def _listening(self) -> bool:
        out = self.lab.run("inet", "ss -Htln").stdout
        return all(self.fam.listening(self.fam.base_port + i) in out for i in range(self.clients))

    def read_counters(self) -> dict[str, tuple[int, int]]:
        data = json.loads(self.lab.run(
            "inet", f"nft -j list counters table {self.fam.nft} bench").stdout)
        out = {}
        for item in data["nftables"]:
            c = item.get("counter")
            if c:
                out[c["name"]] = (c["packets"], c["bytes"])
        return out

    def measure(self, kind: str, window: float, ramp: float) -> dict:
        """Run the clients for ramp + window + ramp seconds; counters over the middle window."""
        duration = window + 2 * ramp
        procs = []
        for i in range(self.clients):
            argv = ["iperf3", "-c", self.fam.server, "-p", str(self.fam.base_port + i),
                    "-B", self.fam.source(i), "-t", f"{duration:g}", "-P", str(self.streams),
                    "--connect-timeout", "3000"]
            if kind == "udp":
                argv += ["-u", "-l", "64", "-b", "0"]
            procs.append(self.lab.popen("lan", argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
        time.sleep(ramp)
        t0 = time.monotonic()
        c0 = self.read_counters()
        t0 = (t0 + time.monotonic()) / 2
        time.sleep(window)
        t1 = time.monotonic()
        c1 = self.read_counters()
        t1 = (t1 + time.monotonic()) / 2
        for p in procs:
            try:
                _, err = p.communicate(timeout=duration + 20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise labkit.LabError(f"{self.fam.title} iperf3 {kind} client did not "
                                      "finish") from None
            if p.returncode != 0:
                raise labkit.LabError(f"{self.fam.title} iperf3 {kind} client exited "
                                      f"{p.returncode}: {err.strip() or 'no message'}")
        idx = 1 if kind == "tcp" else 0  # TCP: bytes, UDP: packets
        counted = {wan: c1[f"{kind}_{isp}"][idx] - c0[f"{kind}_{isp}"][idx]
                   for wan, isp in labkit.ISP_OF_WAN.items()}
        self.last = {"window_s": t1 - t0, "counted": counted}
        per_wan = {wan: n / (t1 - t0) for wan, n in counted.items()}
        if kind == "tcp":
            per_wan = {wan: v * 8 / 1e9 for wan, v in per_wan.items()}  # Gbit/s
        return per_wan

    def stop(self) -> None:
        for s in self.servers:
            s.terminate()
            try:
                s.wait(3)
            except subprocess.TimeoutExpired:
                s.kill()


def check_paths(fam: Family, config: str, kind: str, per_wan: dict[str, float]) -> None:
    what = f"{fam.title} {kind}"
    total = sum(per_wan.values())
    if total <= 0:
        raise labkit.LabError(f"configuration {config} passed no {what} traffic")
    share = {wan: v / total for wan, v in per_wan.items()}
    if config == "a" and share["integra"] > 0.001:
        raise labkit.LabError(f"configuration a sent {share['integra']:.1%} of {what} via integra")
    if config != "a" and min(share.values()) < 0.001:
        raise labkit.LabError(f"configuration {config} sent {what} over one WAN only: "
                              + ", ".join(f"{w} {s:.1%}" for w, s in share.items()))


# -- report ------------------------------------------------------------------------------------

RAW_UNIT = {"tcp": ("Gbit/s", "bytes"), "udp": ("packets/s", "packets")}
KINDS = {"tcp": ("TCP throughput, Gbit/s", ".2f", "Gbit/s", 1.0),
         "udp": ("64-byte UDP, kpackets/s", ".0f", "kpackets/s", 1e-3)}


def series_key(fam: Family, kind: str, config: str) -> str:
    return f"{kind}{fam.key}.{config}"


def figures(results: list[dict], args: argparse.Namespace, families: list[Family]) -> Figures:
    """Every measurement: per family, kind and configuration one point per round, its value
    the total rate through both WANs, with each WAN's rate and counter delta over the window."""
    fig = Figures("dataplane", "dataplane.py", {
        "families": [f.name for f in families],
        "rounds": args.rounds, "window_s": args.window, "ramp_s": args.ramp,
        "clients": args.clients, "streams_per_client": args.streams, "iptables": args.iptables,
        "cpus": os.cpu_count()})
    for fam in families:
        for kind, (unit, counted) in RAW_UNIT.items():
            for c in CONFIGS:
                fig.series(series_key(fam, kind, c), unit,
                           {w: unit for w in labkit.ISP_OF_WAN}
                           | {f"{w}_counted": counted for w in labkit.ISP_OF_WAN}
                           | {"window_s": "s",
                              "position": "place of the configuration in its round"},
                           family=fam.name, kind=kind, config=c, configuration=TITLES[c])
            for r in results:
                if r["family"] != fam.name:
                    continue
                fig.point(series_key(fam, kind, r["config"]), sum(r[kind].values()),
                          round=r["round"] + 1, position=r["position"], **r[kind],
                          **{f"{w}_counted": n for w, n in r[kind + "_raw"]["counted"].items()},
                          window_s=r[kind + "_raw"]["window_s"])
    return fig


def family_rows(results: list[dict], fam: Family, fig: Figures) -> tuple[list, list, list]:
    """One family's rows of the figures, targets and shares tables (recorded in fig)."""
    figure_rows, target_rows, share_rows = [], [], []
    mine = [r for r in results if r["family"] == fam.name]
    for kind, (metric, fmt, unit, scale) in KINDS.items():
        label = f"{fam.title} {metric}"
        key = {c: series_key(fam, kind, c) for c in CONFIGS}
        total = {c: [sum(r[kind].values()) * scale for r in mine if r["config"] == c]
                 for c in CONFIGS}
        rounds = len(total["a"])
        ratio = {pair: [total[pair[0]][i] / total[pair[1]][i] for i in range(rounds)]
                 for pair in (("b", "a"), ("c", "a"), ("b", "c"))}
        figure_rows.append(
            [label] + [fig.spread(f"{label}: {TITLES[c]}", key[c], total[c], fmt, unit,
                                  **({"scale": scale} if scale != 1 else {}))
                       for c in CONFIGS]
            + [fig.spread(f"{label}: {x}/{y} per round", key[x], ratio[(x, y)], ".3f",
                          "ratio", divided_by=key[y]) for x, y in (("b", "a"), ("c", "a"))])
        ba = statistics.median(ratio[("b", "a")])
        bc = fig.summarize(f"{label}: b/c per round, median", "median", key["b"],
                           statistics.median(ratio[("b", "c")]), "ratio", divided_by=key["c"])
        target_rows.append([label, "b/a ≥ 0.95", f"{ba:.3f}", "met" if ba >= 0.95 else "NOT met"])
        target_rows.append([label, "b ≥ c (b/c ≥ 1)", f"{bc:.3f}",
                            "met" if bc >= 1.0 else "NOT met"])
        fig.outcome["targets"] += [{"family": fam.name, "metric": label, "target": t,
                                    "value": v, "met": m}
                                   for t, v, m in (("b/a >= 0.95", ba, ba >= 0.95),
                                                   ("b/c >= 1", bc, bc >= 1.0))]
        for c in ("b", "c"):
            shares = [r[kind]["charter"] / sum(r[kind].values()) * 100
                      for r in mine if r["config"] == c]
            share_rows.append([label, TITLES[c],
                               fig.spread(f"{label}: charter's share in {TITLES[c]}",
                                          f"{key[c]}:charter", shares, ".0f", "%",
                                          divided_by=key[c], scale=100) + " %"])
    return figure_rows, target_rows, share_rows


def report(results: list[dict], args: argparse.Namespace, families: list[Family],
           fig: Figures) -> str:
    figure_rows, target_rows, share_rows = [], [], []
    fig.outcome["targets"] = []
    for fam in families:
        rows = family_rows(results, fam, fig)
        figure_rows += rows[0]
        target_rows += rows[1]
        share_rows += rows[2]
    rounds = len([r for r in results if r["config"] == "a" and r["family"] == families[0].name])
    figures_md = md_table(["median (min–max)", TITLES["a"], TITLES["b"], TITLES["c"], "b/a",
                           "c/a"], figure_rows)
    targets = md_table(["metric", "target", "median of per-round ratios", "result"], target_rows)
    shares = md_table(["metric", "configuration", "charter's share, median (min–max)"],
                      share_rows)
    command = shlex.join(["python3", "bench/dataplane.py", *command_args()])
    names = {f.name for f in families}
    legacy_note = ("\n`iptables-legacy` tables cannot be unregistered from a namespace: after "
                   "the first c, a and b ran with its empty mangle and nat tables still hooked.\n"
                   if args.iptables == "legacy" else "")
    traffic = "; ".join(
        f"{fam.title} from {fam.sources_text(args.clients)} to {fam.server}" for fam in families)
    per_round = (" once per family (IPv4, then IPv6)" if len(families) > 1 else "")
    ipt = " / ".join(f"`{f.iptables}-{args.iptables}`" for f in families)
    a_text = "one default route via charter plus an nft masquerade rule"
    if "ipv6" in names:
        a_text += (" (IPv6: metric 1, ahead of the default route isp2's router advertisements "
                   "put in main; masquerade of the ULA to charter's address, NAT66)")
    b_text = " and ".join(
        (["the article's two-WAN config for IPv4"] if "ipv4" in names else [])
        + (["the dual-stack config for IPv6 (charter's static `gateway6`, integra's `\"auto\"` "
            "from router advertisements, IPv6 probe targets)"] if "ipv6" in names else []))
    sysctl = ", `src_valid_mark` (IPv4)" if "ipv4" in names else ""
    return f"""## Data plane: throughput and small-packet rate

`{command}`: {rounds} round{"s" if rounds != 1 else ""}; each round measures the three configurations of the same
router back to back{per_round} (order rotated: a b c, b c a, c a b, ...), {args.window:g} s per measurement
after {args.ramp:g} s of ramp-up. From the LAN namespace through the router to the internet
namespace, {args.clients} iperf3 clients, each bound to its own LAN address, with
{args.streams} streams each ({traffic}): TCP (IP bytes per second, headers included), then
64-byte UDP datagrams (`iperf3 -u -l 64 -b 0`, datagrams per second). Both are counted by nft
counters in the internet namespace per ISP link; the UDP datagrams are dropped there, so no
receiving application limits the rate.

- a: {a_text};
- b: wanbalanced with {b_text};
- c: the same policy with {ipt}, as mwan3-style setups write it: mangle
  PREROUTING `CONNMARK --restore-mark`, new LAN connections marked by `HMARK` (addresses and
  ports, mod 2; ip6tables hashes the full 128-bit addresses) then `CONNMARK --save-mark`, an
  `ip rule fwmark` per WAN table, `MASQUERADE` per WAN; routes, rules (the same tables and
  priorities, the balanced multipath default in its own table){sysctl} as wanbalance sets them.

Between configurations the router was checked to be back to its initial state (nft ruleset,
IPv4 and IPv6 rules and routes, iptables, sysctls) and conntrack was flushed. Ratios are taken
per round, so slow drift of the machine cancels out. Senders, ISPs and receivers share the
machine's {os.cpu_count()} CPUs with the router, so the ratios understate the difference in the
router's own cost.
{legacy_note}
{figures_md}

{targets}

Traffic really took both WANs in b and c (charter's share of what arrived; a used charter only):

{shares}
"""


# -- main --------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 rounds of 2 s measurements")
    parser.add_argument("--markdown", type=Path, metavar="OUT.md",
                        help="write the markdown section to this file")
    add_json_argument(parser)
    parser.add_argument("--family", choices=("ipv4", "ipv6", "both"), default="both",
                        help="which traffic to measure (default both: each round IPv4, then "
                             "IPv6)")
    parser.add_argument("--rounds", type=int, help="rounds of a, b, c (default 7; --quick 2)")
    parser.add_argument("--window", type=float, help="seconds counted per measurement "
                        "(default 5; --quick 2)")
    parser.add_argument("--ramp", type=float, default=1.0,
                        help="seconds of traffic before and after the window (1)")
    parser.add_argument("--clients", type=int, default=4,
                        help="iperf3 clients, each from its own LAN address (4)")
    parser.add_argument("--streams", type=int, default=4, help="parallel streams per client (4)")
    parser.add_argument("--iptables", choices=("nft", "legacy"), default="nft",
                        help="iptables backend for c (default nft: Debian 12's iptables; its "
                             "tables can be removed completely, legacy tables cannot)")
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    args = parser.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.window = args.window or (2.0 if args.quick else 5.0)
    if args.rounds < 1 or not 1 <= args.clients <= 30 or args.streams < 1:
        parser.error("--rounds ≥ 1, --clients 1-30, --streams ≥ 1")
    return args


def run_one(lab: labkit.Lab, config, fam: Family, name: str, rnd: int, position: int,
            traffic: Traffic, args: argparse.Namespace, baseline: dict[str, str]) -> dict:
    """One configuration of one family: set up, TCP then UDP, torn down, the router checked."""
    progress(f"round {rnd + 1}/{args.rounds}: {fam.title} {TITLES[name]} ...")
    lab.run("rtr", "conntrack -F", check=False)
    try:
        config.setup()
        row = {"family": fam.name, "config": name, "round": rnd, "position": position}
        for kind in ("tcp", "udp"):
            row[kind] = traffic.measure(kind, args.window, args.ramp)
            row[kind + "_raw"] = traffic.last
            check_paths(fam, name, kind, row[kind])
    finally:
        config.teardown()
    lab.run("rtr", "conntrack -F", check=False)
    check_clean(lab, args.iptables, baseline, f"{fam.title} {TITLES[name]}")
    print(f"round {rnd + 1} {fam.title} {name}: TCP {sum(row['tcp'].values()):.2f} Gbit/s "
          f"(charter {row['tcp']['charter']:.2f}, integra {row['tcp']['integra']:.2f}); UDP "
          f"{sum(row['udp'].values()) / 1e3:.0f} kpps (charter "
          f"{row['udp']['charter'] / 1e3:.0f}, integra {row['udp']['integra'] / 1e3:.0f})",
          flush=True)
    return row


def main() -> int:
    args = parse_args()
    families = [FAMILIES[f] for f in (("ipv4", "ipv6") if args.family == "both"
                                      else (args.family,))]
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    ok, reason = labkit.lab_available()
    if not ok:
        return fail("dataplane.py", reason)
    tools = ["iperf3", "conntrack"] + [f"{f.iptables}-{args.iptables}" for f in families]
    for tool in tools:
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            return fail("dataplane.py", f"needs `{tool}` (tools/deps.sh bench)")
    try:
        labkit.program("wanbalanced")
        labkit.program("wanbalancectl")
    except FileNotFoundError as e:
        return fail("dataplane.py", str(e))

    results: list[dict] = []
    try:
        with labkit.Lab() as lab:
            # isp2's router advertisement first: IPv6 needs its gateway, and the baseline
            # must hold its SLAAC address and default route.
            lab.wait_ipv6(timeout=15)
            configs = {f.name: {"a": Plain(lab, f), "b": Wanbalance(lab, f),
                                "c": Iptables(lab, args.iptables, f)} for f in families}
            baseline = router_state(lab, args.iptables)
            traffic: dict[str, Traffic] = {}
            try:
                for f in families:
                    traffic[f.name] = Traffic(lab, f, args.clients, args.streams)
                for rnd in range(args.rounds):
                    order = CONFIGS[rnd % 3:] + CONFIGS[:rnd % 3]
                    for f in families:
                        for name in order:
                            results.append(run_one(lab, configs[f.name][name], f, name, rnd,
                                                   order.index(name) + 1, traffic[f.name],
                                                   args, baseline))
            finally:
                for t in traffic.values():
                    t.stop()
    except (labkit.LabError, TimeoutError, subprocess.TimeoutExpired, OSError, KeyError,
            ValueError) as e:
        return fail("dataplane.py", str(e))

    fig = figures(results, args, families)
    text = report(results, args, families, fig)
    return finish(text, args.markdown, fig, args.json)


if __name__ == "__main__":
    sys.exit(main())
