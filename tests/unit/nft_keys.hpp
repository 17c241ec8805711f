// Test helpers for the keys of concatenated interval maps and sticky sets, written the way nft
// takes them ("10.0.0.0/8", "1.2.3.4-1.2.3.9", ports 0-65535), and a table of policy rules that
// uses every construct of rules/nft.hpp. Shared by the unit and the kernel tests.
#pragma once

#include <cassert>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/ip.hpp"
#include "rules/nft.hpp"

namespace wb::test {

// An address, a prefix ("10.0.0.0/8") or a range ("10.0.0.1-10.0.0.9") of either family.
inline nft::FieldRange addr(std::string_view text) {
    auto bytes = [](std::string_view t) {
        auto ip = parse_ip(t);
        assert(ip);
        if (const auto* v4 = std::get_if<Ipv4>(&*ip)) {
            uint32_t be = v4->network();
            std::vector<uint8_t> out(4);
            std::memcpy(out.data(), &be, 4);
            return out;
        }
        const auto& v6 = std::get<Ipv6>(*ip).bytes;
        return std::vector<uint8_t>(v6.begin(), v6.end());
    };
    if (auto dash = text.find('-'); dash != std::string_view::npos)
        return {bytes(text.substr(0, dash)), bytes(text.substr(dash + 1))};
    auto slash = text.find('/');
    nft::FieldRange r{bytes(text.substr(0, slash)), {}};
    r.last = r.first;
    if (slash != std::string_view::npos) {
        const size_t len = std::stoul(std::string(text.substr(slash + 1)));
        for (size_t bit = len; bit < r.first.size() * 8; ++bit) {
            r.first[bit / 8] &= uint8_t(~(0x80 >> (bit % 8)));
            r.last[bit / 8] |= uint8_t(0x80 >> (bit % 8));
        }
    }
    return r;
}

inline nft::FieldRange proto(uint8_t first, uint8_t last) { return {{first}, {last}}; }
inline nft::FieldRange proto(uint8_t p) { return proto(p, p); }
inline nft::FieldRange any_proto() { return proto(0, 255); }

inline nft::FieldRange port(uint16_t first, uint16_t last) {
    return {{uint8_t(first >> 8), uint8_t(first)}, {uint8_t(last >> 8), uint8_t(last)}};
}
inline nft::FieldRange port(uint16_t p) { return port(p, p); }
inline nft::FieldRange any_port() { return port(0, 65535); }

inline nft::FieldRange iif(const std::string& name) {
    std::vector<uint8_t> bytes(16, 0);
    std::memcpy(bytes.data(), name.data(), name.size());
    return {bytes, bytes};
}

inline nft::Element element(nft::FieldRanges key, const std::string& chain, bool jump = false) {
    nft::Element e;
    e.key = std::move(key);
    e.goto_chain = chain;
    e.jump = jump;
    return e;
}

// A rule map: "type ipv4_addr . ipv4_addr . inet_proto . inet_service : verdict; flags interval".
inline nft::Set rule_map(const std::string& name, std::vector<nft::KeyType> fields, std::vector<nft::Element> elements) {
    nft::Set s;
    s.name = name;
    s.key_type = fields[0];
    s.verdict_map = true;
    s.concat = std::move(fields);
    s.interval = true;
    s.elements = std::move(elements);
    return s;
}

// A sticky set: "type ipv4_addr . ipv4_addr; size 65535; flags dynamic,timeout; timeout T".
inline nft::Set sticky_set(const std::string& name, Family family, bool with_dst, uint32_t timeout_s,
                           bool keep_entries = true) {
    nft::Set s;
    s.name = name;
    s.key_type = family == Family::V4 ? nft::KeyType::Ipv4Addr : nft::KeyType::Ipv6Addr;
    if (with_dst) s.concat = {s.key_type, s.key_type};
    s.timeout_s = timeout_s;
    s.keep_entries = keep_entries;
    return s;
}

// A table with every construct policy rules use, in the shape rules/desired.cpp builds: two
// layered rule maps per family (IPv6 with iifname and a port range), "jump" bucket maps, sticky
// sets with their lookup and update rules, ct mark matches, gotos. `buckets` sizes the maps.
inline nft::Table policy_rules_table(uint32_t buckets = 8) {
    using namespace nft;
    using K = KeyType;
    using R = nft::Rule;  // wb::Rule is a routing rule
    constexpr uint32_t kMask = 0x3f00;
    Table t;
    t.comment = "managed by wanbalanced; edit /etc/wanbalance.json instead";
    Set lans{"lans", K::Ifname, 0, false, {}};
    lans.elements.push_back({std::string("ether3"), ""});
    lans.elements.push_back({std::string("ether4"), ""});
    Set balance{"balance", K::HashBucket, buckets, true, {}};
    Set voip{"policy_voip", K::HashBucket, buckets, true, {}};
    for (uint32_t b = 0; b < buckets; ++b) {
        balance.elements.push_back({b, b % 3 ? "wan_charter" : "wan_integra", true});
        voip.elements.push_back({b, "wan_integra", true});
    }
    const std::vector<K> key4 = {K::Ipv4Addr, K::Ipv4Addr, K::InetProto, K::InetService};
    Set rules4_1 = rule_map("rules4_1", key4,
                            {element({addr("0.0.0.0/0"), addr("192.0.2.10"), proto(6), port(443)}, "rule_https"),
                             element({addr("10.0.0.0/8"), addr("0.0.0.0/0"), proto(17), port(5060, 5061)}, "rule_voip"),
                             element({addr("192.168.88.0/24"), addr("198.51.100.0-198.51.100.99"), any_proto(),
                                      any_port()},
                                     "rule_bank")});
    Set rules4_2 = rule_map("rules4_2", key4,
                            {element({addr("0.0.0.0/0"), addr("192.0.2.0/24"), any_proto(), any_port()}, "rule_voip")});
    const std::vector<K> key6 = {K::Ifname, K::Ipv6Addr, K::Ipv6Addr, K::InetProto, K::InetService};
    Set rules6_1 = rule_map(
        "rules6_1", key6,
        {element({iif("ether3"), addr("::/0"), addr("2001:db8::10"), proto(6), port(443)}, "rule_https"),
         element({iif("ether4"), addr("2001:db8:1::1-2001:db8:1::5"), addr("::/0"), proto(17), port(1024, 65535)},
                 "rule_voip")});
    t.sets = {lans, balance, voip, rules4_1, rules4_2, rules6_1,
              sticky_set("sticky_bank_charter", Family::V4, true, 600),
              sticky_set("sticky_bank_integra", Family::V4, true, 600),
              sticky_set("sticky6_src_charter", Family::V6, false, 3630)};

    auto mark = [](MarkKind kind, uint32_t value) { return R{{SetMarkBits{kind, kMask, value}}, ""}; };
    for (auto [name, value] : {std::pair{"wan_charter", 0x100u}, {"wan_integra", 0x200u}, {"to_main", 0x3e00u}})
        t.chains.push_back({name, std::nullopt, {mark(MarkKind::Ct, value), mark(MarkKind::Meta, value)}});
    const HashVmap hash4{{HashField::SrcAddr, HashField::DstAddr}, buckets, 0x77616e62, "balance"};
    t.chains.push_back({"rule_https", std::nullopt, {R{{Goto{"to_main"}}, ""}}});
    t.chains.push_back({"rule_voip", std::nullopt, {R{{NumgenVmap{buckets, "policy_voip"}}, ""}}});
    std::vector<R> bank;
    for (const char* wan : {"charter", "integra"}) {
        std::string set = std::string("sticky_bank_") + wan;
        bank.push_back(R{{AddrInSet{Family::V4, true, set}, UpdateSet{Family::V4, true, set},
                             Goto{std::string("wan_") + wan}},
                            ""});
    }
    bank.push_back(R{{hash4}, ""});
    bank.push_back(R{{MarkIs{MarkKind::Ct, kMask, 0x100}, UpdateSet{Family::V4, true, "sticky_bank_charter"}}, ""});
    bank.push_back(R{{MarkIs{MarkKind::Ct, kMask, 0x200}, UpdateSet{Family::V4, true, "sticky_bank_integra"}}, ""});
    bank.push_back(R{{AddrInSet{Family::V6, false, "sticky6_src_charter"}, Goto{"wan_charter"}}, ""});
    bank.push_back(R{{MarkIs{MarkKind::Meta, kMask, 0x100}, UpdateSet{Family::V6, false, "sticky6_src_charter"}}, ""});
    t.chains.push_back({"rule_bank", std::nullopt, bank});
    const auto v4 = MatchField::SrcAddr, d4 = MatchField::DstAddr;
    t.chains.push_back({"rules4", std::nullopt,
                        {R{{ConcatVmap{Family::V4, {v4, d4, MatchField::L4proto, MatchField::DstPort}, "rules4_1"}}, ""},
                         R{{ConcatVmap{Family::V4, {v4, d4, MatchField::L4proto, MatchField::DstPort}, "rules4_2"}}, ""},
                         R{{hash4}, "no rule matched: balanced"}}});
    t.chains.push_back(
        {"rules6", std::nullopt,
         {R{{ConcatVmap{Family::V6, {MatchField::Iifname, v4, d4, MatchField::L4proto, MatchField::DstPort}, "rules6_1"}},
               ""},
          R{{Goto{"rule_voip"}}, "catch-all: voip"}}});
    R to_rules4{{CtStateNew{}, NfprotoIpv4{}, IifnameInSet{"lans"}, FibDaddrNotLocal{}, Goto{"rules4"}}, ""};
    R to_rules6{{CtStateNew{}, NfprotoIpv6{}, IifnameInSet{"lans"}, FibDaddrNotLocal{}, Goto{"rules6"}}, ""};
    t.chains.push_back({"prerouting", BaseChain{ChainType::Filter, Hook::Prerouting, -150},
                        {R{{MarkVmap{MarkKind::Ct, kMask, "by_mark"}}, ""}, to_rules4, to_rules6}});
    Set by_mark{"by_mark", K::Mark, 0, true, {}};
    by_mark.elements.push_back({0x100u, "wan_charter"});
    by_mark.elements.push_back({0x200u, "wan_integra"});
    t.sets.insert(t.sets.begin() + 1, by_mark);
    return t;
}

}  // namespace wb::test
