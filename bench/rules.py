#!/usr/bin/env python3
# Policy-rules benchmark in the namespace lab: what 0, 10, 100 and 1000 rules cost new
# connections and established small packets through the router, wanbalance's compiled rules
# beside the same rules as an mwan3-style linear iptables chain.
"""Measure the cost of policy rules through the lab router (needs root, a built daemon).

Configurations, each with wanbalanced running (the lab's article config, both WANs up):
  wbN   wanbalanced with N generated rules (bench/rulegen.py: a realistic mix of destination
        /24s and /32s, source subnets, tcp and udp ports and ranges, over five policies of the
        two WANs, "balanced" and "main"); wb0 is the article config alone, the 0-rule rate
  iptN  wanbalanced without rules, and the same N rules as mwan3 builds them with iptables in
        the router's mangle PREROUTING (restore the mark; a new LAN connection whose mark is 0
        walks one rule per rule element, MATCH -m mark --mark 0/MASK -j mwan3_policy_P; save
        the mark), set up once wanbalanced runs, so it sees the connection first (the kernel
        runs the base chain registered last first among those of one priority): the only
        difference from wbN is how a new connection is classified; ipt0 has the chain, no rule

Traffic, of two kinds, both udp from the LAN: "last" to 198.18.0.0/16, which only the LAST
rule matches (it sends it over integra alone: every measurement checks that it did, and that
the other kind used both WANs), and "none" to 198.19.0.0/16, which no rule matches.
  new connections: `hping3 -2 --flood --rand-dest 198.18.x.x` from the LAN host, every packet
      a new flow (random destination, next source port), conntrack flushed first; what reaches
      the internet namespace is counted there (nft counters per ISP link, read before and
      after the window) and dropped
  64-byte UDP of established flows: CLIENTS iperf3 clients (`-u -l 64 -b 0`, STREAMS streams
      each) to servers at 198.18.0.10 / 198.19.0.10, counted and dropped the same way

Rounds run every configuration back to back, the order rotated every round, in ONE lab
(docs/design.md, Kernel facts: rates swing between runs); ratios are taken within a round.
After each configuration the router is checked to be back to its initial state.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import rulegen  # noqa: E402
import rulesreport  # noqa: E402
from benchkit import add_json_argument, fail, finish  # noqa: E402
from dataplane import check_clean, router_state  # noqa: E402

import labkit  # noqa: E402
from labkit import progress  # noqa: E402

KINDS = ("last", "none")
SERVERS = rulegen.SERVERS
FLOOD_DST = {"last": "198.18.x.x", "none": "198.19.x.x"}
MARKS = {"charter": 0x100, "integra": 0x200}  # what wanbalanced allocates for the article config
MASK = 0x3f00


def config_key(system: str, n: int) -> str:
    return f"{system}{n}"


# -- router configurations ---------------------------------------------------------------------

class Wanbalance:
    """wbN: wanbalanced with N rules (none: the article config), both WANs up."""

    def __init__(self, lab: labkit.Lab, rules: list[dict]):
        self.lab, self.rules = lab, rules
        self.daemon: labkit.Daemon | None = None
        self.seen: dict = {}
        self.starts = 0

    def start(self, config: dict) -> None:
        # A state directory of its own: a daemon that finds its config invalid at start would
        # run the last one applied (from an earlier configuration) instead of failing.
        self.starts += 1
        state = self.lab.workdir / f"state-{id(self):x}-{self.starts}"
        self.daemon = self.lab.start_daemon(config, ["--state-dir", str(state)])
        try:
            self.daemon.wait_ready(timeout=30)
            labkit.wait_until(lambda: all(w["state"] == "up" for w in
                                          self.daemon.status()["wans"]), 20, "both WANs up")
        except (TimeoutError, labkit.LabError) as e:
            errors = [line for line in self.daemon.log().splitlines() if "[error]" in line]
            more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
            raise labkit.LabError(f"wanbalanced with {len(config.get('rules', []))} rules: "
                                  f"{errors[0] if errors else str(e).splitlines()[0]}{more}"
                                  ) from None
        marks = {w["name"]: int(w["mark"], 16) for w in self.daemon.status()["wans"]}
        if marks != MARKS:
            raise labkit.LabError(f"wanbalanced allocated marks {marks}, the iptables chain "
                                  f"uses {MARKS}")

    def setup(self) -> None:
        self.start(rulegen.config(self.lab.article_config(), self.rules))
        if self.rules:
            self.seen = self.compiled()

    def compiled(self) -> dict:
        """The rule layers in the kernel (lookups a new connection makes), and the rules the
        daemon's status lists."""
        text = self.lab.run("rtr", "nft list ruleset").stdout
        layers = len(re.findall(r"vmap @rules4_\d+", text))
        maps = dict(re.findall(r"map (rules4_\d+) \{(.*?)\n\t\}", text, re.S))
        sizes = [len(re.findall(r" : (?:goto|jump) ", maps.get(f"rules4_{i}", "")))
                 for i in range(1, layers + 1)]
        last = re.compile(rf"goto rule_{self.rules[-1]['name']}\b")
        last_layer = next((i for i in range(1, layers + 1)
                           if last.search(maps.get(f"rules4_{i}", ""))), None)
        status = self.daemon.status()
        listed = len(status["rules"]) if status.get("rules") is not None else None
        if layers == 0 or listed not in (None, len(self.rules)):
            raise labkit.LabError(f"wanbalanced accepted {len(self.rules)} rules but its ruleset "
                                  f"has {layers} rules4 lookups and its status lists {listed} "
                                  "rules")
        return {"layers": layers, "layer_elements": sizes, "last_rule_layer": last_layer,
                "status_rules": listed}

    def teardown(self) -> None:
        if self.daemon is not None:
            code = self.daemon.stop()
            self.daemon = None
            if code != 0:
                raise labkit.LabError(f"wanbalanced exited {code} on SIGTERM")


class Iptables(Wanbalance):
    """iptN: the rules as mwan3's linear iptables chain, wanbalanced without rules."""

    def __init__(self, lab: labkit.Lab, rules: list[dict], backend: str):
        super().__init__(lab, rules)
        self.ipt = f"iptables-{backend}"
        self.backend = backend

    def setup(self) -> None:
        self.start(self.lab.article_config())
        # After wanbalanced: of two base chains of the same priority (mangle), the kernel runs
        # the one registered last first. So the chain classifies a new connection, and
        # wanbalanced's by_mark follows the mark it saved.
        text = rulegen.iptables_restore(self.rules, MARKS, mask=MASK)
        self.lab.run("rtr", [f"{self.ipt}-restore", "-w", "--noflush"], input=text, timeout=60)
        saved = self.lab.run("rtr", [f"{self.ipt}-save", "-t", "mangle"]).stdout
        self.seen = {"chain_rules": saved.count("-A mwan3_rules ")}

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            run = lambda cmd: self.lab.run("rtr", cmd, check=False)  # noqa: E731
            run(f"{self.ipt} -w -t mangle -F")
            run(f"{self.ipt} -w -t mangle -X")
            if self.backend == "nft":  # iptables-nft leaves its empty table hooked
                run("nft delete table ip mangle")


# -- traffic -----------------------------------------------------------------------------------

SINK = """
table ip rulesbench {{
{counters}
    chain prerouting {{
        type filter hook prerouting priority raw - 10; policy accept;
{rules}
    }}
}}
"""


class Traffic:
    """The counters, the iperf3 servers and the two generators (flood, iperf3)."""

    def __init__(self, lab: labkit.Lab, args: argparse.Namespace):
        self.lab, self.args = lab, args
        counters, rules = [], []
        for kind in KINDS:
            net = rulegen.LAST_DST if kind == "last" else rulegen.NONE_DST
            first, last = rulegen.IPERF_PORTS[0], rulegen.IPERF_PORTS[0] + args.clients - 1
            for isp in ("isp1", "isp2"):
                counters += [f"    counter conn_{kind}_{isp} {{ }}",
                             f"    counter udp_{kind}_{isp} {{ }}"]
                rules += [f'        ip daddr {net} udp dport {rulegen.FLOOD_PORT} iifname '
                          f'"{isp}" counter name "conn_{kind}_{isp}" drop',
                          # iperf3's 4-byte handshake datagram passes: the server answers it
                          f'        ip daddr {SERVERS[kind]} udp dport {first}-{last} '
                          f'udp length > 40 iifname "{isp}" counter name "udp_{kind}_{isp}" drop']
            lab.run("inet", f"ip addr add {SERVERS[kind]}/32 dev lo")
        lab.nft("inet", SINK.format(counters="\n".join(counters), rules="\n".join(rules)))
        self.servers = [lab.popen("inet", ["iperf3", "-s", "-B", SERVERS[kind], "-p",
                                           str(rulegen.IPERF_PORTS[0] + i)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for kind in KINDS for i in range(args.clients)]
        labkit.wait_until(self._listening, 10, "iperf3 servers to listen")
        self.ct_max = int(lab.run("rtr", "sysctl -n net.netfilter.nf_conntrack_max").stdout)

    def _listening(self) -> bool:
        out = self.lab.run("inet", "ss -Htln").stdout
        return all(f"{SERVERS[k]}:{rulegen.IPERF_PORTS[0] + i} " in out
                   for k in KINDS for i in range(self.args.clients))

    def counters(self) -> dict[str, int]:
        data = json.loads(self.lab.run("inet", "nft -j list counters table ip rulesbench").stdout)
        return {c["counter"]["name"]: c["counter"]["packets"]
                for c in data["nftables"] if "counter" in c}

    def _window(self, metric: str, kind: str, ramp: float, window: float) -> dict:
        """Counters over window seconds after ramp seconds of traffic: per WAN rates."""
        time.sleep(ramp)
        t0 = time.monotonic()
        c0 = self.counters()
        t0 = (t0 + time.monotonic()) / 2
        time.sleep(window)
        t1 = time.monotonic()
        c1 = self.counters()
        t1 = (t1 + time.monotonic()) / 2
        counted = {wan: c1[f"{metric}_{kind}_{isp}"] - c0[f"{metric}_{kind}_{isp}"]
                   for wan, isp in labkit.ISP_OF_WAN.items()}
        return {"window_s": t1 - t0, "counted": counted,
                "rates": {wan: n / (t1 - t0) for wan, n in counted.items()}}

    def flood(self, kind: str) -> dict:
        """New udp flows as fast as hping3 sends them, conntrack empty at the start."""
        self.lab.run("rtr", "conntrack -F", check=False)
        argv = ["hping3", "-2", "--flood", "-p", str(rulegen.FLOOD_PORT), "-d", "64",
                "--rand-dest", "-I", "eth0", FLOOD_DST[kind]]
        proc = self.lab.popen("lan", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        try:
            out = self._window("conn", kind, self.args.ramp, self.args.flood_window)
            entries = self.lab.run("rtr", "conntrack -C", check=False).stdout.strip()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                stdout, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
        sent = re.search(r"(\d+) packets transmitted", stdout + stderr)
        if proc.returncode not in (0, 1, -signal.SIGINT) or not sent:
            raise labkit.LabError(f"hping3 exited {proc.returncode}: "
                                  f"{(stderr or stdout).strip()[-200:] or 'no message'}")
        out["conntrack_entries"] = int(entries) if entries.isdigit() else None
        out["sent"] = int(sent[1])
        self.lab.run("rtr", "conntrack -F", check=False)
        return out

    def udp(self, kind: str) -> dict:
        """64-byte datagrams of established flows (iperf3), as fast as the clients send."""
        duration = self.args.udp_window + 2 * self.args.ramp_udp
        procs = [self.lab.popen("lan", ["iperf3", "-c", SERVERS[kind], "-p",
                                        str(rulegen.IPERF_PORTS[0] + i), "-B",
                                        f"192.168.88.{11 + i}", "-t", f"{duration:g}", "-P",
                                        str(self.args.streams), "-u", "-l", "64", "-b", "0",
                                        "--connect-timeout", "3000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(self.args.clients)]
        try:
            out = self._window("udp", kind, self.args.ramp_udp, self.args.udp_window)
        finally:
            for p in procs:
                try:
                    _, err = p.communicate(timeout=duration + 20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    _, err = p.communicate()
                    raise labkit.LabError("an iperf3 client did not finish") from None
                if p.returncode != 0:
                    raise labkit.LabError(f"iperf3 client exited {p.returncode}: "
                                          f"{err.strip() or 'no message'}")
        self.lab.run("rtr", "conntrack -F", check=False)
        return out

    def stop(self) -> None:
        for s in self.servers:
            s.terminate()
            try:
                s.wait(3)
            except subprocess.TimeoutExpired:
                s.kill()


def check_paths(key: str, n: int, metric: str, kind: str, rates: dict[str, float]) -> None:
    """The last rule took effect (its traffic went over integra alone) and nothing else did
    (the other traffic, and all of it without rules, used both WANs)."""
    total = sum(rates.values())
    what = f"{key}: {metric} traffic of kind {kind!r}"
    if total <= 0:
        raise labkit.LabError(f"{what} passed nothing")
    share = rates["charter"] / total
    if n > 0 and kind == "last":
        if share > 0.001:
            raise labkit.LabError(f"{what} matches the last rule (policy {rulegen.LAST_POLICY}) "
                                  f"but {share:.1%} of it went via charter: the rule did not "
                                  "take effect")
    elif not 0.001 < share < 0.999:
        raise labkit.LabError(f"{what} should be balanced but {share:.1%} went via charter")


# -- main --------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 0 and 1000 rules, 2 rounds of 1 s windows")
    parser.add_argument("--markdown", type=Path, metavar="OUT.md",
                        help="write the markdown section to this file")
    add_json_argument(parser)
    parser.add_argument("--rounds", type=int, help="rounds of every configuration (default 7; "
                        "--quick 2)")
    parser.add_argument("--counts", help="rule counts, comma list (default 0,10,100,1000; "
                        "--quick 0,1000); 0 is always measured")
    parser.add_argument("--flood-window", type=float, help="seconds counted per new-connection "
                        "measurement (default 1.5, --quick 1), after --ramp; kept short so "
                        "conntrack (emptied first) does not fill up")
    parser.add_argument("--ramp", type=float, default=0.5, help="seconds of flood before its "
                        "window (0.5)")
    parser.add_argument("--udp-window", type=float, help="seconds counted per UDP measurement "
                        "(default 3, --quick 1)")
    parser.add_argument("--ramp-udp", type=float, default=1.0,
                        help="seconds of UDP traffic before and after its window (1)")
    parser.add_argument("--clients", type=int, default=4,
                        help="iperf3 clients, each from its own LAN address (4)")
    parser.add_argument("--streams", type=int, default=4, help="streams per client (4)")
    parser.add_argument("--seed", type=int, default=12, help="of the generated rules (12)")
    parser.add_argument("--iptables", choices=("nft", "legacy"), default="nft",
                        help="iptables backend of the linear chain (default nft)")
    parser.add_argument("--write-rules", type=Path, metavar="DIR",
                        help="only write the generated configs and iptables-restore files to "
                             "DIR (no lab, no root needed)")
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    args = parser.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.flood_window = args.flood_window or (1.0 if args.quick else 1.5)
    args.udp_window = args.udp_window or (1.0 if args.quick else 3.0)
    counts = args.counts or ("0,1000" if args.quick else "0,10,100,1000")
    try:
        args.counts = sorted({0, *(int(c) for c in counts.split(","))})
    except ValueError:
        parser.error(f"--counts takes whole numbers, got {counts!r}")
    if args.rounds < 1 or not 1 <= args.clients <= 30 or args.streams < 1 or not all(
            0 <= c <= 4096 for c in args.counts):
        parser.error("--rounds ≥ 1, --clients 1-30, --streams ≥ 1, counts 0-4096")
    return args


def write_rules(args: argparse.Namespace) -> int:
    args.write_rules.mkdir(parents=True, exist_ok=True)
    base = {"wans": [{"name": "charter", "interface": "ether1", "gateway": "203.0.113.1"},
                     {"name": "integra", "interface": "ether2", "gateway": "198.51.100.1"}],
            "lans": ["ether3"]}
    for n in args.counts[1:]:
        rules = rulegen.generate(n, args.seed)
        rulegen.check(rules)
        (args.write_rules / f"rules-{n}.json").write_text(
            json.dumps(rulegen.config(base, rules), indent=1) + "\n")
        (args.write_rules / f"iptables-{n}.rules").write_text(
            rulegen.iptables_restore(rules, MARKS, mask=MASK))
        print(f"{n} rules: {rulegen.elements(rules)} elements, {rulegen.layers(rules)} layers")
    return 0


def measure_config(lab, traffic: Traffic, config, key: str, n: int, rnd: int, position: int,
                   baseline: dict, args) -> list[dict]:
    """One configuration: set up, both kinds of both measurements, torn down, checked."""
    rows = []
    config.setup()
    try:
        kinds = KINDS if rnd % 2 == 0 else KINDS[::-1]
        for metric, run in (("conn", traffic.flood), ("udp", traffic.udp)):
            for kind in kinds:
                out = run(kind)
                check_paths(key, n, metric, kind, out["rates"])
                out |= {"config": key, "rules": n, "metric": metric, "kind": kind,
                        "round": rnd, "position": position, "seen": dict(config.seen),
                        "loadavg": float(open("/proc/loadavg").read().split()[0])}
                rows.append(out)
                unit = "k new flows/s" if metric == "conn" else "kpackets/s"
                print(f"round {rnd + 1} {key:7} {metric} {kind}: "
                      f"{sum(out['rates'].values()) / 1e3:.1f} {unit} (charter "
                      f"{out['rates']['charter'] / 1e3:.1f}, integra "
                      f"{out['rates']['integra'] / 1e3:.1f})", flush=True)
    finally:
        config.teardown()
    check_clean(lab, args.iptables, baseline, key)
    return rows


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    rules = {n: rulegen.generate(n, args.seed) for n in args.counts}
    for n, r in rules.items():
        rulegen.check(r)
    info = {n: {"elements": rulegen.elements(r), "layers_expected": rulegen.layers(r)}
            for n, r in rules.items()}
    results: list[dict] = []
    start = time.monotonic()
    with labkit.Lab() as lab:
        configs = {}
        for n in args.counts:  # A and B of each count side by side: wb0 ipt0 wb10 ipt10 ...
            configs[config_key("wb", n)] = (n, Wanbalance(lab, rules[n]))
            configs[config_key("ipt", n)] = (n, Iptables(lab, rules[n], args.iptables))
        order = list(configs)
        baseline = router_state(lab, args.iptables)
        traffic = Traffic(lab, args)
        info["conntrack_max"] = traffic.ct_max
        try:
            steps, done = args.rounds * len(order), 0
            for rnd in range(args.rounds):
                shift = rnd % len(order)
                this = order[shift:] + order[:shift]
                for position, key in enumerate(this, 1):
                    elapsed = time.monotonic() - start
                    left = (f", about {elapsed / done * (steps - done) / 60:.0f} min left"
                            if done else "")
                    progress(f"round {rnd + 1}/{args.rounds}, configuration {position}/"
                             f"{len(this)}: {key} ({elapsed / 60:.1f} min{left})")
                    n, config = configs[key]
                    results += measure_config(lab, traffic, config, key, n, rnd, position,
                                              baseline, args)
                    done += 1
        finally:
            traffic.stop()
    return results, info


def main() -> int:
    args = parse_args()
    if args.write_rules:
        return write_rules(args)
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    ok, reason = labkit.lab_available()
    if not ok:
        return fail("rules.py", reason)
    for tool in ("hping3", "iperf3", "conntrack", f"iptables-{args.iptables}"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            return fail("rules.py", f"needs `{tool}` (tools/deps.sh bench)")
    try:
        labkit.program("wanbalanced")
        labkit.program("wanbalancectl")
    except FileNotFoundError as e:
        return fail("rules.py", str(e))
    load_before = open("/proc/loadavg").read().split()[:3]
    try:
        results, info = run(args)
    except (labkit.LabError, TimeoutError, subprocess.TimeoutExpired, OSError, KeyError,
            ValueError) as e:
        return fail("rules.py", str(e))
    info["loadavg_before"] = " ".join(load_before)
    info["loadavg_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    fig = rulesreport.figures(results, args, info)
    text = rulesreport.report(results, args, info, fig)
    return finish(text, args.markdown, fig, args.json)


if __name__ == "__main__":
    sys.exit(main())
