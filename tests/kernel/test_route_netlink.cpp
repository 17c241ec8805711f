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
    CHECK(nl->route_netlink().messages_sent() - before == 2);  // the two dumps, nothing else
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
    CHECK(nl->route_netlink().messages_sent() - before == 2);  // dump + one replace
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
    auto foreign = nl->foreign_default_route(101, 0);
    REQUIRE(foreign.has_value());
    CHECK(*foreign == "default via 203.0.113.1 dev ether1 proto dhcp");
    auto free_slot = nl->foreign_default_route(101, 7);
    REQUIRE(free_slot.has_value());
    CHECK(*free_slot == "");
    auto no_table = nl->foreign_default_route(4242, 0);  // the kernel says ENOENT for a missing table
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
    CHECK(nl->route_netlink().messages_sent() - before == 2);  // the two dumps

    CHECK(sync.teardown().empty());
    CHECK_FALSE(nl->table_exists().value());
    CHECK(must("ip -4 route show table all proto 87") == "");
    CHECK(must("ip -4 rule show | grep -c 'proto 87' || true") == "0\n");
}
