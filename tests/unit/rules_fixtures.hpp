// Shared fixtures for the rules tests: the article's two-WAN config built in code, and inputs
// describing a healthy kernel, so tests don't depend on the config parser.
#pragma once

#include "rules/desired.hpp"

namespace wb::test {

inline constexpr Family V4 = Family::V4;
inline constexpr Family V6 = Family::V6;

// An address of either family, for comparing with Nexthop::gateway.
inline std::optional<IpAddr> ip(const char* text) { return parse_ip(text); }

inline Config article_config() {
    Config c;
    c.path = "/etc/wanbalance.json";
    WanConfig charter;
    charter.name = "charter";
    charter.interface = "ether1";
    charter.gateway = Ipv4::parse("203.0.113.1");
    charter.table = 101;
    charter.mark = 0x100;
    WanConfig integra = charter;
    integra.name = "integra";
    integra.interface = "ether2";
    integra.gateway = Ipv4::parse("198.51.100.1");
    integra.table = 102;
    integra.mark = 0x200;
    c.wans = {charter, integra};
    c.lans = {"ether3"};
    return c;
}

inline Nexthop nh(const char* gateway, int ifindex, const char* ifname, unsigned weight = 1) {
    Nexthop n;
    if (gateway) n.gateway = *parse_ip(gateway);
    n.ifindex = ifindex;
    n.ifname = ifname;
    n.weight = weight;
    return n;
}

// The article's router dual-stack: charter with a link-local IPv6 gateway, integra with a
// global one, and a third WAN (lte) that carries IPv4 only.
inline Config dual_stack_config() {
    Config c = article_config();
    c.wans[0].ipv6 = true;
    c.wans[0].gateway6 = Ipv6::parse("fe80::1");
    c.wans[1].ipv6 = true;
    c.wans[1].gateway6 = Ipv6::parse("2001:db8:2::1");
    WanConfig lte = c.wans[1];
    lte.name = "lte";
    lte.interface = "wwan0";
    lte.gateway = Ipv4::parse("192.0.2.1");
    lte.ipv6 = false;
    lte.gateway6.reset();
    lte.table = 103;
    lte.mark = 0x300;
    c.wans.push_back(lte);
    return c;
}

// Every WAN up with its addresses and gateways; a WAN with gateway6 up for IPv6 too.
inline std::vector<WanInputs> healthy(const Config& c) {
    std::vector<WanInputs> out;
    for (size_t i = 0; i < c.wans.size(); ++i) {
        WanInputs in;
        in.ifindex = int(10 + i);
        in.admin_up = in.carrier = in.has_address = true;
        in.gateway = c.wans[i].gateway;
        in.health = Health::Up;
        if (c.wans[i].ipv6) {
            in.has_address6 = true;
            in.gateway6 = c.wans[i].gateway6;
            in.health6 = Health::Up;
        }
        out.push_back(in);
    }
    return out;
}

// The desired policy rules of one family, in order.
inline std::vector<Rule> rules_of(const Desired& d, Family family) {
    std::vector<Rule> out;
    for (const auto& r : d.rules)
        if (r.family == family) out.push_back(r);
    return out;
}

}  // namespace wb::test
