# Issue 15, applied state is the truth: what the kernel refused is shown, a reload whose changes
# it refused fails with the kernel's words, and a start that the kernel refused fails and leaves
# nothing behind.

import labkit

OFF_SUBNET = "10.9.9.9"     # not on ether1's 203.0.113.0/24: the kernel refuses a route via it


def typo_config(lab):
    config = lab.article_config()
    config["wans"][0]["gateway"] = OFF_SUBNET
    return config


def test_gateway_outside_the_subnet_reload_fails_and_status_says_degraded(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    assert all(w["degraded"] is None for w in d.status()["wans"])

    lab.write_config(d, typo_config(lab))
    proc = d.ctl("reload")
    assert proc.returncode == 1, proc.stdout
    # The kernel's words and the object: charter's route in its own table, and the balanced
    # multipath route that has charter's nexthop (so integra, balanced by it, is degraded too).
    assert "charter is degraded" in proc.stderr and f"via {OFF_SUBNET}" in proc.stderr, proc.stderr
    assert "table 101" in proc.stderr, proc.stderr
    charter = d.wan("charter")
    assert charter["degraded"] and f"via {OFF_SUBNET}" in charter["degraded"]
    assert d.wan("integra")["degraded"], "the balanced route was refused too: integra's traffic follows it"
    table = d.ctl("status").stdout
    assert "error: WAN charter is degraded" in table, table
    prom = d.ctl("status", "--prometheus").stdout
    assert 'wanbalance_wan_degraded{wan="charter",interface="ether1"} 1' in prom
    # What the kernel routes is still the last route it took: traffic keeps flowing.
    assert set(lab.spread(20, src=labkit.LAN_HOSTS)) == {"charter", "integra"}
    assert "is degraded" in d.log()

    lab.write_config(d, lab.article_config())
    fixed = d.ctl("reload")
    assert fixed.returncode == 0, fixed.stderr
    assert all(w["degraded"] is None for w in d.status()["wans"])
    assert "no longer degraded" in d.log()
    assert d.stop() == 0


def test_start_that_the_kernel_refuses_fails_and_leaves_nothing(lab, need_build):
    before = lab.kernel_state()
    d = lab.start_daemon(typo_config(lab))
    labkit.wait_until(lambda: not d.running(), 15, "wanbalanced to give up")
    assert d.returncode == 1, d.log_tail()
    assert "giving up: the kernel refused part of the configuration" in d.log()
    assert f"via {OFF_SUBNET}" in d.log()
    assert lab.kernel_state() == before, "a refused start left objects behind"
