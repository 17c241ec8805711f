# Issue 3, the operator's side of failover: `wanbalancectl set WAN up|down|auto` overrides the
# prober (and hands back to it without a flap). Hooks are in test_hooks.py.
import time
from collections import Counter

import labkit
from labwatch import balance_map, conntrack_entries, main_default, start_watched as start

FAST_PROBE = {"interval_ms": 200, "down_after": 3}
UPSTREAM_LIMIT_S = 1.5
CARRIER_LIMIT_S = 0.3
MARGIN_S = 1.0          # for a loaded 2-core CI machine
CARRIER_MARGIN_S = 0.3
DETECTION_WINDOW_S = 0.2 * 3 + 0.6  # interval × down_after + timeout




def established(lab, wan):
    return {e for e in conntrack_entries(lab, dst=labkit.SERVER, dport=labkit.TCP_PORT)
            if e.state == "ESTABLISHED" and e.wan == wan}


def set_wan(d, wan, mode):
    result = d.ctl("set", wan, mode)
    assert result.returncode == 0, result.stderr
    return result


# -- operator override ------------------------------------------------------------------------

def test_set_down_drains_and_auto_gives_back(lab, need_build):
    d, watch = start(lab, lab.article_config(probe=FAST_PROBE))
    held = lab.hold_connections(30, src=labkit.LAN_HOSTS)
    assert held.ok == 30
    charter_before = established(lab, "charter")
    assert established(lab, "integra") and charter_before

    mark = time.monotonic()
    set_wan(d, "integra", "down")
    integra = d.wan("integra")
    assert integra["state"] == "disabled" and integra["override"] == "down", integra
    event = watch.wait("operator-set", "integra", since=mark, timeout=2)
    assert event.state == "disabled" and event.reason == "disabled by operator", event
    # Its connections are flushed; charter's are the same entries as before.
    labkit.wait_until(lambda: not established(lab, "integra"), 2, "integra's connections to go")
    assert established(lab, "charter") == charter_before
    assert "ether2" not in main_default(lab)
    assert set(balance_map(lab).values()) == {"charter"}
    assert lab.spread(60, src=labkit.LAN_HOSTS) == Counter(charter=60)
    held.release()

    mark = time.monotonic()
    set_wan(d, "integra", "auto")
    watch.wait("wan-up", "integra", since=mark, timeout=5)
    assert d.wan("integra")["override"] == "auto"
    spread = lab.spread(100, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["charter"] >= 25 and spread["integra"] >= 25, spread
    watch.stop()
    assert [(e.kind, e.wan, e.state) for e in watch.events] == [
        ("operator-set", "integra", "disabled"), ("wan-up", "integra", "up")]


def test_set_up_forces_a_wan_whose_probes_fail(lab, need_build):
    d, watch = start(lab, lab.article_config(probe=FAST_PROBE))
    set_wan(d, "integra", "up")
    mark = time.monotonic()
    lab.upstream("integra", up=False)
    time.sleep(DETECTION_WINDOW_S + 1.5)
    integra = d.wan("integra")
    assert integra["state"] == "up" and integra["override"] == "up", integra
    assert integra["reason"] == "forced up by operator"
    assert "via 198.51.100.1 dev ether2" in main_default(lab)
    assert set(balance_map(lab).values()) == {"charter", "integra"}
    assert not watch.select(since=mark), watch.events

    # Handed back, the prober takes it down: its probes have been failing all along.
    mark = time.monotonic()
    set_wan(d, "integra", "auto")
    down = watch.wait("wan-down", "integra", since=mark, timeout=DETECTION_WINDOW_S + MARGIN_S)
    # Said as the probes stand now (they turned long ago, while it was forced up).
    assert down.reason.startswith("0/2 targets answered within"), down
    assert "ether2" not in main_default(lab)
    watch.stop()


def test_forced_up_wan_that_recovered_is_handed_back_without_a_flap(lab, need_build):
    # The upstream dies, the operator forces the WAN up anyway, the upstream comes back while
    # forced: `auto` must find it healthy, not take it down (and flush its connections) on the
    # strength of probe rounds from before the override.
    d, watch = start(lab, lab.article_config(probe=FAST_PROBE))
    mark = time.monotonic()
    lab.upstream("integra", up=False)
    watch.wait("wan-down", "integra", since=mark, timeout=10)
    set_wan(d, "integra", "up")
    lab.upstream("integra", up=True)
    labkit.wait_until(lambda: lab.spread(1, src=labkit.LAN_HOST)["failed"] == 0, 5,
                      "traffic to flow again")
    time.sleep(0.2 * 5 + 0.6 + 0.5)  # up_after rounds, had anyone been probing
    held = lab.hold_connections(20, src=labkit.LAN_HOSTS)
    assert held.ok == 20
    integra_before = established(lab, "integra")
    assert integra_before

    mark = time.monotonic()
    set_wan(d, "integra", "auto")
    time.sleep(DETECTION_WINDOW_S + 0.5)
    integra = d.wan("integra")
    assert integra["state"] == "up", integra
    assert watch.select(since=mark) == [], watch.select(since=mark)
    assert established(lab, "integra") == integra_before
    assert all(r["end_ok"] for r in held.release())
    watch.stop()


def test_set_down_drains_a_wan_while_every_wan_is_down(lab, need_build):
    # Probe targets dead, internet fine: all-down balances over both links (docs/design.md, Health and failover). The
    # operator drains integra: its connections must go like those of any WAN taken out.
    d, watch = start(lab, lab.article_config(probe=FAST_PROBE))
    mark = time.monotonic()
    lab.nft("inet", "table ip targets_down { chain input { type filter hook input priority 0; "
                    "ip daddr { 192.0.2.53, 192.0.2.54 } drop; }; }")
    watch.wait("all-down", since=mark, timeout=10)
    held = lab.hold_connections(30, src=labkit.LAN_HOSTS)
    assert held.ok == 30
    charter_before = established(lab, "charter")
    assert charter_before and established(lab, "integra")

    set_wan(d, "integra", "down")
    assert d.wan("integra")["state"] == "disabled"
    labkit.wait_until(lambda: not established(lab, "integra"), 2, "integra's connections to go")
    assert established(lab, "charter") == charter_before
    assert set(balance_map(lab).values()) == {"charter"}
    assert lab.spread(60, src=labkit.LAN_HOSTS) == Counter(charter=60)
    charter_ports = {e.sport for e in charter_before}
    results = held.release()
    assert all(r["end_ok"] == (r["sport"] in charter_ports) for r in results), results
    watch.stop()


def test_set_rejects_unknown_wans_and_modes(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    before = lab.kernel_state()
    result = d.ctl("set", "nosuch", "down")
    assert result.returncode == 1, result
    assert 'no WAN named "nosuch" (configured: charter, integra)' in result.stderr
    result = d.ctl("set", "integra", "sideways")
    assert result.returncode == 1, result
    assert 'mode must be up, down, drain or auto, not "sideways"' in result.stderr
    assert [w["override"] for w in d.status()["wans"]] == ["auto", "auto"]
    assert lab.kernel_state() == before

# Hooks (events, order, a hanging hook, trust) are tested in test_hooks.py.
