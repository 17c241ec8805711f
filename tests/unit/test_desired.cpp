#include <doctest/doctest.h>

#include <map>

#include "rules/desired.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb;
using wb::test::article_config;
using wb::test::healthy;
using wb::test::ip;

namespace {

std::map<std::string, unsigned> balance_shares(const Desired& d) {
    std::map<std::string, unsigned> out;
    for (const auto& e : d.table.find_set("balance")->elements) ++out[e.goto_chain];
    return out;
}

const Route* route_in(const Desired& d, uint32_t table) {
    for (const auto& r : d.routes)
        if (r.table == table) return &r;
    return nullptr;
}

}  // namespace

TEST_CASE("the article's router: per-WAN tables, rules, and a balanced multipath default") {
    auto c = article_config();
    auto d = build_desired(c, healthy(c));

    REQUIRE(d.routes.size() == 3);
    CHECK(ip_command(*route_in(d, 101)) ==
          "ip route replace default proto wanbalance table 101 via 203.0.113.1 dev ether1");
    const Route* main = route_in(d, kBalancedTable);
    REQUIRE(main);
    REQUIRE(main->nexthops.size() == 2);
    CHECK(main->nexthops[0].gateway == ip("203.0.113.1"));
    CHECK(main->nexthops[1].ifname == "ether2");
    CHECK(main->nexthops[0].weight == 1);

    REQUIRE(d.rules.size() == 4);
    CHECK(d.rules[0].priority == 20000);
    CHECK(d.rules[0].suppress_prefixlen == uint8_t(0));
    CHECK(d.rules[0].table == kMainTable);
    CHECK(d.rules[1].fwmark == 0x100u);
    CHECK(d.rules[1].fwmask == 0x3f00u);
    CHECK(d.rules[1].table == 101u);
    CHECK(d.rules[2].priority == 20002);
    // The balanced table last, for every packet no WAN rule took; others' defaults in main
    // are shadowed by it, never replaced (route_in(d, kMainTable) is nothing of ours).
    CHECK(d.rules[3].priority == 20003);
    CHECK_FALSE(d.rules[3].fwmark);
    CHECK(d.rules[3].table == kBalancedTable);
    CHECK_FALSE(route_in(d, kMainTable));

    auto shares = balance_shares(d);
    CHECK(shares["wan_charter"] + shares["wan_integra"] == kBalanceBuckets);
    CHECK(shares["wan_charter"] >= 510);
    CHECK(shares["wan_integra"] >= 510);
    CHECK_FALSE(d.active.all_down);
}

TEST_CASE("the table marks connections from each WAN and restores marks, keeping foreign bits") {
    auto c = article_config();
    auto d = build_desired(c, healthy(c));
    std::string text = nft::render(d.table);
    CHECK(text.find("chain wan_charter {\n\t\tct mark set ct mark & 0xffffc1ff | 0x00000100\n"
                    "\t\tmeta mark set meta mark & 0xffffc1ff | 0x00000100\n\t}") != std::string::npos);
    CHECK(text.find("ct mark & 0x00003f00 vmap @by_mark") != std::string::npos);
    CHECK(text.find("ct state new iifname vmap @by_wan") != std::string::npos);
    CHECK(text.find("ct state new iifname @lans fib daddr type != local jhash ip saddr . ip daddr . th sport . "
                    "th dport mod 1021 seed 0x77616e62 vmap @balance") != std::string::npos);
    CHECK(text.find("type route hook output priority mangle; policy accept;") != std::string::npos);
    CHECK(text.find("ct state new meta mark & 0x00003f00 vmap @by_mark") != std::string::npos);
    CHECK(text.find("meta nfproto ipv4 oifname \"ether1\" masquerade comment \"charter\"") != std::string::npos);
    CHECK(text.find("elements = { 0x00000100 : goto wan_charter, 0x00000200 : goto wan_integra }") !=
          std::string::npos);
}

TEST_CASE("a WAN that is down leaves the balance map and the main route, keeping its table and rule") {
    auto c = article_config();
    auto in = healthy(c);
    in[1].health = Health::Down;
    auto d = build_desired(c, in);
    auto shares = balance_shares(d);
    CHECK(shares["wan_charter"] == kBalanceBuckets);
    CHECK(shares.count("wan_integra") == 0);
    REQUIRE(route_in(d, kBalancedTable));
    CHECK(route_in(d, kBalancedTable)->nexthops.size() == 1);
    CHECK(route_in(d, 102));  // probes and replies still leave through it
    CHECK(d.rules.size() == 4);
    // The WAN still gets inbound marking and its restore entry.
    CHECK(d.table.find_set("by_wan")->elements.size() == 2);
}

TEST_CASE("carrier loss takes a WAN out at once; an absent interface has no table route") {
    auto c = article_config();
    auto in = healthy(c);
    in[0].carrier = false;
    auto d = build_desired(c, in);
    CHECK(balance_shares(d)["wan_integra"] == kBalanceBuckets);
    CHECK(route_in(d, 101));  // the kernel keeps it (linkdown); so do we
    in[0].ifindex = 0;
    d = build_desired(c, in);
    CHECK_FALSE(route_in(d, 101));
    CHECK(d.rules.size() == 4);
}

TEST_CASE("tiers: a backup WAN takes traffic only when every lower tier is down") {
    auto c = article_config();
    c.wans[1].tier = 1;
    auto in = healthy(c);
    auto d = build_desired(c, in);
    CHECK(balance_shares(d)["wan_charter"] == kBalanceBuckets);
    CHECK(route_in(d, kBalancedTable)->nexthops.size() == 1);
    CHECK(route_in(d, kBalancedTable)->nexthops[0].ifname == "ether1");
    in[0].health = Health::Down;
    d = build_desired(c, in);
    CHECK(balance_shares(d)["wan_integra"] == kBalanceBuckets);
    CHECK(route_in(d, kBalancedTable)->nexthops[0].ifname == "ether2");
    CHECK_FALSE(d.active.all_down);
}

TEST_CASE("every WAN down: keep balancing over the links that are up, but not disabled ones") {
    auto c = article_config();
    auto in = healthy(c);
    in[0].health = Health::Down;
    in[1].health = Health::Down;
    auto d = build_desired(c, in);
    CHECK(d.active.all_down);
    CHECK(d.active.wans == std::vector<size_t>{0, 1});
    CHECK(route_in(d, kBalancedTable)->nexthops.size() == 2);
    in[1].health = Health::Disabled;
    d = build_desired(c, in);
    CHECK(d.active.wans == std::vector<size_t>{0});
    in[0].carrier = false;
    d = build_desired(c, in);
    CHECK(d.active.wans.empty());
    CHECK_FALSE(route_in(d, kBalancedTable));
    CHECK(d.table.find_set("balance")->elements.empty());
}

TEST_CASE("weights: 3:1 in the map and on the nexthops; big weights scale into the kernel's range") {
    auto c = article_config();
    c.wans[0].weight = 3;
    auto d = build_desired(c, healthy(c));
    CHECK(balance_shares(d)["wan_charter"] == 766);
    CHECK(route_in(d, kBalancedTable)->nexthops[0].weight == 3);
    c.wans[0].weight = 1000;
    c.wans[1].weight = 1;
    d = build_desired(c, healthy(c));
    CHECK(route_in(d, kBalancedTable)->nexthops[0].weight == 256);
    CHECK(route_in(d, kBalancedTable)->nexthops[1].weight == 1);
}

TEST_CASE("point-to-point WANs route on-link; auto gateways follow the inputs") {
    auto c = article_config();
    c.wans[1].gateway.reset();
    auto in = healthy(c);
    in[1].gateway.reset();
    auto d = build_desired(c, in);
    CHECK_FALSE(route_in(d, 102));  // gateway unknown yet
    CHECK(balance_shares(d).count("wan_integra") == 0);
    in[1].gateway = Ipv4::parse("198.51.100.254");
    d = build_desired(c, in);
    CHECK(route_in(d, 102)->nexthops[0].gateway == ip("198.51.100.254"));
    in[1].gateway.reset();
    in[1].point_to_point = true;
    d = build_desired(c, in);
    CHECK_FALSE(route_in(d, 102)->nexthops[0].gateway.has_value());
}

TEST_CASE("classifier and masquerade options shape the rules") {
    auto c = article_config();
    c.classifier = Classifier::RoundRobin;
    c.masquerade = false;
    auto d = build_desired(c, healthy(c));
    std::string text = nft::render(d.table);
    CHECK(text.find("meta nfproto ipv4 iifname @lans fib daddr type != local numgen inc mod 1021 vmap @balance") !=
          std::string::npos);
    CHECK(d.table.find_chain("postrouting")->rules.empty());
    c.classifier = Classifier::SrcAddress;
    text = nft::render(build_desired(c, healthy(c)).table);
    CHECK(text.find("jhash ip saddr mod 1021 seed 0x77616e62 vmap @balance") != std::string::npos);
    c.classifier = Classifier::BothPorts;
    text = nft::render(build_desired(c, healthy(c)).table);
    CHECK(text.find("meta nfproto ipv4 iifname @lans fib daddr type != local jhash th sport . th dport") !=
          std::string::npos);
}

TEST_CASE("build_desired is a pure function") {
    auto c = article_config();
    auto a = build_desired(c, healthy(c));
    auto b = build_desired(c, healthy(c));
    CHECK(a.table == b.table);
    CHECK(a.routes == b.routes);
    CHECK(a.rules == b.rules);
}

TEST_CASE("the offline ruleset text is nft -f input with routes and rules as comments") {
    auto c = article_config();
    c.wans[1].gateway.reset();
    std::string text = render_ruleset(c, build_desired(c, assume_all_up(c)));
    CHECK(text.rfind("#!/usr/sbin/nft -f\n", 0) == 0);
    CHECK(text.find("#   ip rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto wanbalance") !=
          std::string::npos);
    CHECK(text.find("integra: gateway \"auto\"") != std::string::npos);
    for (size_t pos = text.find("\n}\n") + 3; pos < text.size(); pos = text.find('\n', pos) + 1) {
        if (text[pos] == '\n') continue;
        CHECK(text[pos] == '#');
    }
}

TEST_CASE("the balanced table is 100 unless a WAN's table is, then the first free id above them") {
    auto c = article_config();
    CHECK(balanced_table(c) == kBalancedTable);
    c.wans[0].table = 100;
    c.wans[1].table = 252;
    CHECK(balanced_table(c) == 256);  // 253-255 are the kernel's
    c.wans[1].table = 101;
    CHECK(balanced_table(c) == 102);
    auto d = build_desired(c, healthy(c));
    CHECK(route_in(d, 102));
    CHECK(d.rules.back().table == 102u);
}
