"""The policy rules bench/rules.py measures (bench/README.md, rules.py): a realistic mix
generated from a seed, written as a wanbalance config (`policies`, `rules`: docs/design.md,
Configuration) and as the same rules in an mwan3-style linear iptables chain.

The mix: mostly destination networks (distinct /24s) and hosts (distinct /32s) with tcp or udp
ports and port ranges, some of them only from a LAN-side source subnet, over five policies of
the lab's two WANs plus "balanced" and "main"; at the head of the list, as operators write their
exceptions first, one rule in 50 on a source subnet alone or on a port alone. None of them
matches the benchmark's traffic (checked, overlaps()); the LAST rule matches the "last" traffic
(udp to LAST_DST from the LAN) and sends it over integra alone, so a measurement can tell that
it took effect; the "none" traffic (udp to NONE_DST) matches no rule.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

# The benchmark's traffic: from the LAN host (192.168.88.10) and the iperf3 clients (.11-.14),
# udp to a destination network the internet namespace counts and drops (RFC 2544's benchmark
# range, so no rule of the mix can name it by accident), a flood to FLOOD_PORT and iperf3's
# data to IPERF_PORTS (its tcp control connection to the same ports).
LAN_SOURCES = "192.168.88.0/26"
LAST_DST = "198.18.0.0/16"
NONE_DST = "198.19.0.0/16"
SERVERS = {"last": "198.18.0.10", "none": "198.19.0.10"}  # iperf3's, on the internet's lo
FLOOD_PORT = 7001
IPERF_PORTS = (5301, 5304)
LAST_POLICY = "integra-only"

POLICIES = {
    "charter-only": {"members": [{"wan": "charter"}]},
    "integra-only": {"members": [{"wan": "integra"}], "last_resort": "main"},
    "voip": {"members": [{"wan": "integra"}, {"wan": "charter", "tier": 1}]},
    "weighted": {"members": [{"wan": "charter", "weight": 3}, {"wan": "integra"}]},
    "pair": {"members": [{"wan": "charter"}, {"wan": "integra"}],
             "last_resort": "unreachable"},
}
TARGETS = [*POLICIES, "balanced", "main"]

# Never a destination or source of a generated rule: the lab's own ranges and what no router
# forwards (this, loopback, link-local, multicast and above).
EXCLUDED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "192.0.2.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "192.168.88.0/24", "224.0.0.0/3")]
# LAN-side source subnets other than the benchmark's sources (192.168.88.0/26).
SOURCE_SUBNETS = (["192.168.88.64/26", "192.168.88.128/25", "192.168.88.200/32"]
                  + [f"192.168.{i}.0/24" for i in range(89, 100)]
                  + [f"10.{i}.0.0/16" for i in range(20, 40)])
TCP_PORTS = [["443"], ["80", "443"], ["8080-8090"], ["993", "995"], ["22"], ["3389"],
             ["25", "465", "587"], ["8443"], ["1024-65535"], ["5222-5223"]]
UDP_PORTS = [["443"], ["53"], ["1194"], ["51820"], ["500", "4500"], ["10000-20000"],
             ["3478-3481"], ["5060"], ["123"], ["27015-27030"]]
# Ports of rules that name no address, and the source subnets of rules that name nothing else:
# at most one rule each (else the later would be dead).
PORT_ONLY = [("udp", ["5060"]), ("udp", ["10000-20000"]), ("tcp", ["5222-5223"]),
             ("udp", ["3478-3481"]), ("tcp", ["1723"]), ("udp", ["51820"]), ("tcp", ["8443"]),
             ("udp", ["27015-27030"]), ("tcp", ["6881-6889"]), ("udp", ["4500"])]

# Kinds of rule and how often they come.
KINDS = [("dst24-tcp", 30), ("dst32", 25), ("dst24-any", 10), ("src-dst", 15), ("dst24-udp", 20)]
# The broad kinds, one rule in BROAD_EVERY, first: every later rule of the other kinds overlaps
# them, so wanbalance compiles it to a layer above theirs (rules that overlap go to different
# layers, each a lookup); spread through the list instead they would make a layer each.
BROAD = ("src-only", "port-only")
BROAD_EVERY = 50


def _excluded(net: ipaddress.IPv4Network) -> bool:
    return any(net.overlaps(e) for e in EXCLUDED)


class _Addresses:
    """Distinct random public /24s and /32s (no /32 inside a /24 handed out, nor the reverse)."""

    def __init__(self, rng: random.Random):
        self.rng, self.nets24, self.hosts = rng, set(), set()

    def net24(self) -> str:
        while True:
            net = ipaddress.ip_network((self.rng.randrange(1, 224) << 24)
                                       | (self.rng.randrange(256) << 16)
                                       | (self.rng.randrange(256) << 8)).supernet(new_prefix=24)
            if not _excluded(net) and net not in self.nets24 and not any(
                    h in net for h in self.hosts):
                self.nets24.add(net)
                return str(net)

    def host(self) -> str:
        while True:
            addr = ipaddress.ip_address(self.rng.randrange(1 << 24, 224 << 24))
            net = ipaddress.ip_network(addr)
            if not _excluded(net) and addr not in self.hosts and not any(
                    addr in n for n in self.nets24):
                self.hosts.add(addr)
                return f"{addr}/32"


def _filler(i: int, kind: str, rng: random.Random, addrs: _Addresses,
            port_only: list, src_only: list) -> dict:
    rule: dict = {"name": f"r{i}"}
    if kind == "dst24-tcp":
        rule |= {"dst": [addrs.net24() for _ in range(rng.randint(1, 3))], "proto": "tcp",
                 "dst_port": rng.choice(TCP_PORTS)}
    elif kind == "dst32":
        proto = rng.choice(["tcp", "udp"])
        rule |= {"dst": [addrs.host() for _ in range(rng.randint(1, 2))], "proto": proto,
                 "dst_port": rng.choice(TCP_PORTS if proto == "tcp" else UDP_PORTS)}
    elif kind == "dst24-any":
        rule |= {"dst": [addrs.net24() for _ in range(rng.randint(1, 4))]}
    elif kind == "src-dst":
        rule["src"] = [rng.choice(SOURCE_SUBNETS)]
        rule["dst"] = [rng.choice([addrs.net24, addrs.host])() for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.6:
            rule |= {"proto": "tcp", "dst_port": rng.choice(TCP_PORTS)}
    elif kind == "dst24-udp":
        rule |= {"dst": [addrs.net24()], "proto": "udp", "dst_port": rng.choice(UDP_PORTS)}
        if rng.random() < 0.2:
            rule["src_port"] = ["5060"]
    elif kind == "src-only" and src_only:
        rule["src"] = [src_only.pop()]
    elif kind == "port-only" and port_only:
        proto, ports = port_only.pop(0)
        rule |= {"proto": proto, "dst_port": ports}
    else:  # no distinct broad rule left: a destination network instead
        rule["dst"] = [addrs.net24()]
    rule["policy"] = rng.choice(TARGETS)
    return rule


def last_rule(i: int) -> dict:
    return {"name": f"r{i}", "src": [LAN_SOURCES], "dst": [LAST_DST], "proto": "udp",
            "policy": LAST_POLICY}


def generate(count: int, seed: int = 12) -> list[dict]:
    """count rules in config form: count // BROAD_EVERY broad ones, the other fillers, then
    the last rule."""
    if count <= 0:
        return []
    rng = random.Random(seed)
    addrs, port_only = _Addresses(rng), list(PORT_ONLY)
    src_only = [n for n in SOURCE_SUBNETS if n != "192.168.88.200/32"]  # no nested pair
    rng.shuffle(src_only)
    names, weights = zip(*KINDS)
    kinds = [rng.choice(BROAD) for _ in range(count // BROAD_EVERY)]
    kinds += rng.choices(names, weights, k=count - 1 - len(kinds))
    rules = [_filler(i + 1, kind, rng, addrs, port_only, src_only)
             for i, kind in enumerate(kinds)]
    return rules + [last_rule(count)]


def config(base: dict, rules: list[dict]) -> dict:
    """base (the lab's article config) with the rules and the policies they use."""
    used = {r["policy"] for r in rules}
    policies = {name: p for name, p in POLICIES.items() if name in used}
    return dict(base, policies=policies, rules=rules) if rules else dict(base)


# -- what a rule matches -------------------------------------------------------------------------

@dataclass(frozen=True)
class Box:
    """What a rule (or a kind of traffic) can match, field by field; None: anything."""
    src: tuple | None
    dst: tuple | None
    proto: str | None
    sport: tuple | None
    dport: tuple | None


def _ports(spec: list[str] | None) -> tuple | None:
    if not spec:
        return None
    out = []
    for p in spec:
        first, _, last = p.partition("-")
        out.append((int(first), int(last or first)))
    return tuple(out)


def _nets(spec: list[str] | None) -> tuple | None:
    return tuple(ipaddress.ip_network(n) for n in spec) if spec else None


def box(rule: dict) -> Box:
    return Box(_nets(rule.get("src")), _nets(rule.get("dst")), rule.get("proto"),
               _ports(rule.get("src_port")), _ports(rule.get("dst_port")))


def _meet(a: tuple | None, b: tuple | None, test) -> bool:
    return a is None or b is None or any(test(x, y) for x in a for y in b)


def overlaps(a: Box, b: Box) -> bool:
    """Some packet matches both (wanbalance's layering test: every field's lists intersect)."""
    return (_meet(a.src, b.src, lambda x, y: x.overlaps(y))
            and _meet(a.dst, b.dst, lambda x, y: x.overlaps(y))
            and (a.proto is None or b.proto is None or a.proto == b.proto)
            and _meet(a.sport, b.sport, lambda x, y: x[0] <= y[1] and y[0] <= x[1])
            and _meet(a.dport, b.dport, lambda x, y: x[0] <= y[1] and y[0] <= x[1]))


def traffic_boxes(kind: str) -> list[Box]:
    """Every packet that opens a connection in the benchmark: the flood and iperf3's data
    (udp) and control connections (tcp), to the destination of the kind ("last" or "none")."""
    dst = (ipaddress.ip_network(LAST_DST if kind == "last" else NONE_DST),)
    src = (ipaddress.ip_network(LAN_SOURCES),)
    ports = ((FLOOD_PORT, FLOOD_PORT), IPERF_PORTS)
    return [Box(src, dst, "udp", None, ports), Box(src, dst, "tcp", None, (IPERF_PORTS,))]


def check(rules: list[dict]) -> None:
    """The benchmark's premise: no rule but the last matches any of its traffic, the last
    matches the "last" kind's udp and nothing of the "none" kind. Raises ValueError."""
    for i, rule in enumerate(rules):
        b = box(rule)
        for kind in ("last", "none"):
            hit = [t.proto for t in traffic_boxes(kind) if overlaps(b, t)]
            want = ["udp"] if kind == "last" and i == len(rules) - 1 else []
            if hit != want:
                raise ValueError(f"rule {rule['name']} matches {hit or 'none'} of the "
                                 f"{kind!r} traffic, expected {want or 'none'}")


def layers(rules: list[dict]) -> int:
    """How many layers wanbalance compiles the rules to: a rule goes one above the highest
    layer of any earlier rule it overlaps (every packet looks up each layer in turn)."""
    boxes, level = [box(r) for r in rules], []
    for i, b in enumerate(boxes):
        level.append(1 + max((level[j] for j in range(i) if overlaps(b, boxes[j])), default=0))
    return max(level, default=0)


def elements(rules: list[dict]) -> int:
    """Rule elements: each rule's source x destination lists multiplied out (the iptables
    rules of the linear chain; wanbalance multiplies ports out too)."""
    return sum(len(r.get("src") or [None]) * len(r.get("dst") or [None]) for r in rules)


# -- the same rules, the mwan3 way ---------------------------------------------------------------

def _policy_chain(name: str, marks: dict[str, int], mask: int) -> list[str]:
    """mwan3_policy_NAME: the mark of the member(s) of the lowest tier, by weight (mwan3's
    `-m statistic --mode random --probability`), on connections not marked yet."""
    chain, zero = f"mwan3_policy_{name}", f"-m mark --mark 0x0/{mask:#x}"
    if name == "main":  # mwan3's "default" policy: the main table decides
        return [f"-A {chain} {zero} -j MARK --set-xmark {mask:#x}/{mask:#x}"]
    if name == "balanced":
        members = [{"wan": w} for w in marks]
    else:
        members = POLICIES[name]["members"]
        tier = min(m.get("tier", 0) for m in members)
        members = [m for m in members if m.get("tier", 0) == tier]
    out, left = [], sum(m.get("weight", 1) for m in members)
    for m in members:
        weight = m.get("weight", 1)
        chance = (f" -m statistic --mode random --probability {weight / left:.5f}"
                  if weight < left else "")
        out.append(f"-A {chain} {zero}{chance} -j MARK --set-xmark "
                   f"{marks[m['wan']]:#x}/{mask:#x}")
        left -= weight
    return out


def _match(rule: dict, src: str | None, dst: str | None) -> str:
    parts = []
    if src:
        parts.append(f"-s {src}")
    if dst:
        parts.append(f"-d {dst}")
    if rule.get("proto"):
        parts.append(f"-p {rule['proto']}")
    for key, flag in (("src_port", "--sports"), ("dst_port", "--dports")):
        if rule.get(key):
            parts.append(f"-m multiport {flag} " + ",".join(p.replace("-", ":")
                                                           for p in rule[key]))
    return " ".join(parts)


def iptables_restore(rules: list[dict], marks: dict[str, int], lan: str = "ether3",
                     mask: int = 0x3f00) -> str:
    """iptables-restore input for the mangle table, as mwan3 builds it: restore the connection's
    mark; a new connection from the LAN whose mark is still 0 walks mwan3_rules, one rule per
    rule element (source x destination) in order, each `MATCH -m mark --mark 0/MASK -j
    mwan3_policy_P` (so the first match wins); the policy chain sets the mark; then the mark is
    saved to the connection. A new connection from the LAN thus costs one rule per element
    until the first match: all of them when none matches."""
    used = sorted({r["policy"] for r in rules}, key=TARGETS.index)
    lines = ["*mangle", ":mwan3_hook - [0:0]", ":mwan3_rules - [0:0]"]
    lines += [f":mwan3_policy_{p} - [0:0]" for p in used]
    nfmask = f"--nfmask {mask:#x} --ctmask {mask:#x}"
    lines += [
        "-A PREROUTING -j mwan3_hook",
        f"-A mwan3_hook -j CONNMARK --restore-mark {nfmask}",
        f"-A mwan3_hook -i {lan} -m conntrack --ctstate NEW -m mark --mark 0x0/{mask:#x} "
        "-j mwan3_rules",
        f"-A mwan3_hook -j CONNMARK --save-mark {nfmask}",
    ]
    for rule in rules:
        for src in rule.get("src") or [None]:
            for dst in rule.get("dst") or [None]:
                lines.append(f"-A mwan3_rules {_match(rule, src, dst)} -m mark --mark "
                             f"0x0/{mask:#x} -m comment --comment {rule['name']} "
                             f"-j mwan3_policy_{rule['policy']}".replace("  ", " "))
    for p in used:
        lines += _policy_chain(p, marks, mask)
    return "\n".join(lines + ["COMMIT", ""])
