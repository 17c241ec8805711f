// The daemon's reconcile (core + KernelSync) against the fake kernel: a failover changes the
// kernel first, then it is announced and the dead WAN's connections are flushed, and a kernel
// that refuses is told apart from one that did the work.
#include <doctest/doctest.h>

#include <cerrno>

#include "config_fixtures.hpp"
#include "daemon/degraded.hpp"
#include "daemon/reconcile_step.hpp"
#include "tests/unit/fake_kernel.hpp"

using namespace wb;
using wb::test::FakeKernel;
using Op = FakeKernel::Op;

namespace {

const WallTime kT0 = WallTime{} + std::chrono::hours(24 * 365 * 50);

KernelFacts article_links() {
    return {{"ether1", {10, true, true, true, false, std::nullopt}}, {"ether2", {11, true, true, true, false, std::nullopt}}};
}

// The balanced table's multipath default: its nexthops' interfaces.
std::vector<int> balanced_ifindexes(const FakeKernel& k, Family family = Family::V4) {
    std::vector<int> out;
    for (const Route& r : k.own_routes())
        if (r.table == kBalancedTable && r.family == family)
            for (const Nexthop& nh : r.nexthops) out.push_back(nh.ifindex);
    return out;
}

struct Router {
    FakeKernel kernel;
    KernelSync sync{kernel};
    State state;
    KernelFacts links = article_links();

    explicit Router(const std::string& config = config_test::article()) {
        auto r = config_test::parse(config);
        REQUIRE(r.config);
        state = initial_state(*r.config, kT0);
    }
    Reconciled reconcile() { return reconcile_step(state, sync, links, kT0); }
    Effects event(const Event& e) {
        Step s = step(std::move(state), e, kT0);
        state = std::move(s.state);
        return s.effects;
    }
};

}  // namespace

TEST_CASE("the first reconcile installs everything and logs the starts, announcing nothing") {
    Router r;
    Reconciled first = r.reconcile();
    CHECK(first.applied.ok());
    CHECK(first.seen.logs.size() == 2);
    CHECK(first.released.announcements.empty());
    CHECK(r.sync.table_applied());
    CHECK(balanced_ifindexes(r.kernel) == std::vector<int>{10, 11});
    CHECK(r.kernel.own_rules().size() == 4);
    // Nothing changed: the second one writes nothing.
    r.kernel.reset_counters();
    Reconciled again = r.reconcile();
    CHECK(r.kernel.writes() == 0);
    CHECK(again.applied.nft_ops == 0);
}

TEST_CASE("a failover: the kernel changes, then the event, then only the dead WAN's flush") {
    Router r;
    r.reconcile();
    r.kernel.add_connections(r.state.config.wans[0].mark, 7);
    r.kernel.add_connections(r.state.config.wans[1].mark, 5);
    Effects fx;
    for (int i = 0; i < 3; ++i) fx = r.event(ProbeRound{"charter", false, "", {}});
    REQUIRE(fx.reconcile);
    CHECK(fx.announcements.empty());                                // not yet: the kernel still balances over it
    CHECK(balanced_ifindexes(r.kernel) == std::vector<int>{10, 11});
    Reconciled done = r.reconcile();
    CHECK(balanced_ifindexes(r.kernel) == std::vector<int>{11});  // charter's nexthop withdrawn
    CHECK(done.applied.routes_changed() == 1);
    CHECK(done.applied.rules_changed() == 0);                      // its table and rule stay for probes
    REQUIRE(done.released.announcements.size() == 1);
    CHECK(done.released.announcements[0].event.kind == "wan-down");
    REQUIRE(done.released.flushes.size() == 1);
    CHECK(done.released.flushes[0].wan == "charter");
    CHECK(r.kernel.delete_by_mark(done.released.flushes[0].family, done.released.flushes[0].mark, r.state.config.mark_mask).value() == 7);
    CHECK(r.kernel.connections() == 5);  // integra's stay
    // Recovery puts it back, once.
    for (int i = 0; i < 5; ++i) r.event(ProbeRound{"charter", true, "", {}});
    Reconciled back = r.reconcile();
    CHECK(balanced_ifindexes(r.kernel) == std::vector<int>{10, 11});
    REQUIRE(back.released.announcements.size() == 1);
    CHECK(back.released.announcements[0].event.kind == "wan-up");
    CHECK(back.released.flushes.empty());
}

TEST_CASE("a kernel that refuses: the part is reported, the rest applied, the retry repairs it") {
    Router r;
    r.kernel.fail_next(Op::NftApply, EBUSY);
    Reconciled first = r.reconcile();
    CHECK_FALSE(first.applied.ok());
    CHECK_FALSE(first.applied.results.at("nftables"));
    CHECK(first.applied.results.at("routes"));
    CHECK_FALSE(r.sync.table_applied());
    CHECK(balanced_ifindexes(r.kernel) == std::vector<int>{10, 11});
    Reconciled second = r.reconcile();
    CHECK(second.applied.ok());
    CHECK(r.sync.table_applied());
    CHECK(r.kernel.table().has_value());
}

TEST_CASE("carrier loss: one reconcile takes the WAN out and flushes it, with no probe round") {
    Router r;
    r.reconcile();
    r.links["ether2"].carrier = false;
    Reconciled lost = r.reconcile();
    CHECK(balanced_ifindexes(r.kernel) == std::vector<int>{10});
    REQUIRE(lost.released.announcements.size() == 1);
    CHECK(lost.released.announcements[0].message == "WAN integra (ether2) is down: no carrier on ether2");
    REQUIRE(lost.released.flushes.size() == 1);
    CHECK(lost.released.flushes[0].wan == "integra");
}

TEST_CASE("dual-stack: an IPv6 outage changes only the IPv6 balanced route and flushes only IPv6") {
    Router r(config_test::article(R"(, "gateway6": "fe80::1")", R"(, "gateway6": "auto")"));
    for (auto& [name, link] : r.links) {
        link.has_address6 = true;
        link.auto_gateway6 = *Ipv6::parse("fe80::2");
    }
    r.reconcile();
    CHECK(balanced_ifindexes(r.kernel, Family::V4) == std::vector<int>{10, 11});
    CHECK(balanced_ifindexes(r.kernel, Family::V6) == std::vector<int>{10, 11});
    r.kernel.add_connections(0x100, 7, Family::V4);
    r.kernel.add_connections(0x100, 4, Family::V6);
    for (int i = 0; i < 3; ++i) r.event(ProbeRound{"charter", false, "", {}, Family::V6});
    Reconciled done = r.reconcile();
    CHECK(balanced_ifindexes(r.kernel, Family::V4) == std::vector<int>{10, 11});  // IPv4 untouched
    CHECK(balanced_ifindexes(r.kernel, Family::V6) == std::vector<int>{11});
    REQUIRE(done.released.announcements.size() == 1);
    CHECK(done.released.announcements[0].event.family == "ipv6");
    REQUIRE(done.released.flushes.size() == 1);
    const Flush& f = done.released.flushes[0];
    CHECK(f.family == Family::V6);
    CHECK(r.kernel.delete_by_mark(f.family, f.mark, r.state.config.mark_mask).value() == 4);
    CHECK(r.kernel.connections() == 7);  // charter's IPv4 connections stay
}

TEST_CASE("degraded: a refusal in a WAN's own table is that WAN's; in the balanced table or nftables, every WAN's") {
    auto parsed = config_test::parse(config_test::article());
    REQUIRE(parsed.config);
    const Config& c = *parsed.config;
    ApplyReport report;
    report.results["nftables"] = Status::ok();
    CHECK(degraded_wans(c, report).empty());
    report.routes.fail(Family::V4,
                       Status::fail(EINVAL, "Could not replace default route in table 101 (via 10.9.9.9 dev ether1): "
                                            "Nexthop has invalid gateway"),
                       c.wans[0].table);
    auto d = degraded_wans(c, report);
    REQUIRE(d.size() == 1);
    CHECK(d["charter"] == "Could not replace default route in table 101 (via 10.9.9.9 dev ether1): Nexthop has "
                         "invalid gateway");
    report.routes.fail(Family::V4, Status::fail(EINVAL, "Could not replace default route in table 100: Invalid argument"),
                       kBalancedTable);
    d = degraded_wans(c, report);
    REQUIRE(d.size() == 2);
    CHECK(d["integra"] == "Could not replace default route in table 100: Invalid argument");
    CHECK(d["charter"].find("; Could not replace default route in table 100") != std::string::npos);
    CHECK(degraded_summary({{"charter", "A"}, {"integra", "B"}}) == "charter is degraded: A; integra is degraded: B");
}

TEST_CASE("degraded: the route the kernel refused is named by its table, and clears when the kernel takes it") {
    Router r;
    r.kernel.fail_next(Op::ReplaceRoute, EINVAL);
    Reconciled first = r.reconcile();
    CHECK_FALSE(first.applied.ok());
    auto refusals = first.applied.refusals();
    REQUIRE(refusals.size() == 1);
    CHECK(refusals[0].table != 0);
    auto d = degraded_wans(r.state.config, first.applied);
    CHECK_FALSE(d.empty());
    Reconciled again = r.reconcile();
    CHECK(again.applied.ok());
    CHECK(degraded_wans(r.state.config, again.applied).empty());
}
