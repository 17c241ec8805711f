# Issue 14: an active/backup pair of wanbalance routers. Two routers share the LAN and both ISP
# segments (bridges in a switch namespace) and a sync link; each runs wanbalanced with the same
# config, keepalived and conntrackd configured from the examples that ship, and the shipped
# notify script telling wanbalanced its role.

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

import labkit
from hatakeover import (FAILURES, HELD, NEW_SOURCES, Takeover, by_wan, hold, restore, take_over,
                        wait_status_role)
from labha import EXAMPLES, ROUTERS, VIP, HaLab, Streams

needs_ha_tools = pytest.mark.skipif(
    not (shutil.which("keepalived") and shutil.which("conntrackd")),
    reason="needs keepalived and conntrackd (tools/deps.sh test)")


@pytest.fixture
def halab(request, need_build):
    """A fresh HA lab for one test; on failure the routers' keepalived, conntrackd, notify and
    wanbalanced logs go to stderr. Torn down even when the test fails."""
    instance = HaLab()
    instance.up()
    try:
        yield instance
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for router in ROUTERS:
                print(instance.logs(router, tail=60), file=sys.stderr)
                if router in instance.wanbalanced:
                    print(f"--- {router} wanbalanced ---\n"
                          f"{instance.wanbalanced[router].log_tail(60)}", file=sys.stderr)
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


def routing_state(lab: HaLab, router: str) -> dict[str, str]:
    """What decides where a connection goes, as the router's kernel has it: table inet
    wanbalance (marks, hash seed, buckets), the policy rules and the routes wanbalanced made;
    the routers' own addresses (connected and local routes) left out."""
    state = lab.kernel_state(router)
    nft = state["nft"]
    start = nft.index("table inet wanbalance")
    routes = [line for line in state["routes"].splitlines()
              if "proto kernel" not in line and "table local" not in line]
    return {"nft": nft[start:], "rules": state["rules"], "routes": "\n".join(routes)}


def start(lab: HaLab) -> None:
    """wanbalanced in both routers with one config, then the pair with the VIPs on rtrA: the
    rulesets are identical, each status shows its role, and LAN connections leave over both
    WANs from the VIPs."""
    daemons = lab.start_wanbalanced()
    lab.start_pair()
    rulesets = {r: d.ctl("ruleset", "--config", str(d.config_path), check=True).stdout
                for r, d in daemons.items()}
    assert rulesets["rtrA"] == rulesets["rtrB"], "the two routers' rulesets differ"
    kernels = {r: routing_state(lab, r) for r in ROUTERS}
    for key in kernels["rtrA"]:
        assert kernels["rtrA"][key] == kernels["rtrB"][key], f"the routers' kernels differ: {key}"
    wait_status_role(lab, "rtrA", "primary")
    wait_status_role(lab, "rtrB", "backup")
    assert daemons["rtrA"].ctl("status").stdout.splitlines()[0].endswith(", role primary")
    assert lab.vips("rtrA") == set(VIP.values()) and not lab.vips("rtrB")
    spread = by_wan(lab.spread(20, src=NEW_SOURCES))
    assert set(spread) == {"charter", "integra"}, spread


def fail_primary(lab: HaLab, held: Streams, failure: str, primary: str) -> Takeover:
    """Fail `primary` while `held` carries data: no held connection is reset or stalls for
    1.5 s, new connections work through the new primary within 1 s and go out over both WANs,
    and the roles follow."""
    t = take_over(lab, held, failure, primary)
    labkit.progress(t.line() + f"; gaps per connection {', '.join(f'{g:.0f}' for g in t.gaps)}")
    assert not t.lost, f"{len(t.lost)} of {HELD} connections did not survive: " \
                       f"{[(r['src'], r['end_error']) for r in t.lost]}"
    assert {r["seen"] for r in t.results} == {VIP["charter"], VIP["integra"]}
    assert t.longest_gap_ms < 1500, f"longest data gap {t.longest_gap_ms:.0f} ms"
    assert t.rst == {"lan": 0, "inet": 0}, f"connections saw resets: {t.rst}"
    assert t.new_ms < 1000, f"first new connection {t.new_ms:.0f} ms after the failure"
    assert set(t.spread) == {"charter", "integra"}, t.spread
    assert t.committed == HELD, f"{t.backup}'s kernel has {t.committed} of the connections"
    if failure != "all-killed":
        assert not lab.vips(primary), f"{primary} still holds {lab.vips(primary)}"
        assert [r for _, r in lab.roles(primary)][-1] == "fault"
        wait_status_role(lab, primary, "fault")
    return t


@needs_ha_tools
@pytest.mark.root
@pytest.mark.parametrize("failure", list(FAILURES))
def test_flows_survive_primary_failure(halab, failure):
    """20 long-lived SNATed TCP connections over both WANs, data both ways every 10 ms, survive
    the primary's failure: rtrB takes the VIPs, its notify script commits conntrackd's external
    cache and tells wanbalanced `role primary`; no connection is reset, the longest data gap
    stays under 1.5 s, and new connections go out over both WANs through rtrB within 1 s."""
    start(halab)
    held = hold(halab)
    assert halab.committed("rtrB", held.flows) == 0, \
        "the backup committed entries before taking over"
    fail_primary(halab, held, failure, "rtrA")


@needs_ha_tools
@pytest.mark.root
def test_wan_failover_on_the_new_primary_then_failback(halab):
    """Every process of rtrA is killed and rtrB takes over. Then charter's ISP dies: rtrB's
    wanbalanced takes charter down as usual, new connections go out by integra, and the held
    connections on integra carry on. charter comes back. rtrA is started again: it stays backup
    (nopreempt), its status says so and its conntrackd resyncs; then rtrB loses every link and
    the connections survive the way back to rtrA."""
    lab = halab
    start(lab)
    fail_primary(lab, hold(lab), "all-killed", "rtrA")

    held = hold(lab)
    lab.upstream("charter", up=False)
    lab.wanbalanced["rtrB"].wait_state("charter", "down", timeout=5)
    assert by_wan(lab.spread(10, src=NEW_SOURCES)) == {"integra": 10}
    time.sleep(1)
    results = held.release(timeout=30)
    on_integra = [r for r in results if r["seen"] == VIP["integra"]]
    assert on_integra and all(r["alive"] and r["max_gap_ms"] < 1500 for r in on_integra), \
        [(r["src"], r["alive"], r["max_gap_ms"]) for r in on_integra]
    lab.upstream("charter", up=True)
    lab.wanbalanced["rtrB"].wait_state("charter", "up", timeout=10)

    restore(lab, "all-killed", "rtrA")
    assert lab.vips("rtrB") == set(VIP.values()), "the returning router took VIPs (nopreempt)"
    fail_primary(lab, hold(lab), "links-down", "rtrB")


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
