#include <doctest/doctest.h>

#include "rules/routing.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb;
using wb::test::nh;
using wb::test::V4;
using wb::test::V6;

TEST_CASE("ip_command for a per-WAN table route") {
    Route r{V4, 101, 0, {nh("203.0.113.1", 3, "ether1")}};
    CHECK(ip_command(r) == "ip route replace default proto wanbalance table 101 via 203.0.113.1 dev ether1");
    r.metric = 5;
    CHECK(ip_command(r) == "ip route replace default proto wanbalance table 101 metric 5 via 203.0.113.1 dev ether1");
}

TEST_CASE("ip_command for the main multipath route names the table and every weight") {
    Route r{V4, kMainTable, 0, {nh("203.0.113.1", 3, "ether1"), nh("198.51.100.1", 4, "ether2", 3)}};
    CHECK(ip_command(r) ==
          "ip route replace default proto wanbalance table main metric 0 "
          "nexthop via 203.0.113.1 dev ether1 weight 1 nexthop via 198.51.100.1 dev ether2 weight 3");
    CHECK(describe(r) ==
          "default route in table main (via 203.0.113.1 dev ether1 weight 1, via 198.51.100.1 dev ether2 weight 3)");
}

TEST_CASE("an on-link nexthop (point-to-point) has no via") {
    Route r{V4, 102, 0, {nh(nullptr, 9, "ppp0")}};
    CHECK(ip_command(r) == "ip route replace default proto wanbalance table 102 dev ppp0");
    CHECK(describe(r) == "default route in table 102 (dev ppp0)");
    Route main{V4, kMainTable, 0, {nh(nullptr, 9, "ppp0"), nh("203.0.113.1", 3, "ether1", 2)}};
    CHECK(ip_command(main) ==
          "ip route replace default proto wanbalance table main metric 0 "
          "nexthop dev ppp0 weight 1 nexthop via 203.0.113.1 dev ether1 weight 2");
}

TEST_CASE("describe names the table and the nexthop, as error messages quote it") {
    Route r{V4, 101, 0, {nh("203.0.113.1", 3, "ether1")}};
    CHECK(describe(r) == "default route in table 101 (via 203.0.113.1 dev ether1)");
    r.metric = 7;
    CHECK(describe(r) == "default route in table 101 metric 7 (via 203.0.113.1 dev ether1)");
}

TEST_CASE("ip_command and describe for rules") {
    Rule mark{V4, 20001, 0x100u, 0x3f00, 101, std::nullopt};
    CHECK(ip_command(mark) == "ip rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto wanbalance");
    CHECK(describe(mark) == "rule 20001 (fwmark 0x100/0x3f00 lookup 101)");
    Rule suppress{V4, 20000, std::nullopt, 0xffffffff, kMainTable, uint8_t(0)};
    CHECK(ip_command(suppress) == "ip rule add priority 20000 lookup main suppress_prefixlength 0 proto wanbalance");
    CHECK(describe(suppress) == "rule 20000 (lookup main suppress_prefixlength 0)");
    CHECK(table_name(253) == "default");
    CHECK(table_name(255) == "local");
    CHECK(table_name(1000) == "1000");
}

TEST_CASE("kernel_equal compares routes as the kernel stores them") {
    Route a{V4, kMainTable, 0, {nh("203.0.113.1", 3, "ether1"), nh("198.51.100.1", 4, "ether2")}};
    Route b = a;
    b.nexthops[0].ifname = "renamed";
    CHECK(kernel_equal(a, b));  // names are for messages only
    b.nexthops[1].weight = 2;
    CHECK_FALSE(kernel_equal(a, b));
    b = a;
    std::swap(b.nexthops[0], b.nexthops[1]);
    CHECK_FALSE(kernel_equal(a, b));  // order decides the hash split
    b = a;
    b.metric = 1;
    CHECK_FALSE(kernel_equal(a, b));
    b = a;
    b.nexthops[0].gateway = *Ipv4::parse("203.0.113.2");
    CHECK_FALSE(kernel_equal(a, b));
    b = a;
    b.nexthops.pop_back();
    CHECK_FALSE(kernel_equal(a, b));

    // A single-path route has no weight in the kernel: a dump always reads back weight 1.
    Route one{V4, kMainTable, 0, {nh("203.0.113.1", 3, "ether1", 5)}};
    Route dumped{V4, kMainTable, 0, {nh("203.0.113.1", 3, "")}};
    CHECK(kernel_equal(one, dumped));
    dumped.nexthops[0].ifindex = 4;
    CHECK_FALSE(kernel_equal(one, dumped));
}

TEST_CASE("kernel_equal compares rules on every attribute we set") {
    Rule a{V4, 20001, 0x100u, 0x3f00, 101, std::nullopt};
    Rule b = a;
    CHECK(kernel_equal(a, b));
    b.fwmask = 0xff00;
    CHECK_FALSE(kernel_equal(a, b));
    b = a;
    b.table = 102;
    CHECK_FALSE(kernel_equal(a, b));
    b = a;
    b.suppress_prefixlen = 0;
    CHECK_FALSE(kernel_equal(a, b));
    Rule s1{V4, 20000, std::nullopt, 0xffffffff, kMainTable, uint8_t(0)};
    Rule s2{V4, 20000, std::nullopt, 0, kMainTable, uint8_t(0)};
    CHECK(kernel_equal(s1, s2));  // no fwmark: the mask means nothing
}

TEST_CASE("IPv6 routes and rules: ip -6, metric 1024, IPv6 in messages, never equal across families") {
    CHECK(route_metric(V4) == 0);
    CHECK(route_metric(V6) == 1024);
    Route r{V6, 101, 1024, {nh("fe80::1", 3, "ether1")}};
    CHECK(ip_command(r) == "ip -6 route replace default proto wanbalance table 101 metric 1024 via fe80::1 dev ether1");
    CHECK(describe(r) == "IPv6 default route in table 101 (via fe80::1 dev ether1)");
    Route multi{V6, 100, 1024, {nh("fe80::1", 3, "ether1"), nh("2001:db8:2::1", 4, "ether2", 2)}};
    CHECK(ip_command(multi) ==
          "ip -6 route replace default proto wanbalance table 100 metric 1024 "
          "nexthop via fe80::1 dev ether1 weight 1 nexthop via 2001:db8:2::1 dev ether2 weight 2");
    Rule rule{V6, 20001, 0x100u, 0x3f00, 101, std::nullopt};
    CHECK(ip_command(rule) == "ip -6 rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto wanbalance");
    CHECK(describe(rule) == "IPv6 rule 20001 (fwmark 0x100/0x3f00 lookup 101)");

    Rule rule4 = rule;
    rule4.family = V4;
    CHECK_FALSE(kernel_equal(rule, rule4));
    CHECK(kernel_equal(rule, rule));
    Route on_link4{V4, 101, 1024, {nh(nullptr, 3, "ether1")}};
    Route on_link6{V6, 101, 1024, {nh(nullptr, 3, "ether1")}};
    CHECK_FALSE(kernel_equal(on_link4, on_link6));
    CHECK(kernel_equal(on_link6, on_link6));
}
