# Issue 2, reconcile not replay: start adopts, reload changes only what differs, a broken
# reload keeps the old config, stop leaves the kernel as it found it, kill -9 + restart doubles
# nothing, and foreign nftables tables, rules and routes survive all of it.
import re
import signal
import subprocess
import time

import labkit

FOREIGN_NFT = """
table ip foreign {
    chain input {
        type filter hook input priority 10; policy accept;
        tcp dport 9999 counter
    }
}
"""


def add_foreign_state(lab):
    lab.nft("rtr", FOREIGN_NFT)
    lab.run("rtr", "ip rule add priority 30000 fwmark 0x4000/0x4000 lookup 300")
    lab.run("rtr", "ip route add 10.99.0.0/16 via 203.0.113.1 table 300")
    lab.run("rtr", "ip route add 10.98.0.0/16 via 198.51.100.1")


def own_objects(lab):
    """Counts of wanbalance's objects in the router: (tables, rules, routes)."""
    tables = lab.run("rtr", "nft list tables").stdout.count("table inet wanbalance")
    rules = [l for l in lab.run("rtr", "ip -4 rule show").stdout.splitlines()
             if re.search(r"proto (87|wanbalance)\b", l)]
    routes = [l for l in lab.run("rtr", "ip -4 route show table all").stdout.splitlines()
              if re.search(r"proto (87|wanbalance)\b", l)]
    return tables, rules, routes


def test_stop_leaves_the_kernel_as_it_found_it_and_foreign_state_survives(lab, need_build):
    add_foreign_state(lab)
    before = lab.kernel_state()
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    during = lab.kernel_state()
    assert "table ip foreign" in during["nft"]
    assert "lookup 300" in during["rules"]
    assert "10.99.0.0/16 via 203.0.113.1 dev ether1 table 300" in during["routes"]
    assert "10.98.0.0/16 via 198.51.100.1 dev ether2" in during["routes"]
    d.reload()
    labkit.wait_until(lambda: "configuration reloaded" in d.log(), 5, "the SIGHUP reload")
    assert d.running()
    assert d.stop() == 0
    assert lab.kernel_state() == before


def test_kill9_and_restart_doubles_nothing(lab, need_build):
    before = lab.kernel_state()
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    first = own_objects(lab)
    # The table; the suppress rule, a fwmark rule per WAN and the balanced table's rule; a
    # default route per WAN table and the balanced one.
    assert first[0] == 1 and len(first[1]) == 4 and len(first[2]) == 3, first
    d.kill9()
    d2 = lab.start_daemon(d.config_path)
    d2.wait_ready()
    assert own_objects(lab) == first
    spread = lab.spread(40, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["charter"] and spread["integra"], spread
    assert d2.stop() == 0
    assert lab.kernel_state() == before


def monitor(lab):
    """Starts `ip monitor` (routes, rules) and `nft monitor` in the router; returns a stop()
    that returns the lines they printed."""
    procs = [lab.popen("rtr", ["ip", "-4", "monitor", "route", "rule"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True),
             lab.popen("rtr", ["nft", "monitor"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)]
    time.sleep(0.3)

    def stop():
        lines = []
        for p in procs:
            p.send_signal(signal.SIGINT)
            try:
                out, _ = p.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            lines += [l for l in out.splitlines() if l.strip()]
        return lines
    return stop


def settled(d):
    """Ready, and every WAN has answered probes: the start's kernel changes are all made."""
    d.wait_ready()
    labkit.wait_until(lambda: all(w["rtt_ms"] is not None for w in d.status()["wans"]), 10,
                      "every WAN to answer probes")


def test_a_reload_that_changes_nothing_makes_no_kernel_change(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    settled(d)
    stop = monitor(lab)
    result = d.ctl("reload", check=True)
    assert "no kernel change" in result.stdout, result.stdout
    time.sleep(6)  # also covers one periodic verification pass
    changes = stop()
    assert changes == [], "\n".join(changes)


def test_a_reload_changes_only_what_differs(lab, need_build):
    config = lab.article_config()
    d = lab.start_daemon(config)
    settled(d)
    stop = monitor(lab)
    config["wans"][0]["weight"] = 3
    lab.write_config(d, config)
    d.ctl("reload", check=True)
    time.sleep(1)
    # Skip nft's "# new generation" notes and the nexthop lines that continue a route.
    changes = [l for l in stop() if not l.startswith(("#", "\t", " "))]
    nft_changes = [l for l in changes if "inet wanbalance" in l]
    route_changes = [l for l in changes if "inet wanbalance" not in l]
    # Only balance-map elements and the main default route (its weights) change.
    assert nft_changes and all("element inet wanbalance balance" in l for l in nft_changes), nft_changes
    assert route_changes and all(l.startswith(("default", "Deleted default")) for l in route_changes), route_changes
    assert not any("table 101" in l or "table 102" in l for l in route_changes), route_changes


def test_a_broken_config_on_reload_leaves_the_old_one_running(lab, need_build):
    config = lab.article_config()
    d = lab.start_daemon(config)
    d.wait_ready()
    before = lab.kernel_state()
    d.config_path.write_text('{"wans": [ {"name": "charter", "interface": "ether1", '
                             '"gateway": "198.51.100.x"} ], "lans": ["ether3"]}\n')
    result = d.ctl("reload")
    assert result.returncode == 78, result
    assert '/wans/0/gateway: "198.51.100.x" is not an IPv4 address or "auto"' in result.stderr
    assert str(d.config_path) in result.stderr
    d.reload()  # SIGHUP: same refusal, daemon keeps running
    labkit.wait_until(lambda: d.log().count("the previous configuration keeps running") >= 2, 5,
                      "the SIGHUP reload to be refused")
    assert d.running()
    assert lab.kernel_state() == before
    spread = lab.spread(40, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["integra"] > 0, spread
    assert "reload refused" in d.log()


def test_a_restart_counts_no_probe_of_the_previous_run_as_a_connection(lab, need_build):
    """The previous run's probes stay in conntrack for half a minute, with its WAN marks and
    its echo identifiers; the next run counts none of them as the WAN's connections."""
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    labkit.wait_until(lambda: all(w["probes_sent"] >= 3 for w in d.status()["wans"]), 10,
                      "a few probe rounds")
    assert d.stop() == 0
    marked = [line for line in lab.run("rtr", "conntrack -L -p icmp", check=False).stdout.splitlines()
              if re.search(r"mark=(256|512)\b", line)]
    assert marked, "no marked probe entries left: the test would prove nothing"
    d2 = lab.start_daemon(lab.article_config())
    d2.wait_ready()
    assert [w["connections"] for w in d2.status()["wans"]] == [0, 0], marked
    assert d2.stop() == 0
