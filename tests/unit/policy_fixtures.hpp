// Shared fixtures for the policy rules tests: rules, policies and packets built in code, so the
// tests do not depend on the config parser.
#pragma once

#include <netinet/in.h>

#include <string>
#include <vector>

#include "rules/policy.hpp"

namespace wb::test {

// "10.0.0.0/8", "2001:db8::/32", or a plain address (/32, /128).
inline Cidr cidr(const std::string& text) {
    auto slash = text.find('/');
    Cidr c;
    c.addr = *parse_ip(text.substr(0, slash));
    c.len = uint8_t(slash == std::string::npos ? (c.family() == Family::V4 ? 32 : 128) : std::stoi(text.substr(slash + 1)));
    return c;
}

inline std::vector<Cidr> cidrs(std::initializer_list<const char*> texts) {
    std::vector<Cidr> out;
    for (const char* t : texts) out.push_back(cidr(t));
    return out;
}

inline RuleConfig rule(const std::string& name, std::vector<Cidr> dst = {}, std::optional<uint8_t> proto = std::nullopt,
                       std::vector<PortRange> dst_port = {}) {
    RuleConfig r;
    r.name = name;
    r.dst = std::move(dst);
    r.proto = proto;
    r.dst_port = std::move(dst_port);
    return r;
}

inline PolicyConfig policy(const std::string& name, std::vector<PolicyMember> members,
                           LastResort last_resort = LastResort::Balanced) {
    return PolicyConfig{name, std::move(members), last_resort};
}

inline RuleConfig to_policy(RuleConfig r, size_t policy) {
    r.target = RuleTarget::Policy;
    r.policy = policy;
    return r;
}

inline PacketKey packet(const char* src, const char* dst, uint8_t proto = IPPROTO_TCP, uint16_t sport = 40000,
                        uint16_t dport = 443, const char* iif = "ether3") {
    PacketKey p;
    p.src = *parse_ip(src);
    p.dst = *parse_ip(dst);
    p.family = family_of(p.dst);
    p.proto = proto;
    p.sport = sport;
    p.dport = dport;
    p.iif = iif;
    return p;
}

}  // namespace wb::test
