# Issue 12, policy rules and sticky sessions with packets in the lab: the internet's servers see
# which WAN carried each connection. A rule sends its traffic over its policy's members while the
# rest stays balanced; "main" leaves a destination to the router's main table; a policy whose
# members are all down applies its last resort; members fail over (probes, `set WAN down`) and
# keep their tiers; sticky sources keep their WAN until their entry times out; a reload that
# adds a rule drops no flow and forgets no health; status and `ruleset` show the rules; IPv6 has
# rules of its own; the main/unreachable ip rules exist only when needed and a clean stop leaves
# nothing.
#
# One lab serves the whole module (each test starts and stops its own daemon, the fixture puts
# the lab back as it found it); a test that fails, or a lab that cannot be put back, gets the lab
# torn down and the next test a fresh one.
import re
import shutil
import sys
import time
from collections import Counter

import pytest

import labkit
from labkit import LAN_HOSTS, LAN_HOSTS6, SERVER, SERVER6
from labwatch import EventWatch, balance_map, conntrack_entries

pytestmark = pytest.mark.root     # builds network namespaces: skipped without root

FAST_PROBE = {"interval_ms": 200, "down_after": 3}
HTTPS = 443
WAN_MARK = {"charter": 0x100, "integra": 0x200}
OTHER = {"charter": "integra", "integra": "charter"}
MASK = 0x3f00

# More servers on the internet's lo (one whoami server on 0.0.0.0:443 answers for all of them):
# two /27 blocks, so rules can name them by CIDR.
BLOCK_A = "192.0.2.128/27"
BLOCK_B = "192.0.2.160/27"
BLOCK_A_HOSTS = "192.0.2.128-192.0.2.159"
BLOCK_B_HOSTS = "192.0.2.160-192.0.2.191"
EXTRA_SERVERS = [f"192.0.2.{i}" for i in range(128, 192)]

INTEGRA_ONLY = {"members": [{"wan": "integra"}]}
PAIR = {"members": [{"wan": "charter"}, {"wan": "integra"}]}
HTTPS_RULE = {"name": "https", "dst": [f"{SERVER}/32"], "proto": "tcp", "dst_port": [str(HTTPS)],
              "policy": "integra_only"}


# -- the shared lab -------------------------------------------------------------------------

class Ctx:
    """What a test gets: the shared lab, and daemons started on it (stopped afterwards)."""

    def __init__(self, lab):
        self.lab = lab
        self.watches = []
        self.held = []

    def start(self, config, ipv6=False):
        """wanbalanced on `config`, once every WAN answered probes (in both families with
        ipv6); returns the daemon and an EventWatch on its log."""
        d = self.lab.start_daemon(config)
        d.wait_ready()

        def answered():
            wans = d.status()["wans"]
            return all(w["rtt_ms"] and (not ipv6 or (w.get("ipv6") or {}).get("rtt_ms"))
                       for w in wans)
        labkit.wait_until(answered, 10, "every WAN to answer probes")
        watch = EventWatch(d)
        self.watches.append(watch)
        return d, watch

    def hold(self, n, **kwargs):
        """lab.hold_connections, closed at the end of the test if the test did not."""
        held = self.lab.hold_connections(n, **kwargs)
        self.held.append(held)
        return held


def _new_lab():
    lab = labkit.Lab()
    lab.up()
    try:
        lab.add_addresses("inet", EXTRA_SERVERS)
        lab.start_server("inet", bind="0.0.0.0", port=HTTPS)
        lab.ensure_server()
        lab.ensure_server(family="ipv6")
        lab.wait_ipv6()
    except BaseException:
        lab.down()
        raise
    return lab


def _put_back(lab, ctx):
    """Stop the test's daemons and undo what tests change; raises when wanbalance left
    anything behind."""
    for watch in ctx.watches:
        watch.stop()
    for held in ctx.held:
        if held.proc.poll() is None:
            held.proc.kill()
            held.proc.wait()
    for d in lab.daemons:
        if d.running():
            d.stop()
    for wan in ("charter", "integra"):
        lab.upstream(wan, up=True)
    for route in lab.run("rtr", "ip -4 route show default").stdout.splitlines():
        lab.run("rtr", ["ip", "-4", "route", "del", *route.split()])
    lab.run("rtr", "conntrack -F", check=False)
    shutil.rmtree(lab.state_dir, ignore_errors=True)   # no override outlives its test
    assert "wanbalance" not in lab.run("rtr", "nft list tables").stdout
    for flag in ("-4", "-6"):
        left = [line for line in lab.run("rtr", f"ip {flag} rule show").stdout.splitlines()
                if re.search(r"proto (87|wanbalance)\b", line)]
        assert not left, left


@pytest.fixture(scope="module")
def shared_lab():
    holder = {}
    yield holder
    if holder.get("lab"):
        holder["lab"].down()


@pytest.fixture
def ctx(shared_lab, request, need_build):
    lab = shared_lab.get("lab") or _new_lab()
    shared_lab["lab"] = lab
    first = len(lab.daemons)
    context = Ctx(lab)
    reusable = False
    try:
        yield context
        report = getattr(request.node, "rep_call", None)
        reusable = report is not None and report.passed
        if not reusable:
            for i, daemon in enumerate(lab.daemons[first:], first):
                print(f"--- wanbalanced #{i} log (tail) ---\n{daemon.log_tail(80)}",
                      file=sys.stderr)
        _put_back(lab, context)
    except Exception as e:  # noqa: BLE001 - a lab that cannot be put back is replaced
        print(f"lab {lab.prefix} not reusable: {e}", file=sys.stderr)
        reusable = False
    finally:
        if not reusable:
            shared_lab["lab"] = None
            lab.down()


# -- helpers ----------------------------------------------------------------------------------

def wans_of(lab, results):
    """Counter of the WAN that carried each connection ('failed' for failures)."""
    sources = lab.wan_sources()
    return Counter("failed" if not r["ok"] else sources.get(r["seen"], r["seen"])
                   for r in results)


def both_used(spread, least=1):
    return spread["failed"] == 0 and spread["charter"] >= least and spread["integra"] >= least


def only(wan, n):
    return Counter({wan: n})


def rules_status(d):
    return {r["name"]: r for r in d.status()["rules"]}


def set_wan(d, wan, mode, state):
    result = d.ctl("set", wan, mode)
    assert result.returncode == 0, result.stderr
    d.wait_state(wan, state, timeout=10)


def nft_objects(lab):
    """The chains, maps and sets of table inet wanbalance by "KIND NAME", as listed (counters
    and expiry times blanked)."""
    text = lab.run("rtr", "nft list table inet wanbalance").stdout
    text = re.sub(r"packets \d+ bytes \d+", "packets N bytes N", text)
    text = re.sub(r" expires [0-9dhms]+", "", text)
    return {f"{m[1]} {m[2]}": m[0] for m in
            re.finditer(r"^\t(chain|map|set) (\S+) \{\n.*?^\t\}$", text, re.M | re.S)}


def sticky_wans(lab, rule, source):
    """The WANs whose sticky set of `rule` holds an entry for `source`."""
    found = set()
    for name, body in nft_objects(lab).items():
        m = re.fullmatch(rf"set sticky6?_{re.escape(rule)}_(\w+)", name)
        if m and re.search(rf"[\s{{,]{re.escape(source)}[\s,}}]", body):
            found.add(m[1])
    return found


def own_rules(lab, family="ipv4"):
    flag = "-6" if family == "ipv6" else "-4"
    return [line for line in lab.run("rtr", f"ip {flag} rule show").stdout.splitlines()
            if re.search(r"proto (87|wanbalance)\b", line)]


# -- 1. a rule over one WAN, the rest balanced ------------------------------------------------

def test_https_to_one_server_goes_over_integra_and_the_rest_stays_balanced(ctx):
    lab = ctx.lab
    ctx.start(lab.article_config(policies={"integra_only": INTEGRA_ONLY}, rules=[HTTPS_RULE]))
    assert lab.spread(100, src=LAN_HOSTS, port=HTTPS) == only("integra", 100)
    # Another port of that server, the same port of another server, UDP: balanced as before.
    for other in ({"port": labkit.TCP_PORT}, {"dst": BLOCK_A_HOSTS, "port": HTTPS},
                  {"udp": True}):
        spread = lab.spread(100, src=LAN_HOSTS, **other)
        assert both_used(spread, least=20), (other, spread)
    assert lab.spread(40, src=labkit.LAN_HOST, port=HTTPS) == only("integra", 40)


# -- 2. "main": the router's main table decides -----------------------------------------------

def test_main_rule_leaves_a_destination_to_the_main_table(ctx):
    lab = ctx.lab
    # What a DHCP client or ifupdown would put in main; wanbalance shadows it for the rest.
    lab.run("rtr", "ip -4 route add default via 203.0.113.1 dev ether1")
    ctx.start(lab.article_config(rules=[{"name": "vpn", "dst": [BLOCK_A], "policy": "main"}]))
    assert lab.spread(60, src=LAN_HOSTS, dst=BLOCK_A_HOSTS, port=HTTPS) == only("charter", 60)
    assert both_used(lab.spread(100, src=LAN_HOSTS), least=20)
    assert both_used(lab.spread(60, src=LAN_HOSTS, dst=BLOCK_B_HOSTS, port=HTTPS), least=10)
    # They carry neither WAN's mark: only the main table routes them.
    marks = {e.mark & MASK for e in conntrack_entries(lab, dport=HTTPS)
             if e.dst in EXTRA_SERVERS[:32]}
    assert len(marks) == 1 and marks.isdisjoint(WAN_MARK.values()), marks

    # Main's default moves to integra: so do they, and only they.
    lab.run("rtr", "ip -4 route replace default via 198.51.100.1 dev ether2")
    assert lab.spread(60, src=LAN_HOSTS, dst=BLOCK_A_HOSTS, port=HTTPS) == only("integra", 60)
    assert both_used(lab.spread(100, src=LAN_HOSTS), least=20)


# -- 3. last_resort "unreachable" -------------------------------------------------------------

def test_unreachable_last_resort_rejects_at_once_while_the_member_is_down(ctx):
    lab = ctx.lab
    d, watch = ctx.start(lab.article_config(
        probe=FAST_PROBE,
        policies={"strict": {"members": [{"wan": "integra"}], "last_resort": "unreachable"}},
        rules=[{"name": "strict", "dst": [BLOCK_A], "policy": "strict"}]))
    assert lab.spread(40, src=LAN_HOSTS, dst=BLOCK_A_HOSTS, port=HTTPS) == only("integra", 40)

    mark = time.monotonic()
    lab.upstream("integra", up=False)
    watch.wait("wan-down", "integra", since=mark, timeout=10)
    # The router answers the SYN with an ICMP error. The kernel rate-limits those per source
    # (a burst of about five, then one a second), so each attempt comes from a source of its own.
    start = time.monotonic()
    results = lab.connect_many(6, src="192.168.88.31-192.168.88.36", dst=BLOCK_A_HOSTS,
                               port=HTTPS, timeout=3.0)
    took = time.monotonic() - start
    assert all(not r["ok"] and r["error"] in ("No route to host", "Network is unreachable")
               for r in results), results
    assert took < 2.0, f"refusal took {took:.2f} s: a timeout, not a rejection"
    # Everything else carries on over charter.
    assert lab.spread(40, src=LAN_HOSTS) == only("charter", 40)
    assert lab.spread(20, src=LAN_HOSTS, dst=BLOCK_B_HOSTS, port=HTTPS) == only("charter", 20)

    mark = time.monotonic()
    lab.upstream("integra", up=True)
    watch.wait("wan-up", "integra", since=mark, timeout=10)
    assert lab.spread(40, src=LAN_HOSTS, dst=BLOCK_A_HOSTS, port=HTTPS) == only("integra", 40)
    assert rules_status(d)["strict"]["wan"] == "integra"


# -- 4. members fail over, are drained, and tiers ---------------------------------------------

def test_policy_members_fail_over_drain_and_keep_their_tiers(ctx):
    lab = ctx.lab
    d, watch = ctx.start(lab.article_config(
        probe=FAST_PROBE,
        policies={"pair": PAIR,
                  "backup": {"members": [{"wan": "charter"}, {"wan": "integra", "tier": 1}]}},
        rules=[{"name": "pair", "dst": [BLOCK_A], "policy": "pair"},
               {"name": "backup", "dst": [BLOCK_B], "policy": "backup"}]))

    def pair(n=60):
        return lab.spread(n, src=LAN_HOSTS, dst=BLOCK_A_HOSTS, port=HTTPS)

    def backup(n=40):
        return lab.spread(n, src=LAN_HOSTS, dst=BLOCK_B_HOSTS, port=HTTPS)

    assert both_used(pair(), least=10)
    assert backup() == only("charter", 40)     # the tier-1 member idles
    set_wan(d, "charter", "down", "disabled")
    assert pair() == only("integra", 60)
    assert backup() == only("integra", 40)
    set_wan(d, "charter", "auto", "up")
    assert both_used(pair(), least=10)
    assert backup() == only("charter", 40)

    # The tier-1 member down changes nothing for its policy; the pair goes on with charter.
    set_wan(d, "integra", "down", "disabled")
    assert backup() == only("charter", 40)
    assert pair() == only("charter", 60)
    set_wan(d, "integra", "auto", "up")

    # A failure the probes find moves the tier-0 member's traffic just the same, and back.
    mark = time.monotonic()
    lab.upstream("charter", up=False)
    watch.wait("wan-down", "charter", since=mark, timeout=10)
    assert backup() == only("integra", 40)
    assert pair() == only("integra", 60)
    mark = time.monotonic()
    lab.upstream("charter", up=True)
    watch.wait("wan-up", "charter", since=mark, timeout=10)
    assert backup() == only("charter", 40)
    assert both_used(pair(), least=10)


# -- 5. sticky sessions -----------------------------------------------------------------------

STICKY_TIMEOUT_S = 4
STICKY_SOURCE = "192.168.88.20"


def test_sticky_src_keeps_a_source_on_its_wan_until_the_timeout(ctx):
    lab = ctx.lab
    d, watch = ctx.start(lab.article_config(probe=FAST_PROBE, rules=[
        {"name": "stick_src", "dst": [BLOCK_A], "policy": "balanced", "sticky": "src",
         "sticky_timeout_s": STICKY_TIMEOUT_S},
        {"name": "stick_pair", "dst": [BLOCK_B], "policy": "balanced", "sticky": "src-dst",
         "sticky_timeout_s": STICKY_TIMEOUT_S}]))
    s = STICKY_SOURCE

    def fifty(src=s):
        """One connection, then 49 more to other destinations of the block, from one source."""
        first = wans_of(lab, lab.connect_many(1, src=src, dst=EXTRA_SERVERS[0], port=HTTPS))
        rest = wans_of(lab, lab.connect_many(49, src=src, dst="192.0.2.129-192.0.2.159",
                                             port=HTTPS, concurrency=10))
        return first + rest

    # The classifier hashes ports too: without the rule this source's connections spread.
    assert both_used(lab.spread(60, src=s), least=10)
    first = fifty()
    assert len(first) == 1 and first["failed"] == 0, first
    wan = next(iter(first))
    other = OTHER[wan]
    assert sticky_wans(lab, "stick_src", s) == {wan}

    # Its WAN goes down: its entry goes at once, and it moves, all of it.
    mark = time.monotonic()
    lab.upstream(wan, up=False)
    watch.wait("wan-down", wan, since=mark, timeout=10)
    labkit.wait_until(lambda: not sticky_wans(lab, "stick_src", s), 1,
                      f"{s}'s entry for {wan} to go with {wan}")
    assert fifty() == only(other, 50)
    assert sticky_wans(lab, "stick_src", s) == {other}

    # And stays after the recovery: one connection a second (well inside the timeout) keeps it.
    mark = time.monotonic()
    lab.upstream(wan, up=True)

    def recovered():
        one = wans_of(lab, lab.connect_many(1, src=s, dst=EXTRA_SERVERS[1], port=HTTPS))
        assert one == only(other, 1), one
        return watch.select("wan-up", wan, since=mark)
    labkit.wait_until(recovered, 10, f"{wan} to come back", interval=1.0)
    assert fifty() == only(other, 50)
    last = time.monotonic()

    # sticky_timeout_s without a new connection: the entry is gone, not before.
    labkit.wait_until(lambda: not sticky_wans(lab, "stick_src", s), STICKY_TIMEOUT_S + 5,
                      f"{s}'s sticky entry to time out")
    assert time.monotonic() - last >= STICKY_TIMEOUT_S - 0.5
    # Balanced again: the next sources' first connections go both ways.
    sources = [f"192.168.88.{i}" for i in range(21, 41)]
    spread = Counter()
    for i, src in enumerate(sources):
        spread += wans_of(lab, lab.connect_many(1, src=src, dst=EXTRA_SERVERS[i], port=HTTPS))
    assert both_used(spread, least=2), spread

    # src-dst: each destination of one source keeps its WAN; the destinations go both ways.
    per_dst = {}
    for dst in EXTRA_SERVERS[32:48]:
        used = wans_of(lab, lab.connect_many(1, src=s, dst=dst, port=HTTPS))
        used += wans_of(lab, lab.connect_many(5, src=s, dst=dst, port=HTTPS))
        assert len(used) == 1 and used["failed"] == 0, (dst, used)
        per_dst[dst] = next(iter(used))
    assert both_used(Counter(per_dst.values())), per_dst


# -- 6. a reload that adds a rule -------------------------------------------------------------

def established(lab, port):
    by_wan = {"charter": set(), "integra": set()}
    for e in conntrack_entries(lab, dst=SERVER, dport=port):
        if e.state == "ESTABLISHED" and e.wan:
            by_wan[e.wan].add(e)
    return by_wan


def reload_with(lab, d, watch, config):
    mark = time.monotonic()
    lab.write_config(d, config)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    watch.wait("config-reloaded", since=mark, timeout=10)
    return mark


def test_reload_adding_a_rule_drops_no_flow_and_keeps_health(ctx):
    lab = ctx.lab
    config = lab.article_config(probe=FAST_PROBE, policies={"integra_only": INTEGRA_ONLY},
                                rules=[HTTPS_RULE])
    d, watch = ctx.start(config)
    # Long-lived connections over both WANs (and over the rule's WAN), talking every 50 ms.
    held = ctx.hold(20, src=LAN_HOSTS, exchange_every=0.05)
    held_https = ctx.hold(6, src=LAN_HOSTS, port=HTTPS, exchange_every=0.05)
    assert (held.ok, held_https.ok) == (20, 6)
    before = established(lab, labkit.TCP_PORT), established(lab, HTTPS)
    assert before[0]["charter"] and before[0]["integra"], before
    assert not before[1]["charter"] and len(before[1]["integra"]) == 6, before
    objects = nft_objects(lab)

    config["policies"]["pair"] = PAIR
    config["rules"].append({"name": "added", "dst": [BLOCK_A], "policy": "pair"})
    reloaded = reload_with(lab, d, watch, config)
    assert both_used(lab.spread(60, src=LAN_HOSTS, dst=BLOCK_A_HOSTS, port=HTTPS), least=10)
    assert lab.spread(20, src=LAN_HOSTS, port=HTTPS) == only("integra", 20)

    # Only the rule's parts are new or changed; the rest of the table is as it was.
    after = nft_objects(lab)
    assert set(objects) <= set(after), set(objects) - set(after)
    new = set(after) - set(objects)
    assert {"chain rule_added", "map policy_pair"} <= new, new
    assert all(re.fullmatch(r"chain rule_added|map policy6?_pair|map rules[46]_\d+", k)
               for k in new), new
    changed = {k for k in objects if objects[k] != after[k]}
    assert all(re.fullmatch(r"chain rules[46]|map rules[46]_\d+", k) for k in changed), \
        {k: (objects[k], after[k]) for k in changed}
    # The very same conntrack entries (ids, tuples, marks), and every flow kept talking, for
    # a second after the reload too (about 20 exchanges each).
    assert (established(lab, labkit.TCP_PORT), established(lab, HTTPS)) == before
    time.sleep(max(0.0, reloaded + 1.0 - time.monotonic()))
    for r in held.release() + held_https.release():
        assert r["end_ok"] and r["end_seen"] == r["seen"], r
        assert r["exchanges"] >= 10 and r["exchange_max_ms"] < 1000, r

    # Health is kept: a WAN that is down stays down through a reload, nothing flaps.
    mark = time.monotonic()
    lab.upstream("charter", up=False)
    watch.wait("wan-down", "charter", since=mark, timeout=10)
    health = [(w["name"], w["state"], w["since"], w.get("transitions")) for w in d.status()["wans"]]
    config["rules"].append({"name": "added2", "dst": [BLOCK_B], "policy": "pair"})
    mark = reload_with(lab, d, watch, config)
    assert [(w["name"], w["state"], w["since"], w.get("transitions"))
            for w in d.status()["wans"]] == health
    assert lab.spread(40, src=LAN_HOSTS, dst=BLOCK_B_HOSTS, port=HTTPS) == only("integra", 40)
    assert lab.spread(40, src=LAN_HOSTS) == only("integra", 40)
    # Longer than up_after rounds: a prober started afresh would have called it up by now.
    time.sleep(0.2 * 5 + 0.5)
    assert d.wan("charter")["state"] == "down"
    assert [e.kind for e in watch.select(since=mark)] == ["config-reloaded"], watch.events


# -- 7. what operators see --------------------------------------------------------------------

def test_status_lists_each_rules_wan_and_connections_and_ruleset_shows_the_maps(ctx):
    lab = ctx.lab
    config = lab.article_config(
        policies={"integra_only": INTEGRA_ONLY, "pair": PAIR},
        rules=[HTTPS_RULE, {"name": "duo", "dst": [BLOCK_A], "policy": "pair"},
               {"name": "vpn", "dst": [BLOCK_B], "policy": "main"}])
    d, _ = ctx.start(config)

    # The kernel holds exactly the table `ruleset` prints, with the compiled rules in it.
    printed = d.ctl("ruleset", "--config", str(d.config_path), "--full", check=True).stdout
    table = re.search(r"^table inet wanbalance \{.*?^\}$", printed, re.S | re.M)[0]
    for part in ("map rules4_1 {", "chain rules4 {", "map policy_integra_only {",
                 "map policy_pair {", "chain rule_https {", "chain rule_duo {",
                 "chain rule_vpn {", "chain to_main {"):
        assert part in table, part
    assert labkit.zero_counters(lab.run("rtr", "nft list table inet wanbalance").stdout).strip() == table
    assert set(balance_map(lab, "policy_integra_only").values()) == {"integra"}
    assert set(balance_map(lab, "policy_pair").values()) == {"charter", "integra"}
    lab.run("rtr", ["nft", "-c", "-f", "-"], input=printed)

    held = ctx.hold(3, src=LAN_HOSTS, port=HTTPS)
    assert held.ok == 3
    labkit.wait_until(lambda: rules_status(d)["https"]["connections"] == 3, 5,
                      "status to count the rule's 3 connections")
    status = d.status()
    assert [r["name"] for r in status["rules"]] == ["https", "duo", "vpn"]
    rules = {r["name"]: r for r in status["rules"]}
    https = {k: rules["https"].get(k) for k in ("name", "policy", "wan", "connections")}
    assert https == {"name": "https", "policy": "integra_only", "wan": "integra",
                     "connections": 3}, rules
    assert rules["duo"]["policy"] == "pair" and rules["duo"]["connections"] == 0, rules
    assert rules["vpn"]["policy"] == "main" and rules["vpn"]["connections"] == 0, rules

    # The table: one line per rule with its policy, its WAN and its connection count.
    text = d.ctl("status", check=True).stdout
    for name, policy, wan, count in (("https", "integra_only", "integra", 3),
                                     ("duo", "pair", None, 0), ("vpn", "main", None, 0)):
        lines = [ln for ln in text.splitlines() if re.search(rf"\b{name}\b", ln)]
        assert len(lines) == 1, (name, text)
        assert re.search(rf"\b{policy}\b", lines[0]) and re.search(rf"\b{count}\b", lines[0]) \
            and (not wan or re.search(rf"\b{wan}\b", lines[0])), (lines, text)

    # Where a rule sends follows health: the pair with charter out sends to integra alone.
    set_wan(d, "charter", "down", "disabled")
    labkit.wait_until(lambda: rules_status(d)["duo"]["wan"] == "integra", 5,
                      "status to show the duo rule on integra")
    assert set(balance_map(lab, "policy_pair").values()) == {"integra"}
    assert all(r["end_ok"] for r in held.release())


# -- 8. IPv6 ----------------------------------------------------------------------------------

def test_ipv6_rule_sends_one_server_over_integra(ctx):
    lab = ctx.lab
    before = lab.kernel_state(families=labkit.FAMILIES)
    config = lab.dual_stack_config(
        probe=FAST_PROBE, policies={"integra_only": INTEGRA_ONLY},
        rules=[{"name": "v6", "dst": [f"{SERVER6}/128"], "proto": "tcp",
                "dst_port": [str(labkit.TCP_PORT)], "policy": "integra_only"}])
    d, watch = ctx.start(config, ipv6=True)
    assert lab.spread(60, src=LAN_HOSTS6, dst=SERVER6) == only("integra", 60)
    assert both_used(lab.spread(60, src=LAN_HOSTS6, dst=SERVER6, udp=True), least=10)
    assert both_used(lab.spread(60, src=LAN_HOSTS, dst=SERVER), least=10)   # IPv4: no rule
    assert rules_status(d)["v6"]["wan"] == "integra"
    assert set(balance_map(lab, "policy6_integra_only").values()) == {"integra"}

    # Integra's IPv6 alone dies: the policy's last resort ("balanced") sends it over charter,
    # and IPv4 is not concerned.
    mark = time.monotonic()
    lab.upstream("integra", up=False, family="ipv6")
    watch.wait("wan-down", "integra", since=mark, timeout=10, family="ipv6")
    assert lab.spread(40, src=LAN_HOSTS6, dst=SERVER6) == only("charter", 40)
    assert both_used(lab.spread(60, src=LAN_HOSTS, dst=SERVER), least=10)
    mark = time.monotonic()
    lab.upstream("integra", up=True, family="ipv6")
    watch.wait("wan-up", "integra", since=mark, timeout=10, family="ipv6")
    assert lab.spread(40, src=LAN_HOSTS6, dst=SERVER6) == only("integra", 40)

    assert d.stop() == 0
    after = lab.kernel_state(families=labkit.FAMILIES)
    for key in before:
        assert after[key] == before[key], key


# -- 9. the kernel's view: ip rules only when needed, nothing after a stop ---------------------

def test_main_and_unreachable_ip_rules_exist_only_when_needed(ctx):
    lab = ctx.lab
    before = lab.kernel_state(families=labkit.FAMILIES)
    plain = lab.article_config(policies={"integra_only": INTEGRA_ONLY}, rules=[HTTPS_RULE])
    d, watch = ctx.start(plain)
    rules = own_rules(lab)
    # suppress, one fwmark rule per WAN, the balanced table: as without rules.
    assert len(rules) == 4, rules
    assert not [r for r in rules if re.search(r"fwmark \S+ lookup main\b|unreachable", r)], rules
    plain_table = nft_objects(lab)

    needy = lab.article_config(
        policies={"integra_only": INTEGRA_ONLY,
                  "strict": {"members": [{"wan": "integra"}], "last_resort": "unreachable"}},
        rules=[HTTPS_RULE, {"name": "vpn", "dst": [BLOCK_A], "policy": "main"},
               {"name": "strict", "dst": [BLOCK_B], "policy": "strict"}])
    reload_with(lab, d, watch, needy)
    rules = own_rules(lab)
    assert len(rules) == 6, rules
    prio, marks = {}, {}
    for line in rules:
        at = int(re.match(r"(\d+):", line)[1])
        fwmark = re.search(r"fwmark (0x[0-9a-f]+)/(0x[0-9a-f]+)", line)
        assert not fwmark or fwmark[2] == hex(MASK), line
        if fwmark and re.search(r"lookup main\b", line):
            kind = "main"
        elif fwmark and re.search(r"\bunreachable\b", line):
            kind = "unreachable"
        elif fwmark:
            kind = f"wan {fwmark[1]}"
        else:
            continue
        prio[kind], marks[kind] = at, int(fwmark[1], 16)
    balanced = [int(re.match(r"(\d+):", line)[1]) for line in rules
                if re.search(rf"lookup {labkit.BALANCED_TABLE}\b", line)]
    assert set(prio) == {"main", "unreachable", "wan 0x100", "wan 0x200"}, rules
    assert len(balanced) == 1, rules
    # After the WANs' rules, before the balanced table; marks of their own inside the mask.
    assert max(prio["wan 0x100"], prio["wan 0x200"]) < prio["main"] < prio["unreachable"] \
        < balanced[0], rules
    assert len(set(marks.values())) == 4 and all(m and m & ~MASK == 0 for m in marks.values())
    # They route: main's default takes the vpn rule's connections (to charter).
    lab.run("rtr", "ip -4 route add default via 203.0.113.1 dev ether1")
    assert lab.spread(20, src=LAN_HOSTS, dst=BLOCK_A_HOSTS, port=HTTPS) == only("charter", 20)
    assert lab.spread(20, src=LAN_HOSTS, dst=BLOCK_B_HOSTS, port=HTTPS) == only("integra", 20)

    # Back to the plain config: the rules go, and the table is the one it was.
    reload_with(lab, d, watch, plain)
    assert len(own_rules(lab)) == 4, own_rules(lab)
    assert nft_objects(lab) == plain_table
    assert d.stop() == 0
    lab.run("rtr", "ip -4 route del default")
    after = lab.kernel_state(families=labkit.FAMILIES)
    for key in before:
        assert after[key] == before[key], key
