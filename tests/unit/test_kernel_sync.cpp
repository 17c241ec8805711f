// Route and rule sync and the whole reconcile (KernelSync) against the fake kernel: what is sent,
// what is skipped, and how the kernel's errors are reported and recovered from.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>

#include "netlink/kernel_sync.hpp"
#include "rules/desired.hpp"
#include "tests/unit/fake_kernel.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb;
using wb::test::FakeKernel;
using Op = FakeKernel::Op;
using wb::test::nh;
using wb::test::V4;
using wb::test::V6;

namespace {

std::vector<Route> desired_routes(unsigned weight2 = 2, const char* gateway1 = "203.0.113.1") {
    return {Route{V4, 101, 0, {nh(gateway1, 10, "ether1")}},
            Route{V4, 102, 0, {nh("198.51.100.1", 11, "ether2")}},
            Route{V4, kMainTable, 0, {nh(gateway1, 10, "ether1", 1), nh("198.51.100.1", 11, "ether2", weight2)}}};
}

std::vector<Rule> desired_rules() {
    return {Rule{V4, 20000, std::nullopt, 0xffffffff, kMainTable, uint8_t(0)},
            Rule{V4, 20001, 0x100u, 0x3f00, 101, std::nullopt},
            Rule{V4, 20002, 0x200u, 0x3f00, 102, std::nullopt}};
}

void require_clean(const SyncReport& report) { REQUIRE_MESSAGE(report.errors.empty(), join(report.errors).message); }

void require_clean(const ApplyReport& report) {
    std::string errors;
    for (const auto& [part, status] : report.results)
        if (!status) errors += part + ": " + status.message + "\n";
    REQUIRE_MESSAGE(report.ok(), errors);
}

// The kernel holds exactly these (kernel_equal: a lone nexthop's weight is not stored).
template <class T>
bool holds_exactly(const std::vector<T>& held, std::vector<T> want) {
    if (held.size() != want.size()) return false;
    for (const auto& h : held) {
        auto it = std::find_if(want.begin(), want.end(), [&](const T& w) { return kernel_equal(h, w); });
        if (it == want.end()) return false;
        want.erase(it);
    }
    return true;
}

// Set elements have no order in the kernel: equal tables up to the order of their elements.
nft::Table sorted(nft::Table t) {
    for (auto& set : t.sets)
        std::sort(set.elements.begin(), set.elements.end(),
                  [](const nft::Element& a, const nft::Element& b) { return a.key < b.key; });
    return t;
}

bool holds_table(const FakeKernel& kernel, const nft::Table& want) {
    return kernel.table() && sorted(*kernel.table()) == sorted(want);
}

// The article's router on a fake kernel, reconciled by a KernelSync.
struct Router {
    FakeKernel kernel;
    KernelSync sync{kernel};
    Config config = test::article_config();
    std::vector<WanInputs> inputs = test::healthy(config);

    Desired desired() const { return build_desired(config, inputs); }
    Desired with_down(size_t wan) {
        inputs[wan].health = Health::Down;
        return desired();
    }
};

void fill(FakeKernel& kernel) {
    require_clean(sync_routes(kernel, desired_routes()));
    require_clean(sync_rules(kernel, desired_rules()));
    kernel.reset_counters();
}

}  // namespace

TEST_CASE("sync installs the desired routes and rules; a second sync sends nothing but the dumps") {
    FakeKernel kernel;
    SyncReport routes = sync_routes(kernel, desired_routes());
    require_clean(routes);
    CHECK(routes.added == 3);
    SyncReport rules = sync_rules(kernel, desired_rules());
    require_clean(rules);
    CHECK(rules.added == 3);
    CHECK(holds_exactly(kernel.own_routes(), desired_routes()));
    CHECK(kernel.own_rules() == desired_rules());

    kernel.reset_counters();
    SyncReport again = sync_routes(kernel, desired_routes());
    require_clean(again);
    CHECK_FALSE(again.changed());
    CHECK(again.unchanged == 3);
    SyncReport again_rules = sync_rules(kernel, desired_rules());
    require_clean(again_rules);
    CHECK_FALSE(again_rules.changed());
    CHECK(again_rules.unchanged == 3);
    CHECK(kernel.writes() == 0);
    CHECK(kernel.total_calls() == 2);  // the two dumps
}

TEST_CASE("a changed weight or gateway is one replace, nothing else") {
    FakeKernel kernel;
    fill(kernel);
    SyncReport weight = sync_routes(kernel, desired_routes(5));
    require_clean(weight);
    CHECK(weight.replaced == 1);
    CHECK(weight.added + weight.deleted == 0);
    CHECK(kernel.calls(Op::ReplaceRoute) == 1);
    CHECK(kernel.calls(Op::ForeignRoute) == 0);  // an owned slot needs no look at the others

    kernel.reset_counters();
    SyncReport gateway = sync_routes(kernel, desired_routes(5, "203.0.113.254"));
    require_clean(gateway);
    CHECK(gateway.replaced == 2);  // table 101 and the main route's first nexthop
    CHECK(kernel.writes() == 2);
    CHECK(holds_exactly(kernel.own_routes(), desired_routes(5, "203.0.113.254")));

    // A single-path route has no weight in the kernel: another weight changes nothing.
    auto routes = desired_routes(5, "203.0.113.254");
    routes[0].nexthops[0].weight = 7;
    kernel.reset_counters();
    require_clean(sync_routes(kernel, routes));
    CHECK(kernel.writes() == 0);
}

TEST_CASE("stale own routes and rules are deleted, after the new ones are in") {
    FakeKernel kernel;
    fill(kernel);
    // Charter leaves: its table route and rule go, the main route loses it.
    std::vector<Route> routes = {Route{V4, 102, 0, {nh("198.51.100.1", 11, "ether2")}},
                                 Route{V4, kMainTable, 0, {nh("198.51.100.1", 11, "ether2")}}};
    std::vector<Rule> rules = {desired_rules()[0], desired_rules()[2]};
    SyncReport r = sync_routes(kernel, routes);
    require_clean(r);
    CHECK(r.deleted == 1);
    CHECK(r.replaced == 1);
    CHECK(r.unchanged == 1);
    SyncReport rr = sync_rules(kernel, rules);
    require_clean(rr);
    CHECK(rr.deleted == 1);
    CHECK(rr.unchanged == 2);
    CHECK(holds_exactly(kernel.own_routes(), routes));
    CHECK(kernel.own_rules() == rules);
}

TEST_CASE("a changed rule is added at its priority, then the old one deleted: one replace") {
    FakeKernel kernel;
    fill(kernel);
    auto rules = desired_rules();
    rules[1].fwmark = 0x300u;
    SyncReport r = sync_rules(kernel, rules);
    require_clean(r);
    CHECK(r.replaced == 1);
    CHECK(r.added + r.deleted == 0);
    CHECK(kernel.calls(Op::AddRule) == 1);
    CHECK(kernel.calls(Op::DeleteRule) == 1);
    CHECK(kernel.own_rules() == rules);
}

TEST_CASE("foreign routes and rules are never touched, not even by a removal of everything") {
    FakeKernel kernel;
    kernel.add_foreign_route(Route{V4, 101, 50, {nh("203.0.113.1", 10, "ether1")}}, "static");
    kernel.add_foreign_route(Route{V4, kMainTable, 100, {nh("203.0.113.1", 10, "ether1")}}, "dhcp");
    kernel.add_foreign_rule(Rule{V4, 20001, 0x100u, 0x3f00, 101, std::nullopt});  // like ours, proto static
    fill(kernel);
    CHECK(kernel.route_count() == 5);
    CHECK(kernel.rule_count() == 4);
    CHECK(kernel.own_rules() == desired_rules());

    SyncReport gone = sync_routes(kernel, {});
    require_clean(gone);
    CHECK(gone.deleted == 3);
    SyncReport gone_rules = sync_rules(kernel, {});
    require_clean(gone_rules);
    CHECK(gone_rules.deleted == 3);
    CHECK(kernel.route_count() == 2);
    CHECK(kernel.rule_count() == 1);
}

TEST_CASE("a foreign default route in our (table, metric) slot is reported and left alone") {
    FakeKernel kernel;
    Route dhcp{V4, 101, 0, {nh("203.0.113.1", 10, "ether1")}};
    kernel.add_foreign_route(dhcp, "dhcp");
    SyncReport r = sync_routes(kernel, desired_routes());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.added == 2);
    CHECK(r.errors[0].err == EEXIST);
    CHECK(r.errors[0].message ==
          "Could not add default route in table 101 (via 203.0.113.1 dev ether1): table 101 metric 0 already holds "
          "\"default via 203.0.113.1 dev ether1 proto dhcp\", which wanbalance does not own; left alone");
    CHECK(kernel.calls(Op::ReplaceRoute) == 2);
    CHECK(kernel.route_count() == 3);
    CHECK(kernel.own_routes().size() == 2);
    // Still there next time, still reported, still untouched.
    SyncReport again = sync_routes(kernel, desired_routes());
    CHECK(again.errors.size() == 1);
    CHECK(kernel.calls(Op::ReplaceRoute) == 2);
}

TEST_CASE("two desired routes in one slot: the second is an error, not a silent replace") {
    FakeKernel kernel;
    auto routes = desired_routes();
    routes.push_back(Route{V4, 101, 0, {nh("198.51.100.1", 11, "ether2")}});
    SyncReport r = sync_routes(kernel, routes);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].err == EINVAL);
    CHECK(r.added == 3);
    CHECK(holds_exactly(kernel.own_routes(), desired_routes()));
}

TEST_CASE_FIXTURE(Router, "one route refused, the others applied; the next apply fixes it") {
    Desired d = desired();
    kernel.fail_next(Op::ReplaceRoute, ENETUNREACH);

    ApplyReport first = sync.apply(d);
    CHECK_FALSE(first.ok());
    CHECK(first.results["nftables"].is_ok());
    CHECK(first.results["rules"].is_ok());
    const Status& routes = first.results["routes"];
    CHECK(routes.err == ENETUNREACH);
    CHECK(routes.message ==
          "Could not replace default route in table 101 (via 203.0.113.1 dev ether1): Network is unreachable");
    CHECK(first.routes.added == 2);
    CHECK(kernel.own_routes().size() == 2);

    kernel.reset_counters();
    ApplyReport second = sync.apply(d);
    require_clean(second);
    CHECK(second.routes_changed() == 1);
    CHECK(second.rules_changed() == 0);
    CHECK(second.nft_ops == 0);
    CHECK(kernel.writes() == 1);
    CHECK(holds_exactly(kernel.own_routes(), d.routes));
}

TEST_CASE("ENOBUFS on a dump: the error is reported and nothing is deleted") {
    FakeKernel kernel;
    fill(kernel);
    kernel.fail_next(Op::DumpRoutes, ENOBUFS);
    kernel.fail_next(Op::DumpRules, ENOBUFS);
    SyncReport routes = sync_routes(kernel, {});
    REQUIRE(routes.errors.size() == 1);
    CHECK(routes.errors[0].err == ENOBUFS);
    CHECK(routes.errors[0].message == "Could not dump routes: No buffer space available");
    SyncReport rules = sync_rules(kernel, {});
    REQUIRE(rules.errors.size() == 1);
    CHECK(rules.errors[0].message == "Could not dump rules: No buffer space available");
    CHECK(kernel.writes() == 0);
    CHECK(kernel.own_routes().size() == 3);
    CHECK(kernel.own_rules().size() == 3);
}

TEST_CASE("EEXIST on add_rule counts as success") {
    FakeKernel kernel;
    Rule rule = desired_rules()[1];
    REQUIRE(kernel.add_rule(rule).is_ok());
    Status again = kernel.add_rule(rule);  // the kernel refuses a second identical rule
    CHECK(kernel.last_errno() == EEXIST);
    CHECK(again.is_ok());
    CHECK(kernel.rule_count() == 1);

    // A rule that appeared between the dump and the add (the kernel said EEXIST) is in place.
    kernel.fail_next(Op::AddRule, EEXIST);
    SyncReport r = sync_rules(kernel, desired_rules());
    require_clean(r);
    CHECK(r.added == 2);
    CHECK(r.unchanged == 1);
}

TEST_CASE("ESRCH and ENOENT on delete count as success") {
    FakeKernel kernel;
    Route route = desired_routes()[0];
    CHECK(kernel.delete_route(route).is_ok());
    CHECK(kernel.last_errno() == ESRCH);
    CHECK(kernel.delete_rule(desired_rules()[0]).is_ok());
    CHECK(kernel.last_errno() == ENOENT);

    // Gone between the dump and the delete: counted as deleted, no error.
    fill(kernel);
    kernel.fail_next(Op::DeleteRoute, ESRCH);
    kernel.fail_next(Op::DeleteRule, ENOENT);
    SyncReport routes = sync_routes(kernel, {desired_routes()[1], desired_routes()[2]});
    require_clean(routes);
    CHECK(routes.deleted == 1);
    SyncReport rules = sync_rules(kernel, {desired_rules()[0], desired_rules()[2]});
    require_clean(rules);
    CHECK(rules.deleted == 1);

    // Other errors are errors.
    kernel.fail_next(Op::DeleteRoute, EPERM);
    SyncReport refused = sync_routes(kernel, {});
    REQUIRE(refused.errors.size() == 1);
    CHECK(refused.errors[0].message ==
          "Could not delete default route in table 101 (via 203.0.113.1 dev ether1): Operation not permitted");
    CHECK(refused.deleted == 2);  // the route "gone" above is still there: the fake only answered ESRCH
    CHECK(kernel.own_routes().size() == 1);
}

TEST_CASE_FIXTURE(Router, "EBUSY on the nftables apply: reported, the table not recorded, replaced whole next time") {
    Desired d = desired();
    require_clean(sync.apply(d));
    CHECK(sync.table_applied());

    Desired down = with_down(1);
    kernel.fail_next(Op::NftApply, EBUSY);  // the diff is refused
    kernel.fail_next(Op::NftApply, EBUSY);  // and so is the whole-table retry
    kernel.reset_counters();
    ApplyReport r = sync.apply(down);
    CHECK(kernel.calls(Op::NftApply) == 2);
    CHECK(r.results["nftables"].err == EBUSY);
    CHECK(r.results["nftables"].message.find("Device or resource busy") != std::string::npos);
    CHECK(r.nft_ops == 0);
    CHECK_FALSE(sync.table_applied());
    CHECK(holds_table(kernel, d.table));  // the old table, untouched
    CHECK(r.results["routes"].is_ok());  // routes and rules still follow
    CHECK(r.routes_changed() == 1);

    kernel.reset_counters();
    ApplyReport next = sync.apply(down);
    require_clean(next);
    CHECK(kernel.calls(Op::NftApply) == 1);
    CHECK(next.nft_ops == 1);  // one OpReplaceTable
    CHECK(holds_table(kernel, down.table));
    CHECK(sync.table_applied());
}

TEST_CASE_FIXTURE(Router, "a diff the kernel refuses is retried once as a whole-table replace") {
    require_clean(sync.apply(desired()));
    Desired down = with_down(0);
    kernel.fail_next(Op::NftApply, ENOENT);  // someone deleted what the diff refers to
    kernel.reset_counters();
    ApplyReport r = sync.apply(down);
    require_clean(r);
    CHECK(kernel.calls(Op::NftApply) == 2);
    CHECK(r.nft_ops == 1);
    CHECK(holds_table(kernel, down.table));
}

TEST_CASE_FIXTURE(Router, "forget_table: the next apply replaces the table whole even when it looks equal") {
    Desired d = desired();
    require_clean(sync.apply(d));
    kernel.reset_counters();
    require_clean(sync.apply(d));
    CHECK(kernel.writes() == 0);

    sync.forget_table();
    CHECK_FALSE(sync.table_applied());
    ApplyReport r = sync.apply(d);
    require_clean(r);
    CHECK(kernel.calls(Op::NftApply) == 1);
    CHECK(r.nft_ops == 1);
    CHECK(holds_table(kernel, d.table));
    CHECK(r.routes_changed() + r.rules_changed() == 0);
}

TEST_CASE_FIXTURE(Router, "teardown removes the table, our routes and our rules, and nothing else") {
    kernel.add_foreign_route(Route{V4, kMainTable, 100, {nh("203.0.113.1", 10, "ether1")}}, "dhcp");
    require_clean(sync.apply(desired()));
    REQUIRE(kernel.table());

    CHECK(sync.teardown().empty());
    CHECK_FALSE(kernel.table());
    CHECK_FALSE(sync.table_applied());
    CHECK(kernel.own_routes().empty());
    CHECK(kernel.own_rules().empty());
    CHECK(kernel.route_count() == 1);

    // A second teardown finds nothing and says nothing (the delete of an absent table is fine).
    CHECK(sync.teardown().empty());

    kernel.fail_next(Op::DumpRules, ENOBUFS);
    auto errors = sync.teardown();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "Could not dump rules: No buffer space available");
}

TEST_CASE_FIXTURE(Router, "a whole reconcile of the article's router, then one WAN goes down") {
    Desired up = desired();

    ApplyReport first = sync.apply(up);
    require_clean(first);
    CHECK(first.nft_ops == 1);
    CHECK(first.routes.added == 3);
    CHECK(first.rules.added == 4);
    REQUIRE(kernel.table());
    CHECK(holds_table(kernel, up.table));
    size_t elements = 0;
    for (const auto& set : up.table.sets) elements += set.elements.size();
    CHECK(kernel.element_count() == elements);
    CHECK(elements > kBalanceBuckets);
    CHECK(holds_exactly(kernel.own_routes(), up.routes));
    CHECK(kernel.own_rules() == up.rules);

    // Integra goes down: it leaves the balance map and the main route; its table, its route
    // there and its rule stay (its own connections keep their way out).
    Desired down = with_down(1);
    kernel.reset_counters();
    ApplyReport second = sync.apply(down);
    require_clean(second);
    CHECK(second.nft_ops == nft::diff(up.table, down.table).ops.size());
    CHECK(second.nft_ops > 0);
    CHECK(second.routes.replaced == 1);  // the main route, now through Charter only
    CHECK(second.routes_changed() == 1);
    CHECK(second.rules_changed() == 0);
    CHECK(kernel.calls(Op::NftApply) == 1);
    CHECK(kernel.calls(Op::ReplaceRoute) == 1);
    CHECK(kernel.writes() == 2);
    CHECK(holds_table(kernel, down.table));
    CHECK(holds_exactly(kernel.own_routes(), down.routes));
    CHECK(kernel.own_rules() == down.rules);

    // And back up: the first state again, by the same small steps.
    inputs[1].health = Health::Up;
    kernel.reset_counters();
    ApplyReport back = sync.apply(desired());
    require_clean(back);
    CHECK(kernel.writes() == 2);
    CHECK(holds_table(kernel, up.table));
    CHECK(holds_exactly(kernel.own_routes(), up.routes));
}

TEST_CASE_FIXTURE(Router, "the fake kernel's nftables model refuses what the kernel refuses, all or nothing") {
    Desired d = desired();
    // A plan for a table that is not there: its first op finds nothing.
    nft::Plan stale = nft::diff(d.table, with_down(0).table);
    REQUIRE_FALSE(stale.empty());
    Status s = kernel.apply(stale);
    CHECK(s.err == ENOENT);
    CHECK_FALSE(kernel.table());

    // Deleting an absent table is not an error (add table + delete table); nor is a replace.
    CHECK(kernel.apply(nft::Plan{{nft::OpDeleteTable{}}}).is_ok());
    CHECK(kernel.apply(nft::diff(std::nullopt, d.table)).is_ok());
    CHECK(kernel.table_exists().value());
    CHECK(kernel.nft_ops_applied() == 2);

    // A chain that a map element still goes to cannot be deleted: the plan changes nothing.
    nft::Plan bad{{nft::OpAddChain{nft::Chain{"extra", std::nullopt, {}}}, nft::OpDeleteChain{"wan_charter"}}};
    CHECK(kernel.apply(bad).err == EBUSY);
    CHECK(holds_table(kernel, d.table));
}

TEST_CASE("the fake kernel's sysctl and conntrack") {
    FakeKernel kernel;
    CHECK_FALSE(kernel.get_src_valid_mark(10).value());
    CHECK(kernel.set_src_valid_mark(10, true).is_ok());
    CHECK(kernel.get_src_valid_mark(10).value());
    Status missing = kernel.set_src_valid_mark(0, true);
    CHECK(missing.err == ENODEV);
    CHECK(missing.message == "Could not set src_valid_mark on ifindex 0: No such device");

    kernel.add_connections(0x100, 3);
    kernel.add_connections(0x4100, 2);  // a foreign bit outside the mask
    kernel.add_connections(0x200, 5);
    kernel.add_connections(0x100, 4, V6);
    auto n = kernel.delete_by_mark(V4, 0x100, 0x3f00);
    REQUIRE(n.has_value());
    CHECK(*n == 5);
    CHECK(kernel.connections(V4) == 5);
    CHECK(kernel.connections(V6) == 4);  // an IPv4 flush leaves IPv6 alone
    CHECK(kernel.delete_by_mark(V6, 0x100, 0x3f00).value() == 4);
    CHECK(kernel.connections() == 5);
    kernel.fail_next(Op::DeleteConntrack, EBUSY);
    CHECK(kernel.delete_by_mark(V4, 0x200, 0x3f00).error().err == EBUSY);
    CHECK(kernel.connections() == 5);

    CHECK(kernel.get_ipv6_conf(10).value() == Ipv6Conf{});
    kernel.set_ipv6_conf(10, Ipv6Conf{2, 1});
    CHECK(kernel.get_ipv6_conf(10).value().accepts_ra());
    kernel.set_ipv6_conf(10, Ipv6Conf{1, 1});
    CHECK_FALSE(kernel.get_ipv6_conf(10).value().accepts_ra());  // forwarding: RAs ignored
    CHECK(kernel.get_ipv6_conf(0).error().err == ENODEV);
}

TEST_CASE("dual-stack on the fake kernel: one apply installs both families, a second changes nothing") {
    FakeKernel kernel;
    KernelSync sync{kernel};
    Config config = test::dual_stack_config();
    auto inputs = test::healthy(config);
    Desired desired = build_desired(config, inputs);
    ApplyReport first = sync.apply(desired);
    require_clean(first);
    CHECK(first.results.count("IPv6 routes") == 1);
    CHECK(first.results.count("IPv6 rules") == 1);
    CHECK(holds_exactly(kernel.own_routes(), desired.routes));
    CHECK(holds_exactly(kernel.own_rules(), desired.rules));
    CHECK(holds_table(kernel, desired.table));
    // IPv4 and IPv6 rules at the same priority and IPv4 and IPv6 routes in the same table are
    // distinct objects.
    CHECK(kernel.own_rules().size() == 5 + 4);
    CHECK(kernel.own_routes().size() == 4 + 3);

    kernel.reset_counters();
    ApplyReport second = sync.apply(desired);
    require_clean(second);
    CHECK(kernel.writes() == 0);
    CHECK(second.routes.unchanged == 7);
    CHECK(second.rules.unchanged == 9);

    // An IPv6 outage changes the IPv6 balanced route and balance6 only.
    inputs[0].health6 = Health::Down;
    kernel.reset_counters();
    ApplyReport moved = sync.apply(build_desired(config, inputs));
    require_clean(moved);
    CHECK(moved.routes.replaced == 1);
    CHECK(moved.rules.changes() == 0);
    CHECK(kernel.calls(Op::ReplaceRoute) == 1);

    // Dropping IPv6 from the config removes every IPv6 object and nothing else.
    for (auto& w : config.wans) {
        w.ipv6 = false;
        w.gateway6.reset();
    }
    ApplyReport v4_only = sync.apply(build_desired(config, test::healthy(config)));
    require_clean(v4_only);
    CHECK(v4_only.routes.deleted == 3);
    CHECK(v4_only.rules.deleted == 4);
    for (const auto& r : kernel.own_routes()) CHECK(r.family == V4);
    for (const auto& r : kernel.own_rules()) CHECK(r.family == V4);
}

TEST_CASE("IPv6 errors are reported under their own keys and name the family") {
    FakeKernel kernel;
    KernelSync sync{kernel};
    Config config = test::dual_stack_config();
    auto inputs = test::healthy(config);
    kernel.set_link_up(inputs[1].ifindex, false);  // ether2 down: the kernel refuses nexthops via it
    Desired desired = build_desired(config, inputs);
    ApplyReport report = sync.apply(desired);
    CHECK_FALSE(report.ok());
    const Status& v6 = report.results["IPv6 routes"];
    CHECK(v6.err == ENETDOWN);
    CHECK(v6.message.find("Could not replace IPv6 default route in table 102 (via 2001:db8:2::1 dev ether2): ") == 0);
    CHECK(report.results["routes"].err == ENETDOWN);  // the IPv4 routes via ether2 too
    CHECK(report.results["routes"].message.find("IPv6") == std::string::npos);
    CHECK(report.results["rules"].is_ok());
    CHECK(report.results["IPv6 rules"].is_ok());
    kernel.set_link_up(inputs[1].ifindex, true);
    require_clean(sync.apply(desired));
}

TEST_CASE("a foreign IPv6 default route in our slot is left alone; an IPv4 one does not block IPv6") {
    FakeKernel kernel;
    Route foreign{V6, 101, 1024, {nh("fe80::99", 10, "ether1")}};
    kernel.add_foreign_route(foreign, "ra");
    Route v4_foreign{V4, 102, 1024, {nh("198.51.100.9", 11, "ether2")}};
    kernel.add_foreign_route(v4_foreign, "static");
    std::vector<Route> want = {Route{V6, 101, 1024, {nh("fe80::1", 10, "ether1")}},
                               Route{V6, 102, 1024, {nh("2001:db8:2::1", 11, "ether2")}}};
    SyncReport report = sync_routes(kernel, want);
    REQUIRE(report.errors.size() == 1);
    CHECK(report.error_families[0] == V6);
    CHECK(report.errors[0].message ==
          "Could not add IPv6 default route in table 101 (via fe80::1 dev ether1): IPv6 table 101 metric 1024 already "
          "holds \"default via fe80::99 dev ether1 proto ra metric 1024\", which wanbalance does not own; left alone");
    CHECK(report.added == 1);  // table 102's IPv6 slot is free whatever IPv4 holds there
    CHECK(kernel.route_count() == 3);
}
