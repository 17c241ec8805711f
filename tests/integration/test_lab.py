# Proves the lab itself is right, without wanbalanced: manual routes and a manual masquerade in
# the router show each path, BCP38 at the ISPs, the fault knobs and the teardown guarantees.

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import labkit
from labkit import LAN_HOST6, LAN_HOSTS6, LAN_HOSTS, LAN_HOST, SERVER, SERVER6, Lab

MASQUERADE = """
table ip manual_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "ether1" masquerade
        oifname "ether2" masquerade
    }
}
"""


def default_via(lab: Lab, gateway: str) -> None:
    lab.run("rtr", f"ip route replace default via {gateway}")


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], text=True, capture_output=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], text=True, capture_output=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()}


def sysctl(lab: Lab, ns: str, key: str) -> str:
    return lab.run(ns, ["sysctl", "-n", key]).stdout.strip()


# -- topology -------------------------------------------------------------------------------

def test_lab_topology_and_router_defaults(lab):
    assert {lab.ns(r) for r in labkit.ROLES} <= netns_names()
    expected_links = {"rtr": {"ether1", "ether2", "ether3"}, "isp1": {"cust", "up"},
                      "isp2": {"cust", "up"}, "lan": {"eth0"}, "inet": {"isp1", "isp2"}}
    for ns, names in expected_links.items():
        out = lab.run(ns, "ip -o link show").stdout
        present = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
        assert present == names | {"lo"}, ns
        assert sysctl(lab, ns, "net.ipv4.ping_group_range").split() == ["0", "2147483647"]

    assert lab.run("rtr", "ip -4 route show default").stdout.strip() == ""
    assert sysctl(lab, "rtr", "net.ipv4.ip_forward") == "1"
    for conf in ("all", "default", "lo", "ether1", "ether2", "ether3"):
        assert sysctl(lab, "rtr", f"net.ipv4.conf.{conf}.rp_filter") == "1", conf
    assert sysctl(lab, "rtr", "net.ipv4.conf.all.src_valid_mark") == "0"

    for gw in ("203.0.113.1", "198.51.100.1", LAN_HOST):
        assert lab.ping("rtr", gw).received == 1, gw
    assert lab.ping("lan", "192.168.88.1", src="192.168.88.40").received == 1
    for isp_addr in ("192.0.2.241", "192.0.2.245"):
        assert lab.ping("inet", isp_addr).received == 1
    # Without a default route in the router the LAN cannot reach the internet.
    assert not lab.connect_many(1, timeout=0.5)[0]["ok"]


LAB_LINK_NAMES = {"ether1", "ether2", "ether3", "cust", "up", "eth0", "isp1", "isp2"}


@pytest.mark.root
def test_lab_leaves_host_namespace_alone():
    # Other helpers may add namespaces or links meanwhile: look only at what the lab could make.
    before = host_links() & LAB_LINK_NAMES
    with Lab() as lab:
        assert host_links() & LAB_LINK_NAMES == before
        assert {n for n in netns_names() if n.startswith(lab.prefix + "-")} == \
            {lab.ns(r) for r in labkit.ROLES}
    assert host_links() & LAB_LINK_NAMES == before
    assert not any(n.startswith(lab.prefix + "-") for n in netns_names())
    assert lab.up_seconds < 10 and lab.down_seconds < 10


# -- paths ----------------------------------------------------------------------------------

def test_lab_lan_reaches_server_via_each_isp(lab):
    lab.nft("rtr", MASQUERADE)
    default_via(lab, "203.0.113.1")
    assert lab.spread(30, src=LAN_HOSTS) == {"charter": 30}
    assert lab.spread(5, src=LAN_HOST, udp=True) == {"charter": 5}

    default_via(lab, "198.51.100.1")
    assert lab.spread(30, src=LAN_HOSTS) == {"integra": 30}
    assert lab.spread(5, src=LAN_HOST, udp=True) == {"integra": 5}

    results = lab.connect_many(30, src=LAN_HOSTS)
    assert {r["src"] for r in results} == {f"192.168.88.{i}" for i in range(11, 41)}


def test_lab_held_connections_report_survival(lab):
    lab.nft("rtr", MASQUERADE)
    default_via(lab, "203.0.113.1")
    held = lab.hold_connections(10, src=LAN_HOSTS)
    assert (held.ok, held.failed) == (10, 0)
    results = held.release()
    assert all(r["end_ok"] and r["end_seen"] == "203.0.113.2" for r in results)

    held = lab.hold_connections(5, timeout=0.5)
    lab.upstream("isp1", up=False)       # the connections die with the upstream
    results = held.release()
    assert not any(r["end_ok"] for r in results)


# -- BCP38 ----------------------------------------------------------------------------------

def test_lab_isp_drops_packets_with_the_other_wans_source(lab):
    default_via(lab, "198.51.100.1")
    before = lab.counters("isp2")["bcp38"]
    assert lab.ping("rtr", SERVER, count=5, interval=0.01, wait=0.5, src="203.0.113.2").received == 0
    assert lab.counters("isp2")["bcp38"] == before + 5
    assert lab.ping("rtr", SERVER, count=3, interval=0.01, src="198.51.100.2").received == 3
    assert lab.counters("isp2")["bcp38"] == before + 5
    assert lab.counters("isp1")["bcp38"] == 0


def test_lab_reply_through_the_wrong_wan_fails(lab):
    lab.start_server("rtr", port=8080)
    default_via(lab, "203.0.113.1")
    ok = lab.connect_from_internet("203.0.113.2", 8080)
    assert ok and ok.seen == "192.0.2.242"

    # Only route points to isp2: strict rp_filter in the router drops the SYN from isp1 already.
    default_via(lab, "198.51.100.1")
    assert not lab.connect_from_internet("203.0.113.2", 8080, timeout=0.5)
    assert lab.counters("isp2")["bcp38"] == 0

    # With rp_filter off the SYN gets in, and the SYN-ACK leaves via isp2 with 203.0.113.2: dropped.
    lab.run("rtr", "sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.ether1.rp_filter=0")
    assert not lab.connect_from_internet("203.0.113.2", 8080, timeout=0.5)
    assert lab.counters("isp2")["bcp38"] >= 1
    assert lab.connect_from_internet("198.51.100.2", 8080)


def test_lab_foreign_port_forward(lab):
    lab.install_foreign_portfwd()
    lab.start_server("lan", bind=LAN_HOST, port=8080)
    default_via(lab, "203.0.113.1")
    ok = lab.connect_from_internet("203.0.113.2", 2222)
    assert ok and ok.seen == "192.0.2.242"
    # Arriving on ether2 while the only route leaves via ether1: no path back without wanbalance.
    assert not lab.connect_from_internet("198.51.100.2", 2222, timeout=0.5)


# -- fault knobs ----------------------------------------------------------------------------

def test_lab_upstream_down_and_up(lab):
    lab.nft("rtr", MASQUERADE)
    default_via(lab, "203.0.113.1")
    assert lab.spread(5) == {"charter": 5}

    lab.upstream("isp1", up=False)
    assert lab.spread(3, timeout=0.5) == {"failed": 3}
    assert lab.ping("rtr", "192.0.2.53", wait=0.5).received == 0
    assert lab.ping("rtr", "203.0.113.1").received == 1          # gateway still answers
    assert lab.counters("isp1")["upstream"] > 0
    default_via(lab, "198.51.100.1")                                # isp2 unaffected
    assert lab.spread(3) == {"integra": 3}

    default_via(lab, "203.0.113.1")
    lab.upstream("isp1", up=True)
    assert lab.spread(5) == {"charter": 5}
    lab.upstream("isp1", up=True)                                   # idempotent


def test_lab_carrier_down_and_up(lab):
    def link_flags():
        out = lab.run("rtr", "ip link show ether1").stdout
        return out.split("<", 1)[1].split(">", 1)[0].split(",")

    assert "LOWER_UP" in link_flags()
    lab.carrier("isp1", up=False)
    flags = link_flags()
    assert "NO-CARRIER" in flags and "LOWER_UP" not in flags
    assert lab.ping("rtr", "203.0.113.1", wait=0.3).received == 0

    lab.carrier("isp1", up=True)
    labkit.wait_until(lambda: "LOWER_UP" in link_flags(), 5, "ether1 carrier")
    assert lab.ping("rtr", "203.0.113.1", count=3, interval=0.1).received >= 1


def test_lab_loss(lab):
    default_via(lab, "203.0.113.1")
    lab.loss("isp1", 50)
    result = lab.ping("rtr", SERVER, count=200, interval=0.002, wait=0.5)
    assert result.sent == 200
    assert 30 <= result.loss_pct <= 70, result
    assert lab.counters("isp1")["loss"] == 200 - result.received

    lab.loss("isp1", 0)
    assert lab.ping("rtr", SERVER, count=100, interval=0.002, wait=0.5).loss_pct == 0
    # The gateway itself is not behind the lossy upstream.
    lab.loss("isp1", 100)
    assert lab.ping("rtr", "203.0.113.1", count=20, interval=0.002).loss_pct == 0
    assert lab.ping("rtr", SERVER, count=20, interval=0.002, wait=0.3).received == 0


def test_lab_knobs_reject_bad_arguments(lab):
    for args in (("loss", lab.prefix, "isp1", "101"), ("loss", lab.prefix, "isp3", "5"),
                 ("upstream", lab.prefix, "isp1", "sideways"), ("carrier", "nosuchlab", "isp1", "up")):
        with pytest.raises(labkit.CommandError):
            lab.lab_sh(*args)


# -- kernel_state ---------------------------------------------------------------------------

def test_lab_kernel_state_ignores_counters_but_not_config(lab):
    lab.nft("rtr", """
table ip foreign {
    chain filter_forward {
        type filter hook forward priority 0;
        counter
    }
    chain filter_output {
        type filter hook output priority 0;
        counter
    }
}
""")
    default_via(lab, "203.0.113.1")
    before = lab.kernel_state()
    assert "counter packets N bytes N" in before["nft"]
    lab.ping("rtr", SERVER, count=5, interval=0.01)
    assert lab.kernel_state() == before

    lab.run("rtr", "ip rule add fwmark 0x100 lookup 101 priority 20000")
    changed = lab.kernel_state()
    assert changed["rules"] != before["rules"]
    lab.run("rtr", "ip rule del priority 20000")
    lab.run("rtr", "ip route add 10.1.0.0/16 via 203.0.113.1 table 101")
    assert lab.kernel_state()["routes"] != before["routes"]


# -- teardown and gc ------------------------------------------------------------------------

@pytest.mark.root
def test_lab_teardown_even_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with Lab() as lab:
            sleeper = lab.popen("inet", "sleep 60")
            lab.ensure_server()
            raise RuntimeError("boom")
    assert not any(n.startswith(lab.prefix + "-") for n in netns_names())
    assert sleeper.returncode is not None
    assert not Path(f"/run/wanbalance-lab/{lab.prefix}").exists()
    assert lab.workdir is not None and not lab.workdir.exists()
    lab.down()                                                       # idempotent


@pytest.mark.root
def test_lab_gc_removes_only_labs_whose_owner_is_gone():
    owner = subprocess.Popen(["sleep", "60"])
    prefix = "wbgc" + os.urandom(2).hex()
    env = dict(os.environ, LAB_OWNER_PID=str(owner.pid))
    try:
        subprocess.run([str(labkit.LAB_SH), "up", prefix], env=env, check=True,
                       capture_output=True)
        assert f"{prefix} {owner.pid} alive" in subprocess.run(
            [str(labkit.LAB_SH), "ls"], text=True, capture_output=True, check=True).stdout
        subprocess.run([str(labkit.LAB_SH), "gc"], check=True, capture_output=True)
        assert f"{prefix}-rtr" in netns_names()

        owner.kill()
        owner.wait()
        out = subprocess.run([str(labkit.LAB_SH), "gc"], text=True, capture_output=True,
                             check=True).stdout
        assert f"removing lab {prefix}" in out
        assert not any(n.startswith(prefix + "-") for n in netns_names())
        assert prefix not in subprocess.run([str(labkit.LAB_SH), "ls"], text=True,
                                            capture_output=True, check=True).stdout
    finally:
        owner.kill()
        owner.wait()
        subprocess.run([str(labkit.LAB_SH), "down", prefix], capture_output=True)


@pytest.mark.root
def test_lab_down_is_idempotent_and_up_refuses_duplicates():
    assert subprocess.run([str(labkit.LAB_SH), "down", "wbnosuch"]).returncode == 0
    with Lab() as lab:
        dup = subprocess.run([str(labkit.LAB_SH), "up", lab.prefix], text=True,
                             capture_output=True)
        assert dup.returncode != 0 and "already exists" in dup.stderr
        assert lab.ping("rtr", "203.0.113.1").received == 1           # the original is intact
        assert subprocess.run([str(labkit.LAB_SH), "down", lab.prefix]).returncode == 0
        assert subprocess.run([str(labkit.LAB_SH), "down", lab.prefix]).returncode == 0


# -- the Daemon wrapper, against stand-in programs ------------------------------------------

FAKE_DAEMON = textwrap.dedent("""\
    #!/bin/bash
    # Stand-in for wanbalanced: logs its argv and namespace, "ready" after 0.3 s.
    rundir=""
    echo "argv: $0 $*" >&2
    while [ $# -gt 0 ]; do
        case "$1" in --runtime-dir) rundir=$2; shift ;; esac
        shift
    done
    echo "NOTIFY_SOCKET=${NOTIFY_SOCKET:-unset}" >&2
    ip -o link show ether3 >/dev/null && echo "in router namespace" >&2
    trap 'echo reloaded >&2' HUP
    trap 'kill $! 2>/dev/null; echo stopping >&2; exit 0' TERM
    (sleep 0.3; touch "$rundir/ready") &
    while :; do sleep 5 & wait $!; done
    """)

FAKE_CTL = textwrap.dedent("""\
    #!/bin/bash
    [ "$1" = --runtime-dir ] || exit 2
    [ -e "$2/ready" ] || { echo "wanbalancectl: not running" >&2; exit 1; }
    echo '{"version": "fake", "wans": [{"name": "charter", "state": "up"}]}'
    """)


def test_lab_daemon_wrapper_with_stand_in_programs(lab, tmp_path, monkeypatch):
    for name, text in (("wanbalanced", FAKE_DAEMON), ("wanbalancectl", FAKE_CTL)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("WANBALANCE_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent")

    config = lab.article_config()
    daemon = lab.start_daemon(config)
    status = daemon.wait_ready(timeout=5)
    assert status["version"] == "fake"
    assert daemon.wait_state("charter", "up", timeout=1)["name"] == "charter"
    assert json.loads(daemon.config_path.read_text()) == config
    assert "in router namespace" in daemon.log()
    assert "NOTIFY_SOCKET=unset" in daemon.log()
    assert f"--config {daemon.config_path} --runtime-dir {daemon.runtime_dir}" in daemon.log()

    # bash may miss a signal that lands while it forks the stand-in's `sleep` (seen only in the
    # full suite on a loaded machine): ask again each second, as the check is of the wrapper.
    for attempt in range(10):
        daemon.reload()
        try:
            labkit.wait_until(lambda: "reloaded" in daemon.log(), 1, "the stand-in to log SIGHUP")
            break
        except TimeoutError:
            if attempt == 9:
                raise
    assert daemon.stop() == 0 and "stopping" in daemon.log()

    second = lab.start_daemon(config, extra_args=["--extra"])
    second.wait_ready(timeout=5)
    second.kill9()
    assert second.returncode == -9
    with pytest.raises(labkit.LabError, match="exited"):
        second._try_status()
    assert daemon.runtime_dir != second.runtime_dir


# -- IPv6 -----------------------------------------------------------------------------------

MASQUERADE6 = """
table ip6 manual_nat6 {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "ether1" masquerade
        oifname "ether2" masquerade
    }
}
"""


def test_lab_ipv6_ra_bcp38_and_router_change(lab):
    slaac = lab.wait_ipv6()
    assert slaac.startswith("2001:db8:2:") and slaac != "2001:db8:2::1", slaac
    assert lab.ra_gateway() == labkit.ISP_LINK_LOCAL["isp2"]
    assert sysctl(lab, "rtr", "net.ipv6.conf.all.forwarding") == "1"
    assert sysctl(lab, "rtr", "net.ipv6.conf.ether2.accept_ra") == "2"
    default = lab.run("rtr", "ip -6 route show default").stdout
    assert default.count("default") == 1 and "proto ra" in default, default
    assert lab.ping("rtr", "2001:db8:1::1").received == 1
    assert lab.ping("rtr", "fe80::1", iface="ether1").received == 1
    assert lab.ping("lan", "fd00:88::1", src="fd00:88::40").received == 1

    # The RA's default route leads to the internet from the SLAAC address only: isp2 drops
    # charter's address (BCP38) and counts it as IPv6, not IPv4.
    assert lab.ping("rtr", SERVER6, src=slaac).received == 1
    assert lab.ping("rtr", SERVER6, count=5, interval=0.01, wait=0.5,
                    src="2001:db8:1::2").received == 0
    assert lab.counters("isp2", "ipv6")["bcp38"] == 5
    assert lab.counters("isp2", "ipv4")["bcp38"] == 0
    assert lab.counters("isp2")["bcp38"] == 5

    # isp2's router is replaced: the old default route goes at once, the new one takes over.
    new = lab.ra_change()
    assert new not in ("", labkit.ISP_LINK_LOCAL["isp2"]), new
    labkit.wait_until(lambda: lab.ra_gateway() == new, 3, f"the default route via {new}")
    default = lab.run("rtr", "ip -6 route show default").stdout
    assert default.count("default") == 1 and f"via {new} dev ether2" in default, default
    assert lab.wan_addr6("integra") == slaac                # same prefix, same address
    assert lab.ping("rtr", SERVER6, src=slaac).received == 1
    assert lab.ra_change() not in (new, labkit.ISP_LINK_LOCAL["isp2"])


def test_lab_ipv6_lan_reaches_server_via_each_isp(lab):
    lab.wait_ipv6()
    lab.nft("rtr", MASQUERADE)
    lab.nft("rtr", MASQUERADE6)
    default_via(lab, "203.0.113.1")
    # A hand-made default via charter, preferred over the RA's (metric 1024).
    lab.run("rtr", "ip -6 route add default via 2001:db8:1::1 dev ether1 metric 1")
    assert lab.spread(20, src=LAN_HOSTS6, dst=SERVER6) == {"charter": 20}
    assert lab.spread(3, src=LAN_HOST6, dst=SERVER6, udp=True) == {"charter": 3}
    results = lab.connect_many(48, src=LAN_HOSTS6, dst=SERVER6)
    assert {r["src"] for r in results} == {f"fd00:88::{i:x}" for i in range(0x11, 0x41)}

    # IPv6's upstream dies at charter, IPv4's keeps working (and the counters tell which).
    lab.upstream("isp1", up=False, family="ipv6")
    assert lab.spread(3, src=LAN_HOST6, dst=SERVER6, timeout=0.5) == {"failed": 3}
    assert lab.spread(3, src=LAN_HOST) == {"charter": 3}
    assert lab.ping("rtr", "2001:db8:1::1").received == 1        # gateway still answers
    assert lab.counters("isp1", "ipv6")["upstream"] > 0
    assert lab.counters("isp1", "ipv4")["upstream"] == 0
    lab.upstream("isp1", up=True, family="ipv6")
    assert lab.spread(3, src=LAN_HOST6, dst=SERVER6) == {"charter": 3}

    lab.loss("isp1", 100, family="ipv6")
    assert lab.ping("rtr", SERVER6, count=5, interval=0.01, wait=0.3).received == 0
    assert lab.ping("rtr", SERVER, count=5, interval=0.01).received == 5
    # At least the 5 echoes: the ISP's own neighbour solicitations towards the upstream leave
    # by the same port and may be dropped (and counted) too. IPv4's ARP is not counted.
    assert lab.counters("isp1", "ipv6")["loss"] >= 5
    assert lab.counters("isp1", "ipv4")["loss"] == 0
    lab.loss("isp1", 0)

    # Without the hand-made route the RA's default leads through integra.
    lab.run("rtr", "ip -6 route del default via 2001:db8:1::1 dev ether1 metric 1")
    assert lab.spread(20, src=LAN_HOSTS6, dst=SERVER6) == {"integra": 20}


def test_lab_ipv6_reply_through_the_wrong_wan_fails(lab):
    slaac = lab.wait_ipv6()
    lab.start_server("rtr", bind="::", port=8080)
    # Only the RA's default route (via integra): integra's address answers, charter's answer
    # leaves through isp2 with charter's source and isp2 drops it (IPv6 has no rp_filter to
    # stop the SYN on the way in).
    ok = lab.connect_from_internet(slaac, 8080)
    assert ok and ok.seen == "2001:db8:ff:2::2"
    assert not lab.connect_from_internet("2001:db8:1::2", 8080, timeout=0.5)
    assert lab.counters("isp2", "ipv6")["bcp38"] >= 1
    # A default via charter ahead of it: the other way round.
    lab.run("rtr", "ip -6 route add default via 2001:db8:1::1 dev ether1 metric 1")
    ok = lab.connect_from_internet("2001:db8:1::2", 8080)
    assert ok and ok.seen == "2001:db8:ff:1::2"
    assert not lab.connect_from_internet(slaac, 8080, timeout=0.5)
    assert lab.counters("isp1", "ipv6")["bcp38"] >= 1


def test_lab_ipv6_kernel_state_and_accept_ra_knob(lab):
    lab.wait_ipv6()
    before = lab.kernel_state(families=labkit.FAMILIES)
    assert "default via fe80::2 dev ether2 proto ra metric 1024" in before["routes6"]
    assert "net.ipv6.conf.ether2.accept_ra = 2" in before["sysctls6"]
    time.sleep(1.1)                                  # the RA route's lifetime counts down
    assert lab.kernel_state(families=labkit.FAMILIES) == before
    lab.accept_ra(1)
    assert sysctl(lab, "rtr", "net.ipv6.conf.ether2.accept_ra") == "1"
    assert lab.kernel_state(families=labkit.FAMILIES)["sysctls6"] != before["sysctls6"]
    lab.accept_ra(2)
    lab.run("rtr", "ip -6 rule add fwmark 0x100 lookup 101 priority 20000")
    assert lab.kernel_state(families=labkit.FAMILIES)["rules6"] != before["rules6"]
    assert lab.kernel_state()["rules"] == before["rules"]
    with pytest.raises(labkit.CommandError):
        lab.lab_sh("upstream", lab.prefix, "isp1", "down", "ipv5")
    with pytest.raises(labkit.CommandError):
        lab.lab_sh("ra", lab.prefix, "isp1", "change")
