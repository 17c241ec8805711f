# Issue 2, following the kernel: a WAN interface that appears after start, and a "gateway":
# "auto" that follows what DHCP (or PPP) puts on the interface, are picked up without a restart.
import re

import labkit


def default_in(lab, table):
    # A table the kernel has never seen makes `ip` fail with "FIB table does not exist".
    return lab.run("rtr", f"ip -4 route show default table {table}", check=False).stdout.strip()


def test_a_wan_interface_that_appears_later_is_picked_up(lab, need_build):
    # ether2 "is not there yet" (a USB modem not plugged in): rename it away.
    lab.run("rtr", "ip link set ether2 down")
    lab.run("rtr", "ip link set ether2 name modem0")
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    integra = d.wan("integra")
    assert integra["state"] == "down" and integra["link"] == "absent", integra
    assert "ether2 does not exist" in integra["reason"]
    assert default_in(lab, 102) == ""
    assert lab.spread(20, src=labkit.LAN_HOSTS)["charter"] == 20
    # Plugged in: the interface appears with its address, then comes up.
    lab.run("rtr", "ip link set modem0 name ether2")
    lab.run("rtr", "ip link set ether2 up")
    d.wait_state("integra", "up", timeout=10)
    assert "via 198.51.100.1 dev ether2" in default_in(lab, 102)
    assert "198.51.100.1" in default_in(lab, labkit.BALANCED_TABLE)
    spread = lab.spread(100, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["integra"] > 10, spread


def test_auto_gateway_follows_dhcp(lab, need_build):
    # isp2 hands out a second gateway address so the "DHCP lease" can move to it.
    lab.run("isp2", "ip addr add 198.51.100.254/24 dev cust")
    lab.run("rtr", "ip route add default via 198.51.100.1 dev ether2 proto dhcp metric 1024")
    config = lab.article_config()
    config["wans"][1]["gateway"] = "auto"
    d = lab.start_daemon(config)
    d.wait_ready()
    assert d.wan("integra")["gateway"] == "198.51.100.1"
    assert d.wan("integra")["gateway_auto"] is True
    assert "via 198.51.100.1 dev ether2" in default_in(lab, 102)
    # The DHCP client renews with another gateway.
    lab.run("rtr", "ip route replace default via 198.51.100.254 dev ether2 proto dhcp metric 1024")
    labkit.wait_until(lambda: "via 198.51.100.254 dev ether2" in default_in(lab, 102), 5,
                      "table 102 to follow the new DHCP gateway")
    assert d.wan("integra")["gateway"] == "198.51.100.254"
    main = default_in(lab, labkit.BALANCED_TABLE)
    assert re.search(r"nexthop via 198\.51\.100\.254 dev ether2", main), main
    spread = lab.spread(60, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["integra"] > 5, spread
    # The lease goes away: no gateway, the WAN is down, charter carries everything.
    lab.run("rtr", "ip route del default via 198.51.100.254 dev ether2 proto dhcp metric 1024")
    d.wait_state("integra", "down", timeout=5)
    assert "no gateway" in d.wan("integra")["reason"]
    assert lab.spread(20, src=labkit.LAN_HOSTS)["charter"] == 20
    # wanbalance's own main route never counted as a DHCP gateway, and the DHCP route was not touched.
    assert "proto dhcp" not in default_in(lab, "main")


def test_interface_deleted_and_recreated(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    # A PPP link going away and coming back as a new interface with the same name.
    lab.run("rtr", "ip link del ether2")
    d.wait_state("integra", "down", timeout=2)
    assert d.wan("integra")["link"] == "absent"
    assert default_in(lab, 102) == ""
    lab.run("rtr", f"ip link add ether2 type veth peer name cust netns {lab.ns('isp2')}")
    lab.run("isp2", "ip link set cust up")
    lab.run("isp2", "ip addr add 198.51.100.1/24 dev cust")
    lab.run("rtr", "ip addr add 198.51.100.2/24 dev ether2")
    lab.run("rtr", "ip link set ether2 up")
    d.wait_state("integra", "up", timeout=10)
    assert "via 198.51.100.1 dev ether2" in default_in(lab, 102)
    spread = lab.spread(60, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["integra"] > 5, spread
