#!/usr/bin/env python3
# Balance benchmark in the namespace lab: which WAN carried each of many new LAN connections,
# for weights 1:1 and 3:1, against the share the weights ask for.
"""Measure how wanbalance spreads new connections over the WANs (needs root, a built daemon).

For each case wanbalanced runs in the lab with the article config (weights and classifier
changed as listed), and N new TCP connections go from the LAN to the whoami server in the
internet namespace, which reports the source address it saw: 203.0.113.2 means charter,
198.51.100.2 integra. Cases:

  both-addresses-and-ports 1:1 and 3:1   N connections from 30 LAN addresses (.11-.40)
  src-address 1:1                        N connections from 240 LAN addresses (.11-.250; the
                                         extra /32s are added to the LAN host of this lab only)

Expected share = weight / total weight. "map" is the share of the balance map's buckets that
point at charter (what the daemon installed); sigma is the binomial standard deviation of the
observed share (per connection, or per source address for src-address, where every connection
of one source takes the same WAN).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from benchkit import Figures, add_json_argument, command_args, fail, finish, md_table  # noqa: E402

import labkit  # noqa: E402
from labkit import progress  # noqa: E402

WANS = ("charter", "integra")
MANY_SOURCES = "192.168.88.11-192.168.88.250"


def map_buckets(d: labkit.Daemon) -> list[tuple[object, str]]:
    """(bucket, WAN) for every element of the balance map pointing at a WAN, as installed."""
    out = d.lab.run("rtr", "nft -j list map inet wanbalance balance").stdout
    buckets = []
    for item in json.loads(out)["nftables"]:
        for elem in (item.get("map") or {}).get("elem", []):
            text = json.dumps(elem)
            key = elem[0] if isinstance(elem, list) and elem else None
            for wan in WANS:
                if f'"wan_{wan}"' in text:
                    buckets.append((key if isinstance(key, (int, str)) else None, wan))
    return buckets


def add_lan_sources(lab: labkit.Lab) -> None:
    batch = "".join(f"addr add 192.168.88.{i}/32 dev eth0\n" for i in range(41, 251))
    lab.run("lan", ["ip", "-batch", "-"], input=batch)


def one_case(lab: labkit.Lab, name: str, weights: tuple[int, int], classifier: str, n: int,
             src: str, sources: int) -> dict:
    config = lab.article_config(balance={"classifier": classifier})
    for wan, weight in zip(config["wans"], weights):
        wan["weight"] = weight
    d = lab.start_daemon(config)
    try:
        d.wait_ready()
        labkit.wait_until(lambda: all(w["state"] == "up" for w in d.status()["wans"]), 15,
                          "both WANs up")
        buckets = map_buckets(d)
        progress(f"{name}: {n} connections ...")
        results = lab.connect_many(n, src=src)  # what lab.spread counts, per connection
    finally:
        code = d.stop()
    if code != 0:
        raise labkit.LabError(f"wanbalanced exited {code} on SIGTERM")
    lab.run("rtr", "conntrack -F", check=False)
    wans = ["failed" if not r["ok"] else labkit.WAN_OF_SOURCE.get(r["seen"], r["seen"])
            for r in results]
    counts = Counter(wans)
    if counts.get("failed"):
        raise labkit.LabError(f"{name}: {counts['failed']} of {n} connections failed")
    unknown = set(counts) - set(WANS)
    if unknown:
        raise labkit.LabError(f"{name}: the server saw unexpected sources {sorted(unknown)}")
    expected = weights[0] / sum(weights)
    observed = counts["charter"] / n
    units = sources if classifier == "src-address" else n
    sigma = math.sqrt(expected * (1 - expected) / units)
    return {"name": name, "classifier": classifier, "weights": weights, "n": n,
            "counts": counts, "expected": expected, "observed": observed, "sigma": sigma,
            "map": sum(w == "charter" for _, w in buckets) / max(1, len(buckets)),
            "sources": sources, "connections": [(w, r.get("src"), r.get("ms")) for w, r in zip(wans, results)],
            "buckets": buckets}


def case_key(c: dict) -> str:
    return f"{c['classifier']}.{c['weights'][0]}-{c['weights'][1]}"


def figures(cases: list[dict], args: argparse.Namespace) -> Figures:
    """Every connection (1 = it went through charter, 0 = integra) and every map bucket."""
    fig = Figures("spread", "spread.py", {"connections_per_case": args.n,
                                          "src_address_case": not args.no_src_address})
    for c in cases:
        key = case_key(c)
        labels = {"case": c["name"], "classifier": c["classifier"],
                  "weights_charter_integra": list(c["weights"]), "lan_sources": c["sources"],
                  "expected_charter_share": c["expected"]}
        fig.series(f"{key}.connections", "1 = through charter, 0 = through integra",
                   {"ms": "ms, connect time"}, **labels)
        for i, (wan, src, ms) in enumerate(c["connections"]):
            fig.point(f"{key}.connections", int(wan == "charter"), run=i + 1, src=src, wan=wan,
                      ms=ms)
        fig.series(f"{key}.map", "1 = bucket points at charter, 0 = at integra", **labels)
        for bucket, wan in c["buckets"]:
            fig.point(f"{key}.map", int(wan == "charter"), bucket=bucket, wan=wan)
        for name, statistic, of, value, unit in (
                ("connections through charter", "sum", "connections", c["counts"]["charter"],
                 "connections"),
                ("connections", "count", "connections", c["n"], "connections"),
                ("charter observed", "mean", "connections", c["observed"], "share"),
                ("map buckets pointing at charter", "mean", "map", c["map"], "share")):
            fig.summarize(f"{c['name']}: {name}", statistic, f"{key}.{of}", value, unit)
    return fig


def report(cases: list[dict], args: argparse.Namespace) -> str:
    rows = []
    for c in cases:
        dev = c["observed"] - c["expected"]
        rows.append([c["classifier"], f"{c['weights'][0]}:{c['weights'][1]}", str(c["sources"]),
                     f"{c['counts']['charter']} / {c['counts']['integra']}",
                     f"{c['observed'] * 100:.1f} %", f"{c['expected'] * 100:.1f} %",
                     f"{c['map'] * 100:.1f} %",
                     f"{dev * 100:+.1f} pp ({dev / c['sigma']:+.1f} σ)",
                     f"{c['sigma'] * 100:.1f} pp"])
    table = md_table(["classifier", "weights charter:integra", "LAN sources",
                      "connections charter / integra", "charter observed", "expected",
                      "map buckets", "deviation", "σ"], rows)
    command = shlex.join(["python3", "bench/spread.py", *command_args()])
    return f"""## Spread: share of new connections per WAN

`{command}`: wanbalanced in the lab with the article config; {args.n} new TCP connections per
case from the LAN to the internet namespace, where the server reports which WAN address it saw
(every connection succeeded). Expected share = charter's weight / total weight; "map buckets" is
the share of the 1021-bucket balance map pointing at charter, as installed; σ is the binomial
standard deviation of the observed share (per connection for the default classifier, per
source address for `src-address`, where all connections of a source take one WAN). The issue
sets no target here; a deviation within about 2 σ is what chance alone gives.

{table}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: 200 connections per case")
    parser.add_argument("--markdown", type=Path, metavar="OUT.md",
                        help="write the markdown section to this file")
    add_json_argument(parser)
    parser.add_argument("-n", type=int, help="connections per case (default 1000; --quick 200)")
    parser.add_argument("--no-src-address", action="store_true",
                        help="skip the src-address case")
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    args = parser.parse_args()
    args.n = args.n or (200 if args.quick else 1000)
    if args.n < 1:
        parser.error("-n must be at least 1")
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    ok, reason = labkit.lab_available()
    if not ok:
        return fail("spread.py", reason)
    try:
        labkit.program("wanbalanced")
        labkit.program("wanbalancectl")
    except FileNotFoundError as e:
        return fail("spread.py", str(e))

    plan = [("both-addresses-and-ports 1:1", (1, 1), "both-addresses-and-ports",
             labkit.LAN_HOSTS, 30),
            ("both-addresses-and-ports 3:1", (3, 1), "both-addresses-and-ports",
             labkit.LAN_HOSTS, 30)]
    if not args.no_src_address:
        plan.append(("src-address 1:1", (1, 1), "src-address", MANY_SOURCES, 240))
    cases = []
    try:
        with labkit.Lab() as lab:
            lab.ensure_server()
            for name, weights, classifier, src, sources in plan:
                if classifier == "src-address":
                    add_lan_sources(lab)
                case = one_case(lab, name, weights, classifier, args.n, src,
                                min(sources, args.n))
                cases.append(case)
                print(f"{name}: charter {case['counts']['charter']}, integra "
                      f"{case['counts']['integra']} (expected {case['expected']:.1%} charter, "
                      f"observed {case['observed']:.1%})", flush=True)
    except (labkit.LabError, TimeoutError, subprocess.TimeoutExpired, OSError, KeyError,
            ValueError) as e:
        return fail("spread.py", str(e))

    text = report(cases, args)
    return finish(text, args.markdown, figures(cases, args), args.json)


if __name__ == "__main__":
    sys.exit(main())
