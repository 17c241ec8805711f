#include <doctest/doctest.h>

#include <cstdio>

#include <fstream>
#include <map>
#include <sstream>

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

TEST_CASE("the offline ruleset sums up each balance map's buckets unless asked for all of them") {
    auto c = article_config();
    Desired d = build_desired(c, assume_all_up(c));
    std::string full = render_ruleset(c, d);
    std::string summed = render_ruleset(c, d, false);
    CHECK(full.find("elements = { 0 : jump wan_") != std::string::npos);
    CHECK(summed.find("elements = { 0 : jump wan_") == std::string::npos);
    CHECK(summed.find("elements = { \"ether3\" }") != std::string::npos);  // other sets keep theirs
    const std::string line = "\t\t# 1021 buckets: ";
    size_t at = summed.find(line);
    REQUIRE(at != std::string::npos);
    // Inside the balance map, right after its type line; the two WANs' shares make the whole.
    CHECK(summed.rfind("\tmap balance {\n", at) != std::string::npos);
    unsigned a = 0, b = 0;
    REQUIRE(std::sscanf(summed.c_str() + at, "\t\t# 1021 buckets: %u to wan_charter, %u to wan_integra", &a, &b) == 2);
    CHECK(a + b == 1021);
    CHECK(summed.size() < full.size() / 2);
    // Everything but the elements is the same text.
    CHECK(summed.find("\tchain prerouting {") != std::string::npos);
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

// --- dual-stack ---

namespace {

const Route* route_of(const Desired& d, Family family, uint32_t table) {
    for (const auto& r : d.routes)
        if (r.family == family && r.table == table) return &r;
    return nullptr;
}

std::map<std::string, unsigned> shares_of(const Desired& d, const char* map) {
    std::map<std::string, unsigned> out;
    for (const auto& e : d.table.find_set(map)->elements) ++out[e.goto_chain];
    return out;
}

}  // namespace

TEST_CASE("an IPv4-only config has no IPv6 object at all") {
    auto c = article_config();
    auto d = build_desired(c, healthy(c));
    CHECK_FALSE(d.table.find_set("balance6"));
    CHECK(nft::render(d.table).find("ip6") == std::string::npos);
    CHECK(nft::render(d.table).find("ipv6") == std::string::npos);
    for (const auto& r : d.routes) CHECK(r.family == Family::V4);
    for (const auto& r : d.rules) CHECK(r.family == Family::V4);
    CHECK(d.active6.wans.empty());
}

TEST_CASE("dual-stack: balance6 holds only the IPv6 WANs; the IPv4 parts are those of IPv4 alone") {
    auto c = test::dual_stack_config();
    auto d = build_desired(c, healthy(c));
    auto v4 = shares_of(d, "balance");
    CHECK(v4.size() == 3);  // lte carries IPv4 too
    auto v6 = shares_of(d, "balance6");
    CHECK(v6.size() == 2);
    CHECK(v6.count("wan_lte") == 0);
    CHECK(v6["wan_charter"] + v6["wan_integra"] == kBalanceBuckets);
    CHECK(d.active6.wans == std::vector<size_t>{0, 1});
    CHECK(d.active.wans == std::vector<size_t>{0, 1, 2});

    // The IPv4 map, routes and rules are exactly what the same WANs give without IPv6.
    Config v4_only = c;
    for (auto& w : v4_only.wans) {
        w.ipv6 = false;
        w.gateway6.reset();
    }
    auto d4 = build_desired(v4_only, healthy(v4_only));
    CHECK(*d.table.find_set("balance") == *d4.table.find_set("balance"));
    std::vector<Route> routes4;
    for (const auto& r : d.routes)
        if (r.family == Family::V4) routes4.push_back(r);
    CHECK(routes4 == d4.routes);
    CHECK(test::rules_of(d, Family::V4) == d4.rules);
}

TEST_CASE("dual-stack: IPv6 routes in the same tables, metric 1024, link-local gateways kept") {
    auto c = test::dual_stack_config();
    auto d = build_desired(c, healthy(c));
    const Route* charter = route_of(d, Family::V6, 101);
    REQUIRE(charter);
    CHECK(charter->metric == 1024);
    CHECK(charter->nexthops[0].gateway == ip("fe80::1"));
    CHECK(charter->nexthops[0].ifindex == 10);
    CHECK(ip_command(*charter) == "ip -6 route replace default proto wanbalance table 101 metric 1024 via fe80::1 dev ether1");
    CHECK(route_of(d, Family::V6, 102)->nexthops[0].gateway == ip("2001:db8:2::1"));
    CHECK_FALSE(route_of(d, Family::V6, 103));  // lte has no IPv6
    const Route* balanced = route_of(d, Family::V6, kBalancedTable);
    REQUIRE(balanced);
    REQUIRE(balanced->nexthops.size() == 2);
    CHECK(balanced->nexthops[0].gateway == ip("fe80::1"));
    CHECK(balanced->nexthops[1].ifname == "ether2");
    // IPv4 first, then IPv6.
    CHECK(d.routes.size() == 4 + 3);
    CHECK(d.routes.front().family == Family::V4);
    CHECK(d.routes.back().family == Family::V6);
}

TEST_CASE("dual-stack: IPv6 rules at the same priorities, fwmark rules only for the IPv6 WANs") {
    auto c = test::dual_stack_config();
    auto d = build_desired(c, healthy(c));
    auto r6 = test::rules_of(d, Family::V6);
    REQUIRE(r6.size() == 4);
    CHECK(r6[0].priority == 20000);
    CHECK(r6[0].suppress_prefixlen == uint8_t(0));
    CHECK(r6[1].priority == 20001);
    CHECK(r6[1].fwmark == 0x100u);
    CHECK(r6[2].priority == 20002);
    CHECK(r6[2].table == 102u);
    // The balanced rule after every WAN's priority, lte's (20003) included: stable when a WAN
    // gains or loses IPv6.
    CHECK(r6[3].priority == 20004);
    CHECK(r6[3].table == kBalancedTable);
    CHECK(ip_command(r6[1]) == "ip -6 rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto wanbalance");
    CHECK(test::rules_of(d, Family::V4).size() == 5);
}

TEST_CASE("an IPv6 outage moves only balance6 buckets and the IPv6 route; IPv4 stays identical") {
    auto c = test::dual_stack_config();
    auto in = healthy(c);
    auto before = build_desired(c, in);
    in[0].health6 = Health::Down;
    auto after = build_desired(c, in);
    CHECK(*after.table.find_set("balance") == *before.table.find_set("balance"));
    CHECK(after.active.wans == before.active.wans);
    auto v6 = shares_of(after, "balance6");
    CHECK(v6["wan_integra"] == kBalanceBuckets);
    CHECK(v6.count("wan_charter") == 0);
    CHECK(after.active6.wans == std::vector<size_t>{1});
    CHECK(route_of(after, Family::V6, kBalancedTable)->nexthops.size() == 1);
    CHECK(route_of(after, Family::V6, 101));  // its table keeps the route for probes and replies
    CHECK(route_of(after, Family::V4, kBalancedTable)->nexthops.size() == 3);
    // Only the buckets charter owned moved.
    const auto& b6 = before.table.find_set("balance6")->elements;
    const auto& a6 = after.table.find_set("balance6")->elements;
    REQUIRE(a6.size() == b6.size());
    for (size_t i = 0; i < a6.size(); ++i)
        if (b6[i].goto_chain == "wan_integra") CHECK(a6[i].goto_chain == "wan_integra");
}

TEST_CASE("IPv6 all down falls back per family; a link without an IPv6 address is not usable for IPv6") {
    auto c = test::dual_stack_config();
    auto in = healthy(c);
    in[0].health6 = in[1].health6 = Health::Down;
    auto d = build_desired(c, in);
    CHECK(d.active6.all_down);
    CHECK(d.active6.wans == std::vector<size_t>{0, 1});
    CHECK_FALSE(d.active.all_down);
    in[1].has_address6 = false;
    d = build_desired(c, in);
    CHECK(d.active6.wans == std::vector<size_t>{0});
    CHECK_FALSE(route_of(d, Family::V6, 102));
    in[0].gateway6.reset();  // "auto" before any RA
    d = build_desired(c, in);
    CHECK(d.active6.wans.empty());
    CHECK_FALSE(route_of(d, Family::V6, kBalancedTable));
    CHECK(d.table.find_set("balance6")->elements.empty());
    CHECK(d.active.wans.size() == 3);  // IPv4 unaffected
}

TEST_CASE("dual-stack nft: link-local returns, the IPv6 balance rule, NAT66 per IPv6 WAN") {
    auto c = test::dual_stack_config();
    auto d = build_desired(c, healthy(c));
    std::string text = nft::render(d.table);
    const auto* pre = d.table.find_chain("prerouting");
    REQUIRE(pre->rules.size() == 7);
    CHECK(nft::render(pre->rules[1]) == "ip6 saddr fe80::/10 return comment \"link-local: never marked or balanced\"");
    CHECK(nft::render(pre->rules[3]) == "ip6 daddr ff00::/8 return comment \"multicast: never marked or balanced\"");
    CHECK(nft::render(pre->rules[6]) ==
          "ct state new iifname @lans fib daddr type != local jhash ip6 saddr . ip6 daddr . th sport . th dport "
          "mod 1021 seed 0x77616e62 vmap @balance6 comment \"new IPv6 from a LAN: pick a WAN (both-addresses-and-ports)\"");
    const auto* out = d.table.find_chain("output");
    REQUIRE(out->rules.size() == 5);
    CHECK(nft::render(out->rules[2]).rfind("ip6 daddr fe80::/10 return", 0) == 0);
    CHECK(nft::render(out->rules[4]).rfind("ct state new meta mark & 0x00003f00 vmap @by_mark", 0) == 0);
    const auto* post = d.table.find_chain("postrouting");
    REQUIRE(post->rules.size() == 5);
    CHECK(nft::render(post->rules[3]) == "meta nfproto ipv6 oifname \"ether1\" masquerade comment \"charter\"");
    CHECK(nft::render(post->rules[4]) == "meta nfproto ipv6 oifname \"ether2\" masquerade comment \"integra\"");
    c.classifier = Classifier::BothPorts;
    text = nft::render(build_desired(c, healthy(c)).table);
    CHECK(text.find("ct state new meta nfproto ipv6 iifname @lans fib daddr type != local jhash th sport . th dport "
                    "mod 1021 seed 0x77616e62 vmap @balance6") != std::string::npos);
}

TEST_CASE("offline ruleset: IPv6 routes and rules as ip -6 commands; auto gateway6 on-link with a note") {
    auto c = test::dual_stack_config();
    c.wans[1].gateway6.reset();  // integra: gateway6 "auto", IPv4 gateway configured
    auto inputs = assume_all_up(c);
    auto d = build_desired(c, inputs);
    std::string text = render_ruleset(c, d);
    CHECK(text.find("#   ip -6 route replace default proto wanbalance table 101 metric 1024 via fe80::1 dev ether1\n") !=
          std::string::npos);
    CHECK(text.find("#   ip -6 route replace default proto wanbalance table 102 metric 1024 dev ether2\n") !=
          std::string::npos);
    // Its IPv4 route keeps the configured gateway.
    CHECK(text.find("#   ip route replace default proto wanbalance table 102 via 198.51.100.1 dev ether2\n") !=
          std::string::npos);
    CHECK(text.find("#   ip -6 rule add priority 20000 lookup main suppress_prefixlength 0 proto wanbalance\n") !=
          std::string::npos);
    CHECK(text.find("integra: gateway6 \"auto\": at runtime its IPv6 routes go via the default route that router "
                    "advertisements put on ether2.") != std::string::npos);
    CHECK(shares_of(d, "balance6").size() == 2);
}

// --- policy rules (more in test_desired_rules.cpp) ---

namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

}  // namespace

TEST_CASE("without rules the table is the one before rules, but the balance maps jump") {
    auto c = test::dual_stack_config();
    auto d = build_desired(c, healthy(c));
    for (const char* map : {"balance", "balance6"})
        for (const auto& e : d.table.find_set(map)->elements) CHECK(e.jump);
    for (const char* map : {"by_mark", "by_wan", "reply_wans"})
        for (const auto& e : d.table.find_set(map)->elements) CHECK_FALSE(e.jump);  // the base chain stops there
    CHECK(d.table.sets.size() == 6);
    CHECK(d.table.chains.size() == 3 + 3 + 4);  // the WANs' chains, their reply counters, the base chains
    CHECK(d.rule_sends[0].empty());
    CHECK(d.rule_sends[1].empty());

    // Policies no rule uses add nothing.
    Config with_policies = c;
    with_policies.policies = {PolicyConfig{"voip", {{1, 1, 0}}, LastResort::Main}};
    auto p = build_desired(with_policies, healthy(with_policies));
    CHECK(p.table == d.table);
    CHECK(p.routes == d.routes);
    CHECK(p.rules == d.rules);

    // The article's table is the golden one, but for the verdicts of the balance map.
    auto a = test::article_config();
    std::ifstream golden_file(std::string(WB_SOURCE_DIR) + "/tests/unit/golden/article-table.nft");
    std::stringstream golden;
    golden << golden_file.rdbuf();
    REQUIRE_FALSE(golden.str().empty());
    std::string text = nft::render(build_desired(a, healthy(a)).table);
    CHECK(replace_all(text, " : jump wan_", " : goto wan_") == replace_all(golden.str(), " : jump wan_", " : goto wan_"));
}

namespace {

// One router of an HA pair: charter dual-stack with both shared addresses, integra IPv4 only.
constexpr const char* kHaPair = R"({
  "wans": [
    { "name": "charter", "interface": "ether1", "gateway": "203.0.113.1", "snat": "203.0.113.10",
      "gateway6": "2001:db8:1::1", "snat6": "2001:db8:1::10" },
    { "name": "integra", "interface": "ether2", "gateway": "198.51.100.1", "snat": "198.51.100.10" }
  ],
  "lans": ["ether3"],
  "ha_pair": true
})";

Config parsed(const std::string& text) {
    ConfigResult r = parse_config(text, "ha.json");
    REQUIRE(r.config);
    return *r.config;
}

}  // namespace

TEST_CASE("snat: LAN connections of a WAN leave with its shared address instead of being masqueraded") {
    Config c = parsed(kHaPair);
    auto d = build_desired(c, healthy(c));
    const auto* post = d.table.find_chain("postrouting");
    REQUIRE(post->rules.size() == 3);
    CHECK(nft::render(post->rules[0]) ==
          "meta nfproto ipv4 iifname @lans oifname \"ether1\" snat ip to 203.0.113.10 comment \"charter\"");
    CHECK(nft::render(post->rules[1]) ==
          "meta nfproto ipv4 iifname @lans oifname \"ether2\" snat ip to 198.51.100.10 comment \"integra\"");
    CHECK(nft::render(post->rules[2]) ==
          "meta nfproto ipv6 iifname @lans oifname \"ether1\" snat ip6 to 2001:db8:1::10 comment \"charter\"");
    // Only the WAN with snat changes; the other keeps its masquerade, and snat ignores "masquerade".
    c.wans[1].snat.reset();
    c.masquerade = false;
    d = build_desired(c, healthy(c));
    post = d.table.find_chain("postrouting");
    REQUIRE(post->rules.size() == 2);
    CHECK(nft::render(post->rules[1]).find("snat ip6 to 2001:db8:1::10") != std::string::npos);
    c.masquerade = true;
    d = build_desired(c, healthy(c));
    post = d.table.find_chain("postrouting");
    REQUIRE(post->rules.size() == 3);
    CHECK(nft::render(post->rules[1]) == "meta nfproto ipv4 oifname \"ether2\" masquerade comment \"integra\"");
}

TEST_CASE("ha_pair: a guard chain before the mangle chains drops TCP that would open a connection without a SYN") {
    Config c = parsed(kHaPair);
    std::string text = nft::render(build_desired(c, healthy(c)).table);
    const std::string guard =
        "\tchain guard {\n"
        "\t\ttype filter hook prerouting priority mangle - 10; policy accept;\n"
        "\t\ttcp flags != syn / fin,syn,rst,ack ct state new counter packets 0 bytes 0 drop comment \"HA pair: TCP that is not a SYN opens no "
        "connection\"\n"
        "\t}\n";
    CHECK(text.find(guard) != std::string::npos);
    CHECK(text.find(guard) < text.find("\tchain prerouting {"));
    c.ha_pair = false;
    CHECK(build_desired(c, healthy(c)).table.find_chain("guard") == nullptr);
}

TEST_CASE("ha_pair: the same config on two routers gives the same ruleset, byte for byte") {
    // Everything that decides where a connection goes (marks, tables, the hash seed, the bucket
    // layout) comes from the file alone, so a connection synced from the other router routes
    // through the same WAN.
    Config a = parsed(kHaPair), b = parsed(kHaPair);
    std::string first = render_ruleset(a, build_desired(a, assume_all_up(a)));
    std::string second = render_ruleset(b, build_desired(b, assume_all_up(b)));
    CHECK(first == second);
    CHECK(build_desired(a, healthy(a)).table == build_desired(b, healthy(b)).table);
    CHECK(first.find("seed 0x77616e62") != std::string::npos);
}
