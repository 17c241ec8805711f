// RouteNetlink and the route/rule sync over NetlinkKernel against the real kernel, in a fresh
// network namespace per test case; `ip` is the independent witness of what the kernel holds.
#include <doctest/doctest.h>
#include <net/if.h>

#include <fstream>

#include "netlink/kernel_sync.hpp"
#include "netlink/netlink_kernel.hpp"
#include "rules/desired.hpp"
#include "tests/unit/rules_fixtures.hpp"
#include "tests/kernel/netns.hpp"

using namespace wb;
constexpr Family V4 = Family::V4;
constexpr Family V6 = Family::V6;
using wb::test::must;
using wb::test::run;

namespace {

int ifindex(const std::string& name) { return int(if_nametoindex(name.c_str())); }

// The article's router: ether1 (Charter) and ether2 (Integra) toward veth "ISPs", ether3 to the LAN.
void make_router() {
    test::enter_fresh_netns();
    must("ip link add ether1 type veth peer name isp1");
    must("ip link add ether2 type veth peer name isp2");
    must("ip link add ether3 type veth peer name lanhost");
    for (const char* dev : {"ether1", "ether2", "ether3", "isp1", "isp2", "lanhost"}) must(std::string("ip link set ") + dev + " up");
    must("ip addr add 203.0.113.2/24 dev ether1");
    must("ip addr add 198.51.100.2/24 dev ether2");
    must("ip addr add 192.168.88.1/24 dev ether3");
}

Nexthop nh(const char* gateway, const std::string& dev, unsigned weight = 1) {
    Nexthop n;
    if (gateway) n.gateway = *Ipv4::parse(gateway);
    n.ifindex = ifindex(dev);
    n.ifname = dev;
    n.weight = weight;
    return n;
}

Nexthop nh6(const char* gateway, const std::string& dev, unsigned weight = 1) {
    Nexthop n = nh(nullptr, dev, weight);
    n.gateway = *Ipv6::parse(gateway);
    return n;
}

// "2\n" -> "2"
std::string count_lines(std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

std::vector<Route> desired_routes(unsigned weight2 = 2) {
    return {Route{V4, 101, 0, {nh("203.0.113.1", "ether1")}},
            Route{V4, 102, 0, {nh("198.51.100.1", "ether2")}},
            Route{V4, kMainTable, 0, {nh("203.0.113.1", "ether1", 1), nh("198.51.100.1", "ether2", weight2)}}};
}

std::vector<Rule> desired_rules() {
    return {Rule{V4, 20000, std::nullopt, 0xffffffff, kMainTable, uint8_t(0)},
            Rule{V4, 20001, 0x100u, 0x3f00, 101, std::nullopt},
            Rule{V4, 20002, 0x200u, 0x3f00, 102, std::nullopt}};
}

std::unique_ptr<NetlinkKernel> open_nl() {
    auto nl = NetlinkKernel::open();
    REQUIRE_MESSAGE(nl.has_value(), nl.error().message);
    return std::move(*nl);
}

void require_clean(const SyncReport& report) {
    for (const auto& e : report.errors) INFO(e.message);
    REQUIRE(report.errors.empty());
}

const char* const kExpectedRules =
    "0:\tfrom all lookup local\n"
    "20000:\tfrom all lookup main suppress_prefixlength 0 proto 87\n"
    "20001:\tfrom all fwmark 0x100/0x3f00 lookup 101 proto 87\n"
    "20002:\tfrom all fwmark 0x200/0x3f00 lookup 102 proto 87\n"
    "32766:\tfrom all lookup main\n"
    "32767:\tfrom all lookup default\n";

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

}  // namespace

TEST_CASE("sync installs exactly the desired routes and rules; a second sync changes nothing") {
    make_router();
    auto nl = open_nl();

    SyncReport routes = sync_routes(*nl, desired_routes());
    require_clean(routes);
    CHECK(routes.added == 3);
    SyncReport rules = sync_rules(*nl, desired_rules());
    require_clean(rules);
    CHECK(rules.added == 3);

    CHECK(must("ip -4 route show table 101") == "default via 203.0.113.1 dev ether1 proto 87 \n");
    CHECK(must("ip -4 route show table 102") == "default via 198.51.100.1 dev ether2 proto 87 \n");
    CHECK(must("ip -4 route show default table main") ==
          "default proto 87 \n"
          "\tnexthop via 203.0.113.1 dev ether1 weight 1 \n"
          "\tnexthop via 198.51.100.1 dev ether2 weight 2 \n");
    CHECK(must("ip -4 route show table all proto 87 | wc -l") == "5\n");  // 3 routes, 2 nexthop lines
    CHECK(must("ip -4 rule show") == kExpectedRules);

    auto own = nl->dump_own_routes();
    REQUIRE(own.has_value());
    REQUIRE(own->size() == 3);
    for (const auto& want : desired_routes()) {
        bool found = false;
        for (const auto& got : *own) found = found || got == want;  // ifnames filled in too
        CHECK_MESSAGE(found, describe(want));
    }
    auto own_rules = nl->dump_own_rules();
    REQUIRE(own_rules.has_value());
    CHECK(*own_rules == desired_rules());

    unsigned before = nl->route_netlink().messages_sent();
    SyncReport again = sync_routes(*nl, desired_routes());
    require_clean(again);
    CHECK_FALSE(again.changed());
    CHECK(again.unchanged == 3);
    SyncReport again_rules = sync_rules(*nl, desired_rules());
    require_clean(again_rules);
    CHECK_FALSE(again_rules.changed());
    CHECK(again_rules.unchanged == 3);
    CHECK(nl->route_netlink().messages_sent() - before == 4);  // the dumps (each of both families), nothing else
}

TEST_CASE("a changed weight is one replace; a dropped WAN loses its route and rule") {
    make_router();
    auto nl = open_nl();
    require_clean(sync_routes(*nl, desired_routes()));
    require_clean(sync_rules(*nl, desired_rules()));

    unsigned before = nl->route_netlink().messages_sent();
    SyncReport changed = sync_routes(*nl, desired_routes(5));
    require_clean(changed);
    CHECK(changed.replaced == 1);
    CHECK(changed.added + changed.deleted == 0);
    CHECK(nl->route_netlink().messages_sent() - before == 3);  // dumps of both families + one replace
    CHECK(must("ip -4 route show default table main").find("via 198.51.100.1 dev ether2 weight 5") != std::string::npos);

    // Charter (ether1) leaves the config: its table route and rule go, the main route loses it.
    std::vector<Route> routes = {Route{V4, 102, 0, {nh("198.51.100.1", "ether2")}},
                                 Route{V4, kMainTable, 0, {nh("198.51.100.1", "ether2", 5)}}};
    std::vector<Rule> rules = {desired_rules()[0], desired_rules()[2]};
    SyncReport r = sync_routes(*nl, routes);
    require_clean(r);
    CHECK(r.deleted == 1);
    CHECK(r.replaced == 1);
    SyncReport rr = sync_rules(*nl, rules);
    require_clean(rr);
    CHECK(rr.deleted == 1);
    CHECK(rr.unchanged == 2);
    CHECK(must("ip -4 route show table 101") == "");
    CHECK(must("ip -4 route show default table main") == "default via 198.51.100.1 dev ether2 proto 87 \n");
    CHECK(must("ip -4 rule show").find("lookup 101") == std::string::npos);
    CHECK(must("ip -4 rule show").find("20002:\tfrom all fwmark 0x200/0x3f00 lookup 102 proto 87") != std::string::npos);

    // A single-path route has no weight in the kernel: weight 5 must not cause a replace forever.
    SyncReport steady = sync_routes(*nl, routes);
    require_clean(steady);
    CHECK_FALSE(steady.changed());
}

TEST_CASE("a changed rule is deleted and re-added at its priority") {
    make_router();
    auto nl = open_nl();
    require_clean(sync_rules(*nl, desired_rules()));
    auto rules = desired_rules();
    rules[1].fwmark = 0x300u;
    SyncReport r = sync_rules(*nl, rules);
    require_clean(r);
    CHECK(r.replaced == 1);
    CHECK(r.added + r.deleted == 0);
    std::string shown = must("ip -4 rule show");
    CHECK(shown.find("20001:\tfrom all fwmark 0x300/0x3f00 lookup 101 proto 87") != std::string::npos);
    CHECK(shown.find("0x100/0x3f00") == std::string::npos);

    // The suppress rule loses its suppress_prefixlength: the old one must be the one deleted.
    rules[0].suppress_prefixlen = std::nullopt;
    r = sync_rules(*nl, rules);
    require_clean(r);
    CHECK(r.replaced == 1);
    shown = must("ip -4 rule show");
    CHECK(shown.find("20000:\tfrom all lookup main proto 87") != std::string::npos);
    CHECK(shown.find("suppress_prefixlength") == std::string::npos);
}

TEST_CASE("foreign routes and rules survive a sync and a full removal") {
    make_router();
    // Same table, other metric; other table; main default from DHCP; other protocols' rules,
    // one of them identical to ours except for the protocol.
    must("ip route add default via 203.0.113.1 dev ether1 table 101 metric 50 proto static");
    must("ip route add default via 198.51.100.1 dev ether2 table 200 proto boot");
    must("ip route add default via 203.0.113.1 dev ether1 metric 100 proto dhcp");
    must("ip route add 10.0.0.0/8 via 198.51.100.1 table 101 proto 87");  // ours by protocol, not a default
    must("ip rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto static");
    must("ip rule add priority 100 lookup 300");
    std::string routes_before = must("ip -4 route show table all");
    std::string rules_before = must("ip -4 rule show");

    auto nl = open_nl();
    require_clean(sync_routes(*nl, desired_routes()));
    require_clean(sync_rules(*nl, desired_rules()));
    CHECK(must("ip -4 route show table 101") ==
          "default via 203.0.113.1 dev ether1 proto 87 \n"
          "default via 203.0.113.1 dev ether1 proto static metric 50 \n"
          "10.0.0.0/8 via 198.51.100.1 dev ether2 proto 87 \n");
    CHECK(must("ip -4 rule show | grep -c '^20001:'") == "2\n");

    SyncReport gone = sync_routes(*nl, {});
    require_clean(gone);
    CHECK(gone.deleted == 3);
    SyncReport gone_rules = sync_rules(*nl, {});
    require_clean(gone_rules);
    CHECK(gone_rules.deleted == 3);
    CHECK(must("ip -4 route show table all") == routes_before);
    CHECK(must("ip -4 rule show") == rules_before);
}

TEST_CASE("a foreign default route in our (table, metric) slot is reported and left alone") {
    make_router();
    must("ip route add default via 203.0.113.1 dev ether1 table 101 proto dhcp");
    auto nl = open_nl();
    auto foreign = nl->foreign_default_route(V4, 101, 0);
    REQUIRE(foreign.has_value());
    CHECK(*foreign == "default via 203.0.113.1 dev ether1 proto dhcp");
    auto free_slot = nl->foreign_default_route(V4, 101, 7);
    REQUIRE(free_slot.has_value());
    CHECK(*free_slot == "");
    auto no_table = nl->foreign_default_route(V4, 4242, 0);  // the kernel says ENOENT for a missing table
    REQUIRE_MESSAGE(no_table.has_value(), no_table.error().message);
    CHECK(*no_table == "");

    SyncReport r = sync_routes(*nl, desired_routes());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.added == 2);
    CHECK(r.errors[0].message ==
          "Could not add default route in table 101 (via 203.0.113.1 dev ether1): table 101 metric 0 already holds "
          "\"default via 203.0.113.1 dev ether1 proto dhcp\", which wanbalance does not own; left alone");
    CHECK(must("ip -4 route show table 101") == "default via 203.0.113.1 dev ether1 proto dhcp \n");
}

TEST_CASE("with the rules and routes in place the kernel routes marked packets through their WAN") {
    make_router();
    auto nl = open_nl();
    require_clean(sync_routes(*nl, desired_routes()));
    require_clean(sync_rules(*nl, desired_rules()));

    CHECK(must("ip -4 route get 192.0.2.10 mark 0x200").find("via 198.51.100.1 dev ether2 table 102") != std::string::npos);
    CHECK(must("ip -4 route get 192.0.2.10 mark 0x100").find("via 203.0.113.1 dev ether1 table 101") != std::string::npos);
    CHECK(must("ip -4 route get 192.0.2.10 mark 0x4200").find("table 102") != std::string::npos);  // foreign bit ignored
    std::string lan = must("ip -4 route get 192.168.88.10 mark 0x200");
    CHECK(lan.find("dev ether3") != std::string::npos);
    CHECK(lan.find("table 102") == std::string::npos);

    // Control: without the suppress rule the same packet is routed out of the WAN.
    auto rules = desired_rules();
    rules.erase(rules.begin());
    require_clean(sync_rules(*nl, rules));
    CHECK(must("ip -4 route get 192.168.88.10 mark 0x200").find("via 198.51.100.1 dev ether2 table 102") != std::string::npos);
}

TEST_CASE("policy rules' extra ip rules: a mark looked up in main, a mark refused as unreachable") {
    make_router();
    auto nl = open_nl();
    require_clean(sync_routes(*nl, desired_routes()));
    auto rules = desired_rules();
    Rule to_main{V4, 20003, 0x3f00u, 0x3f00, kMainTable, std::nullopt};
    Rule unreachable{V4, 20004, 0x3e00u, 0x3f00, 0, std::nullopt, RuleAction::Unreachable};
    rules.push_back(to_main);
    rules.push_back(unreachable);
    require_clean(sync_rules(*nl, rules));
    std::string shown = must("ip -4 rule show");
    CHECK(shown.find("20003:\tfrom all fwmark 0x3f00/0x3f00 lookup main proto 87") != std::string::npos);
    CHECK(shown.find("20004:\tfrom all fwmark 0x3e00/0x3f00 unreachable proto 87") != std::string::npos);
    // Read back equal: a second sync changes nothing.
    SyncReport again = sync_rules(*nl, rules);
    require_clean(again);
    CHECK(again.changes() == 0);
    // The kernel routes by them: the unreachable mark gets no route.
    CHECK(test::run("ip -4 route get 192.0.2.10 mark 0x3e00").output.find("unreachable") != std::string::npos);
    // Gone with the rest.
    require_clean(sync_rules(*nl, desired_rules()));
    CHECK(must("ip -4 rule show").find("unreachable") == std::string::npos);
}

TEST_CASE("errors carry the kernel's words and name the route") {
    make_router();
    auto nl = open_nl();
    Status st = nl->replace_route(Route{V4, 101, 0, {nh("10.9.9.9", "ether1")}});
    CHECK_FALSE(st.is_ok());
    CHECK(st.err == ENETUNREACH);
    MESSAGE(st.message);
    CHECK(st.message.rfind("Could not replace default route in table 101 (via 10.9.9.9 dev ether1): Network is unreachable", 0) == 0);


    // A down interface: the kernel's ENETDOWN.
    must("ip link set ether2 down");
    st = nl->replace_route(Route{V4, 102, 0, {nh(nullptr, "ether2")}});
    CHECK(st.err == ENETDOWN);
    CHECK(st.message.rfind("Could not replace default route in table 102 (dev ether2): Network is down", 0) == 0);
    MESSAGE(st.message);
}

TEST_CASE("EEXIST on add and ESRCH/ENOENT on delete count as success") {
    make_router();
    auto nl = open_nl();
    Rule rule{V4, 20001, 0x100u, 0x3f00, 101, std::nullopt};
    CHECK(nl->add_rule(rule).is_ok());
    CHECK(nl->route_netlink().add_rule(rule).err == EEXIST);  // the kernel's word, as the fake gives it
    CHECK(nl->add_rule(rule).is_ok());
    CHECK(must("ip -4 rule show | grep -c '^20001:'") == "1\n");  // NLM_F_EXCL: no duplicate
    CHECK(nl->delete_rule(rule).is_ok());
    CHECK(nl->route_netlink().delete_rule(rule).err == ENOENT);
    CHECK(nl->delete_rule(rule).is_ok());
    CHECK(must("ip -4 rule show | grep -c '^20001:' || true") == "0\n");

    Route route{V4, 101, 0, {nh("203.0.113.1", "ether1")}};
    CHECK(nl->replace_route(route).is_ok());
    CHECK(nl->delete_route(route).is_ok());
    CHECK(nl->route_netlink().delete_route(route).err == ESRCH);
    CHECK(nl->delete_route(route).is_ok());
    CHECK(nl->route_netlink().delete_route(Route{V4, 4242, 0, {nh("203.0.113.1", "ether1")}}).err == ESRCH);
    CHECK(nl->delete_route(Route{V4, 4242, 0, {nh("203.0.113.1", "ether1")}}).is_ok());  // no such table
}

TEST_CASE("deleting our metric-0 route leaves our route at another metric") {
    // fib_table_delete() reads metric 0 as "any": the nexthops must pin the route.
    make_router();
    auto nl = open_nl();
    Route low{V4, 101, 0, {nh("203.0.113.1", "ether1")}};
    Route high{V4, 101, 10, {nh("198.51.100.1", "ether2")}};
    require_clean(sync_routes(*nl, {high}));
    CHECK(nl->delete_route(low).is_ok());
    CHECK(must("ip -4 route show table 101") == "default via 198.51.100.1 dev ether2 proto 87 metric 10 \n");
    require_clean(sync_routes(*nl, {low, high}));
    SyncReport r = sync_routes(*nl, {high});
    require_clean(r);
    CHECK(r.deleted == 1);
    CHECK(must("ip -4 route show table 101") == "default via 198.51.100.1 dev ether2 proto 87 metric 10 \n");
}

TEST_CASE("an on-link route (point-to-point WAN) has no gateway and stays in sync") {
    make_router();
    auto nl = open_nl();
    std::vector<Route> routes = {Route{V4, 103, 0, {nh(nullptr, "ether1")}},
                                 Route{V4, kMainTable, 0, {nh(nullptr, "ether1", 2), nh("198.51.100.1", "ether2", 1)}}};
    require_clean(sync_routes(*nl, routes));
    CHECK(must("ip -4 route show table 103") == "default dev ether1 proto 87 scope link \n");
    CHECK(must("ip -4 route show default table main") ==
          "default proto 87 \n\tnexthop dev ether1 weight 2 \n\tnexthop via 198.51.100.1 dev ether2 weight 1 \n");
    SyncReport again = sync_routes(*nl, routes);
    require_clean(again);
    CHECK_FALSE(again.changed());
}

TEST_CASE("the route dump is filtered in the kernel: a big foreign table is not transferred") {
    make_router();
    must("for i in $(seq 0 1999); do echo \"route add 10.$((i / 250)).$((i % 250)).0/24 via 203.0.113.1 proto static\"; "
         "done | ip -batch -");
    auto nl = open_nl();
    require_clean(sync_routes(*nl, desired_routes()));
    unsigned before = nl->route_netlink().replies_received();
    auto own = nl->dump_own_routes();
    REQUIRE(own.has_value());
    CHECK(own->size() == 3);
    CHECK(nl->route_netlink().replies_received() - before == 3);  // without the filter: > 2000
}

TEST_CASE("src_valid_mark is set and read over netlink, as /proc shows it") {
    make_router();
    auto nl = open_nl();
    const std::string proc = "/proc/sys/net/ipv4/conf/ether1/src_valid_mark";
    REQUIRE(read_file(proc) == "0");
    auto off = nl->get_src_valid_mark(ifindex("ether1"));
    REQUIRE(off.has_value());
    CHECK_FALSE(*off);

    REQUIRE(nl->set_src_valid_mark(ifindex("ether1"), true).is_ok());
    CHECK(read_file(proc) == "1");
    CHECK(read_file("/proc/sys/net/ipv4/conf/ether2/src_valid_mark") == "0");
    auto on = nl->get_src_valid_mark(ifindex("ether1"));
    REQUIRE(on.has_value());
    CHECK(*on);

    REQUIRE(nl->set_src_valid_mark(ifindex("ether1"), false).is_ok());
    CHECK(read_file(proc) == "0");

    Status missing = nl->set_src_valid_mark(9999, true);
    CHECK(missing.err == ENODEV);
    CHECK(missing.message == "Could not set src_valid_mark on ifindex 9999: No such device");
}

TEST_CASE("KernelSync over NetlinkKernel: the article's router installed, kept, and removed") {
    make_router();
    auto nl = open_nl();
    KernelSync sync(*nl);
    auto config = test::article_config();
    auto inputs = test::healthy(config);
    inputs[0].ifindex = ifindex("ether1");
    inputs[1].ifindex = ifindex("ether2");
    Desired desired = build_desired(config, inputs);

    ApplyReport first = sync.apply(desired);
    for (const auto& [part, status] : first.results) CHECK_MESSAGE(status.is_ok(), part, ": ", status.message);
    CHECK(first.nft_ops == 1);
    CHECK(first.routes.added == 3);
    CHECK(first.rules.added == 4);
    CHECK(nl->table_exists().value());
    // build_desired's rules: the suppress rule, one per WAN, then the balanced table's.
    CHECK(must("ip -4 rule show") ==
          "0:\tfrom all lookup local\n"
          "20000:\tfrom all lookup main suppress_prefixlength 0 proto 87\n"
          "20001:\tfrom all fwmark 0x100/0x3f00 lookup 101 proto 87\n"
          "20002:\tfrom all fwmark 0x200/0x3f00 lookup 102 proto 87\n"
          "20003:\tfrom all lookup 100 proto 87\n"
          "32766:\tfrom all lookup main\n"
          "32767:\tfrom all lookup default\n");
    CHECK(must("ip -4 route show default table 100").find("nexthop via 203.0.113.1 dev ether1") != std::string::npos);

    unsigned before = nl->route_netlink().messages_sent();
    ApplyReport again = sync.apply(desired);
    CHECK(again.ok());
    CHECK(again.nft_ops + again.routes_changed() + again.rules_changed() == 0);
    CHECK(nl->route_netlink().messages_sent() - before == 4);  // the dumps, of both families

    CHECK(sync.teardown().empty());
    CHECK_FALSE(nl->table_exists().value());
    CHECK(must("ip -4 route show table all proto 87") == "");
    CHECK(must("ip -4 rule show | grep -c 'proto 87' || true") == "0\n");
}

// --- IPv6 ---

namespace {

// make_router() plus global IPv6 addresses on the WANs (nodad: usable at once) and the LAN's ULA.
void make_router6() {
    make_router();
    must("ip -6 addr add 2001:db8:1::2/64 dev ether1 nodad");
    must("ip -6 addr add 2001:db8:2::2/64 dev ether2 nodad");
    must("ip -6 addr add fd00:88::1/64 dev ether3 nodad");
}

std::vector<Route> desired_routes6(unsigned weight2 = 1) {
    return {Route{V6, 101, 1024, {nh6("fe80::1", "ether1")}},
            Route{V6, 102, 1024, {nh6("fe80::2", "ether2")}},
            Route{V6, 100, 1024, {nh6("fe80::1", "ether1", 1), nh6("fe80::2", "ether2", weight2)}}};
}

std::vector<Rule> desired_rules6() {
    return {Rule{V6, 20000, std::nullopt, 0xffffffff, kMainTable, uint8_t(0)},
            Rule{V6, 20001, 0x100u, 0x3f00, 101, std::nullopt},
            Rule{V6, 20002, 0x200u, 0x3f00, 102, std::nullopt},
            Rule{V6, 20003, std::nullopt, 0xffffffff, 100, std::nullopt}};
}

template <class T>
std::vector<T> of_family(const std::vector<T>& all, Family family) {
    std::vector<T> out;
    for (const auto& x : all)
        if (x.family == family) out.push_back(x);
    return out;
}

}  // namespace

TEST_CASE("IPv6: single and multipath routes with link-local gateways; the dump finds only ours") {
    make_router6();
    // Foreign IPv6 defaults: one in main as router advertisements put it, one static in table 7.
    must("ip -6 route add default via fe80::99 dev ether1 proto ra metric 1024");
    must("ip -6 route add default via fe80::98 dev ether2 table 7 proto static");
    auto nl = open_nl();
    auto routes = desired_routes6(3);
    for (const auto& r : routes) REQUIRE_MESSAGE(nl->replace_route(r).is_ok(), describe(r));
    CHECK(must("ip -6 route show table 101") == "default via fe80::1 dev ether1 proto 87 metric 1024 pref medium\n");
    std::string multi = must("ip -6 route show table 100");
    CHECK(multi.find("nexthop via fe80::1 dev ether1 weight 1") != std::string::npos);
    CHECK(multi.find("nexthop via fe80::2 dev ether2 weight 3") != std::string::npos);

    auto own = nl->dump_own_routes();
    REQUIRE_MESSAGE(own.has_value(), own.error().message);
    CHECK(of_family(*own, V4).empty());
    REQUIRE(own->size() == 3);
    for (const auto& want : routes) {
        bool found = false;
        for (const auto& got : *own) found |= kernel_equal(got, want);
        CHECK_MESSAGE(found, describe(want));
    }

    // A replace of the multipath route replaces it whole (no sibling appended or left over).
    Route one_left{V6, 100, 1024, {nh6("fe80::2", "ether2")}};
    REQUIRE(nl->replace_route(one_left).is_ok());
    CHECK(must("ip -6 route show table 100") == "default via fe80::2 dev ether2 proto 87 metric 1024 pref medium\n");
    REQUIRE(nl->replace_route(routes[2]).is_ok());
    CHECK(count_lines(must("ip -6 route show table 100 | grep -c nexthop")) == "2");

    // Delete: the multipath route with every sibling, then a single one; foreign routes stay.
    CHECK(nl->route_netlink().delete_route(routes[2]).is_ok());
    CHECK(must("ip -6 route show table 100") == "");
    CHECK(nl->route_netlink().delete_route(routes[2]).err == ESRCH);
    CHECK(nl->delete_route(routes[0]).is_ok());
    CHECK(must("ip -6 route show table 101") == "");
    CHECK(must("ip -6 route show default").find("via fe80::99 dev ether1 proto ra") != std::string::npos);
    CHECK(must("ip -6 route show table 7") != "");
    auto left = nl->dump_own_routes();
    REQUIRE(left.has_value());
    CHECK(left->size() == 1);
}

TEST_CASE("IPv6: a foreign route in our slot is found per family; a nexthop via a down link is ENETDOWN") {
    make_router6();
    must("ip -6 route add default via fe80::99 dev ether1 table 101 proto ra");
    must("ip -4 route add default via 198.51.100.1 dev ether2 table 102 proto dhcp");
    auto nl = open_nl();
    CHECK(nl->foreign_default_route(V6, 101, 1024).value() == "default via fe80::99 dev ether1 proto ra metric 1024");
    CHECK(nl->foreign_default_route(V6, 102, 1024).value() == "");  // IPv4's route there is no IPv6 one
    CHECK(nl->foreign_default_route(V4, 101, 0).value() == "");
    CHECK(nl->foreign_default_route(V6, 4242, 1024).value() == "");  // no such table

    SyncReport r = sync_routes(*nl, desired_routes6());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.error_families[0] == V6);
    CHECK(r.errors[0].message.rfind("Could not add IPv6 default route in table 101 (via fe80::1 dev ether1): IPv6 table 101 "
                                    "metric 1024 already holds \"default via fe80::99 dev ether1 proto ra metric 1024\"",
                                    0) == 0);
    CHECK(r.added == 2);

    must("ip link set ether2 down");
    Status st = nl->replace_route(Route{V6, 102, 1024, {nh6("fe80::3", "ether2")}});
    CHECK(st.err == ENETDOWN);
    MESSAGE(st.message);
    CHECK(st.message.rfind("Could not replace IPv6 default route in table 102 (via fe80::3 dev ether2): Network is down", 0) ==
          0);
}

TEST_CASE("IPv6 rules beside IPv4's at the same priorities; marked IPv6 packets take their WAN") {
    make_router6();
    auto nl = open_nl();
    std::vector<Rule> rules = desired_rules();
    for (const auto& r : desired_rules6()) rules.push_back(r);
    SyncReport added = sync_rules(*nl, rules);
    require_clean(added);
    CHECK(added.added == 7);
    require_clean(sync_routes(*nl, desired_routes6()));
    CHECK(must("ip -6 rule show") ==
          "0:\tfrom all lookup local\n"
          "20000:\tfrom all lookup main suppress_prefixlength 0 proto 87\n"
          "20001:\tfrom all fwmark 0x100/0x3f00 lookup 101 proto 87\n"
          "20002:\tfrom all fwmark 0x200/0x3f00 lookup 102 proto 87\n"
          "20003:\tfrom all lookup 100 proto 87\n"
          "32766:\tfrom all lookup main\n");
    CHECK(must("ip -4 rule show") == kExpectedRules);

    auto own = nl->dump_own_rules();
    REQUIRE(own.has_value());
    CHECK(of_family(*own, V4) == desired_rules());
    CHECK(of_family(*own, V6) == desired_rules6());
    SyncReport again = sync_rules(*nl, rules);
    require_clean(again);
    CHECK_FALSE(again.changed());

    CHECK(must("ip -6 route get 2001:db8:ff::10 mark 0x200").find("via fe80::2 dev ether2 table 102") != std::string::npos);
    CHECK(must("ip -6 route get 2001:db8:ff::10 mark 0x100").find("via fe80::1 dev ether1 table 101") != std::string::npos);
    // Replies to the LAN's ULA stay in main (suppress rule), marked or not.
    CHECK(must("ip -6 route get fd00:88::10 mark 0x200").find("dev ether3") != std::string::npos);

    // Removing the IPv6 rules leaves IPv4's untouched.
    SyncReport v4_only = sync_rules(*nl, desired_rules());
    require_clean(v4_only);
    CHECK(v4_only.deleted == 4);
    CHECK(must("ip -6 rule show") == "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n");
    CHECK(must("ip -4 rule show") == kExpectedRules);
}

TEST_CASE("get_ipv6_conf reads accept_ra and forwarding over netlink, as sysctl sets them") {
    make_router6();
    auto nl = open_nl();
    int e1 = ifindex("ether1");
    must("sysctl -qw net.ipv6.conf.ether1.accept_ra=2 net.ipv6.conf.ether1.forwarding=1");
    auto conf = nl->get_ipv6_conf(e1);
    REQUIRE_MESSAGE(conf.has_value(), conf.error().message);
    CHECK(conf->accept_ra == 2);
    CHECK(conf->forwarding == 1);
    CHECK(conf->accepts_ra());
    must("sysctl -qw net.ipv6.conf.ether1.accept_ra=1");
    conf = nl->get_ipv6_conf(e1);
    REQUIRE(conf.has_value());
    CHECK(conf->accept_ra == 1);
    CHECK_FALSE(conf->accepts_ra());  // forwarding: the kernel ignores RAs
    must("sysctl -qw net.ipv6.conf.ether1.accept_ra=0 net.ipv6.conf.ether1.forwarding=0");
    CHECK(nl->get_ipv6_conf(e1).value() == Ipv6Conf{0, 0});
    CHECK(nl->get_ipv6_conf(ifindex("ether2")).value().accept_ra == 1);  // the default, untouched
    Status missing = nl->get_ipv6_conf(99999).error();
    CHECK(missing.err == ENODEV);
    CHECK(missing.message.rfind("Could not read the IPv6 settings of ifindex 99999: No such device", 0) == 0);
}

TEST_CASE("KernelSync over NetlinkKernel: a dual-stack router installed, kept, and removed") {
    make_router6();
    auto nl = open_nl();
    KernelSync sync(*nl);
    auto config = test::dual_stack_config();
    config.wans.pop_back();  // no lte interface here
    auto inputs = test::healthy(config);
    inputs[0].ifindex = ifindex("ether1");
    inputs[1].ifindex = ifindex("ether2");
    inputs[1].gateway6 = Ipv6::parse("2001:db8:2::1");
    Desired desired = build_desired(config, inputs);

    ApplyReport first = sync.apply(desired);
    for (const auto& [part, status] : first.results) CHECK_MESSAGE(status.is_ok(), part, ": ", status.message);
    CHECK(first.routes.added == 6);
    CHECK(first.rules.added == 8);
    CHECK(must("ip -6 route show table 102") == "default via 2001:db8:2::1 dev ether2 proto 87 metric 1024 pref medium\n");
    CHECK(must("ip -6 route show table 100").find("nexthop via fe80::1 dev ether1 weight 1") != std::string::npos);
    CHECK(must("ip -4 route show table 100").find("nexthop via 203.0.113.1 dev ether1 weight 1") != std::string::npos);

    ApplyReport again = sync.apply(desired);
    CHECK(again.ok());
    CHECK(again.nft_ops + again.routes_changed() + again.rules_changed() == 0);

    inputs[0].health6 = Health::Down;  // charter's IPv6 dies, its IPv4 works
    ApplyReport moved = sync.apply(build_desired(config, inputs));
    CHECK(moved.ok());
    CHECK(moved.routes.replaced == 1);
    CHECK(must("ip -6 route show table 100") == "default via 2001:db8:2::1 dev ether2 proto 87 metric 1024 pref medium\n");
    CHECK(must("ip -4 route show table 100").find("nexthop via 203.0.113.1 dev ether1") != std::string::npos);

    CHECK(sync.teardown().empty());
    CHECK(must("ip -6 route show table all proto 87") == "");
    CHECK(must("ip -4 route show table all proto 87") == "");
    CHECK(must("ip -6 rule show") == "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n");
}
