// The WAN-state core, driven by events as the daemon drives it: a kernel snapshot, then the
// kernel applied, then probe rounds, overrides and reloads. No kernel, no root.
#include <doctest/doctest.h>

#include <algorithm>

#include "config_fixtures.hpp"
#include "core/wan_state.hpp"

using namespace wb;
using config_test::article;
using config_test::parse;

namespace {

const WallTime kT0 = WallTime{} + std::chrono::hours(24 * 365 * 50);

Config config_of(const std::string& text) {
    auto r = parse(text);
    REQUIRE(r.config);
    return *r.config;
}

LinkFacts usable_link(int ifindex) { return {ifindex, true, true, true, false, std::nullopt}; }

KernelFacts both_links() { return {{"ether1", usable_link(11)}, {"ether2", usable_link(12)}}; }

// A daemon in miniature: applies events, keeps every effect, and runs the "kernel" step that the
// daemon's reconcile runs (a snapshot, then KernelApplied) whenever an effect asks for it.
struct Driver {
    State state;
    KernelFacts links = both_links();
    WallTime now = kT0;
    Effects last;                    // of the last event (and the reconcile it caused)
    std::vector<Announcement> said;  // every announcement, in order
    std::vector<Flush> flushed;      // every flush, in order
    std::vector<LogLine> logged;

    explicit Driver(Config config, KernelFacts facts = both_links())
        : state(initial_state(std::move(config), kT0)), links(std::move(facts)) {
        reconcile();
    }

    Effects apply(const Event& e) {
        Step s = step(std::move(state), e, now);
        state = std::move(s.state);
        for (auto& l : s.effects.logs) logged.push_back(l);
        for (auto& a : s.effects.announcements) said.push_back(a);
        for (auto& f : s.effects.flushes) flushed.push_back(f);
        return s.effects;
    }
    void reconcile() {
        apply(KernelChanged{links});
        apply(KernelApplied{});
    }
    Effects event(const Event& e) {
        now += std::chrono::seconds(1);
        last = apply(e);
        if (last.reconcile) reconcile();
        return last;
    }
    void rounds(const std::string& wan, bool ok, unsigned n) {
        for (unsigned i = 0; i < n; ++i) event(ProbeRound{wan, ok, "", {}});
    }
    const WanState& wan(const std::string& name) { return state.wans[*find_wan(state, name)]; }
    size_t count(const char* kind) {
        return size_t(std::count_if(said.begin(), said.end(), [&](const Announcement& a) { return a.event.kind == kind; }));
    }
};

Config two_wans() { return config_of(article()); }

}  // namespace

TEST_CASE("start: usable links start up, logged once as a start, not announced as a failover") {
    Driver d(two_wans());
    CHECK(d.wan("charter").health() == Health::Up);
    CHECK(d.wan("integra").health() == Health::Up);
    CHECK(d.said.empty());
    REQUIRE(d.logged.size() == 2);
    CHECK(d.logged[0].message == "charter (ether1) starts up: link up, probing");
    CHECK(d.state.ready);
    CHECK(status_line(d.state) == "2/2 WANs up: charter, integra");
}

TEST_CASE("start: a missing interface starts down with the link's reason") {
    Config c = two_wans();
    State s = initial_state(c, kT0);
    Step st = step(std::move(s), KernelChanged{{{"ether1", usable_link(11)}}}, kT0);
    CHECK(st.state.wans[1].health() == Health::Down);
    CHECK(st.state.wans[1].of(wb::Family::V4).reason == "interface ether2 does not exist");
    CHECK(st.effects.announcements.empty());
}

TEST_CASE("probes: down after down_after failed rounds, up after up_after answered ones") {
    Driver d(two_wans());  // defaults: down_after 3, up_after 5
    d.rounds("charter", false, 2);
    CHECK(d.wan("charter").health() == Health::Up);
    d.rounds("charter", false, 1);
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(d.wan("charter").of(wb::Family::V4).reason == "3 probe rounds failed in a row");
    CHECK(d.count("wan-down") == 1);
    d.rounds("charter", false, 10);
    CHECK(d.count("wan-down") == 1);  // one event per transition, not per round
    d.rounds("charter", true, 4);
    CHECK(d.wan("charter").health() == Health::Down);
    d.rounds("charter", true, 1);
    CHECK(d.wan("charter").health() == Health::Up);
    CHECK(d.count("wan-up") == 1);
    CHECK(d.wan("charter").of(wb::Family::V4).transitions == 2);
}

TEST_CASE("probes: a failed round's problem is part of the reason") {
    Driver d(two_wans());
    for (int i = 0; i < 3; ++i) d.event(ProbeRound{"charter", false, "sendto 192.0.2.53: Network is unreachable", {}});
    CHECK(d.wan("charter").of(wb::Family::V4).reason == "3 probe rounds failed in a row: sendto 192.0.2.53: Network is unreachable");
}

TEST_CASE("reasons stay current: each round says how the path is now, and how far from turning") {
    Driver d(two_wans());  // defaults: down_after 3, up_after 5
    auto reason = [&] { return d.wan("charter").of(wb::Family::V4).reason; };
    CHECK(reason() == "link up, probing");
    d.event(ProbeRound{"charter", true, "2/2 targets answered", {}});
    CHECK(reason() == "2/2 targets answered");  // no longer "probing" once a round is in
    d.event(ProbeRound{"charter", false, "1/2 targets answered within 50 ms", {}});
    CHECK(d.wan("charter").health() == Health::Up);
    CHECK(reason() == "a probe round failed (1 of the 3 in a row that take it down): 1/2 targets answered within 50 ms");
    const std::string silent = "0/2 targets answered within 50 ms; gateway 203.0.113.1 does not answer ARP";
    d.event(ProbeRound{"charter", false, silent, {}});
    d.event(ProbeRound{"charter", false, silent, {}});
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(reason() == "3 probe rounds failed in a row: " + silent);
    CHECK(d.said.back().message == "WAN charter (ether1) is down: 3 probe rounds failed in a row: " + silent);
    d.event(ProbeRound{"charter", false, "0/2 targets answered within 600 ms", {}});
    CHECK(reason() == "0/2 targets answered within 600 ms");  // the gateway answers again
    d.event(ProbeRound{"charter", true, "2/2 targets answered", {}});
    CHECK(reason() == "2/2 targets answered (1 of the 5 good rounds in a row that bring it back)");
    CHECK(d.said.size() == 1);  // reasons change silently: no announcement, no log line per round
    CHECK(d.last.reconcile == false);
}

TEST_CASE("carrier loss takes a WAN down at once, without probe rounds, and flushes it") {
    Driver d(two_wans());
    d.links["ether1"].carrier = false;
    d.event(Timer{});
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(d.wan("charter").of(wb::Family::V4).reason == "no carrier on ether1");
    CHECK(d.count("wan-down") == 1);
    REQUIRE(d.flushed.size() == 1);
    CHECK(d.flushed[0].wan == "charter");
    // Rounds while the link is down change nothing: the link decides.
    d.rounds("charter", true, 20);
    CHECK(d.wan("charter").health() == Health::Down);
    // Carrier back: it must earn up_after rounds.
    d.links["ether1"].carrier = true;
    d.event(Timer{});
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(d.wan("charter").of(wb::Family::V4).reason == "link back, probing");
    d.rounds("charter", true, 5);
    CHECK(d.wan("charter").health() == Health::Up);
}

TEST_CASE("ha_pair: a link lost here keeps its connections for the other router; dead probes still flush") {
    Config c = config_of(R"({
      "wans": [
        { "name": "charter", "interface": "ether1", "gateway": "203.0.113.1", "snat": "203.0.113.4" },
        { "name": "integra", "interface": "ether2", "gateway": "198.51.100.1", "snat": "198.51.100.4" }
      ],
      "lans": ["ether3"],
      "ha_pair": true
    })");
    Driver d(c);
    d.links["ether1"].carrier = false;
    d.event(Timer{});
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(d.count("wan-down") == 1);
    CHECK(d.flushed.empty());
    CHECK(std::any_of(d.logged.begin(), d.logged.end(), [](const LogLine& l) {
        return l.message == "charter: connections kept for the other router of the HA pair (its link is lost here, "
                            "and conntrackd would delete them there too)";
    }));
    // The ISP dying is seen by both routers: the connections can go nowhere, here or there.
    for (int i = 0; i < 3; ++i) d.event(ProbeRound{"integra", false, "0/2 answered", {}});
    CHECK(d.wan("integra").health() == Health::Down);
    REQUIRE(d.flushed.size() == 1);
    CHECK(d.flushed[0].wan == "integra");
    // Without ha_pair the link loss flushes as always.
    c.ha_pair = false;
    Driver plain(c);
    plain.links["ether1"].carrier = false;
    plain.event(Timer{});
    REQUIRE(plain.flushed.size() == 1);
    CHECK(plain.flushed[0].wan == "charter");
}

TEST_CASE("override precedence: down beats link and probes, a dead link beats up, auto hands back") {
    Driver d(two_wans());
    d.event(OverrideRequested{"charter", Override::Up});
    d.rounds("charter", false, 10);
    CHECK(d.wan("charter").health() == Health::Up);
    CHECK(d.wan("charter").of(wb::Family::V4).reason == "forced up by operator");
    d.links["ether1"].carrier = false;
    d.event(Timer{});
    CHECK(d.wan("charter").health() == Health::Down);  // up cannot carry a dead link
    d.event(OverrideRequested{"charter", Override::Down});
    CHECK(d.wan("charter").health() == Health::Disabled);
    CHECK(d.wan("charter").of(wb::Family::V4).reason == "disabled by operator");
    d.links["ether1"].carrier = true;
    d.event(Timer{});
    d.rounds("charter", true, 20);
    CHECK(d.wan("charter").health() == Health::Disabled);
    d.event(OverrideRequested{"charter", Override::Auto});
    CHECK(d.wan("charter").health() == Health::Up);  // the machine kept probing meanwhile
}

TEST_CASE("override: an unknown WAN is refused with the configured names, nothing changes") {
    Driver d(two_wans());
    State before = d.state;
    Effects fx = d.event(OverrideRequested{"dsl", Override::Down});
    REQUIRE(fx.error);
    CHECK(*fx.error == "no WAN named \"dsl\" (configured: charter, integra)");
    CHECK_FALSE(fx.reconcile);
    CHECK(d.state.wans == before.wans);
}

TEST_CASE("flush decisions: only the dead WAN, once, and only after the kernel changed") {
    Driver d(two_wans());
    // Two failure reasons at once (probes, then carrier) still flush once.
    State s = d.state;
    for (int i = 0; i < 3; ++i) s = step(std::move(s), ProbeRound{"charter", false, "", {}}, kT0).state;
    CHECK(s.pending_flushes.size() == 1);
    KernelFacts no_carrier = both_links();
    no_carrier["ether1"].carrier = false;
    s = step(std::move(s), KernelChanged{no_carrier}, kT0).state;
    CHECK(s.pending_flushes.size() == 2);
    Step applied = step(std::move(s), KernelApplied{}, kT0);
    REQUIRE(applied.effects.flushes.size() == 1);
    CHECK(applied.effects.flushes[0].wan == "charter");
    CHECK(applied.effects.flushes[0].mark == d.state.config.wans[0].mark);
    CHECK(applied.state.pending_flushes.empty());
    // Nothing is flushed for a WAN that comes up, nor for the one that stayed up.
    Step again = step(applied.state, KernelApplied{}, kT0);
    CHECK(again.effects.flushes.empty());
}

TEST_CASE("flush decisions: none with flush_conntrack false") {
    Driver d(config_of(article("", "", R"(, "flush_conntrack": false)")));
    d.rounds("charter", false, 3);
    d.links["ether2"].carrier = false;
    d.event(Timer{});
    CHECK(d.flushed.empty());
    CHECK(d.count("wan-down") == 2);
}

TEST_CASE("events wait for the kernel: a transition is announced only by KernelApplied") {
    Driver d(two_wans());
    State s = d.state;
    Effects fx;
    for (int i = 0; i < 3; ++i) {
        Step st = step(std::move(s), ProbeRound{"charter", false, "", {}}, kT0);
        s = std::move(st.state);
        fx = st.effects;
        CHECK(fx.announcements.empty());
        CHECK(fx.flushes.empty());
    }
    CHECK(fx.reconcile);  // the third round decided: the kernel must change first
    CHECK(s.wans[0].health() == Health::Down);
    Step applied = step(std::move(s), KernelApplied{}, kT0);
    REQUIRE(applied.effects.announcements.size() == 1);
    const Announcement& a = applied.effects.announcements[0];
    CHECK(a.event.kind == "wan-down");
    CHECK(a.event.message_id == std::string(kMessageWanDown));
    CHECK(a.event.wan == "charter");
    CHECK(a.event.interface == "ether1");
    CHECK(a.level == Level::Warning);
    CHECK(a.message == "WAN charter (ether1) is down: 3 probe rounds failed in a row");
}

TEST_CASE("events carry the probe figures of the WAN") {
    Driver d(two_wans());
    for (int i = 0; i < 3; ++i) d.event(ProbeRound{"charter", false, "", {1.5, 75.0}});
    REQUIRE(d.count("wan-down") == 1);
    CHECK(d.said.back().event.rtt_us == 1500);
    CHECK(d.said.back().event.loss_pct == 75.0);
}

TEST_CASE("tiers: a backup takes traffic only while every primary is down") {
    Driver d(config_of(article("", R"(, "tier": 1)")));
    auto active = [&] { return active_wans(d.state.config, desired_inputs(d.state)).wans; };
    CHECK(active() == std::vector<size_t>{0});
    d.rounds("charter", false, 3);
    CHECK(active() == std::vector<size_t>{1});  // promoted
    CHECK_FALSE(d.state.all_down[0]);
    d.rounds("charter", true, 5);
    CHECK(active() == std::vector<size_t>{0});  // demoted again
}

TEST_CASE("all-down: one critical event, not one per round, and again after a recovery") {
    Driver d(two_wans());
    d.rounds("charter", false, 3);
    d.rounds("integra", false, 3);
    CHECK(d.state.all_down[0]);
    CHECK(d.count("all-down") == 1);
    d.rounds("charter", false, 30);
    d.rounds("integra", false, 30);
    CHECK(d.count("all-down") == 1);
    auto it = std::find_if(d.said.begin(), d.said.end(), [](const Announcement& a) { return a.event.kind == "all-down"; });
    CHECK(it->level == Level::Critical);
    CHECK(it->message == "every WAN is down; balancing over the 2 WANs whose link is up");
    d.rounds("integra", true, 5);
    CHECK_FALSE(d.state.all_down[0]);
    d.rounds("integra", false, 3);
    CHECK(d.count("all-down") == 2);
}

TEST_CASE("all-down: every WAN disabled by the operator says so") {
    Driver d(two_wans());
    d.event(OverrideRequested{"charter", Override::Down});
    d.event(OverrideRequested{"integra", Override::Down});
    REQUIRE(d.count("all-down") == 1);
    CHECK(d.said.back().message == "every WAN is down; every WAN is disabled by the operator: LAN traffic has no way out");
}

TEST_CASE("reload carries health, override and since over by WAN name") {
    Driver d(two_wans());
    d.rounds("charter", false, 3);
    d.event(OverrideRequested{"integra", Override::Up});
    WallTime charter_since = d.wan("charter").of(wb::Family::V4).since;
    // Same WANs (marks are allocated in order: the order stays), another weight and tier.
    Config next = config_of(article("", R"(, "weight": 3, "tier": 1)"));
    size_t said_before = d.said.size();
    Effects fx = d.event(Reloaded{next});
    CHECK(fx.reconcile);
    CHECK(fx.notes.empty());
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(d.wan("charter").of(wb::Family::V4).since == charter_since);
    CHECK(d.wan("charter").of(wb::Family::V4).transitions == 1);
    CHECK(d.wan("integra").override_mode == Override::Up);
    CHECK(d.said.size() == said_before);  // a reload never causes a flap
    CHECK(d.flushed.size() == 1);         // only charter's failover, earlier
    d.rounds("charter", true, 5);         // the machine's count went on across the reload
    CHECK(d.wan("charter").health() == Health::Up);
}

TEST_CASE("reload: a removed or renamed WAN is flushed and noted; a new one starts from the kernel") {
    Driver d(two_wans());
    Config next = config_of(R"({"wans": [
        {"name": "charter", "interface": "ether1", "gateway": "203.0.113.1"},
        {"name": "dsl", "interface": "ether2", "gateway": "198.51.100.1"}], "lans": ["ether3"]})");
    uint32_t integra_mark = d.state.config.wans[1].mark;
    Effects fx = d.event(Reloaded{next});
    CHECK(fx.notes == std::vector<std::string>{"integra removed or renumbered"});
    REQUIRE(d.flushed.size() == 1);
    CHECK(d.flushed[0].wan == "integra");
    CHECK(d.flushed[0].mark == integra_mark);
    CHECK_FALSE(find_wan(d.state, "integra"));
    CHECK(d.wan("dsl").health() == Health::Up);  // usable link: up, announced as a new WAN coming up
    CHECK(d.count("wan-up") == 1);
    CHECK_FALSE(fx.replace_table);
}

TEST_CASE("reload: a WAN whose gateway alone changed is the same WAN: nothing noted, nothing flushed") {
    Driver d(two_wans());
    Config next = config_of(R"({"wans": [
        {"name": "charter", "interface": "ether1", "gateway": "203.0.113.254"},
        {"name": "integra", "interface": "ether2", "gateway": "198.51.100.1"}], "lans": ["ether3"]})");
    Effects fx = d.event(Reloaded{next});
    CHECK(fx.notes.empty());
    CHECK(d.flushed.empty());
    CHECK(d.wan("charter").health() == Health::Up);
}

TEST_CASE("reload: a changed mark mask replaces the table") {
    Driver d(two_wans());
    Effects fx = d.event(Reloaded{config_of(article("", "", R"(, "mark_mask": "0xff0000")"))});
    CHECK(fx.replace_table);
    CHECK(fx.notes.size() == 2);  // both marks moved
}

TEST_CASE("auto gateway: followed from the kernel and logged when it changes") {
    Config c = config_of(R"({"wans": [
        {"name": "charter", "interface": "ether1", "gateway": "auto"},
        {"name": "integra", "interface": "ether2", "gateway": "198.51.100.1"}], "lans": ["ether3"]})");
    Driver d(c);
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(d.wan("charter").of(wb::Family::V4).reason == "no gateway known on ether1 (auto)");
    d.links["ether1"].auto_gateway = Ipv4::parse("203.0.113.1");
    d.event(Timer{});
    CHECK(d.wan("charter").inputs.gateway == Ipv4::parse("203.0.113.1"));
    CHECK(d.logged.back().message == "charter: gateway on ether1 is now 203.0.113.1 (auto)");
    d.rounds("charter", true, 5);
    CHECK(d.wan("charter").health() == Health::Up);
    d.links["ether1"].auto_gateway = Ipv4::parse("203.0.113.9");
    d.event(Timer{});
    CHECK(d.wan("charter").inputs.gateway == Ipv4::parse("203.0.113.9"));
    CHECK(d.wan("charter").health() == Health::Up);  // a new gateway is no failover
}

TEST_CASE("override names round-trip") {
    for (Override o : {Override::Auto, Override::Up, Override::Down, Override::Drain})
        CHECK(parse_override(override_name(o)) == o);
    CHECK_FALSE(parse_override("sideways"));
}

TEST_CASE("drain: no new connections and nothing flushed, an operator event; down then cuts what is left") {
    Driver d(two_wans());
    auto active = [&] { return active_wans(d.state.config, desired_inputs(d.state)).wans; };
    d.event(OverrideRequested{"integra", Override::Drain, ""});
    CHECK(d.wan("integra").health() == Health::Draining);
    CHECK(d.wan("integra").of(wb::Family::V4).reason == "drained by operator: no new connections, the open ones run out");
    CHECK(active() == std::vector<size_t>{0});
    CHECK(d.flushed.empty());
    CHECK(d.count("operator-set") == 1);
    CHECK(d.count("wan-down") == 0);  // not a failover: journalctl MESSAGE_ID=<wan-down> stays clean
    CHECK(d.said.back().event.state == "draining");
    // Its probes failing changes nothing while it drains, and flushes nothing.
    d.rounds("integra", false, 3);
    CHECK(d.wan("integra").health() == Health::Draining);
    CHECK(d.flushed.empty());
    // The other WAN's probes failing too: the all-down fallback balances over the links that are
    // up, but not over the WAN being drained.
    d.rounds("charter", false, 3);
    CHECK(d.state.all_down[0]);
    CHECK(active() == std::vector<size_t>{0});
    // The hard cut: what is left goes.
    d.event(OverrideRequested{"integra", Override::Down, "drain timed out after 60 s"});
    CHECK(d.wan("integra").health() == Health::Disabled);
    REQUIRE(d.flushed.size() == 2);  // charter's failover, then integra's cut
    CHECK(d.flushed[1].wan == "integra");
    CHECK(d.logged.back().message.find("operator set integra to down (drain timed out after 60 s)") != std::string::npos);
}

TEST_CASE("operator events: set down and forced up are operator-set; what auto hands back to is a failover") {
    Driver d(two_wans());
    d.event(OverrideRequested{"integra", Override::Down, ""});
    CHECK(d.said.back().event.kind == "operator-set");
    CHECK(d.said.back().event.message_id == std::string(kMessageOperatorSet));
    d.event(OverrideRequested{"integra", Override::Auto, ""});
    CHECK(d.said.back().event.kind == "wan-up");  // its probes decide: it is healthy
    d.event(OverrideRequested{"integra", Override::Up, ""});
    CHECK(d.said.back().event.kind == "wan-up");  // no transition: still the last one
}

TEST_CASE("restored overrides: a drained WAN starts drained, without a failover event") {
    Config c = two_wans();
    State s = initial_state(c, kT0);
    Step restored = step(std::move(s), Restored{{{"charter", Override::Down}, {"gone", Override::Down}}}, kT0);
    CHECK(restored.effects.reconcile);
    REQUIRE(restored.effects.logs.size() == 1);
    CHECK(restored.effects.logs[0].message == "operator overrides kept from the previous run: charter down");
    Step seen = step(std::move(restored.state), KernelChanged{both_links()}, kT0);
    Step applied = step(std::move(seen.state), KernelApplied{}, kT0);
    CHECK(applied.state.wans[0].health() == Health::Disabled);
    CHECK(applied.state.wans[1].health() == Health::Up);
    CHECK(applied.effects.announcements.empty());  // a start, not a failover
    CHECK(overrides_of(applied.state) == std::map<std::string, Override>{{"charter", Override::Down}});
}

// ---- dual-stack: IPv4 and IPv6 health of one WAN are decided apart ----

namespace {

LinkFacts dual_link(int ifindex, const char* gateway6) {
    LinkFacts f = usable_link(ifindex);
    f.has_address6 = true;
    f.auto_gateway6 = *Ipv6::parse(gateway6);
    return f;
}

Config dual_stack() { return config_of(article(R"(, "gateway6": "fe80::1")", R"(, "gateway6": "auto")")); }

KernelFacts dual_links() { return {{"ether1", dual_link(11, "fe80::1")}, {"ether2", dual_link(12, "fe80::2")}}; }

Driver dual_driver() { return Driver(dual_stack(), dual_links()); }

void rounds6(Driver& d, const std::string& wan, bool ok, unsigned n) {
    for (unsigned i = 0; i < n; ++i) d.event(ProbeRound{wan, ok, "", {}, Family::V6});
}

std::vector<size_t> active_of(Driver& d, Family f) { return active_wans(d.state.config, desired_inputs(d.state), f).wans; }

}  // namespace

TEST_CASE("dual-stack: each family starts up on its own, and the status line counts both") {
    Driver d = dual_driver();
    CHECK(d.wan("charter").of(Family::V6).health == Health::Up);
    CHECK(d.wan("integra").of(Family::V6).health == Health::Up);
    CHECK(d.state.wans[1].inputs.gateway6 == Ipv6::parse("fe80::2"));  // "auto" follows the RA route
    CHECK(status_line(d.state) == "2/2 WANs up: charter, integra; IPv6 2/2 up: charter, integra");
    CHECK(d.said.empty());
}

TEST_CASE("dual-stack: an IPv6 outage takes down only IPv6, flushes only IPv6, says which family") {
    Driver d = dual_driver();
    rounds6(d, "charter", false, 3);
    CHECK(d.wan("charter").of(Family::V6).health == Health::Down);
    CHECK(d.wan("charter").health() == Health::Up);
    CHECK(active_of(d, Family::V4) == std::vector<size_t>{0, 1});
    CHECK(active_of(d, Family::V6) == std::vector<size_t>{1});
    REQUIRE(d.said.size() == 1);
    CHECK(d.said[0].event.kind == "wan-down");
    CHECK(d.said[0].event.family == "ipv6");
    CHECK(d.said[0].message == "WAN charter (ether1) is down for IPv6: 3 probe rounds failed in a row");
    CHECK(d.flushed == std::vector<Flush>{{0x100, "charter", Family::V6}});
    // IPv4 rounds keep judging IPv4 only.
    d.rounds("charter", true, 10);
    CHECK(d.wan("charter").of(Family::V6).health == Health::Down);
    rounds6(d, "charter", true, 5);
    CHECK(d.wan("charter").of(Family::V6).health == Health::Up);
    CHECK(d.said.back().message == "WAN charter (ether1) is up for IPv6: 5 probe rounds answered in a row");
}

TEST_CASE("dual-stack: an IPv4 outage leaves IPv6 up and flushes only IPv4") {
    Driver d = dual_driver();
    d.rounds("integra", false, 3);
    CHECK(d.wan("integra").health() == Health::Down);
    CHECK(d.wan("integra").of(Family::V6).health == Health::Up);
    CHECK(d.flushed == std::vector<Flush>{{0x200, "integra", Family::V4}});
    CHECK(d.said.back().event.family == "ipv4");
    CHECK(d.said.back().message == "WAN integra (ether2) is down for IPv4: 3 probe rounds failed in a row");
}

TEST_CASE("dual-stack: carrier loss and the operator act on both families at once") {
    Driver d = dual_driver();
    d.links["ether1"].carrier = false;
    d.reconcile();
    CHECK(d.wan("charter").health() == Health::Down);
    CHECK(d.wan("charter").of(Family::V6).health == Health::Down);
    CHECK(d.wan("charter").of(Family::V6).reason == "no carrier on ether1");
    CHECK(d.flushed == std::vector<Flush>{{0x100, "charter", Family::V4}, {0x100, "charter", Family::V6}});
    CHECK(d.count("wan-down") == 2);
    d.links["ether1"].carrier = true;
    d.reconcile();
    d.event(OverrideRequested{"integra", Override::Down});
    CHECK(d.wan("integra").health() == Health::Disabled);
    CHECK(d.wan("integra").of(Family::V6).health == Health::Disabled);
}

TEST_CASE("dual-stack: IPv6 needs a global address and a gateway; an RA gateway is followed") {
    Driver d = dual_driver();
    d.links["ether2"].auto_gateway6.reset();  // the RA route expired
    d.reconcile();
    CHECK(d.wan("integra").of(Family::V6).health == Health::Down);
    CHECK(d.wan("integra").of(Family::V6).reason == "no IPv6 gateway known on ether2 (auto: no router advertisement yet)");
    CHECK(d.wan("integra").health() == Health::Up);
    d.links["ether2"].auto_gateway6 = *Ipv6::parse("fe80::22");  // a new router announces itself
    d.reconcile();
    CHECK(d.state.wans[1].inputs.gateway6 == Ipv6::parse("fe80::22"));
    CHECK(std::any_of(d.logged.begin(), d.logged.end(), [](const LogLine& l) {
        return l.message == "integra: IPv6 gateway on ether2 is now fe80::22 (auto, from router advertisements)";
    }));
    d.links["ether1"].has_address6 = false;
    d.reconcile();
    CHECK(d.wan("charter").of(Family::V6).reason == "no global IPv6 address on ether1");
}

TEST_CASE("dual-stack: all-down is per family") {
    Driver d = dual_driver();
    rounds6(d, "charter", false, 3);
    rounds6(d, "integra", false, 3);
    CHECK(d.state.all_down[size_t(Family::V6)]);
    CHECK_FALSE(d.state.all_down[size_t(Family::V4)]);
    CHECK(d.said.back().event.family == "ipv6");
    CHECK(d.said.back().message == "every WAN is down for IPv6; balancing over the 2 WANs whose link is up");
}

TEST_CASE("an IPv4-only config ignores IPv6 facts and rounds entirely") {
    Driver d(two_wans(), dual_links());
    CHECK_FALSE(d.state.wans[0].inputs.gateway6);
    CHECK_FALSE(d.state.wans[0].inputs.has_address6);
    rounds6(d, "charter", false, 10);
    CHECK(d.said.empty());
    CHECK(status_line(d.state) == "2/2 WANs up: charter, integra");
}

TEST_CASE("a reload that adds gateway6 starts IPv6 afresh and keeps IPv4's history") {
    Driver d(two_wans(), dual_links());
    d.rounds("charter", false, 3);
    d.rounds("charter", true, 5);
    d.event(Reloaded{dual_stack()});
    CHECK(d.wan("charter").of(Family::V4).transitions == 2);
    CHECK(d.wan("charter").of(Family::V6).health == Health::Up);  // a usable link starts up, as at start
    // IPv4's recovery, then IPv6 coming into service on both, as a WAN a reload adds does.
    REQUIRE(d.count("wan-up") == 3);
    CHECK(d.said.back().message == "WAN integra (ether2) is up for IPv6: link up, probing");
}
