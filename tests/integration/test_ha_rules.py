# Issue 14, the rules of one router of an HA pair (DESIGN §3 wans[].snat and ha_pair, §7 HA
# facts): LAN connections leave with the WAN's shared (VRRP) address while the router's own
# probes keep its own; with ha_pair a stray mid-stream TCP packet is dropped, not reset; and
# `wanbalancectl role` is shown in status and logged. keepalived and conntrackd are not here:
# the shared addresses are put on the WANs by hand, as keepalived would.

import re

import labkit

VIP = {"charter": "203.0.113.10", "integra": "198.51.100.10"}

# Counted where the internet receives them: the router's probes by source address, and resets
# coming from charter's shared address.
INET_COUNTERS = f"""
table ip hatest {{
    counter probes_from_router {{ }}
    counter probes_from_vip {{ }}
    counter rst_from_vip {{ }}
    chain input {{
        type filter hook input priority 0; policy accept;
        ip saddr {{ {labkit.WAN_ADDR['charter']}, {labkit.WAN_ADDR['integra']} }} icmp type echo-request counter name "probes_from_router"
        ip saddr {{ {VIP['charter']}, {VIP['integra']} }} icmp type echo-request counter name "probes_from_vip"
        ip saddr {VIP['charter']} tcp flags & rst == rst counter name "rst_from_vip"
    }}
}}
"""

# A lone TCP ACK for no connection, from the internet's server address to DST:PORT (raw socket,
# the kernel writes the IP header).
STRAY_ACK = r"""
import socket, struct, sys
src, dst, port = "192.0.2.10", sys.argv[1], int(sys.argv[2])
def checksum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
header = struct.pack("!HHIIBBHHH", 40123, port, 1000, 2000, 5 << 4, 0x10, 65535, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
header = header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.bind((src, 0))
for _ in range(3):
    s.sendto(header, (dst, 0))
"""


def ha_config(lab, ha_pair=True):
    config = lab.article_config(ha_pair=ha_pair)
    for wan in config["wans"]:
        wan["snat"] = VIP[wan["name"]]
    return config


def share_addresses(lab):
    """The WANs' shared addresses on the router, as keepalived puts them, and let through by
    the ISPs' BCP38 (they are the customer's too)."""
    for wan, isp in labkit.ISP_OF_WAN.items():
        lab.run("rtr", ["ip", "addr", "add", f"{VIP[wan]}/32", "dev", labkit.WAN_INTERFACE[wan]])
        lab.run(isp, ["nft", "insert", "rule", "ip", "lab", "bcp38", "iifname", "cust", "ip", "saddr",
                      VIP[wan], "accept"])
    lab.nft("inet", INET_COUNTERS)


def counter(lab, name):
    text = lab.run("inet", ["nft", "list", "counter", "ip", "hatest", name]).stdout
    return int(re.search(r"packets (\d+)", text)[1])


def stray_acks_reset(lab):
    """Whether stray ACKs to charter's shared address are answered with an RST."""
    before = counter(lab, "rst_from_vip")
    lab.run("inet", [labkit.PYTHON, "-c", STRAY_ACK, VIP["charter"], "8099"])
    try:
        labkit.wait_until(lambda: counter(lab, "rst_from_vip") > before, 1.0, "an RST from the shared address",
                          interval=0.05)
        return True
    except TimeoutError:
        return False


def test_snat_translates_lan_connections_only_and_ha_pair_drops_stray_acks(lab, need_build):
    share_addresses(lab)
    d = lab.start_daemon(ha_config(lab))
    d.wait_ready()
    d.wait_state("charter", "up", timeout=5)
    d.wait_state("integra", "up", timeout=5)

    # LAN connections arrive from the shared addresses, over both WANs.
    seen = lab.spread(40, src=labkit.LAN_HOSTS)
    assert set(seen) == set(VIP.values()), seen
    # The router's own probes keep its own addresses: VRRPv3 adverts would not survive a SNAT.
    probes = counter(lab, "probes_from_router")
    labkit.wait_until(lambda: counter(lab, "probes_from_router") > probes, 3, "more probes from the router")
    assert counter(lab, "probes_from_vip") == 0

    # ha_pair: a mid-stream ACK that would open a connection is dropped, not reset.
    assert not stray_acks_reset(lab)
    # Without ha_pair the same ACK is reset (the check above could have failed).
    lab.write_config(d, ha_config(lab, ha_pair=False))
    assert d.ctl("reload").returncode == 0
    assert stray_acks_reset(lab)
    refused = d.ctl("role", "backup")
    assert refused.returncode == 1 and "not one of an HA pair" in refused.stderr, refused.stderr
    assert d.status()["role"] is None
    assert set(lab.spread(20, src=labkit.LAN_HOSTS)) <= set(VIP.values())
    assert d.stop() == 0


def test_role_is_shown_logged_and_kept(lab, need_build):
    share_addresses(lab)
    d = lab.start_daemon(ha_config(lab))
    assert d.wait_ready()["role"] is None
    proc = d.ctl("role", "backup")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "role: backup"
    assert d.status()["role"] == "backup"
    assert d.ctl("status").stdout.splitlines()[0].endswith(", role backup")
    assert 'wanbalance_role{role="backup"} 1' in d.ctl("status", "--prometheus").stdout
    labkit.wait_until(lambda: "HA role is now backup (was none) [event=role-changed state=backup]" in d.log(),
                      2, "the role-changed log line")
    # A repeat is no change: logged once.
    assert d.ctl("role", "backup").returncode == 0
    assert d.log().count("event=role-changed") == 1
    bad = d.ctl("role", "master")
    assert bad.returncode == 1 and "role must be primary, backup or fault" in bad.stderr
    # Kept across a restart, from the state directory.
    assert d.stop() == 0
    d2 = lab.start_daemon(ha_config(lab))
    assert d2.wait_ready()["role"] == "backup"
    assert d2.ctl("role", "primary").returncode == 0
    labkit.wait_until(lambda: "HA role is now primary (was backup)" in d2.log(), 2, "the second change")
    assert d2.stop() == 0


VIP6 = {"charter": "2001:db8:1::4", "integra": "2001:db8:2::4"}   # inside each ISP's /64


def test_snat6_translates_lan_ipv6_connections_only(lab, need_build):
    """snat6: LAN IPv6 connections leave from the WAN's shared IPv6 address, over both WANs,
    while the router's IPv6 probes keep its own addresses. The shared addresses are added
    deprecated (preferred_lft 0, as docs/ha.md has keepalived add them): IPv6 source selection
    would otherwise pick them for the router's own packets."""
    lab.nft("inet", """
table ip6 hatest6 {
    counter probes_from_vip6 { }
    counter probes_from_router6 { }
    chain input {
        type filter hook input priority 0; policy accept;
        ip6 saddr { 2001:db8:1::4, 2001:db8:2::4 } icmpv6 type echo-request counter name "probes_from_vip6"
        ip6 saddr { 2001:db8:1::/64, 2001:db8:2::/64 } icmpv6 type echo-request counter name "probes_from_router6"
    }
}
""")
    lab.wait_ipv6()
    for wan, vip6 in VIP6.items():
        lab.run("rtr", ["ip", "-6", "addr", "add", f"{vip6}/64", "dev", labkit.WAN_INTERFACE[wan],
                        "nodad", "preferred_lft", "0"])
    config = lab.dual_stack_config(ha_pair=True)
    for wan in config["wans"]:
        wan["snat"] = VIP[wan["name"]]
        wan["snat6"] = VIP6[wan["name"]]
    d = lab.start_daemon(config)
    d.wait_ready()
    labkit.wait_until(lambda: all((w.get("ipv6") or {}).get("state") == "up" for w in d.status()["wans"]),
                      10, "both WANs up for IPv6")
    lab.ensure_server(family="ipv6")
    seen = lab.connect_many(40, src=labkit.LAN_HOSTS6, dst=labkit.SERVER6)
    assert all(r["ok"] for r in seen), [r["error"] for r in seen if not r["ok"]]
    assert {r["seen"] for r in seen} == set(VIP6.values())

    def counter6(name):
        text = lab.run("inet", ["nft", "list", "counter", "ip6", "hatest6", name]).stdout
        return int(re.search(r"packets (\d+)", text)[1])
    before = counter6("probes_from_router6")
    labkit.wait_until(lambda: counter6("probes_from_router6") > before, 3, "IPv6 probes from the router")
    assert counter6("probes_from_vip6") == 0
    assert d.stop() == 0
