#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "rules/policy.hpp"
#include "tests/unit/policy_fixtures.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb;
using nft::FieldRange;
using nft::MatchField;
using wb::test::article_config;
using wb::test::cidr;
using wb::test::cidrs;
using wb::test::packet;
using wb::test::rule;

namespace {

constexpr uint8_t kTcp = IPPROTO_TCP, kUdp = IPPROTO_UDP, kIcmp = IPPROTO_ICMP, kIcmp6 = IPPROTO_ICMPV6;

std::vector<uint8_t> be(uint64_t v, size_t width) {
    std::vector<uint8_t> out(width);
    for (size_t i = width; i-- > 0; v >>= 8) out[i] = uint8_t(v);
    return out;
}

std::vector<uint8_t> address_bytes(const IpAddr& a) {
    if (const auto* v4 = std::get_if<Ipv4>(&a)) return be(v4->value, 4);
    const auto& b = std::get<Ipv6>(a).bytes;
    return {b.begin(), b.end()};
}

// The packet's value of a key field, as the kernel loads it into the lookup key.
std::vector<uint8_t> packet_field(MatchField f, const PacketKey& p) {
    switch (f) {
        case MatchField::Iifname: break;  // never a key field
        case MatchField::SrcAddr: return address_bytes(p.src);
        case MatchField::DstAddr: return address_bytes(p.dst);
        case MatchField::L4proto: return {p.proto};
        case MatchField::SrcPort: return be(p.sport, 2);
        case MatchField::DstPort: return be(p.dport, 2);
    }
    return {};
}

bool element_contains(const CompiledRules& c, const nft::Element& e, const PacketKey& p) {
    const auto& ranges = std::get<nft::FieldRanges>(e.key);
    REQUIRE(ranges.size() == c.fields.size());
    for (size_t i = 0; i < ranges.size(); ++i) {
        auto v = packet_field(c.fields[i], p);
        REQUIRE(v.size() == ranges[i].first.size());
        REQUIRE(v.size() == ranges[i].last.size());
        if (v < ranges[i].first || ranges[i].last < v) return false;
    }
    return true;
}

// What the kernel does with rules4/rules6: the layer maps in order, the first holding the packet
// decides; then the catch-all, if any. Within a layer at most one element may hold a packet
// (pipapo refuses overlapping elements), so at most one rule.
std::optional<size_t> kernel_match(const Config& config, const CompiledRules& c, const PacketKey& p) {
    for (const auto& layer : c.layers) {
        const nft::Element* hit = nullptr;
        for (const auto& e : layer)
            if (element_contains(c, e, p)) {
                REQUIRE_MESSAGE(!hit, "two elements of one layer hold the packet: " << hit->goto_chain << ", " << e.goto_chain);
                hit = &e;
            }
        if (!hit) continue;
        for (size_t r : c.rules)
            if (rule_chain_name(config.rules[r]) == hit->goto_chain) return r;
        FAIL("an element goes to no rule: " << hit->goto_chain);
    }
    return c.catch_all;
}

// rules4/rules6 split by LAN first goes to the chain of the packet's LAN (rules4_lans); a packet
// from elsewhere never reaches rules4 (prerouting takes only the LANs').
std::optional<size_t> kernel_match(const Config& config, const CompiledFamily& f, const PacketKey& p) {
    if (!f.by_lan) {
        REQUIRE(f.chains.size() == 1);
        CHECK(f.chains[0].lan.empty());
        return kernel_match(config, f.chains[0], p);
    }
    REQUIRE(f.chains.size() == config.lans.size());
    for (const auto& chain : f.chains)
        if (chain.lan == p.iif) return kernel_match(config, chain, p);
    return std::nullopt;
}

std::optional<size_t> kernel_match(const Config& config, const PacketKey& p) {
    return kernel_match(config, compile_family(config, p.family), p);
}

size_t layer_of(const CompiledRules& c, const std::string& name) {
    for (size_t layer = 0; layer < c.layers.size(); ++layer)
        for (const auto& e : c.layers[layer])
            if (e.goto_chain == "rule_" + name) return layer + 1;
    return 0;
}

Config with_rules(std::vector<RuleConfig> rules) {
    Config c = article_config();
    c.lans = {"ether3", "ether4"};
    c.rules = std::move(rules);
    return c;
}

// --- random configs whose rules overlap on purpose ---

struct Generator {
    std::mt19937 rng;
    explicit Generator(unsigned seed) : rng(seed) {}
    unsigned below(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng); }
    bool chance(unsigned percent) { return below(100) < percent; }

    // Addresses from a small space (10.0-1.0-3.x, 2001:db8:0-1:0-3::x) so prefixes nest and overlap.
    IpAddr address(Family f) {
        if (f == Family::V4) return Ipv4{(10u << 24) | (below(2) << 16) | (below(4) << 8) | below(256)};
        Ipv6 a = *Ipv6::parse("2001:db8::");
        a.bytes[5] = uint8_t(below(2));
        a.bytes[7] = uint8_t(below(4));
        a.bytes[15] = uint8_t(below(256));
        a.bytes[14] = uint8_t(chance(10) ? below(256) : 0);
        return a;
    }
    Cidr prefix(Family f) {
        static const uint8_t lens4[] = {0, 8, 15, 16, 22, 24, 25, 30, 32};
        static const uint8_t lens6[] = {0, 32, 47, 48, 62, 64, 120, 127, 128};
        Cidr c;
        c.len = f == Family::V4 ? lens4[below(9)] : lens6[below(9)];
        c.addr = address(f);
        // Host bits zero.
        const unsigned bits = f == Family::V4 ? 32 : 128;
        if (auto* v4 = std::get_if<Ipv4>(&c.addr)) v4->value &= c.len == 0 ? 0 : ~uint32_t(0) << (32 - c.len);
        else
            for (unsigned bit = c.len; bit < bits; ++bit) std::get<Ipv6>(c.addr).bytes[bit / 8] &= uint8_t(~(0x80 >> (bit % 8)));
        return c;
    }
    Family family() { return chance(50) ? Family::V4 : Family::V6; }
    std::vector<Cidr> prefixes(Family f) {
        std::vector<Cidr> out;
        for (unsigned n = below(3); n > 0; --n) out.push_back(prefix(chance(10) ? family() : f));
        return out;
    }
    uint16_t port() { return chance(5) ? uint16_t(65535 - below(3)) : uint16_t(below(40)); }
    std::vector<PortRange> ports() {
        std::vector<PortRange> out;
        for (unsigned n = chance(50) ? 0 : 1 + below(3); n > 0; --n) {
            if (chance(3)) {
                out.push_back({0, 65535});
                continue;
            }
            auto a = port(), b = port();
            out.push_back({std::min(a, b), std::max(a, b)});
        }
        return out;
    }
    RuleConfig rule(size_t index, const std::vector<std::string>& lans) {
        RuleConfig r;
        r.name = "r" + std::to_string(index);
        if (chance(5)) return r;  // a catch-all
        Family f = family();
        r.src = chance(50) ? std::vector<Cidr>{} : prefixes(f);
        r.dst = chance(30) ? std::vector<Cidr>{} : prefixes(f);
        static const uint8_t protos[] = {kTcp, kUdp, kIcmp, kIcmp6};
        if (chance(60)) r.proto = protos[below(4)];
        if (r.proto == kTcp || r.proto == kUdp) {
            r.src_port = chance(25) ? ports() : std::vector<PortRange>{};
            r.dst_port = ports();
        }
        for (const auto& lan : lans)
            if (chance(20)) r.iif.push_back(lan);
        return r;
    }
    PacketKey packet(const std::vector<std::string>& lans) {
        static const uint8_t protos[] = {kTcp, kUdp, kIcmp, kIcmp6, 47};
        PacketKey p;
        p.family = family();
        p.src = address(p.family);
        p.dst = address(p.family);
        p.proto = protos[below(5)];
        p.sport = port();
        p.dport = port();
        p.iif = lans[below(unsigned(lans.size()))];
        return p;
    }
};

}  // namespace

TEST_CASE("property: the compiled layers, looked up as the kernel does, give exactly first_match") {
    const std::vector<std::string> lans = {"lan0", "lan1", "lan2"};
    size_t matched = 0, layered = 0, packets = 0, by_lan = 0, whole = 0;
    for (unsigned seed = 1; seed <= 3000; ++seed) {
        Generator g(seed);
        Config c = article_config();
        c.lans = lans;
        // Half the configs without `iif`: one chain per family; the others split by LAN.
        const std::vector<std::string> iif_lans = g.chance(50) ? lans : std::vector<std::string>{};
        for (size_t n = 1 + g.below(12), i = 0; i < n; ++i) c.rules.push_back(g.rule(i, iif_lans));
        std::array<CompiledFamily, 2> compiled{compile_family(c, Family::V4), compile_family(c, Family::V6)};
        for (const auto& cf : compiled) {
            for (const auto& cr : cf.chains) {
                // Two fields at least (pipapo), five at most (what nft can print), never iifname.
                CHECK(cr.fields.size() >= 2);
                CHECK(cr.fields.size() <= 5);
                CHECK(std::find(cr.fields.begin(), cr.fields.end(), MatchField::Iifname) == cr.fields.end());
                CHECK(cr.layers.size() <= cr.rules.size());
                layered += cr.layers.size() > 1;
            }
            (cf.by_lan ? by_lan : whole) += !cf.rules.empty();
        }
        for (int k = 0; k < 60; ++k) {
            PacketKey p = g.packet(lans);
            auto expected = first_match(c, p);
            auto got = kernel_match(c, compiled[size_t(p.family)], p);
            if (expected != got) {
                INFO("seed " << seed << ", packet " << k);
                CHECK(got == expected);
                return;
            }
            matched += expected.has_value();
            ++packets;
        }
    }
    // The generator must exercise both outcomes and deep layering, or the property says little.
    CHECK(matched > packets / 5);
    CHECK(matched < packets * 4 / 5);
    CHECK(layered > 1000);
    CHECK(by_lan > 1000);
    CHECK(whole > 1000);
}

TEST_CASE("first_match: config order, CIDR containment, proto, port ranges, iif") {
    Config c = with_rules({rule("web", cidrs({"192.0.2.0/24"}), kTcp, {{80, 80}, {443, 443}}),
                           rule("net", cidrs({"192.0.2.0/23"})), rule("six", cidrs({"2001:db8::/32"}), kIcmp6)});
    c.rules[1].iif = {"ether4"};
    CHECK(first_match(c, packet("10.0.0.1", "192.0.2.9", kTcp, 1, 443)) == 0u);
    CHECK(first_match(c, packet("10.0.0.1", "192.0.2.9", kTcp, 1, 444, "ether4")) == 1u);
    CHECK_FALSE(first_match(c, packet("10.0.0.1", "192.0.2.9", kTcp, 1, 444, "ether3")));
    CHECK(first_match(c, packet("10.0.0.1", "192.0.3.255", kUdp, 1, 443, "")) == 1u);  // iif unknown: any
    CHECK_FALSE(first_match(c, packet("10.0.0.1", "192.0.4.0", kUdp, 1, 443, "ether4")));
    CHECK(first_match(c, packet("fd00::1", "2001:db8::1", kIcmp6, 0, 0)) == 2u);
    CHECK_FALSE(first_match(c, packet("fd00::1", "2001:db8::1", kTcp)));
    CHECK_FALSE(first_match(c, packet("fd00::1", "2001:db9::1", kIcmp6)));
}

TEST_CASE("layers: disjoint rules share one layer; nested ones stack") {
    Config c = with_rules({rule("a", cidrs({"192.0.2.10"}), kTcp, {{443, 443}}),
                           rule("b", cidrs({"192.0.2.11"}), kTcp, {{443, 443}}),
                           rule("c", cidrs({"192.0.2.10"}), kTcp, {{80, 80}}),  // same address, other port
                           rule("d", cidrs({"198.51.100.0/24"}))});
    auto cr = compile_rules(c, Family::V4);
    CHECK(cr.layers.size() == 1);
    CHECK(cr.elements() == 4);
    CHECK(cr.rules == std::vector<size_t>{0, 1, 2, 3});

    c = with_rules({rule("wide", cidrs({"10.0.0.0/8"})), rule("mid", cidrs({"10.1.0.0/16"})),
                    rule("narrow", cidrs({"10.1.2.0/24"})), rule("apart", cidrs({"172.16.0.0/12"})),
                    rule("under_mid", cidrs({"10.1.3.0/24"}), kUdp)});
    cr = compile_rules(c, Family::V4);
    // "wide" holds mid, narrow and under_mid whole: they never match and get no elements.
    CHECK(cr.layers.size() == 1);
    CHECK(layer_of(cr, "wide") == 1);
    CHECK(layer_of(cr, "mid") == 0);
    CHECK(layer_of(cr, "narrow") == 0);
    CHECK(layer_of(cr, "apart") == 1);
    CHECK(layer_of(cr, "under_mid") == 0);

    // Narrow first (exceptions first): cutting the narrower prefix out of a wider one would
    // give it two elements, so the layers keep them apart; a rule held whole gets nothing.
    c = with_rules({rule("narrow", cidrs({"10.1.2.0/24"})), rule("mid", cidrs({"10.1.0.0/16"})),
                    rule("wide", cidrs({"10.0.0.0/8"})), rule("web", cidrs({"10.1.2.0/24"}), kTcp, {{443, 443}})});
    cr = compile_rules(c, Family::V4);
    CHECK(cr.layers.size() == 3);
    CHECK(layer_of(cr, "narrow") == 1);
    CHECK(layer_of(cr, "mid") == 2);
    CHECK(layer_of(cr, "wide") == 3);
    CHECK(layer_of(cr, "web") == 0);  // narrow holds all of it
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.2.3")) == 0u);
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.9.3")) == 1u);
    CHECK(kernel_match(c, packet("192.168.88.2", "10.9.9.3")) == 2u);
    // An earlier range at the edge of a later one trims it: no more elements, one layer.
    c = with_rules({rule("low", cidrs({"10.0.0.0/9"})), rule("all10", cidrs({"10.0.0.0/8"}))});
    cr = compile_rules(c, Family::V4);
    CHECK(cr.layers.size() == 1);
    CHECK(cr.elements() == 2);
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.0.1")) == 0u);
    CHECK(kernel_match(c, packet("192.168.88.2", "10.200.0.1")) == 1u);
    // The host holds all of https's protocol and ports, but taking its address out of https
    // would split it: two layers.
    c = with_rules({rule("host", cidrs({"10.1.2.3"})), rule("https", cidrs({"10.0.0.0/8"}), kTcp, {{443, 443}})});
    cr = compile_rules(c, Family::V4);
    CHECK(cr.layers.size() == 2);
    CHECK(cr.elements() == 2);
    // The other way round, each narrower than the other in some field: two layers.
    c = with_rules({rule("web", cidrs({"10.0.0.0/8"}), kTcp, {{443, 443}}), rule("host", cidrs({"10.1.2.3"}))});
    cr = compile_rules(c, Family::V4);
    CHECK(cr.layers.size() == 2);
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.2.3", kTcp, 5, 443)) == 0u);
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.2.3", kTcp, 5, 80)) == 1u);
    c = with_rules({rule("host", cidrs({"10.1.2.3"})), rule("https", cidrs({"10.0.0.0/8"}), kTcp, {{443, 443}})});
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.2.3", kTcp, 5, 443)) == 0u);
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.2.4", kTcp, 5, 443)) == 1u);
    // The wider rule comes first, so 10.1.2.3 goes to it, as first match says.
    CHECK(kernel_match(c, packet("192.168.88.2", "10.1.2.3")) == 0u);
    CHECK(first_match(c, packet("192.168.88.2", "10.1.2.3")) == 0u);
}

TEST_CASE("1000 realistic rules (distinct /24 destinations with ports) compile to few layers") {
    std::vector<RuleConfig> rules;
    std::mt19937 rng(7);
    for (unsigned i = 0; i < 1000; ++i) {
        Ipv4 net{(100u << 24) | (i << 8)};
        std::vector<PortRange> ports = {{443, 443}};
        if (i % 3 == 0) ports.push_back({8000, 8100});
        RuleConfig r = rule("r" + std::to_string(i), {Cidr{net, 24}}, i % 5 == 0 ? kUdp : kTcp, ports);
        if (i % 7 == 0) r.src = cidrs({"192.168.88.0/25"});
        rules.push_back(r);
    }
    rules.push_back(rule("office", cidrs({"100.0.0.0/8"})));      // over all of them: one layer more
    rules.push_back(rule("tail", cidrs({"203.0.113.0/24"}), kTcp));  // apart: the first layer
    Config c = with_rules(rules);
    auto start = std::chrono::steady_clock::now();
    auto cr = compile_rules(c, Family::V4);
    auto took = std::chrono::steady_clock::now() - start;
    MESSAGE("compiled 1002 rules in " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    INFO("layers: " << cr.layers.size() << ", sizes " << cr.layers[0].size());
    CHECK(cr.layers.size() == 2);
    CHECK(cr.layers[0].size() == 1000 + 334 + 1);
    CHECK(cr.layers[1].size() == 1);
    // The most constrained field first (the protocol always last).
    CHECK(cr.fields == std::vector<MatchField>{MatchField::DstAddr, MatchField::DstPort, MatchField::SrcAddr,
                                               MatchField::L4proto});
    CHECK(kernel_match(c, packet("192.168.88.2", "100.3.231.9", kTcp, 5, 443)) == 999u);
    CHECK(kernel_match(c, packet("192.168.88.2", "100.3.231.9", kTcp, 5, 444)) == 1000u);
    CHECK(kernel_match(c, packet("192.168.88.200", "100.0.7.1", kTcp, 5, 443)) == 1000u);  // r7 wants src /25
    CHECK_FALSE(kernel_match(c, packet("192.168.88.2", "198.51.100.1")));
}

TEST_CASE("4096 rules with nested prefixes compile in well under a second (optimized; generous here)") {
    std::vector<RuleConfig> rules;
    for (unsigned i = 0; i < kMaxRules; ++i) {
        RuleConfig r = rule("r" + std::to_string(i), {Cidr{Ipv4{(10u << 24) | ((i % 512) << 12)}, uint8_t(i < 512 ? 20 : 24)}},
                            kTcp, {{uint16_t(1000 + i / 512), uint16_t(1000 + i / 512)}});
        rules.push_back(r);
    }
    Config c = with_rules(rules);
    auto start = std::chrono::steady_clock::now();
    auto cr = compile_rules(c, Family::V4);
    auto took = std::chrono::steady_clock::now() - start;
    MESSAGE("compiled 4096 rules in " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(cr.layers.size() == 1);  // the ports keep them apart
    CHECK(cr.elements() == kMaxRules);
    // bench/ measures it; this bound only catches a blow-up (it runs unoptimized, under ASan in CI).
    CHECK(took < std::chrono::seconds(10));
}

TEST_CASE("elements: the key's fields, most constrained first, each field's bytes, lists multiplied out") {
    RuleConfig a = rule("a", cidrs({"192.0.2.0/24"}), kTcp, {{443, 443}, {8000, 8100}, {8101, 8200}});
    a.src = cidrs({"10.0.0.0/8", "172.16.0.0/12"});
    RuleConfig b = rule("b", cidrs({"198.51.100.7", "198.51.100.8/31", "2001:db8::/32"}));
    Config c = with_rules({a, b});
    auto cr = compile_rules(c, Family::V4);
    CHECK(cr.fields == std::vector<MatchField>{MatchField::DstAddr, MatchField::SrcAddr, MatchField::DstPort,
                                               MatchField::L4proto});
    REQUIRE(cr.layers.size() == 1);
    const auto& elements = cr.layers[0];
    // a: 2 src x 1 dst x 1 proto x 2 port ranges (8000-8100 and 8101-8200 joined); b: 1 merged
    // dst (198.51.100.7-9).
    REQUIRE(elements.size() == 5);
    const auto& k = std::get<nft::FieldRanges>(elements[1].key);
    CHECK(elements[1].goto_chain == "rule_a");
    CHECK_FALSE(elements[1].jump);
    CHECK(k[0] == FieldRange{be(0xc0000200, 4), be(0xc00002ff, 4)});
    CHECK(k[1] == FieldRange{be(0x0a000000, 4), be(0x0affffff, 4)});
    CHECK(k[2] == FieldRange{be(8000, 2), be(8200, 2)});
    CHECK(k[3] == FieldRange{{6}, {6}});
    CHECK(std::get<nft::FieldRanges>(elements[2].key)[1].first == be(0xac100000, 4));
    const auto& kb = std::get<nft::FieldRanges>(elements[4].key);
    CHECK(elements[4].goto_chain == "rule_b");
    CHECK(kb[0] == FieldRange{be(0xc6336407, 4), be(0xc6336409, 4)});
    CHECK(kb[1] == FieldRange{be(0, 4), be(0xffffffff, 4)});
    CHECK(kb[2] == FieldRange{be(0, 2), be(65535, 2)});
    CHECK(kb[3] == FieldRange{{0}, {255}});

    // Only SrcAddr and DstAddr when no rule constrains anything else.
    cr = compile_rules(with_rules({rule("x", cidrs({"192.0.2.0/24"}))}), Family::V4);
    CHECK(cr.fields == std::vector<MatchField>{MatchField::DstAddr, MatchField::SrcAddr});
}

TEST_CASE("iif: the family's rules split by LAN, each LAN's chain from the rules that apply there") {
    RuleConfig a = rule("a", cidrs({"192.0.2.0/24"}), kTcp, {{443, 443}, {8000, 8100}});
    a.iif = {"ether4"};
    a.src_port = {{1024, 65535}};
    RuleConfig b = rule("b", cidrs({"198.51.100.7", "2001:db8::/32"}));
    RuleConfig guests = rule("guests");  // all IPv4 from ether3 (written out, the same as no src)
    guests.src = cidrs({"0.0.0.0/0"});
    guests.iif = {"ether3"};
    RuleConfig web = rule("web", {}, kTcp, {{80, 80}});
    Config c = with_rules({a, b, guests, web});
    auto cf = compile_family(c, Family::V4);
    CHECK(cf.by_lan);
    REQUIRE(cf.chains.size() == 2);
    CHECK(cf.rules == std::vector<size_t>{0, 1, 2, 3});
    const CompiledRules& e3 = cf.chains[0];
    const CompiledRules& e4 = cf.chains[1];
    CHECK(e3.lan == "ether3");
    CHECK(e3.rules == std::vector<size_t>{1, 2});  // guests ends it: web never matches there
    CHECK(e3.catch_all == 2u);
    CHECK(e3.fields == std::vector<MatchField>{MatchField::DstAddr, MatchField::SrcAddr});
    CHECK(e3.elements() == 1);
    CHECK(e4.lan == "ether4");
    CHECK(e4.rules == std::vector<size_t>{0, 1, 3});
    CHECK_FALSE(e4.catch_all);
    // Five fields, never iifname (nft 1.0.6 cannot print six).
    CHECK(e4.fields == std::vector<MatchField>{MatchField::DstAddr, MatchField::DstPort, MatchField::SrcPort,
                                               MatchField::SrcAddr, MatchField::L4proto});
    CHECK(e4.elements() == 2 + 1 + 1);
    CHECK(layer_of(e4, "a") == 1);
    CHECK(layer_of(e4, "b") == 1);
    CHECK(layer_of(e4, "web") == 2);  // over b (any port to 198.51.100.7), beside a (other ports)
    CHECK(cf.elements() == 5);
    CHECK(kernel_match(c, packet("10.0.0.1", "203.0.113.1", kTcp, 40000, 80, "ether3")) == 2u);
    CHECK(kernel_match(c, packet("10.0.0.1", "203.0.113.1", kTcp, 40000, 80, "ether4")) == 3u);
    CHECK(kernel_match(c, packet("10.0.0.1", "192.0.2.1", kTcp, 40000, 8000, "ether4")) == 0u);
    CHECK(kernel_match(c, packet("10.0.0.1", "192.0.2.1", kTcp, 1000, 8000, "ether4")) == std::nullopt);

    // IPv6: a and guests are IPv4 only, b and web name no LAN: one chain for every LAN.
    auto cf6 = compile_family(c, Family::V6);
    CHECK_FALSE(cf6.by_lan);
    REQUIRE(cf6.chains.size() == 1);
    CHECK(cf6.chains[0].lan.empty());
    CHECK(cf6.rules == std::vector<size_t>{1, 3});
    CHECK(kernel_match(c, packet("fd00::1", "2001:db8::1", kTcp, 40000, 80, "ether3")) == 1u);

    // Without iif nothing changes: one chain, as compile_rules gives it.
    c = with_rules({b, web});
    cf = compile_family(c, Family::V4);
    CHECK_FALSE(cf.by_lan);
    REQUIRE(cf.chains.size() == 1);
    CHECK(cf.chains[0].layers == compile_rules(c, Family::V4).layers);
    // An iif after a rule matching everything changes nothing either: it never matches.
    RuleConfig late = rule("late", cidrs({"192.0.2.0/24"}));
    late.iif = {"ether4"};
    c = with_rules({b, rule("rest"), late});
    cf = compile_family(c, Family::V4);
    CHECK_FALSE(cf.by_lan);
    CHECK(cf.rules == std::vector<size_t>{0, 1});
}

TEST_CASE("a rule matching everything ends the list; later rules never match") {
    Config c = with_rules({rule("vpn", cidrs({"10.8.0.0/16"})), rule("rest"), rule("late", cidrs({"192.0.2.0/24"}))});
    auto cr = compile_rules(c, Family::V4);
    CHECK(cr.catch_all == 1u);
    CHECK(cr.rules == std::vector<size_t>{0, 1});
    REQUIRE(cr.layers.size() == 1);
    CHECK(cr.elements() == 1);
    CHECK(kernel_match(c, packet("192.168.88.2", "192.0.2.1")) == 1u);
    CHECK(first_match(c, packet("192.168.88.2", "192.0.2.1")) == 1u);

    // Written out in full is the same as not constraining at all; naming every LAN splits the
    // rules by LAN, with the rule a catch-all on each.
    c.rules[1].dst = cidrs({"0.0.0.0/0"});
    CHECK(compile_rules(c, Family::V4).catch_all == 1u);
    c.rules[1].iif = {"ether4", "ether3"};
    auto cf = compile_family(c, Family::V4);
    CHECK(cf.by_lan);
    CHECK(cf.rules == std::vector<size_t>{0, 1});
    for (const auto& chain : cf.chains) CHECK(chain.catch_all == 1u);
    // ... for the family it covers: in IPv6 this rule has only IPv4 addresses, so it does not apply.
    c.rules[1].dst = cidrs({"0.0.0.0/0", "2001:db8::/32"});
    auto cr6 = compile_rules(c, Family::V6);
    CHECK_FALSE(cr6.catch_all);
    CHECK(cr6.rules == std::vector<size_t>{1});  // vpn and late have IPv4 addresses only
    REQUIRE(cr6.layers.size() == 1);
    CHECK(cr6.elements() == 1);
}

TEST_CASE("IPv6 and mixed-family rules: each family gets its own addresses, 16-byte fields") {
    RuleConfig lan = rule("lan");
    lan.src = cidrs({"10.0.0.0/8", "fd00::/8"});
    RuleConfig dns = rule("dns", cidrs({"2001:db8:53::53", "192.0.2.53"}), kUdp, {{53, 53}});
    RuleConfig ping = rule("ping", {}, kIcmp);
    RuleConfig ping6 = rule("ping6", {}, kIcmp6);
    Config c = with_rules({lan, dns, ping, ping6});

    auto cr4 = compile_rules(c, Family::V4);
    CHECK(cr4.rules == std::vector<size_t>{0, 1, 2});
    auto cr6 = compile_rules(c, Family::V6);
    CHECK(cr6.rules == std::vector<size_t>{0, 1, 3});
    CHECK(cr6.fields == std::vector<MatchField>{MatchField::DstAddr, MatchField::SrcAddr, MatchField::DstPort,
                                                MatchField::L4proto});
    // dns overlaps lan (any destination from fd00::/8); ping6 overlaps lan, not dns (another proto).
    CHECK(cr6.layers.size() == 2);
    CHECK(layer_of(cr6, "ping6") == 2);
    const auto& k = std::get<nft::FieldRanges>(cr6.layers[0][0].key);
    std::vector<uint8_t> fd00(16, 0), fdff(16, 0xff);
    fd00[0] = 0xfd;
    fdff[0] = 0xfd;
    CHECK(k[1] == FieldRange{fd00, fdff});
    CHECK(k[0] == FieldRange{std::vector<uint8_t>(16, 0), std::vector<uint8_t>(16, 0xff)});

    CHECK(kernel_match(c, packet("fd00::5", "2001:db8:53::53", kUdp, 1, 53)) == 0u);
    CHECK(kernel_match(c, packet("fe00::5", "2001:db8:53::53", kUdp, 1, 53)) == 1u);
    CHECK(kernel_match(c, packet("fe00::5", "2001:db8:53::54", kIcmp6, 0, 0)) == 3u);
    CHECK(kernel_match(c, packet("11.0.0.1", "192.0.2.53", kUdp, 1, 53)) == 1u);
    CHECK(kernel_match(c, packet("11.0.0.1", "192.0.2.54", kIcmp, 0, 0)) == 2u);
    CHECK_FALSE(kernel_match(c, packet("11.0.0.1", "192.0.2.54", kIcmp6, 0, 0)));
}

TEST_CASE("names in the table") {
    Config c = test::dual_stack_config();
    RuleConfig bank = rule("bank");
    PolicyConfig voip{"voip", {}, LastResort::Balanced};
    CHECK(rule_chain_name(bank) == "rule_bank");
    CHECK(rules_chain_name(Family::V4) == "rules4");
    CHECK(rules_chain_name(Family::V6) == "rules6");
    CHECK(rules_map_name(Family::V4, 0) == "rules4_1");
    CHECK(rules_map_name(Family::V6, 2) == "rules6_3");
    CHECK(rules_chain_name(Family::V4, "ether3") == "rules4_ether3");
    CHECK(rules_map_name(Family::V6, 0, "br-lan.10") == "rules6_br-lan.10_1");
    CHECK(rules_lans_map_name(Family::V4) == "rules4_lans");
    // What nft's parser does not take in a name, escaped: '/' is never in an interface name.
    CHECK(rules_chain_name(Family::V4, "lan@x+") == "rules4_lan/40x/2B");
    CHECK(policy_map_name(voip, Family::V4) == "policy_voip");
    CHECK(policy_map_name(voip, Family::V6) == "policy6_voip");
    CHECK(sticky_set_name(bank, c.wans[0], Family::V4) == "sticky_bank_charter");
    CHECK(sticky_set_name(bank, c.wans[1], Family::V6) == "sticky6_bank_integra");
}
