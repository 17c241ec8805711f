// Shared fixtures for the rules tests: the article's two-WAN config built in code, and inputs
// describing a healthy kernel, so tests don't depend on the config parser.
#pragma once

#include "rules/desired.hpp"

namespace wb::test {

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
    if (gateway) n.gateway = *Ipv4::parse(gateway);
    n.ifindex = ifindex;
    n.ifname = ifname;
    n.weight = weight;
    return n;
}

inline std::vector<WanInputs> healthy(const Config& c) {
    std::vector<WanInputs> out;
    for (size_t i = 0; i < c.wans.size(); ++i) {
        WanInputs in;
        in.ifindex = int(10 + i);
        in.admin_up = in.carrier = in.has_address = true;
        in.gateway = c.wans[i].gateway;
        in.health = Health::Up;
        out.push_back(in);
    }
    return out;
}

}  // namespace wb::test
