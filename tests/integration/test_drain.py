# Issue 15, a graceful drain: `wanbalancectl set WAN drain` sends the WAN no new connections and
# keeps the open ones until they end, status counts them down, it is an operator event and not a
# failover, and `--timeout` cuts what is left.
import json
import time
from collections import Counter

import labkit
from labwatch import conntrack_entries, start_watched as start

FAST_PROBE = {"interval_ms": 200, "down_after": 3}


def open_on(lab, wan):
    return {e.sport for e in conntrack_entries(lab, dst=labkit.SERVER, dport=labkit.TCP_PORT)
            if e.state == "ESTABLISHED" and e.wan == wan}


def test_drain_keeps_open_connections_sends_no_new_ones_and_counts_them_down(lab, need_build):
    d, watch = start(lab, lab.article_config(probe=FAST_PROBE))
    held = lab.hold_connections(30, src=labkit.LAN_HOSTS)
    assert held.ok == 30
    draining = open_on(lab, "integra")
    assert len(draining) >= 5, draining

    mark = time.monotonic()
    result = d.ctl("set", "integra", "drain")
    assert result.returncode == 0, result.stderr
    assert "now draining" in result.stdout, result.stdout
    event = watch.wait("operator-set", "integra", since=mark, timeout=2)
    assert event.state == "draining", event
    integra = d.wan("integra")
    assert (integra["state"], integra["override"]) == ("draining", "drain")
    # Nothing flushed; no new connection goes to it.
    assert open_on(lab, "integra") == draining
    assert lab.spread(60, src=labkit.LAN_HOSTS) == Counter(charter=60)
    # Status counts the open ones: the held connections still on it, and nothing else.
    assert d.wan("integra")["connections"] == len(draining)
    assert f"{len(draining)} connections left" in d.ctl("status").stdout

    # Every held connection, on either WAN, still works; once they end the count is 0.
    results = held.release()
    assert all(r["end_ok"] for r in results), [r for r in results if not r["end_ok"]][:3]
    labkit.wait_until(lambda: d.wan("integra")["connections"] == 0, 5, "integra's count to reach 0")
    assert d.wan("integra")["state"] == "draining"   # it does not come back by itself
    watch.stop()
    assert [e.kind for e in watch.events if e.wan == "integra"] == ["operator-set"]

    assert d.ctl("set", "integra", "auto").returncode == 0
    d.wait_state("integra", "up", timeout=5)
    assert set(lab.spread(60, src=labkit.LAN_HOSTS)) == {"charter", "integra"}
    assert d.stop() == 0


def test_drain_timeout_cuts_what_is_left(lab, need_build):
    d, watch = start(lab, lab.article_config(probe=FAST_PROBE))
    held = lab.hold_connections(30, src=labkit.LAN_HOSTS)
    assert held.ok == 30 and open_on(lab, "integra")
    set_at = time.monotonic()
    result = d.ctl("set", "integra", "drain", "--timeout", "2")
    assert result.returncode == 0 and "cut in 2 s" in result.stdout, result
    assert d.wan("integra")["state"] == "draining"
    cut = watch.wait("operator-set", "integra", since=set_at + 0.5, timeout=6)
    assert cut.state == "disabled" and cut.at - set_at >= 1.9, (cut, cut.at - set_at)
    assert "drain timed out after 2 s" in d.log()
    labkit.wait_until(lambda: not open_on(lab, "integra"), 2, "integra's connections to be cut")
    held.release()
    # A set before the timeout ends the drain's timeout.
    assert d.ctl("set", "integra", "drain", "--timeout", "1").returncode == 0
    assert d.ctl("set", "integra", "auto").returncode == 0
    time.sleep(1.5)
    assert d.wan("integra")["state"] == "up"
    refused = d.ctl("set", "integra", "down", "--timeout", "5")
    assert refused.returncode != 0 and "--timeout goes with drain only" in refused.stderr
    watch.stop()
    assert d.stop() == 0


def test_connections_names_the_wan_of_each_flow(lab, need_build):
    """`wanbalancectl connections --src` answers which WAN a host uses: for 20 held flows, the
    WAN it names (from the conntrack mark) is the one whose address the flow leaves with."""
    d, watch = start(lab, lab.article_config(probe=FAST_PROBE))
    held = lab.hold_connections(20, src=labkit.LAN_HOSTS)
    assert held.ok == 20
    truth = {(e.src, e.sport): e.wan
             for e in conntrack_entries(lab, dst=labkit.SERVER, dport=labkit.TCP_PORT)
             if e.state == "ESTABLISHED"}
    assert len(truth) == 20 and set(truth.values()) == {"charter", "integra"}, truth
    for src in sorted({s for s, _ in truth}):
        proc = d.ctl("connections", "--src", src, "--json")
        assert proc.returncode == 0, proc.stderr
        listed = {(c["src"], c["sport"]): c["wan"] for c in json.loads(proc.stdout)
                  if c["dport"] == labkit.TCP_PORT}
        assert listed == {k: w for k, w in truth.items() if k[0] == src}, (src, listed)
    table = d.ctl("connections", "--wan", "integra").stdout
    assert table.splitlines()[0].split() == ["PROTO", "SOURCE", "DESTINATION", "WAN", "RULE", "STATE", "BYTES"]
    on_integra = sum(1 for w in truth.values() if w == "integra")
    assert f"{on_integra} connection" in table.splitlines()[-1], table
    assert "charter" not in table and "192.0.2.53" not in table   # one WAN; no probes
    bad = d.ctl("connections", "--src", "192.168.88.x")
    assert bad.returncode == 1 and '"192.168.88.x" is not an IPv4 or IPv6 address' in bad.stderr
    held.release()
    watch.stop()
    assert d.stop() == 0
