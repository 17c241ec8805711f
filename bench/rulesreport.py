"""bench/rules.py's figures (the JSON of bench/README.md, Raw figures) and its markdown section:
per metric, kind of traffic, configuration one point per round; medians with min-max, ratios
per round to wanbalance with 0 rules, and the targets."""

from __future__ import annotations

import argparse
import os
import shlex
import statistics

import rulegen
from benchkit import Figures, command_args, md_table, problems_text

METRICS = {"conn": ("New connections", "connections/s", "k/s"),
           "udp": ("64-byte UDP of established flows", "packets/s", "kpackets/s")}
KIND_TEXT = {"last": "matches the last rule", "none": "matches no rule"}
SYSTEMS = {"wb": "wanbalance", "ipt": "iptables (mwan3 style)"}
TARGET_RATIO = 0.9


def key(metric: str, kind: str, config: str) -> str:
    return f"{metric}.{kind}.{config}"


def figures(results: list[dict], args: argparse.Namespace, info: dict) -> Figures:
    fig = Figures("rules", "rules.py", {
        "rounds": args.rounds, "counts": args.counts, "kinds": ["last", "none"],
        "systems": list(SYSTEMS), "metrics": list(METRICS),
        "flood_window_s": args.flood_window, "flood_ramp_s": args.ramp,
        "udp_window_s": args.udp_window, "udp_ramp_s": args.ramp_udp,
        "clients": args.clients, "streams_per_client": args.streams, "seed": args.seed,
        "iptables": args.iptables, "cpus": os.cpu_count(),
        "conntrack_max": info.get("conntrack_max"),
        "rule_sets": {str(n): info[n] for n in args.counts},
        "loadavg_before": info.get("loadavg_before"),
        "loadavg_after": info.get("loadavg_after")})
    for metric, (_, unit, _) in METRICS.items():
        fields = {"charter": unit, "integra": unit, "charter_counted": "packets",
                  "integra_counted": "packets", "window_s": "s", "loadavg": "1-minute load",
                  "position": "place of the configuration in its round",
                  "layers": "rule lookups compiled (wanbalance)",
                  "layer_elements": "elements of each rule map (wanbalance)",
                  "last_rule_layer": "the map holding the last rule (wanbalance)",
                  "status_rules": "rules in status (wanbalance)",
                  "chain_rules": "rules in mwan3_rules (iptables)"}
        if metric == "conn":
            fields |= {"conntrack_entries": "entries at the window's end", "sent": "packets"}
        for kind in ("last", "none"):
            for n in args.counts:
                for system, title in SYSTEMS.items():
                    fig.series(key(metric, kind, f"{system}{n}"), unit, fields, metric=metric,
                               kind=kind, rules=n, system=system,
                               configuration=f"{title}, {n} rules")
    for r in results:
        extra = {"conntrack_entries": r["conntrack_entries"], "sent": r["sent"]} \
            if r["metric"] == "conn" else {}
        fig.point(key(r["metric"], r["kind"], r["config"]), sum(r["rates"].values()),
                  round=r["round"] + 1, position=r["position"], **r["rates"],
                  **{f"{w}_counted": c for w, c in r["counted"].items()},
                  window_s=r["window_s"], loadavg=r["loadavg"], **extra, **r["seen"])
    return fig


def _values(results, metric, kind, config):
    return [sum(r["rates"].values()) for r in sorted(results, key=lambda r: r["round"])
            if r["metric"] == metric and r["kind"] == kind and r["config"] == config]


def metric_rows(results: list[dict], args, fig: Figures, metric: str) -> list[list[str]]:
    """One table: per rule count and kind, each system's rate and its ratio to wb0."""
    title, unit, shown = METRICS[metric]
    rows = []
    for n in args.counts:
        for kind in ("last", "none"):
            base_key = key(metric, kind, "wb0")
            base = _values(results, metric, kind, "wb0")
            row = [str(n), kind]
            rate = {}
            for system, stitle in SYSTEMS.items():
                k = key(metric, kind, f"{system}{n}")
                rate[system] = _values(results, metric, kind, f"{system}{n}")
                name = f"{title}, {shown}: {stitle}, {n} rules, {kind}"
                row.append(fig.spread(name, k, [v / 1e3 for v in rate[system]], ".1f", shown,
                                      scale=1e-3))
                if k == base_key:
                    row.append("1")
                    continue
                ratios = [v / b for v, b in zip(rate[system], base)]
                row.append(fig.spread(f"{name}: per round / wanbalance 0 rules", k, ratios,
                                      ".3f", "ratio", divided_by=base_key))
            ratios = [i / w for i, w in zip(rate["ipt"], rate["wb"])]
            row.append(fig.spread(f"{title}: iptables / wanbalance per round, {n} rules, {kind}",
                                  key(metric, kind, f"ipt{n}"), ratios, ".3f", "ratio",
                                  divided_by=key(metric, kind, f"wb{n}")))
            rows.append(row)
    return rows


def targets(fig: Figures, args) -> list[list[str]]:
    """wanbalance with the most rules keeps >= 0.9 of the 0-rule connection rate; the linear
    chain falls behind it (iptables / wanbalance < 1), for both kinds of traffic."""
    n, rows, out = max(args.counts), [], []
    if n == 0:
        return rows
    title, _, shown = METRICS["conn"]
    for kind in ("last", "none"):
        for text, stat, op, bound in (
                (f"wanbalance, {n} rules: ≥ {TARGET_RATIO} of the 0-rule rate",
                 f"{title}, {shown}: wanbalance, {n} rules, {kind}: per round / wanbalance "
                 "0 rules, median", ">=", TARGET_RATIO),
                (f"iptables, {n} rules, falls behind wanbalance (iptables / wanbalance < 1)",
                 f"{title}: iptables / wanbalance per round, {n} rules, {kind}, median",
                 "<", 1.0)):
            value = next(e["value"] for e in fig.summary if e["name"] == stat)
            met = value >= bound if op == ">=" else value < bound
            out.append({"metric": "conn", "kind": kind, "target": text, "statistic": stat,
                        "op": op, "bound": bound, "value": value, "met": met})
            rows.append([f"new connections, traffic that {KIND_TEXT[kind]}", text,
                         f"{value:.3f}", "met" if met else "NOT met"])
    fig.outcome["targets"] = out
    return rows


def rule_set_rows(results: list[dict], args, info: dict) -> list[list[str]]:
    rows = []
    for n in args.counts[1:]:
        seen = lambda c, f: sorted({r["seen"].get(f) for r in results  # noqa: E731
                                    if r["config"] == c and f in r["seen"]})
        layers = seen(f"wb{n}", "layers")
        sizes = {tuple(r["seen"].get("layer_elements") or ()) for r in results
                 if r["config"] == f"wb{n}"}
        last = seen(f"wb{n}", "last_rule_layer")
        chain = seen(f"ipt{n}", "chain_rules")
        text = lambda xs: ", ".join(map(str, xs)) or "?"  # noqa: E731
        rows.append([str(n), str(info[n]["elements"]), str(info[n]["layers_expected"]),
                     text(layers), "; ".join(text(s) for s in sorted(sizes)) or "?",
                     text(last), text(chain)])
    return rows


def problems(results: list[dict], info: dict) -> list[str]:
    out, limit = [], info.get("conntrack_max") or 0
    for r in results:
        entries = r.get("conntrack_entries")
        if limit and entries is not None and entries >= 0.95 * limit:
            out.append(f"round {r['round'] + 1} {r['config']} {r['kind']}: conntrack held "
                       f"{entries} of {limit} entries at the window's end (near full: new "
                       "connections evict others)")
    loads = [r["loadavg"] for r in results]
    if loads and max(loads) > 1.5 * (os.cpu_count() or 1):
        out.append(f"the machine was busy: 1-minute load average up to {max(loads):.1f} on "
                   f"{os.cpu_count()} CPUs (other work competed with the measurements)")
    return out


def report(results: list[dict], args: argparse.Namespace, info: dict, fig: Figures) -> str:
    header = ["rules", "traffic", "wanbalance", "/ 0 rules", "iptables (mwan3 style)",
              "/ 0 rules", "iptables / wanbalance"]
    tables = {m: md_table(header, metric_rows(results, args, fig, m)) for m in METRICS}
    target_md = md_table(["metric", "target", "median of per-round ratios", "result"],
                         targets(fig, args)) if max(args.counts) else "(no rules measured)"
    sets = md_table(["rules", "elements (src × dst)", "layers (expected)",
                     "layers in the kernel", "map elements per layer", "last rule's layer",
                     "iptables rules in mwan3_rules"],
                    rule_set_rows(results, args, info)) if len(args.counts) > 1 else ""
    command = shlex.join(["python3", "bench/rules.py", *command_args()])
    n_configs = 2 * len(args.counts)
    loads = [r["loadavg"] for r in results]
    load_text = (f"1-minute load average {info['loadavg_before'].split()[0]} at the start, "
                 f"{info['loadavg_after'].split()[0]} at the end, "
                 f"{statistics.median(loads):.2f} (median; {min(loads):.2f}–{max(loads):.2f}) "
                 f"during the measurements, on {os.cpu_count()} CPUs")
    counts = ", ".join(map(str, args.counts))
    return f"""## Policy rules: new connections and small packets with {counts} rules

`{command}`: {args.rounds} rounds; each round measures the {n_configs} configurations back to back in
one lab (order rotated every round), each with wanbalanced running the lab's two-WAN config:

- wanbalance, N rules: the config with N rules generated by `bench/rulegen.py` (seed
  {args.seed}): distinct destination /24s and /32s, some only from LAN-side source subnets,
  tcp and udp ports and port ranges, over five policies of the two WANs (one member, tiers,
  weights 3:1, 1:1), `"balanced"` and `"main"`; at the head, one rule in
  {rulegen.BROAD_EVERY} on a source subnet or a port alone (exceptions first); then the last
  rule (udp from {rulegen.LAN_SOURCES} to {rulegen.LAST_DST}, policy `{rulegen.LAST_POLICY}`).
  0 rules is the config without rules: the 0-rule rate.
- iptables (mwan3 style), N rules: wanbalanced without rules, and the same N rules as mwan3
  builds them in the router's mangle PREROUTING (`iptables-{args.iptables}`): restore the
  connection's mark; a new LAN connection (`-m conntrack --ctstate NEW`) whose mark is still 0
  walks `mwan3_rules`, one rule per rule element (source × destination, ports by `multiport`),
  each `MATCH -m mark --mark 0/0x3f00 -j mwan3_policy_P`, whose chain sets the WAN's mark
  (`-m statistic` between members); then `CONNMARK --save-mark`. Set up once wanbalanced
  runs, so it classifies first (the kernel runs the base chain registered last first among
  those of one priority) and wanbalanced follows its mark: the only difference is how a new
  connection is classified. With 0 rules, the empty chain.

Traffic from the LAN, of two kinds: *last* to {rulegen.LAST_DST}, which only the last rule matches
(it sends it over integra alone: every measurement checked that it all went via integra where
the rule exists, and that everything else used both WANs), and *none* to {rulegen.NONE_DST}, which
no rule matches.

- New connections: `hping3 -2 --flood -d 64 --rand-dest 198.18.x.x` (or 198.19.x.x) from the
  LAN host, each packet a new udp flow (random destination, next source port), conntrack
  emptied first; {args.ramp:g} s of flood, then {args.flood_window:g} s counted. What reaches the
  internet namespace is counted there by nft counters per ISP link (read before and after)
  and dropped; no reply, so every packet opens a connection.
- 64-byte UDP of established flows: {args.clients} iperf3 clients with {args.streams} streams each
  (`iperf3 -u -l 64 -b 0`, 192.168.88.11–.{10 + args.clients}) to servers at
  {rulegen.SERVERS['last']} / {rulegen.SERVERS['none']}, {args.udp_window:g} s counted after
  {args.ramp_udp:g} s, datagrams counted and dropped the same way. Rules are looked at only for
  a connection's first packet, so these should not change.

After each configuration the router was checked to be back to its initial state. Each
generator is one process: the rates are of one CPU doing the sender's, the router's, the
ISP's and the receiver's work, so the ratios understate the difference in the router's own
cost. Load: {load_text}.

Rule sets (layers: the interval-map lookups a new connection makes in wanbalance's compiled
rules, up to the layer of the rule it matches, all of them when it matches none; a map's
elements are its rules' lists multiplied out, ports included):

{sets}

{METRICS['conn'][0]} per second, thousands, median (min–max) of {args.rounds} rounds; ratios per round:

{tables['conn']}

{METRICS['udp'][0]}, kpackets/s, median (min–max); ratios per round:

{tables['udp']}

{target_md}
{problems_text(problems(results, info))}"""
