# Issue 11, dual-stack: IPv6 balanced, answered and failed over with packets in the lab, each
# family on its own health (an ISP's IPv6 dies while its IPv4 works), carrier loss for both at
# once, the RA-learned gateway followed, and nothing left behind or doubled. Charter's IPv6
# gateway is static (2001:db8:1::1); integra's is "auto", from isp2's router advertisements
# (dnsmasq in the lab). The ISPs drop IPv6 whose source is not their customer prefix (BCP38),
# so an answer through the wrong WAN fails these tests, as it would at a real ISP.
import json
import re
import time
from collections import Counter

import labkit
from labkit import LAN_HOST6, LAN_HOSTS, LAN_HOSTS6, SERVER6
from labwatch import EventWatch, conntrack_entries, main_default, own_objects

FAST_PROBE = {"interval_ms": 200, "down_after": 3}
UPSTREAM_LIMIT_S = 1.5         # 200 ms x 3 rounds + the 600 ms default timeout, as for IPv4
CARRIER_LIMIT_S = 0.3
MARGIN_S = 1.0                 # a loaded 2-core CI machine delays the daemon and this harness
CARRIER_MARGIN_S = 0.3
WAN_MARK = {"charter": 0x100, "integra": 0x200}


def start(lab, config=None, **overrides):
    """wanbalanced on the dual-stack config, once every WAN answered probes in both families."""
    lab.wait_ipv6()
    d = lab.start_daemon(config or lab.dual_stack_config(**overrides))
    d.wait_ready()

    def answered():
        wans = d.status()["wans"]
        return all(w["rtt_ms"] and (w.get("ipv6") or {}).get("rtt_ms") for w in wans)
    labkit.wait_until(answered, 10, "both WANs to answer probes in both families")
    return d, EventWatch(d)


def table6(lab, table):
    # A table the kernel has never seen makes `ip` fail with "FIB table does not exist".
    return lab.run("rtr", f"ip -6 route show table {table}", check=False).stdout


def spread6(lab, n, **kwargs):
    return lab.spread(n, src=LAN_HOSTS6, dst=SERVER6, **kwargs)


def both_used(spread, least=1):
    return spread["failed"] == 0 and spread["charter"] >= least and spread["integra"] >= least


def held_by_wan(lab, family):
    """The router's ESTABLISHED LAN→server connections of one family, by WAN."""
    by_wan = {"charter": set(), "integra": set()}
    for e in conntrack_entries(lab, dst=labkit.server_of(family), dport=labkit.TCP_PORT,
                               family=family):
        if e.state == "ESTABLISHED" and e.wan:
            by_wan[e.wan].add(e)
    return by_wan


def recording_hook(lab):
    """A hook that appends "EVENT WAN FAMILY" per run to a file; returns the file."""
    runs = lab.workdir / "hook-runs"
    hook = lab.workdir / "hooks.d" / "50-record"
    hook.parent.mkdir(exist_ok=True)
    hook.parent.chmod(0o755)
    hook.write_text("#!/bin/sh\n"
                    f'echo "$WANBALANCE_EVENT ${{WANBALANCE_WAN:--}} '
                    f'${{WANBALANCE_FAMILY:--}}" >> {runs}\n')
    hook.chmod(0o755)
    return runs


# -- balancing and inbound ------------------------------------------------------------------

def test_ipv6_spreads_one_hosts_connections_over_both_wans(lab, need_build):
    d, _ = start(lab)
    spread = lab.spread(200, src=LAN_HOST6, dst=SERVER6)
    # Addresses and ports are hashed, as for IPv4: one host's connections use both WANs.
    assert both_used(spread, least=60), spread
    assert both_used(lab.spread(100, src=LAN_HOSTS), least=25)
    udp = lab.spread(60, src=LAN_HOST6, dst=SERVER6, udp=True)
    assert both_used(udp), udp

    default = main_default(lab, "ipv6")
    assert "via 2001:db8:1::1 dev ether1" in default and "via fe80::2 dev ether2" in default, \
        default
    assert "default via 2001:db8:1::1 dev ether1" in table6(lab, 101)
    assert "default via fe80::2 dev ether2" in table6(lab, 102)
    rules = lab.run("rtr", "ip -6 rule show").stdout
    assert "fwmark 0x100/0x3f00 lookup 101" in rules and "fwmark 0x200/0x3f00 lookup 102" in rules
    assert re.search(r"lookup main suppress_prefixlength 0", rules), rules

    status = {w["name"]: w for w in d.status()["wans"]}
    for name, gateway in (("charter", "2001:db8:1::1"), ("integra", "fe80::2")):
        v6 = status[name]["ipv6"]
        assert v6["state"] == "up" and v6["gateway"] == gateway and v6["rtt_ms"] > 0, v6
        assert v6["loss_pct"] == 0 and v6["since"], v6
    # accept_ra is 2 on ether2: nothing to warn about.
    assert "accept_ra" not in d.log()
    # Router advertisements keep coming and are never marked: ether2 keeps its RA route.
    assert lab.ra_gateway() == "fe80::2"


def test_ipv6_inbound_to_each_wan_is_answered_through_that_wan(lab, need_build):
    slaac = lab.wait_ipv6()
    lab.start_server("rtr", bind="::", port=8080)
    # integra on tier 1: the balanced IPv6 default goes through charter only, so only marks
    # can send integra's answers back out of ether2.
    config = lab.dual_stack_config()
    config["wans"][1]["tier"] = 1
    d, _ = start(lab, config)
    assert "ether2" not in main_default(lab, "ipv6")
    before = {isp: lab.counters(isp, "ipv6")["bcp38"] for isp in ("isp1", "isp2")}
    for _ in range(5):
        charter = lab.connect_from_internet("2001:db8:1::2")
        assert charter and charter.seen == "2001:db8:ff:1::2", charter
        integra = lab.connect_from_internet(slaac)
        assert integra and integra.seen == "2001:db8:ff:2::2", integra
    after = {isp: lab.counters(isp, "ipv6")["bcp38"] for isp in ("isp1", "isp2")}
    assert after == before, f"answers left through the wrong WAN: {before} -> {after}"
    assert d.running()


def test_ipv6_port_forward_is_answered_through_its_wan(lab, need_build):
    slaac = lab.wait_ipv6()
    lab.nft("rtr", f"""
table ip6 portfwd6 {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip6 daddr {{ 2001:db8:1::2, {slaac} }} tcp dport 2222 dnat to [fd00:88::10]:8080
    }}
}}
""")
    lab.start_server("lan", bind=LAN_HOST6, port=8080)
    config = lab.dual_stack_config()
    config["wans"][1]["tier"] = 1
    start(lab, config)
    for wan_addr in ("2001:db8:1::2", slaac):
        result = lab.connect_from_internet(wan_addr, port=2222)
        assert result, f"IPv6 port forward via {wan_addr} failed: {result.error}"
        # The LAN host sees the internet client: DNAT only, no masquerade.
        assert result.seen.startswith("2001:db8:ff:"), result.seen


# -- health per family ----------------------------------------------------------------------

def test_charter_ipv6_upstream_dies_ipv4_keeps_working_then_recovers(lab, need_build):
    runs = recording_hook(lab)
    d, watch = start(lab, probe=FAST_PROBE)
    held4 = lab.hold_connections(30, src=LAN_HOSTS)
    held6 = lab.hold_connections(30, src=LAN_HOSTS6, dst=SERVER6)
    assert (held4.ok, held6.ok) == (30, 30), (held4.failed, held6.failed)
    before4, before6 = held_by_wan(lab, "ipv4"), held_by_wan(lab, "ipv6")
    for by_wan in (before4, before6):
        assert len(by_wan["charter"]) >= 5 and len(by_wan["integra"]) >= 5, by_wan

    fault = time.monotonic()
    lab.upstream("charter", up=False, family="ipv6")   # charter's IPv4 goes on working
    down = watch.wait("wan-down", "charter", since=fault, timeout=10, family="ipv6")
    took = down.at - fault
    print(f"\nIPv6 upstream: charter IPv6 down {took:.3f} s after the fault "
          f"(limit {UPSTREAM_LIMIT_S} s)")
    assert took < UPSTREAM_LIMIT_S + MARGIN_S, f"IPv6 failover took {took:.3f} s"
    assert down.state == "down" and down.reason.startswith("3 probe rounds failed"), down
    charter = d.wan("charter")
    assert charter["state"] == "up" and charter["ipv6"]["state"] == "down", charter
    assert charter["ipv6"]["loss_pct"] > 0

    # Only IPv6 moves: its balanced default and its new connections, and its conntrack entries
    # of charter are flushed while IPv4's (and integra's IPv6) stay the very same entries.
    default6 = main_default(lab, "ipv6")
    assert "ether1" not in default6 and "via fe80::2 dev ether2" in default6, default6
    default4 = main_default(lab)
    assert "via 203.0.113.1 dev ether1" in default4 and "via 198.51.100.1 dev ether2" in default4
    assert "default via 2001:db8:1::1 dev ether1" in table6(lab, 101)   # probes still use it
    labkit.wait_until(lambda: not held_by_wan(lab, "ipv6")["charter"], 2,
                      "charter's IPv6 connections to be flushed")
    assert held_by_wan(lab, "ipv6")["integra"] == before6["integra"]
    assert held_by_wan(lab, "ipv4") == before4
    assert spread6(lab, 100) == Counter(integra=100)
    assert both_used(lab.spread(100, src=LAN_HOSTS), least=25)

    results4 = held4.release()
    assert all(r["end_ok"] for r in results4), [r for r in results4 if not r["end_ok"]]
    live6 = {e.sport for e in before6["integra"]}
    for r in held6.release():
        assert r["end_ok"] == (r["sport"] in live6), r

    healed = time.monotonic()
    lab.upstream("charter", up=True, family="ipv6")
    up = watch.wait("wan-up", "charter", since=healed, timeout=10, family="ipv6")
    print(f"recovery: charter IPv6 up {up.at - healed:.3f} s after its upstream returned")
    assert up.at - healed >= 4 * 0.2 - 0.05, "came back before up_after rounds could answer"
    default6 = main_default(lab, "ipv6")
    assert "via 2001:db8:1::1 dev ether1" in default6 and "via fe80::2 dev ether2" in default6
    assert both_used(spread6(lab, 100), least=25)
    assert d.wan("charter")["ipv6"]["state"] == "up"

    watch.stop()
    # IPv4 saw nothing of it: every event of the run is charter's IPv6, each naming its family.
    assert [(e.kind, e.wan, e.family) for e in watch.events] == [
        ("wan-down", "charter", "ipv6"), ("wan-up", "charter", "ipv6")], watch.events
    labkit.wait_until(lambda: runs.exists() and len(runs.read_text().splitlines()) >= 2, 5,
                      "the hooks of both events")
    assert runs.read_text().splitlines() == ["wan-down charter ipv6", "wan-up charter ipv6"]


def test_carrier_loss_takes_both_families_down_at_once(lab, need_build):
    d, watch = start(lab)      # default probes: they alone would need >= 1.2 s

    def both_down():
        charter = d.wan("charter")
        return charter["state"] == "down" and (charter["ipv6"] or {}).get("state") == "down"

    fault = time.monotonic()
    lab.carrier("charter", up=False)
    labkit.wait_until(both_down, 5, "charter to be down in both families", interval=0.01)
    took = time.monotonic() - fault
    print(f"\ncarrier loss: charter down in both families {took * 1000:.0f} ms after the fault")
    assert took < CARRIER_LIMIT_S + CARRIER_MARGIN_S, f"carrier loss noticed after {took:.3f} s"
    downs = watch.select("wan-down", "charter", since=fault)
    families = {e.family for e in downs}
    # One event for the link, or one per family; each says the carrier is gone.
    assert None in families or {"ipv4", "ipv6"} <= families, downs
    assert all(e.reason == "no carrier on ether1" for e in downs), downs
    assert "ether1" not in main_default(lab) and "ether1" not in main_default(lab, "ipv6")
    assert lab.spread(40, src=LAN_HOSTS) == Counter(integra=40)
    assert spread6(lab, 40) == Counter(integra=40)

    lab.carrier("charter", up=True)
    d.wait_state("charter", "up", timeout=10)
    d.wait_state("charter", "up", timeout=10, family="ipv6")
    assert both_used(lab.spread(60, src=LAN_HOSTS))
    assert both_used(spread6(lab, 60))

    # Integra's IPv6 address and gateway come from router advertisements: they too come back.
    lab.carrier("integra", up=False)
    d.wait_state("integra", "down", timeout=5, family="ipv6")
    lab.carrier("integra", up=True)
    d.wait_state("integra", "up", timeout=10)
    d.wait_state("integra", "up", timeout=10, family="ipv6")
    assert both_used(spread6(lab, 60))


# -- the RA-learned gateway -----------------------------------------------------------------

def test_ra_gateway_is_followed_when_isps_router_changes(lab, need_build):
    d, watch = start(lab)
    assert d.wan("integra")["ipv6"]["gateway"] == "fe80::2"
    assert "default via fe80::2 dev ether2" in table6(lab, 102)

    new = lab.ra_change()        # the old router says goodbye, a new one advertises
    labkit.wait_until(lambda: f"default via {new} dev ether2" in table6(lab, 102), 5,
                      f"table 102 to follow isp2's new router {new}")
    assert "fe80::2 " not in table6(lab, 102)
    d.wait_state("integra", "up", timeout=10, family="ipv6")
    assert d.wan("integra")["ipv6"]["gateway"] == new
    default6 = main_default(lab, "ipv6")
    assert f"via {new} dev ether2" in default6 and "via fe80::2 " not in default6, default6
    assert both_used(spread6(lab, 100), least=20)
    # IPv4 never noticed.
    assert not [e for e in watch.select() if e.family != "ipv6"], watch.events


# -- lifecycle ------------------------------------------------------------------------------

def test_clean_stop_leaves_ipv6_rules_routes_and_sysctls_as_they_were(lab, need_build):
    lab.wait_ipv6()
    before = lab.kernel_state(families=labkit.FAMILIES)
    d, _ = start(lab)
    during = lab.kernel_state(families=labkit.FAMILIES)
    assert during["rules6"] != before["rules6"] and during["routes6"] != before["routes6"]
    assert both_used(spread6(lab, 40))
    d.reload()
    labkit.wait_until(lambda: "configuration reloaded" in d.log(), 5, "the SIGHUP reload")
    assert d.stop() == 0
    after = lab.kernel_state(families=labkit.FAMILIES)
    for key in ("rules6", "routes6", "sysctls6", "rules", "routes", "sysctls", "nft"):
        assert after[key] == before[key], key
    # The RA's own default route in main was shadowed, never touched: it is still there.
    assert lab.ra_gateway() == "fe80::2"


def test_kill9_and_restart_doubles_no_ipv6_rule_or_route(lab, need_build):
    lab.wait_ipv6()
    before = lab.kernel_state(families=labkit.FAMILIES)
    d, _ = start(lab)
    first4, first6 = own_objects(lab), own_objects(lab, "ipv6")
    # Per family: the suppress rule, a fwmark rule per WAN and the balanced table's rule;
    # a default route per WAN table and the balanced one.
    assert first6["tables"] == 1 and len(first6["rules"]) == 4 and len(first6["routes"]) == 3, \
        first6
    assert len(first4["rules"]) == 4 and len(first4["routes"]) == 3, first4
    d.kill9()
    d2, _ = start(lab, d.config_path)
    assert own_objects(lab) == first4
    assert own_objects(lab, "ipv6") == first6
    assert both_used(spread6(lab, 40))
    assert both_used(lab.spread(40, src=LAN_HOSTS))
    assert d2.stop() == 0
    assert lab.kernel_state(families=labkit.FAMILIES) == before


def test_ipv4_only_config_creates_no_ipv6_objects(lab, need_build):
    lab.wait_ipv6()
    before = lab.kernel_state(families=labkit.FAMILIES)
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    assert both_used(lab.spread(100, src=LAN_HOSTS), least=25)
    during = lab.kernel_state(families=labkit.FAMILIES)
    for key in ("rules6", "routes6", "sysctls6"):
        assert during[key] == before[key], key
    assert own_objects(lab, "ipv6")["rules"] == [] and own_objects(lab, "ipv6")["routes"] == []
    table = labkit.zero_counters(lab.run("rtr", "nft list table inet wanbalance").stdout)
    assert not re.search(r"\bip6\b|ipv6", table), table
    assert all(w.get("ipv6") is None for w in d.status()["wans"])
    # The same ruleset as the offline renderer prints for that config, and no IPv6 in it.
    printed = d.ctl("ruleset", "--config", str(d.config_path), "--full", check=True).stdout
    assert re.search(r"^table inet wanbalance \{.*?^\}$", printed, re.S | re.M)[0] == table.strip()
    assert "ip -6" not in printed and "ip6" not in printed
    # Its LAN IPv6 is not balanced: nothing of it carries a WAN mark.
    lab.spread(5, src=LAN_HOST6, dst=SERVER6, timeout=0.5)
    marked = [e for e in conntrack_entries(lab, family="ipv6") if e.mark & 0x3f00]
    assert marked == [], marked
    assert d.stop() == 0
    assert lab.kernel_state(families=labkit.FAMILIES) == before


def test_auto_gateway6_without_accept_ra_2_warns_once(lab, need_build):
    lab.wait_ipv6()
    lab.accept_ra(1)         # a forwarding router then ignores isp2's router advertisements
    d = lab.start_daemon(lab.dual_stack_config())
    d.wait_ready()
    time.sleep(2)            # several probe rounds: the warning must not repeat
    lines = [line for line in d.log().splitlines() if "accept_ra" in line]
    assert len(lines) == 1, lines
    assert "ether2" in lines[0], lines
    # charter's gateway6 is static: no warning about ether1 even though nothing sends it RAs.
    assert "ether1" not in lines[0]
    status = json.dumps(d.status())
    assert "accept_ra" in status, status
    assert "accept_ra" not in json.dumps(d.wan("charter"))
    assert d.stop() == 0


def test_link_local_and_multicast_traffic_is_never_marked(lab, need_build):
    """DHCPv6 and everything else link-local or multicast stays unmarked in both directions,
    while a LAN host's global traffic is marked (so the check could fail)."""
    d, _ = start(lab)
    send = ("import socket,sys; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
            "s.sendto(b'x', (sys.argv[1], int(sys.argv[2]), 0, socket.if_nametoindex(sys.argv[3])))")
    ether3_ll = re.search(r"inet6 (fe80::[0-9a-f:]+)/64",
                          lab.run("rtr", "ip -6 addr show dev ether3 scope link").stdout)[1]
    sends = [("lan", "ff02::1:2", 547, "eth0"),        # a DHCPv6 client's Solicit
             ("lan", ether3_ll, 547, "eth0"),          # to the router's link-local address
             ("lan", "ff02::fb", 5353, "eth0"),        # mDNS
             ("rtr", "fe80::1", 547, "ether1"),        # the router's DHCPv6 client to its ISP
             ("rtr", "ff02::1:2", 547, "ether2")]
    for ns, addr, port, dev in sends:
        lab.run(ns, ["python3", "-c", send, addr, str(port), dev])
    lab.run("lan", ["python3", "-c", send, SERVER6, str(labkit.UDP_PORT), "eth0"])
    entries = conntrack_entries(lab, proto="udp", family="ipv6")
    local = [e for e in entries if e.dst.startswith(("fe80:", "ff02:"))]
    # Only what the kernel delivered or forwarded is confirmed into conntrack (a multicast group
    # the router has not joined is dropped first): the DHCPv6 ones in both directions must be.
    assert {("ff02::1:2", 547), ("fe80::1", 547)} <= {(e.dst, e.dport) for e in local}, entries
    assert all(e.mark & 0x3f00 == 0 for e in local), local
    to_server = [e for e in entries if e.dst == SERVER6]
    assert to_server and all(e.mark & 0x3f00 in WAN_MARK.values() for e in to_server), entries
    assert d.stop() == 0
