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
from labha import EXAMPLES, ROUTERS, STREAM_PORT, VIP, HaLab, Streams

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


FAILURES = {
    # keepalived's parent killed: its VRRP child sends priority 0 and drops the VIPs.
    "keepalived-sigkill": lambda lab, router: lab.kill_keepalived(router),
    # every link of the router down (LAN, both WANs, sync): no advert for ~0.3 s.
    "links-down": lambda lab, router: lab.links(router, up=False),
    # keepalived (parent and VRRP child) and conntrackd killed at once: the router keeps the
    # VIPs in its kernel, the other takes over by gratuitous ARP.
    "all-killed": lambda lab, router: lab.kill_all(router),
}


def other(router: str) -> str:
    return "rtrB" if router == "rtrA" else "rtrA"


def fail_primary(lab: HaLab, held: Streams, failure: str, primary: str) -> list[dict]:
    """Fail `primary` while `held` carries data, wait for the other router to take over and
    for a new connection to work, check nothing was reset; returns held's results."""
    backup = other(primary)
    # The backup has every connection in its external cache before the primary fails.
    labkit.wait_until(lambda: lab.external_cache(backup, port=STREAM_PORT) >= 10, 5,
                      f"{backup}'s conntrackd to hold the 10 connections in its external cache")
    time.sleep(0.5)     # data before the failure
    rst_before = {(ns, w): lab.rsts(ns, w) for ns in ("lan", "inet") for w in ("stream", "other")}

    killed = FAILURES[failure](lab, primary)
    vips_at = lab.wait_vips(backup, timeout=5)
    primary_at = lab.wait_role(backup, "primary", timeout=5, after=killed)
    # New connections through the new primary: the first that gets its answer.
    while True:
        r = lab.connect_many(1, src=PROBE_SOURCE, timeout=0.25)[0]
        if r["ok"]:
            new_ok_at = time.time()
            break
        assert time.time() - killed < 5, f"no new connection worked within 5 s: {r['error']}"
    time.sleep(1.5)     # data after the takeover
    committed_entries = lab.kernel_entries(backup, port=STREAM_PORT)
    # Before the release: closing a socket while the server still sends makes the client's
    # kernel answer with RSTs.
    rst = {ns: lab.rsts(ns) - rst_before[ns, "stream"] for ns in ("lan", "inet")}
    rst_other = {ns: lab.rsts(ns, "other") - rst_before[ns, "other"] for ns in ("lan", "inet")}
    results = held.release(timeout=30)

    gaps = [r["max_gap_ms"] for r in results]
    drops = {router: lab.nonsyn_drops(router) for router in ROUTERS}
    labkit.progress(
        f"HA takeover ({failure} of {primary}): VIPs on {backup} after "
        f"{(vips_at - killed) * 1000:.0f} ms, `role primary` (after conntrackd's commit) at "
        f"{(primary_at - killed) * 1000:.0f} ms, first new connection at "
        f"{(new_ok_at - killed) * 1000:.0f} ms; longest data gap {max(gaps):.0f} ms "
        f"(per connection: {', '.join(f'{g:.0f}' for g in gaps)}); non-SYN drops {drops}; "
        f"RSTs to/from the held connections {rst}, others {rst_other}; "
        f"rtrA roles {[r for _, r in lab.roles('rtrA')]}, "
        f"rtrB roles {[r for _, r in lab.roles('rtrB')]}")

    failed = [r for r in results if not r["alive"]]
    assert not failed, f"{len(failed)} of 10 connections did not survive: " \
                       f"{[(r['src'], r['end_error']) for r in failed]}"
    assert {r["seen"] for r in results} == {VIP["charter"], VIP["integra"]}
    assert max(gaps) < 1500, f"longest data gap {max(gaps):.0f} ms"
    assert rst == {"lan": 0, "inet": 0}, f"connections saw resets: {rst}"
    assert committed_entries >= 10, \
        f"{backup}'s kernel has {committed_entries} of the connections"
    assert [r for _, r in lab.roles(backup)][-1] == "primary"
    if failure != "all-killed":
        assert not lab.vips(primary), f"{primary} still holds {lab.vips(primary)}"
        assert [r for _, r in lab.roles(primary)][-1] == "fault"
    assert lab.spread(10, src=LAN_SOURCES) == labkit.Counter({"charter": 5, "integra": 5})
    return results


def start(lab: HaLab) -> None:
    """The stand-in in both routers, the pair started with the VIPs on rtrA."""
    lab.standin_nft()
    lab.start_pair()
    assert lab.vips("rtrA") == set(VIP.values()) and not lab.vips("rtrB")
    assert [r for _, r in lab.roles("rtrA")][-1] == "primary"
    assert [r for _, r in lab.roles("rtrB")] == ["backup"]
    assert lab.spread(10, src=LAN_SOURCES) == labkit.Counter({"charter": 5, "integra": 5})


@needs_ha_tools
@pytest.mark.root
@pytest.mark.parametrize("failure", list(FAILURES))
def test_flows_survive_primary_failure(halab, failure):
    """10 long-lived NATed TCP connections over both WANs, data flowing both ways every 10 ms,
    survive the primary's failure: rtrB takes the VIPs, its notify script commits conntrackd's
    external cache and says `role primary`; no connection is reset, the longest data gap stays
    under 1.5 s, and new connections work through rtrB."""
    start(halab)
    held = halab.hold_streams(10, src=LAN_SOURCES)
    assert held.ok == 10, f"only {held.ok} of 10 connections were established"
    assert halab.kernel_entries("rtrB", port=STREAM_PORT) == 0, \
        "the backup committed entries before taking over"
    fail_primary(halab, held, failure, "rtrA")


@needs_ha_tools
@pytest.mark.root
def test_old_primary_returns_as_backup_and_takes_over_again(halab):
    """rtrA's keepalived is killed (rtrB takes over), then started again: rtrA stays backup
    (nopreempt), its notify script says `role backup` and asks for a resync, and its external
    cache fills with the connections rtrB now carries. Then rtrB loses every link, and the
    connections survive the way back to rtrA."""
    lab = halab
    start(lab)
    held = lab.hold_streams(10, src=LAN_SOURCES)
    fail_primary(lab, held, "keepalived-sigkill", "rtrA")

    held = lab.hold_streams(10, src=LAN_SOURCES)
    returned = time.time()
    lab.start_keepalived("rtrA")
    lab.wait_role("rtrA", "backup", timeout=5, after=returned)
    time.sleep(0.5)
    assert not lab.vips("rtrA") and lab.vips("rtrB") == set(VIP.values()), \
        "the returning router took the VIPs back (nopreempt)"
    fail_primary(lab, held, "links-down", "rtrB")


def _netns_names() -> set[str]:
    proc = subprocess.run(["ip", "netns", "list"], text=True, capture_output=True, check=True)
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}


@needs_ha_tools
@pytest.mark.root
def test_ha_lab_teardown_even_when_the_body_raises():
    """Every namespace, keepalived, conntrackd and file of an HA lab goes, however the body
    ends; down() stays idempotent."""
    with pytest.raises(RuntimeError, match="boom"):
        with HaLab() as lab:
            lab.start_pair()
            procs = [*lab.keepalived.values(), *lab.conntrackd.values()]
            raise RuntimeError("boom")
    assert not any(n.startswith(lab.prefix + "-") for n in _netns_names())
    assert all(p.returncode is not None for p in procs)
    assert not (labkit.LAB_ROOT / lab.prefix).exists()
    assert lab.workdir is not None and not lab.workdir.exists()
    lab.down()
