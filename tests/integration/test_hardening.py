# Issue 10, field hardening: others' default routes in main are shadowed, never fought; each
# interface's DHCP gateway is followed on its own; a restart with a broken config file keeps
# routing with the last applied one; overrides survive restarts; one daemon per namespace.
import json
import time

import labkit


def default_routes(lab, table="main"):
    return lab.run("rtr", f"ip -4 route show default table {table}", check=False).stdout.strip()


def test_a_foreign_default_route_in_main_is_shadowed_not_fought(lab, need_build):
    # ifupdown's `gateway` line: a plain default via integra in main, at metric 0, before us.
    lab.run("rtr", "ip route add default via 198.51.100.1 dev ether2")
    foreign = default_routes(lab)
    assert foreign == "default via 198.51.100.1 dev ether2", foreign
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    assert default_routes(lab) == foreign  # untouched
    assert "nexthop via 203.0.113.1 dev ether1" in default_routes(lab, labkit.BALANCED_TABLE)
    # Integra's upstream dies: the router's own traffic (no mark) fails over too.
    lab.upstream("integra", False)
    d.wait_state("integra", "down", timeout=5)
    route = lab.run("rtr", f"ip -4 route get {labkit.SERVER}").stdout
    assert "dev ether1" in route, route
    assert lab.ping("rtr", labkit.SERVER, count=3, interval=0.2).received == 3
    assert d.stop() == 0
    assert default_routes(lab) == foreign  # in force again, unchanged
    assert "dev ether2" in lab.run("rtr", f"ip -4 route get {labkit.SERVER}").stdout


def test_each_interface_keeps_its_own_dhcp_gateway(lab, need_build):
    # Two DHCP clients at one metric. Integra's route is first, so when charter's client
    # replaces its route the kernel replaces integra's (fib_table_insert() takes the first
    # route of that priority): integra's lease is still valid and must still be followed.
    lab.run("isp1", "ip addr add 203.0.113.254/24 dev cust")
    lab.run("rtr", "ip route add default via 198.51.100.1 dev ether2 proto dhcp metric 1024")
    lab.run("rtr", "ip route append default via 203.0.113.1 dev ether1 proto dhcp metric 1024")
    config = lab.article_config()
    for wan in config["wans"]:
        wan["gateway"] = "auto"
    d = lab.start_daemon(config)
    d.wait_ready()
    d.wait_state("charter", "up")
    d.wait_state("integra", "up")
    lab.run("rtr", "ip route replace default via 203.0.113.254 dev ether1 proto dhcp metric 1024")
    labkit.wait_until(lambda: d.wan("charter")["gateway"] == "203.0.113.254", 5,
                      "charter to follow its new gateway")
    time.sleep(1)  # long enough for a forgotten gateway to take integra down (it is at once)
    integra = d.wan("integra")
    assert integra["state"] == "up" and integra["gateway"] == "198.51.100.1", integra
    assert "via 203.0.113.254 dev ether1" in default_routes(lab, 101)
    assert "via 198.51.100.1 dev ether2" in default_routes(lab, 102)
    spread = lab.spread(100, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["charter"] > 20 and spread["integra"] > 20, spread


def test_a_restart_with_a_broken_config_runs_the_last_applied_one(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    assert (lab.state_dir / "last-applied.json").exists()
    d.kill9()
    # An edit that was never applied breaks the file; then the watchdog restarts the daemon.
    d.config_path.write_text('{"wans": [ {"name": "charter", }\n')
    d2 = lab.start_daemon(d.config_path)
    status = d2.wait_ready()
    assert d2.running()
    assert status["config_error"] and "wanbalance-0.json" in status["config_error"], status
    assert "running the last applied configuration" in d2.log()
    assert "critical" in d2.log() or "CRIT" in d2.log()
    # The data plane is managed, not frozen: integra dies and new connections move at once.
    lab.upstream("integra", False)
    start = time.monotonic()
    best = 0.0
    while time.monotonic() - start < 5:
        spread = lab.spread(40, src=labkit.LAN_HOSTS, timeout=0.5)
        best = (40 - spread["failed"]) / 40
        if best >= 0.95:
            break
    assert best >= 0.95, f"{best:.0%} of new connections succeeded 5 s after integra died"
    assert d2.wan("integra")["state"] == "down"
    # Fixing the file and reloading clears the problem.
    lab.write_config(d2, lab.article_config())
    assert d2.ctl("reload").returncode == 0
    assert d2.status()["config_error"] is None
    assert d2.stop() == 0


def test_a_broken_config_without_a_last_applied_one_still_exits_78(lab, need_build):
    path = lab.workdir / "broken.json"
    path.write_text('{"wans": []}\n')
    d = lab.start_daemon(path)
    labkit.wait_until(lambda: not d.running(), 10, "wanbalanced to exit")
    assert d.returncode == 78
    assert lab.run("rtr", "nft list tables").stdout.count("wanbalance") == 0


def test_a_drained_wan_stays_drained_across_restarts(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    assert d.ctl("set", "charter", "down").returncode == 0
    assert json.loads((lab.state_dir / "overrides.json").read_text()) == {"charter": "down"}
    d.kill9()
    d2 = lab.start_daemon(d.config_path)
    d2.wait_ready()
    charter = d2.wan("charter")
    assert charter["state"] == "disabled" and charter["override"] == "down", charter
    assert lab.spread(30, src=labkit.LAN_HOSTS) == {"integra": 30}
    assert d2.stop() == 0  # a clean stop and start too (systemctl restart)
    d3 = lab.start_daemon(d.config_path)
    d3.wait_ready()
    assert d3.wan("charter")["state"] == "disabled"
    assert d3.ctl("set", "charter", "auto").returncode == 0
    d3.wait_state("charter", "up")
    assert d3.stop() == 0
    d4 = lab.start_daemon(d.config_path)
    d4.wait_ready()
    assert d4.wan("charter")["override"] == "auto"


def test_a_second_daemon_is_refused_and_deletes_nothing(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    before = lab.kernel_state()
    second = lab.start_daemon(d.config_path)  # its own runtime dir: the control socket is free
    labkit.wait_until(lambda: not second.running(), 10, "the second wanbalanced to exit")
    assert second.returncode == 1
    assert "another wanbalanced already manages this network namespace" in second.log()
    assert lab.kernel_state() == before
    assert d.running()
    spread = lab.spread(40, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0 and spread["charter"] and spread["integra"], spread


def test_sysctls_are_restored_after_a_crash_and_a_fresh_runtime_dir(lab, need_build):
    before = lab.kernel_state()
    assert "src_valid_mark = 0" in before["sysctls"]
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    assert "net.ipv4.conf.ether1.src_valid_mark = 1" in lab.kernel_state()["sysctls"]
    d.kill9()
    d2 = lab.start_daemon(d.config_path)  # a new runtime dir: the record is in the state dir
    d2.wait_ready()
    assert d2.stop() == 0
    assert lab.kernel_state() == before


def test_handover_leaves_the_data_plane_for_the_next_daemon(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    during = lab.kernel_state()
    held = lab.hold_connections(10, src=labkit.LAN_HOSTS)  # NATed flows across the handover
    reply = d.ctl("handover")
    assert reply.returncode == 0, reply.stderr
    assert d.stop() == 0
    assert lab.kernel_state() == during  # nothing removed
    assert lab.spread(20, src=labkit.LAN_HOSTS)["failed"] == 0  # balancing with no daemon
    d2 = lab.start_daemon(d.config_path)
    d2.wait_ready()
    assert lab.kernel_state() == during  # adopted as it was
    results = held.release()
    assert all(r["ok"] for r in results), results
    assert d2.stop() == 0
    assert "wanbalance" not in lab.run("rtr", "nft list tables").stdout
