#!/usr/bin/env python3
# Data-plane benchmark in the namespace lab: TCP throughput and small-packet UDP rate from the LAN
# through the router, for plain routing, wanbalance's ruleset and the classic iptables setup.
"""Compare the router's forwarding cost under three configurations (needs root, a built daemon).

  a  plain routing + masquerade: one default route via charter, one nft masquerade rule
  b  wanbalance: wanbalanced running with the lab's article config (two WANs, default classifier)
  c  the same policy the classic way (mwan3 style) with iptables: mangle PREROUTING
     CONNMARK --restore-mark, new LAN connections marked by HMARK (hash of addresses and ports,
     mod 2) then CONNMARK --save-mark, one ip rule per mark to a per-WAN table, MASQUERADE per
     WAN; routes, rules and src_valid_mark exactly as wanbalance sets them

Rounds interleave the configurations (a b c, b c a, c a b, ...) in ONE lab, because throughput in
the lab swings 2.5x between runs (docs/design.md, Kernel facts). Every configuration is removed after its
measurement and the router is checked to be back to its initial state (nft ruleset, ip rules,
routes, iptables, sysctls) before the next one; conntrack is flushed in between.

Traffic: CLIENTS iperf3 clients in the LAN, each bound to its own source address (.11, .12, ...)
with STREAMS parallel streams, to their own iperf3 server in the internet namespace. What the
router forwarded is read from nft counters in the internet namespace, per ingress link (isp1 =
charter, isp2 = integra) over a fixed window in the middle of the run: TCP payload bytes, and
64-byte UDP datagrams (iperf3 -u -l 64 -b 0), which are counted and dropped there so that no
receiving application limits the figure. Each measurement must have passed traffic, through
charter only for a and through both WANs for b and c.
"""

from __future__ import annotations

import argparse
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
from labkit import SERVER, WAN_GATEWAY, progress  # noqa: E402

BASE_PORT = 5301
CONFIGS = ("a", "b", "c")
TITLES = {"a": "a: plain routing + masquerade", "b": "b: wanbalance",
          "c": "c: iptables (mwan3 style)"}
MARKS = {"charter": 0x100, "integra": 0x101}  # what HMARK --hmark-offset 0x100 --hmark-mod 2 yields
TABLES = {"charter": 101, "integra": 102}
HASH_SEED = "0x77616e62"  # pinned, as wanbalance pins its jhash seed


# -- router configurations ---------------------------------------------------------------------

class Plain:
    """a: one default route via charter and a masquerade rule."""

    def __init__(self, lab: labkit.Lab):
        self.lab = lab

    def setup(self) -> None:
        self.lab.run("rtr", f"ip route add default via {WAN_GATEWAY['charter']} dev ether1")
        self.lab.nft("rtr", """
table ip benchmasq {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "ether1" masquerade
    }
}
""")

    def teardown(self) -> None:
        self.lab.run("rtr", "nft delete table ip benchmasq", check=False)
        self.lab.run("rtr", "ip route del default", check=False)


class Wanbalance:
    """b: wanbalanced with the article config, both WANs up."""

    def __init__(self, lab: labkit.Lab):
        self.lab = lab
        self.daemon: labkit.Daemon | None = None

    def setup(self) -> None:
        self.daemon = self.lab.start_daemon(self.lab.article_config())
        self.daemon.wait_ready()
        labkit.wait_until(lambda: all(w["state"] == "up" for w in self.daemon.status()["wans"]),
                          15, "both WANs up")

    def teardown(self) -> None:
        if self.daemon is not None:
            code = self.daemon.stop()
            self.daemon = None
            if code != 0:
                raise labkit.LabError(f"wanbalanced exited {code} on SIGTERM")


class Iptables:
    """c: the classic mwan3-style policy routing with iptables."""

    def __init__(self, lab: labkit.Lab, backend: str):
        self.lab = lab
        self.ipt = f"iptables-{backend}"
        self.backend = backend

    def rules(self) -> list[str]:
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
        run = self.lab.run
        for wan, table in TABLES.items():
            iface = labkit.WAN_INTERFACE[wan]
            run("rtr", f"sysctl -q -w net.ipv4.conf.{iface}.src_valid_mark=1")
            run("rtr", f"ip route add default via {WAN_GATEWAY[wan]} dev {iface} table {table}")
        run("rtr", f"ip route add default nexthop via {WAN_GATEWAY['charter']} dev ether1 weight 1 "
                   f"nexthop via {WAN_GATEWAY['integra']} dev ether2 weight 1")
        run("rtr", "ip rule add priority 20000 lookup main suppress_prefixlength 0")
        for i, wan in enumerate(TABLES):
            run("rtr", f"ip rule add priority {20001 + i} fwmark {MARKS[wan]:#x} "
                       f"lookup {TABLES[wan]}")
        for rule in self.rules():
            run("rtr", f"{self.ipt} -w {rule}")

    def teardown(self) -> None:
        run = lambda cmd: self.lab.run("rtr", cmd, check=False)  # noqa: E731
        for table in ("mangle", "nat"):
            run(f"{self.ipt} -w -t {table} -F")
            run(f"{self.ipt} -w -t {table} -X")
        if self.backend == "nft":
            # iptables-nft leaves its (now empty) tables behind; they still hook every packet.
            run("nft delete table ip mangle")
            run("nft delete table ip nat")
        for prio in (20000, 20001, 20002):
            run(f"ip rule del priority {prio}")
        for table in TABLES.values():
            run(f"ip route flush table {table}")
        run("ip route del default")
        for iface in ("ether1", "ether2"):
            run(f"sysctl -q -w net.ipv4.conf.{iface}.src_valid_mark=0")


def router_state(lab: labkit.Lab, backend: str) -> dict[str, str]:
    state = lab.kernel_state("rtr")
    state["sysctl"] = lab.run("rtr", "sysctl net.ipv4.conf.ether1.src_valid_mark "
                                     "net.ipv4.conf.ether2.src_valid_mark").stdout.strip()
    if backend == "legacy":
        saved = lab.run("rtr", "iptables-legacy-save").stdout
        state["iptables-legacy"] = "\n".join(l for l in saved.splitlines() if l.startswith("-A"))
    return state


def check_clean(lab: labkit.Lab, backend: str, baseline: dict[str, str], after: str) -> None:
    now = router_state(lab, backend)
    for key, value in baseline.items():
        if now.get(key) != value:
            raise labkit.LabError(f"router not back to its initial state after {after}: {key} "
                                  f"differs:\n{now.get(key)}")


# -- traffic -----------------------------------------------------------------------------------

SINK = """
table ip bench {{
    counter tcp_isp1 {{ }}
    counter tcp_isp2 {{ }}
    counter udp_isp1 {{ }}
    counter udp_isp2 {{ }}
    chain prerouting {{
        type filter hook prerouting priority raw - 10; policy accept;
        ip daddr {server} tcp dport {first}-{last} iifname "isp1" counter name "tcp_isp1"
        ip daddr {server} tcp dport {first}-{last} iifname "isp2" counter name "tcp_isp2"
        # iperf3's UDP handshake datagram has 4 bytes of payload: let it through. Data is
        # counted and dropped here so no receiving application limits the rate.
        ip daddr {server} udp dport {first}-{last} udp length > 40 iifname "isp1" \\
            counter name "udp_isp1" drop
        ip daddr {server} udp dport {first}-{last} udp length > 40 iifname "isp2" \\
            counter name "udp_isp2" drop
    }}
}}
"""


def read_counters(lab: labkit.Lab) -> dict[str, tuple[int, int]]:
    data = json.loads(lab.run("inet", "nft -j list counters table ip bench").stdout)
    out = {}
    for item in data["nftables"]:
        c = item.get("counter")
        if c:
            out[c["name"]] = (c["packets"], c["bytes"])
    return out


class Traffic:
    def __init__(self, lab: labkit.Lab, clients: int, streams: int):
        self.lab, self.clients, self.streams = lab, clients, streams
        self.last: dict = {}  # the last measurement's counter deltas and window
        last = BASE_PORT + clients - 1
        lab.nft("inet", SINK.format(server=SERVER, first=BASE_PORT, last=last))
        self.servers = [lab.popen("inet", ["iperf3", "-s", "-B", SERVER, "-p", str(BASE_PORT + i)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for i in range(clients)]
        labkit.wait_until(self._listening, 10, "iperf3 servers to listen")

    def _listening(self) -> bool:
        out = self.lab.run("inet", "ss -Htln").stdout
        return all(f"{SERVER}:{BASE_PORT + i} " in out for i in range(self.clients))

    def measure(self, kind: str, window: float, ramp: float) -> dict:
        """Run the clients for ramp + window + ramp seconds; counters over the middle window."""
        duration = window + 2 * ramp
        procs = []
        for i in range(self.clients):
            argv = ["iperf3", "-c", SERVER, "-p", str(BASE_PORT + i), "-B", f"192.168.88.{11 + i}",
                    "-t", f"{duration:g}", "-P", str(self.streams), "--connect-timeout", "3000"]
            if kind == "udp":
                argv += ["-u", "-l", "64", "-b", "0"]
            procs.append(self.lab.popen("lan", argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
        time.sleep(ramp)
        t0 = time.monotonic()
        c0 = read_counters(self.lab)
        t0 = (t0 + time.monotonic()) / 2
        time.sleep(window)
        t1 = time.monotonic()
        c1 = read_counters(self.lab)
        t1 = (t1 + time.monotonic()) / 2
        for p in procs:
            try:
                _, err = p.communicate(timeout=duration + 20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise labkit.LabError(f"iperf3 {kind} client did not finish") from None
            if p.returncode != 0:
                raise labkit.LabError(f"iperf3 {kind} client exited {p.returncode}: "
                                      f"{err.strip() or 'no message'}")
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


def check_paths(config: str, kind: str, per_wan: dict[str, float]) -> None:
    total = sum(per_wan.values())
    if total <= 0:
        raise labkit.LabError(f"configuration {config} passed no {kind} traffic")
    share = {wan: v / total for wan, v in per_wan.items()}
    if config == "a" and share["integra"] > 0.001:
        raise labkit.LabError(f"configuration a sent {share['integra']:.1%} of {kind} via integra")
    if config != "a" and min(share.values()) < 0.001:
        raise labkit.LabError(f"configuration {config} sent {kind} over one WAN only: "
                              + ", ".join(f"{w} {s:.1%}" for w, s in share.items()))


# -- report ------------------------------------------------------------------------------------

RAW_UNIT = {"tcp": ("Gbit/s", "bytes"), "udp": ("packets/s", "packets")}


def figures(results: list[dict], args: argparse.Namespace) -> Figures:
    """Every measurement: per kind and configuration one point per round, its value the total
    rate through both WANs, with each WAN's rate and counter delta over the window."""
    fig = Figures("dataplane", "dataplane.py", {
        "rounds": args.rounds, "window_s": args.window, "ramp_s": args.ramp,
        "clients": args.clients, "streams_per_client": args.streams, "iptables": args.iptables,
        "cpus": os.cpu_count()})
    for kind, (unit, counted) in RAW_UNIT.items():
        for c in CONFIGS:
            fig.series(f"{kind}.{c}", unit,
                       {w: unit for w in labkit.ISP_OF_WAN}
                       | {f"{w}_counted": counted for w in labkit.ISP_OF_WAN}
                       | {"window_s": "s", "position": "place of the configuration in its round"},
                       kind=kind, config=c, configuration=TITLES[c])
        for r in results:
            fig.point(f"{kind}.{r['config']}", sum(r[kind].values()), round=r["round"] + 1,
                      position=r["position"], **r[kind],
                      **{f"{w}_counted": n for w, n in r[kind + "_raw"]["counted"].items()},
                      window_s=r[kind + "_raw"]["window_s"])
    return fig


def report(results: list[dict], args: argparse.Namespace, fig: Figures) -> str:
    kinds = {"tcp": ("TCP throughput, Gbit/s", ".2f", "Gbit/s"),
             "udp": ("64-byte UDP, kpackets/s", ".0f", "kpackets/s")}
    scale = {"tcp": 1.0, "udp": 1e-3}
    figure_rows, target_rows, share_rows = [], [], []
    fig.outcome["targets"] = []
    for kind, (label, fmt, unit) in kinds.items():
        total = {c: [sum(r[kind].values()) * scale[kind] for r in results if r["config"] == c]
                 for c in CONFIGS}
        rounds = len(total["a"])
        ratio = {pair: [total[pair[0]][i] / total[pair[1]][i] for i in range(rounds)]
                 for pair in (("b", "a"), ("c", "a"), ("b", "c"))}
        figure_rows.append(
            [label] + [fig.spread(f"{label}: {TITLES[c]}", f"{kind}.{c}", total[c], fmt, unit,
                                  **({"scale": scale[kind]} if scale[kind] != 1 else {}))
                       for c in CONFIGS]
            + [fig.spread(f"{label}: {x}/{y} per round", f"{kind}.{x}", ratio[(x, y)], ".3f",
                          "ratio", divided_by=f"{kind}.{y}") for x, y in (("b", "a"), ("c", "a"))])
        ba = statistics.median(ratio[("b", "a")])
        bc = fig.summarize(f"{label}: b/c per round, median", "median", f"{kind}.b",
                           statistics.median(ratio[("b", "c")]), "ratio", divided_by=f"{kind}.c")
        target_rows.append([label, "b/a ≥ 0.95", f"{ba:.3f}", "met" if ba >= 0.95 else "NOT met"])
        target_rows.append([label, "b ≥ c (b/c ≥ 1)", f"{bc:.3f}",
                            "met" if bc >= 1.0 else "NOT met"])
        fig.outcome["targets"] += [{"metric": label, "target": t, "value": v, "met": m}
                                   for t, v, m in (("b/a >= 0.95", ba, ba >= 0.95),
                                                   ("b/c >= 1", bc, bc >= 1.0))]
        for c in ("b", "c"):
            shares = [r[kind]["charter"] / sum(r[kind].values()) * 100
                      for r in results if r["config"] == c]
            share_rows.append([label, TITLES[c],
                               fig.spread(f"{label}: charter's share in {TITLES[c]}",
                                          f"{kind}.{c}:charter", shares, ".0f", "%",
                                          divided_by=f"{kind}.{c}", scale=100) + " %"])
    rounds = len([r for r in results if r["config"] == "a"])
    figures = md_table(["median (min–max)", TITLES["a"], TITLES["b"], TITLES["c"], "b/a", "c/a"],
                       figure_rows)
    targets = md_table(["metric", "target", "median of per-round ratios", "result"], target_rows)
    shares = md_table(["metric", "configuration", "charter's share, median (min–max)"],
                      share_rows)
    command = shlex.join(["python3", "bench/dataplane.py", *command_args()])
    legacy_note = ("\n`iptables-legacy` tables cannot be unregistered from a namespace: after "
                   "the first c, a and b ran with its empty mangle and nat tables still hooked.\n"
                   if args.iptables == "legacy" else "")
    return f"""## Data plane: throughput and small-packet rate

`{command}`: {rounds} round{"s" if rounds != 1 else ""}; each round measures the three configurations of the same
router back to back (order rotated: a b c, b c a, c a b, ...), {args.window:g} s per measurement
after {args.ramp:g} s of ramp-up. From the LAN namespace through the router to the internet
namespace, {args.clients} iperf3 clients bound to 192.168.88.11–.{10 + args.clients} with
{args.streams} streams each: TCP (IP bytes per second), then 64-byte UDP datagrams
(`iperf3 -u -l 64 -b 0`, datagrams per second). Both are counted by nft counters in the internet
namespace per ISP link; the UDP datagrams are dropped there, so no receiving application
limits the rate.

- a: one default route via charter plus an nft masquerade rule;
- b: wanbalanced with the article's two-WAN config;
- c: the same policy with `iptables-{args.iptables}`, as mwan3-style setups write it: mangle
  PREROUTING `CONNMARK --restore-mark`, new LAN connections marked by `HMARK` (addresses and
  ports, mod 2) then `CONNMARK --save-mark`, an `ip rule fwmark` per WAN table, `MASQUERADE` per
  WAN; routes, rules and `src_valid_mark` as wanbalance sets them.

Between configurations the router was checked to be back to its initial state (nft ruleset,
ip rules, routes, iptables, sysctls) and conntrack was flushed. Ratios are taken per round, so
slow drift of the machine cancels out. Senders, ISPs and receivers share the machine's
{os.cpu_count()} CPUs with the router, so the ratios understate the difference in the router's
own cost.
{legacy_note}
{figures}

{targets}

Traffic really took both WANs in b and c (charter's share of what arrived; a used charter only):

{shares}
"""


# -- main --------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 rounds of 2 s measurements")
    parser.add_argument("--markdown", type=Path, metavar="OUT.md",
                        help="write the markdown section to this file")
    add_json_argument(parser)
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
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    ok, reason = labkit.lab_available()
    if not ok:
        return fail("dataplane.py", reason)
    for tool in ("iperf3", f"iptables-{args.iptables}"):
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
            configs = {"a": Plain(lab), "b": Wanbalance(lab), "c": Iptables(lab, args.iptables)}
            baseline = router_state(lab, args.iptables)
            traffic = Traffic(lab, args.clients, args.streams)
            try:
                for rnd in range(args.rounds):
                    order = CONFIGS[rnd % 3:] + CONFIGS[:rnd % 3]
                    for name in order:
                        config = configs[name]
                        progress(f"round {rnd + 1}/{args.rounds}: {TITLES[name]} ...")
                        lab.run("rtr", "conntrack -F", check=False)
                        try:
                            config.setup()
                            row = {"config": name, "round": rnd,
                                   "position": order.index(name) + 1}
                            for kind in ("tcp", "udp"):
                                row[kind] = traffic.measure(kind, args.window, args.ramp)
                                row[kind + "_raw"] = traffic.last
                                check_paths(name, kind, row[kind])
                        finally:
                            config.teardown()
                        lab.run("rtr", "conntrack -F", check=False)
                        check_clean(lab, args.iptables, baseline, TITLES[name])
                        results.append(row)
                        print(f"round {rnd + 1} {name}: TCP {sum(row['tcp'].values()):.2f} Gbit/s "
                              f"(charter {row['tcp']['charter']:.2f}, integra "
                              f"{row['tcp']['integra']:.2f}); UDP "
                              f"{sum(row['udp'].values()) / 1e3:.0f} kpps (charter "
                              f"{row['udp']['charter'] / 1e3:.0f}, integra "
                              f"{row['udp']['integra'] / 1e3:.0f})", flush=True)
            finally:
                traffic.stop()
    except (labkit.LabError, TimeoutError, subprocess.TimeoutExpired, OSError, KeyError,
            ValueError) as e:
        return fail("dataplane.py", str(e))

    fig = figures(results, args)
    text = report(results, args, fig)
    return finish(text, args.markdown, fig, args.json)


if __name__ == "__main__":
    sys.exit(main())
