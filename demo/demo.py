#!/usr/bin/env python3
"""The article's router, live: balancing, a failover and a recovery, narrated, in IPv4 and IPv6;
then a pair of routers losing its primary while downloads keep running.

Builds the lab (a router with ether1 to Charter, ether2 to Integra and ether3 to the LAN, two
ISP namespaces and an "internet" with a server), runs wanbalanced on the router, and shows what
the kernel does with real connections. Everything happens inside network namespaces that are
removed at the end; the host's own network is never touched. The second part (demo/ha_demo.py)
builds two routers with keepalived and conntrackd and cuts the primary's links. Run as root:
./demo.sh
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
import labkit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ha_demo  # noqa: E402

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def show(text: str, indent: str = "    ") -> None:
    for line in text.rstrip("\n").splitlines():
        print(f"{indent}{line}")
    sys.stdout.flush()


def spread_line(lab, n: int, family: str) -> str:
    if family == "ipv6":
        return bar(lab.spread(n, src=labkit.LAN_HOSTS6, dst=labkit.SERVER6), n)
    return bar(lab.spread(n, src=labkit.LAN_HOST), n)


def bar(spread, n: int) -> str:
    out = []
    for wan in ("charter", "integra", "failed"):
        count = spread.get(wan, 0)
        if wan == "failed" and not count:
            continue
        out.append(f"{wan:8} {count:4}  {'#' * round(40 * count / n)}")
    return "\n".join(out)


def event_lines(daemon, after: int) -> list[str]:
    return [l for l in daemon.log().splitlines()[after:] if "[event=" in l]


def wait_for_event(daemon, kind: str, after: int, timeout: float, start: float, family: str = "") -> float:
    """Seconds from `start` (taken just before the fault was injected) to the event's log line."""
    while time.monotonic() - start < timeout:
        if any(f"[event={kind}" in l and f"family={family}" in l for l in event_lines(daemon, after)):
            return time.monotonic() - start
        time.sleep(0.02)
    raise RuntimeError(f"no {kind} event within {timeout} s:\n{daemon.log_tail()}")


def fault(daemon, act, kind: str, timeout: float, family: str = "") -> tuple[float, int]:
    """Runs act() (the fault or its repair) and waits for the event: (seconds, log mark)."""
    mark = len(daemon.log().splitlines())
    start = time.monotonic()
    act()
    return wait_for_event(daemon, kind, mark, timeout, start, family=family), mark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Needs root and a built tree (./demo.sh does both).")
    parser.add_argument("--connections", type=int, default=200,
                        help="new LAN connections per measurement (default 200)")
    parser.add_argument("--no-ha", action="store_true",
                        help="skip the second part, the HA pair (keepalived and conntrackd)")
    args = parser.parse_args()
    n = args.connections

    say("Building the article's network in network namespaces")
    with labkit.Lab() as lab:
        integra6 = lab.wait_ipv6()
        show(f"router {lab.ns('rtr')}: ether1 203.0.113.2, 2001:db8:1::2 -> Charter (gateways 203.0.113.1, 2001:db8:1::1)\n"
             f"                     ether2 198.51.100.2, {integra6} -> Integra (gateway 198.51.100.1;\n"
             f"                            IPv6 address and gateway from Integra's router advertisements)\n"
             f"                     ether3 192.168.88.1, fd00:88::1 -> LAN (hosts 192.168.88.10-40, fd00:88::10-40)\n"
             f"internet: server 192.0.2.10 and 2001:db8:ff::10, probe targets 192.0.2.53/54 and\n"
             f"          2001:db8:ff::53/54 beyond both ISPs\n"
             f"Both ISPs drop packets whose source is not their customer's address or prefix (BCP38).")
        before = lab.kernel_state(families=labkit.FAMILIES)

        config = lab.dual_stack_config(probe={"interval_ms": 200})
        say("The article's configuration, checked against this router first (wanbalancectl check --live)")
        show(json.dumps(config, indent=2))
        path = lab.workdir / "wanbalance.json"
        path.write_text(json.dumps(config, indent=2) + "\n")
        live = lab.run("rtr", [str(labkit.program("wanbalancectl")), "check", "--live", "--config", str(path)],
                       check=False, timeout=30)
        show((live.stdout + live.stderr).strip())
        say("Starting wanbalanced with it")
        daemon = lab.start_daemon(path)
        daemon.wait_ready()
        show(daemon.ctl("status", check=True).stdout)

        say("What it put in the kernel (the article's mangle rules and routing marks, on Linux)")
        show(lab.run("rtr", "ip -4 rule show").stdout)
        show(lab.run("rtr", "ip -4 route show default table all").stdout)
        show(lab.run("rtr", "ip -6 rule show").stdout)
        show(lab.run("rtr", f"ip -6 route show default table {labkit.BALANCED_TABLE}").stdout)
        table = lab.run("rtr", "nft list table inet wanbalance").stdout
        lines, in_balance = [], False
        for line in table.splitlines():
            in_balance = (in_balance or "map balance" in line) and line.strip() != "}"
            if in_balance and re.match(r"\s+(\d+ : (goto|jump)|elements = \{ 0 :)", line):
                if "elements" in line:
                    lines.append("\t\telements = { 0 : jump wan_..., ... 1020 : jump wan_... }"
                                 "   (1021 hash buckets, shared by weight)")
                continue
            lines.append(line)
        show("\n".join(lines))

        say(f"Balancing: {n} new connections from one LAN host to the server, IPv4 then IPv6")
        show(spread_line(lab, n, "ipv4"))
        show(spread_line(lab, n, "ipv6"))

        say("Connections from the internet are answered through the WAN they came in on")
        lab.start_server("rtr", port=8080)
        for addr, wan in (("203.0.113.2", "Charter"), ("198.51.100.2", "Integra")):
            ok = lab.connect_from_internet(addr)
            show(f"to {addr} ({wan}): {'answered' if ok else 'FAILED'}")

        say("Failover: Charter's IPv4 upstream dies (its gateway still answers pings; IPv6 keeps working)")
        took, mark = fault(daemon, lambda: lab.upstream("isp1", False, family="ipv4"), "wan-down", 10, "ipv4")
        show(f"detected and taken out of service in {took:.2f} s: probes every 200 ms; the first "
             f"unanswered one is lost at its adaptive deadline (srtt + 4 rttvar, here the 50 ms floor: "
             f"the gateway answers in a fraction of a millisecond), and two confirmation rounds follow "
             f"at once (down after 3 failed rounds; the fixed 600 ms timeout of 0.1 took 1.4 s)")
        show("\n".join(event_lines(daemon, mark)))
        show(lab.run("rtr", f"ip -4 route show default table {labkit.BALANCED_TABLE}").stdout)
        say(f"{n} new connections now")
        show(bar(lab.spread(n, src=labkit.LAN_HOST), n))

        say("Recovery: Charter's upstream comes back")
        took, mark = fault(daemon, lambda: lab.upstream("isp1", True, family="ipv4"), "wan-up", 15, "ipv4")
        show(f"back in service {took:.2f} s later (after 5 answered rounds, so a flapping link "
             f"cannot bounce traffic)")
        show("\n".join(event_lines(daemon, mark)))
        say(f"{n} new connections now")
        show(bar(lab.spread(n, src=labkit.LAN_HOST), n))

        say("IPv6 failover: Charter's IPv6 dies while its IPv4 keeps working (it happens: a broken IPv6 upstream)")
        took, mark = fault(daemon, lambda: lab.upstream("isp1", False, family="ipv6"), "wan-down", 10, "ipv6")
        show(f"Charter's IPv6 taken out of service in {took:.2f} s; its IPv4 stays up")
        show("\n".join(event_lines(daemon, mark)))
        show(lab.run("rtr", f"ip -6 route show default table {labkit.BALANCED_TABLE}").stdout)
        say(f"{n} new connections now, IPv4 then IPv6: only IPv6 moved")
        show(spread_line(lab, n, "ipv4"))
        show(spread_line(lab, n, "ipv6"))
        show(daemon.ctl("status", check=True).stdout)

        say("Charter's IPv6 comes back")
        took, _ = fault(daemon, lambda: lab.upstream("isp1", True, family="ipv6"), "wan-up", 15, "ipv6")
        show(f"back in service for IPv6 {took:.2f} s later")
        show(spread_line(lab, n, "ipv6"))

        say("Carrier loss: Integra's cable is pulled (both families go at once)")
        took, _ = fault(daemon, lambda: lab.carrier("isp2", False), "wan-down", 5)
        show(f"taken out of service within {took * 1000:.0f} ms of pulling it, including the time "
             f"`ip link set down` itself takes (a netlink link event, no probe rounds)")
        show(daemon.ctl("status", check=True).stdout)

        say("Integra's cable is plugged back in")
        start = time.monotonic()
        took, mark = fault(daemon, lambda: lab.carrier("isp2", True), "wan-up", 15, "ipv4")
        took6 = wait_for_event(daemon, "wan-up", mark, 15, start, family="ipv6")
        show(f"back in service {took:.2f} s later for IPv4 and {took6:.2f} s for IPv6: carrier first, "
             f"then 5 answered probe rounds in each family")
        show(daemon.ctl("status", check=True).stdout)

        say("Policy rules: the monitoring box (192.168.88.10) only over Integra; everyone else balanced")
        config["policies"] = {"integra-only": {"members": [{"wan": "integra"}], "last_resort": "balanced"}}
        config["rules"] = [{"name": "monitoring", "src": [labkit.LAN_HOST], "policy": "integra-only"}]
        show(json.dumps({k: config[k] for k in ("policies", "rules")}, indent=2))
        held = lab.hold_connections(20, src=labkit.LAN_HOSTS)
        daemon.config_path.write_text(json.dumps(config, indent=2) + "\n")
        mark = len(daemon.log().splitlines())
        daemon.reload()
        labkit.wait_until(lambda: any("config-reloaded" in l for l in event_lines(daemon, mark)), 10, "the reload")
        results = held.release()
        alive = sum(1 for r in results if r.get("end_ok"))
        show(f"reloaded: only the rule's maps and chains were added; {alive} of {len(results)} "
             f"connections open across the reload still work")
        say(f"{n} new connections from the monitoring box, then from the other LAN hosts")
        show(bar(lab.spread(n, src=labkit.LAN_HOST), n))
        show(bar(lab.spread(n, src=labkit.LAN_HOSTS), n))
        show(daemon.ctl("status", check=True).stdout)

        say("Stopping wanbalanced: it removes everything it created")
        code = daemon.stop()
        restored = lab.kernel_state(families=labkit.FAMILIES) == before
        show(f"exit code {code}; router's nftables, rules, routes and sysctls (both families) exactly as before: "
             f"{'yes' if restored else 'NO'}")
        say("Tearing the lab down")
    ha_ok = args.no_ha or ha_demo.run(say, show, n)
    return 0 if restored and code == 0 and ha_ok else 1


if __name__ == "__main__":
    sys.exit(main())
