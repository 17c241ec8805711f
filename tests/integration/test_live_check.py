# Issue 15, live checks and current reasons: `wanbalancectl check --live` holds a config against
# the running router and names each problem by its key; the daemon says the same at start and on
# reload (journal and status); a WAN that is down says why right now, naming ARP when its gateway
# does not answer; reasons of a WAN that is up do not go stale.

import json
import os

import labkit

SILENT_GATEWAY = "203.0.113.11"   # on ether1's 203.0.113.0/24, but nobody there answers ARP
OFF_SUBNET = "10.9.9.9"           # not on ether2's 198.51.100.0/24
FOREIGN_DEFAULT = "default via 198.51.100.1 dev ether2 proto static metric 50"


def write(lab, name: str, config: dict, mode: int):
    path = lab.workdir / name
    path.write_text(json.dumps(config, indent=2) + "\n")
    os.chmod(path, mode)
    return path


def check_live(lab, path):
    return lab.run("rtr", [str(labkit.program("wanbalancectl")), "check", "--live", "--config", str(path)],
                   check=False, timeout=30)


def warnings_of(proc, path) -> list[str]:
    prefix = f"warning: {path}: "
    return [line[len(prefix):] for line in proc.stderr.splitlines() if line.startswith(prefix)]


def test_check_live_names_each_problem_by_its_key(lab, need_build):
    good = write(lab, "good.json", lab.article_config(), 0o644)
    proc = check_live(lab, good)
    assert proc.returncode == 0, proc.stderr
    assert f"{good}: OK: 2 WANs (charter, integra), 1 LAN" in proc.stdout
    assert f"{good}: live check: no findings" in proc.stdout, proc.stdout + proc.stderr

    config = lab.article_config()
    config["wans"][0]["gateway"] = SILENT_GATEWAY
    config["wans"][1]["gateway"] = OFF_SUBNET
    config["wans"].append({"name": "dsl", "interface": "ppp9", "gateway": "auto"})
    bad = write(lab, "bad.json", config, 0o600)
    lab.run("rtr", f"ip route add {FOREIGN_DEFAULT}")
    before = lab.kernel_state()
    proc = check_live(lab, bad)
    assert proc.returncode == 0, proc.stderr  # findings are warnings: the file itself is valid
    found = warnings_of(proc, bad)
    print("\n" + "\n".join(found))
    assert f"/wans/0/gateway: {SILENT_GATEWAY} does not answer ARP on ether1" in found
    assert any(w.startswith(f"/wans/1/gateway: {OFF_SUBNET} is outside ether2's subnets (198.51.100.2/24)")
               for w in found), found
    assert not any(OFF_SUBNET in w and "ARP" in w for w in found), "an off-subnet gateway is said once"
    assert "/wans/2/interface: there is no interface ppp9 on this system" in found
    assert any(w.startswith(f"/wans/1/gateway: {FOREIGN_DEFAULT} is not wanbalance's and is left alone")
               for w in found), found
    assert any(w.startswith("mode 0600: the service's user") and f"chmod 0644 {bad}" in w for w in found), found
    assert len(found) == 5, found
    assert f"{bad}: live check: 5 warnings" in proc.stdout
    assert lab.kernel_state() == before, "check --live changed the kernel"


def test_daemon_warns_at_start_and_reason_names_arp(lab, need_build):
    config = lab.article_config(probe={"interval_ms": 100, "timeout_ms": 300, "down_after": 2, "up_after": 2})
    config["wans"][0]["gateway"] = SILENT_GATEWAY
    path = write(lab, "wanbalance.json", config, 0o600)
    lab.run("rtr", f"ip route add {FOREIGN_DEFAULT}")
    d = lab.start_daemon(path)
    d.wait_ready()

    # The live check at start: in the journal and in status, one line per finding naming the key.
    status = d.status()
    paths = [w["path"] for w in status["warnings"]]
    assert "" in paths and "/wans/1/gateway" in paths, status["warnings"]
    assert f"live check: {path}: mode 0600" in d.log()
    assert f"warning: /wans/1/gateway: {FOREIGN_DEFAULT}" in d.ctl("status").stdout

    # A same-subnet gateway that does not answer: the reason names ARP, now, and RTT is "-".
    charter = d.wait_state("charter", "down", timeout=10)
    # What took it down is said once; then each round says how the path is now.
    labkit.wait_until(lambda: d.wan("charter")["reason"].startswith("0/2 targets answered within"), 5,
                      "charter's reason to be the last round's")
    charter = d.wan("charter")
    print(f"\ncharter: {charter['reason']}")
    assert f"gateway {SILENT_GATEWAY} does not answer ARP" in charter["reason"], charter
    assert charter["rtt_ms"] is None and charter["loss_pct"] == 100, charter
    assert f"WAN charter (ether1) is down: 2 probe rounds failed in a row: 0/2 targets answered within" in d.log()
    assert f"gateway {SILENT_GATEWAY} does not answer ARP" in d.log()
    table = d.ctl("status").stdout
    assert f"does not answer ARP" in table and "charter: down (" in table, table

    # Fixed on reload: the warnings go, charter comes up, and its reason is the probes' word now.
    lab.run("rtr", f"ip route del {FOREIGN_DEFAULT}")
    config["wans"][0]["gateway"] = "203.0.113.1"
    write(lab, "wanbalance.json", config, 0o644)
    proc = d.ctl("reload")
    assert proc.returncode == 0, proc.stderr
    assert "warning: live check" not in proc.stderr, proc.stderr
    assert d.status()["warnings"] == []
    d.wait_state("charter", "up", timeout=10)
    labkit.wait_until(lambda: d.wan("charter")["reason"] == "2/2 targets answered", 5,
                      "charter's reason to say how its probes do now")
    assert all(w["reason"] == "2/2 targets answered" and w["rtt_ms"] for w in d.status()["wans"])
    assert d.stop() == 0


def test_reload_returns_the_live_checks_warnings(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    assert d.status()["warnings"] == []
    os.chmod(d.config_path, 0o600)
    proc = d.ctl("reload")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: live check: {d.config_path}: mode 0600" in proc.stderr, proc.stderr
    assert [w["path"] for w in d.status()["warnings"]] == [""]
    assert "wanbalance_live_check_warnings 1" in d.ctl("status", "--prometheus").stdout
    assert d.stop() == 0
