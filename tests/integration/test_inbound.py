# Issue 2, symmetric routing: a connection that arrives on a WAN is answered through that WAN,
# to the router itself and port-forwarded to a LAN host, also when the main default route
# points at the other WAN. The lab's ISPs drop packets whose source is not their customer's
# address (BCP38), so an answer through the wrong WAN fails these tests.

def single_path_config(lab):
    # integra on tier 1: the main default route goes through charter only, so only marks can
    # send integra's answers back out of ether2 (no help from multipath source matching).
    config = lab.article_config()
    config["wans"][1]["tier"] = 1
    return config


def test_wrong_wan_answers_are_dropped_by_the_lab(lab, need_build):
    # Proves the checks below can fail: without wanbalance and with the default route via
    # charter, a connection to integra's address cannot be answered (strict rp_filter drops it
    # on the way in; with loose rp_filter isp1's BCP38 drops the answer — see test_lab.py).
    lab.start_server("rtr", port=8080)
    lab.run("rtr", "ip route add default via 203.0.113.1 dev ether1")
    assert lab.connect_from_internet("203.0.113.2")
    assert not lab.connect_from_internet("198.51.100.2")


def test_connections_to_the_router_are_answered_through_their_wan(lab, need_build):
    lab.start_server("rtr", port=8080)
    d = lab.start_daemon(single_path_config(lab))
    d.wait_ready()
    before = {isp: lab.counters(isp)["bcp38"] for isp in ("isp1", "isp2")}
    for _ in range(5):
        assert lab.connect_from_internet("203.0.113.2"), "charter inbound failed"
        assert lab.connect_from_internet("198.51.100.2"), "integra inbound failed"
    after = {isp: lab.counters(isp)["bcp38"] for isp in ("isp1", "isp2")}
    assert after == before, f"answers left through the wrong WAN: {before} -> {after}"


def test_port_forwarded_connections_are_answered_through_their_wan(lab, need_build):
    lab.install_foreign_portfwd()
    server = lab.start_server("lan", port=8080)
    assert server
    d = lab.start_daemon(single_path_config(lab))
    d.wait_ready()
    for wan_addr in ("203.0.113.2", "198.51.100.2"):
        result = lab.connect_from_internet(wan_addr, port=2222)
        assert result, f"port forward via {wan_addr} failed: {result.error}"
        # The LAN host sees the internet client, not the router: DNAT only, no masquerade.
        assert result.seen.startswith("192.0.2."), result.seen


def test_inbound_with_a_multipath_default_route(lab, need_build):
    lab.start_server("rtr", port=8080)
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    for _ in range(10):
        assert lab.connect_from_internet("203.0.113.2")
        assert lab.connect_from_internet("198.51.100.2")
