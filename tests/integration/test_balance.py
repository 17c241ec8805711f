# Issue 2, balancing: new LAN connections spread over the WANs by the configured classifier and
# weights, tiers keep a backup idle, and the kernel holds exactly the ruleset the config produces.
import re
from collections import Counter

import labkit


def test_default_classifier_spreads_one_hosts_connections(lab, need_build):
    d = lab.start_daemon(lab.article_config())
    d.wait_ready()
    spread = lab.spread(200, src=labkit.LAN_HOST)
    assert spread["failed"] == 0, spread
    # Both addresses and ports are hashed: one host's connections use both WANs (~100 each).
    assert spread["charter"] >= 60 and spread["integra"] >= 60, spread


def test_src_address_keeps_each_lan_host_on_one_wan(lab, need_build):
    d = lab.start_daemon(lab.article_config(balance={"classifier": "src-address"}))
    d.wait_ready()
    hosts = [f"192.168.88.{i}" for i in range(11, 41)]
    per_host = {}
    for host in hosts:
        per_host[host] = lab.spread(8, src=host)
        assert per_host[host]["failed"] == 0, (host, per_host[host])
        assert len(per_host[host]) == 1, f"{host} used several WANs: {per_host[host]}"
    wans = Counter(next(iter(c)) for c in per_host.values())
    # 30 hosts hashed over two WANs: both are used.
    assert wans["charter"] >= 5 and wans["integra"] >= 5, wans


def test_weights_three_to_one(lab, need_build):
    config = lab.article_config()
    config["wans"][0]["weight"] = 3
    d = lab.start_daemon(config)
    d.wait_ready()
    spread = lab.spread(400, src=labkit.LAN_HOSTS)
    assert spread["failed"] == 0, spread
    share = spread["charter"] / 400
    assert 0.65 <= share <= 0.85, spread
    routes = lab.run("rtr", f"ip -4 route show table {labkit.BALANCED_TABLE}").stdout
    assert re.search(r"nexthop via 203\.0\.113\.1 dev ether1 weight 3", routes), routes


def test_higher_tier_carries_no_lan_traffic_while_lower_tier_is_up(lab, need_build):
    config = lab.article_config()
    config["wans"][1]["tier"] = 1
    d = lab.start_daemon(config)
    d.wait_ready()
    spread = lab.spread(100, src=labkit.LAN_HOSTS)
    assert spread == Counter(charter=100), spread
    default = lab.run("rtr", f"ip -4 route show default table {labkit.BALANCED_TABLE}").stdout
    assert "ether2" not in default and "ether1" in default, default
    status = {w["name"]: w for w in d.status()["wans"]}
    assert status["integra"]["state"] == "up" and not status["integra"]["active"]


def test_kernel_holds_exactly_the_ruleset_wanbalancectl_prints(lab, need_build):
    config = lab.article_config()
    d = lab.start_daemon(config)
    d.wait_ready()
    printed = d.ctl("ruleset", "--config", str(d.config_path), "--full", check=True).stdout
    table = re.search(r"^table inet wanbalance \{.*?^\}$", printed, re.S | re.M).group(0)
    listed = labkit.zero_counters(lab.run("rtr", "nft list table inet wanbalance").stdout).strip()
    assert listed == table
    rules = lab.run("rtr", "ip -4 rule show").stdout
    for line in re.findall(r"^#   ip rule add priority (\d+) (.*) proto wanbalance$", printed, re.M):
        assert re.search(rf"^{line[0]}:\s", rules, re.M), (line, rules)
    # The ruleset text is valid nft input, and so is the default one, whose balance maps are
    # summed up: 1021 buckets, shared by the two WANs.
    lab.run("rtr", ["nft", "-c", "-f", "-"], input=printed)
    summary = d.ctl("ruleset", "--config", str(d.config_path), check=True).stdout
    m = re.search(r"# 1021 buckets: (\d+) to wan_charter, (\d+) to wan_integra ", summary)
    assert m and int(m[1]) + int(m[2]) == 1021, summary
    assert len(summary) < len(printed) / 2
    lab.run("rtr", ["nft", "-c", "-f", "-"], input=summary)
