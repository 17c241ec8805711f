# The HA pair lab's self-test (issue 14): two routers, keepalived and conntrackd configured from
# the shipped examples, plain nftables standing in for wanbalanced. Proves the lab before
# wanbalanced takes the stand-in's place.

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

import labkit
from labha import EXAMPLES, ROUTERS, VIP, HaLab

LAN_SOURCES = "192.168.88.11-192.168.88.20"    # .11-.15 leave by charter, .16-.20 by integra
PROBE_SOURCE = "192.168.88.30"                  # new connections after the takeover

needs_ha_tools = pytest.mark.skipif(
    not (shutil.which("keepalived") and shutil.which("conntrackd")),
    reason="needs keepalived and conntrackd (tools/deps.sh test)")


@pytest.fixture
def halab(request):
    """A fresh HA lab for one test; on failure the routers' keepalived/conntrackd/notify logs
    go to stderr. Torn down even when the test fails."""
    instance = HaLab()
    instance.up()
    try:
        yield instance
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for router in ROUTERS:
                print(instance.logs(router, tail=60), file=sys.stderr)
    finally:
        instance.down()


@needs_ha_tools
@pytest.mark.root
def test_examples_render_and_pass_config_checks(halab):
    """What ships is what the lab runs: the examples render for both routers (every
    replacement found), keepalived accepts both configs, and the notify script is valid sh."""
    for router in ROUTERS:
        files = halab.render_configs(router)
        proc = halab.run(router, ["keepalived", "--config-test", "-f",
                                  str(files["keepalived.conf"])], check=False)
        assert proc.returncode == 0, f"{router}: keepalived --config-test: {proc.stderr}"
        subprocess.run(["sh", "-n", str(files["wanbalance-notify.sh"])], check=True)
    rendered_b = halab._files("rtrB")["conntrackd.conf"].read_text()
    assert "IPv4_address 192.168.89.2\n" in rendered_b
    assert "IPv4_Destination_Address 192.168.89.1" in rendered_b
    assert "priority 100" in halab._files("rtrB")["keepalived.conf"].read_text()
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(EXAMPLES / "wanbalance-notify.sh")], check=True)


@needs_ha_tools
@pytest.mark.root
def test_flows_survive_keepalived_sigkill(halab):
    """10 long-lived NATed TCP connections over both WANs survive the primary's keepalived
    being killed with SIGKILL: rtrB takes the VIPs, its notify script commits conntrackd's
    external cache and says `role primary`; no connection is reset, the longest wait for an
    answer stays under 1.5 s, and new connections work through rtrB."""
    lab = halab
    lab.standin_nft()
    lab.start_pair()
    assert lab.vips("rtrA") == set(VIP.values()) and not lab.vips("rtrB")
    assert [r for _, r in lab.roles("rtrA")][-1] == "primary"
    assert [r for _, r in lab.roles("rtrB")] == ["backup"]
    assert lab.spread(10, src=LAN_SOURCES) == labkit.Counter({"charter": 5, "integra": 5})

    held = lab.hold_connections(10, src=LAN_SOURCES, timeout=5, exchange_every=0.05)
    assert held.ok == 10, f"only {held.ok} of 10 connections were established"
    # The backup has every connection in its external cache before the primary fails.
    labkit.wait_until(lambda: lab.external_cache("rtrB") >= 10, 5,
                      "rtrB's conntrackd to hold the 10 connections in its external cache")
    assert lab.kernel_entries("rtrB") == 0, "the backup committed entries before taking over"
    time.sleep(0.5)     # some exchanges before the failure
    rst_before = {ns: lab.rsts(ns) for ns in ("lan", "inet")}

    killed = lab.kill_keepalived("rtrA")
    vips_at = lab.wait_vips("rtrB", timeout=5)
    primary_at = lab.wait_role("rtrB", "primary", timeout=5, after=killed)
    # New connections through the new primary: the first that gets its answer.
    while True:
        r = lab.connect_many(1, src=PROBE_SOURCE, timeout=0.25)[0]
        if r["ok"]:
            new_ok_at = time.time()
            break
        assert time.time() - killed < 5, f"no new connection worked within 5 s: {r['error']}"
    time.sleep(1.0)     # exchanges after the takeover
    committed_entries = lab.kernel_entries("rtrB")
    results = held.release(timeout=30)

    takeover = vips_at - killed
    committed = primary_at - killed
    recovery = new_ok_at - killed
    gaps = [r["exchange_max_ms"] or 0.0 for r in results]
    drops = {router: lab.nonsyn_drops(router) for router in ROUTERS}
    rst = {ns: lab.rsts(ns) - rst_before[ns] for ns in ("lan", "inet")}
    labkit.progress(
        f"HA takeover (keepalived SIGKILL): VIPs on rtrB after {takeover * 1000:.0f} ms, "
        f"`role primary` (after conntrackd commit) at {committed * 1000:.0f} ms, first new "
        f"connection at {recovery * 1000:.0f} ms; longest data gap {max(gaps):.0f} ms "
        f"(per connection: {', '.join(f'{g:.0f}' for g in gaps)}); non-SYN drops {drops}; "
        f"RSTs seen {rst}; rtrA roles {[r for _, r in lab.roles('rtrA')]}, rtrB roles "
        f"{[r for _, r in lab.roles('rtrB')]}")

    failed = [r for r in results if not r["end_ok"]]
    assert not failed, f"{len(failed)} of 10 connections did not survive: " \
                       f"{[(r['src'], r['end_error']) for r in failed]}"
    assert all(r["end_seen"] == r["seen"] for r in results), "a connection changed its VIP"
    assert {r["seen"] for r in results} == {VIP["charter"], VIP["integra"]}
    assert all(r["exchanges"] >= 20 for r in results), [r["exchanges"] for r in results]
    assert max(gaps) < 1500, f"longest data gap {max(gaps):.0f} ms"
    assert rst == {"lan": 0, "inet": 0}, f"connections saw resets: {rst}"
    assert committed_entries >= 10, f"rtrB's kernel has {committed_entries} of the connections"
    assert [r for _, r in lab.roles("rtrB")][-1] == "primary"
    assert not lab.vips("rtrA"), f"rtrA still holds {lab.vips('rtrA')}"
    assert lab.spread(10, src=LAN_SOURCES) == labkit.Counter({"charter": 5, "integra": 5})
