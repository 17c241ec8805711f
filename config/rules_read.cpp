// Pass 1 for "policies" and "rules" (docs/design.md, Configuration): every key on its own, then
// the keys of one rule together: ports need a protocol that has them, a rule must be able to
// match some address family, and a rule that leaves the route to the main table has nothing
// to be sticky about. Names that point elsewhere (WANs, LANs, policies) are pass 2's.
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <map>

#include "config/validate.hpp"
#include "config/wording.hpp"

namespace wb::config_detail {

namespace {

constexpr size_t kMaxPolicyName = 32;
constexpr size_t kMaxRuleName = 32;
constexpr unsigned kMaxStickyTimeoutS = 604800;  // a week
constexpr unsigned kMaxPort = 65535;

// icmpv6 before icmp: the did-you-mean takes the first of equally close names, and "icmp6"
// means icmpv6.
constexpr std::array<std::pair<std::string_view, uint8_t>, 5> kProtocols{{
    {"tcp", IPPROTO_TCP},
    {"udp", IPPROTO_UDP},
    {"sctp", IPPROTO_SCTP},
    {"icmpv6", IPPROTO_ICMPV6},
    {"icmp", IPPROTO_ICMP},
}};
constexpr std::string_view kProtocolNames[] = {"tcp", "udp", "sctp", "icmpv6", "icmp"};
constexpr std::string_view kLastResortNames[] = {"balanced", "main", "unreachable"};
constexpr std::string_view kStickyNames[] = {"none", "src", "src-dst"};

bool is_name(const std::string& s, size_t max) {
    if (s.empty() || s.size() > max) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

std::string name_rule(size_t max) { return "1-" + std::to_string(max) + " characters of a-z, 0-9, _ and -"; }

// One of a few words: its index, or an error that suggests the word probably meant.
std::optional<size_t> read_choice(const Json& v, const std::string& path, std::span<const std::string_view> names,
                                  std::string_view what, Reporter& report) {
    if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        for (size_t i = 0; i < names.size(); ++i) {
            if (names[i] == s) return i;
        }
    }
    std::string message = describe(v) + " is not " + std::string(what);
    std::optional<std::string_view> match;
    if (v.is_string()) match = closest_match(v.get_ref<const std::string&>(), names);
    if (match) {
        message += " (did you mean " + quote(*match) + "?)";
    } else {
        message += " (one of " + quote_list(names) + ")";
    }
    report.fail(path, message);
    return std::nullopt;
}

// ---- Policies ----

MemberDraft read_member(const Json& v, const std::string& path, Reporter& report) {
    MemberDraft member;
    member.path = path;
    if (!v.is_object()) {
        report.fail(path, "expected an object like {\"wan\": \"charter\"}, got " + describe(v));
        return member;
    }
    check_keys(v, path, kMemberKeys, kMemberRequired, report);
    for (const auto& item : v.items()) {
        const std::string& key = item.key();
        const Json& value = item.value();
        std::string at = pointer_append(path, key);
        if (key == "wan") {
            member.wan.path = at;
            if (value.is_string()) {
                member.wan.value = value.get<std::string>();
            } else {
                report.fail(at, "expected the name of a WAN, got " + describe(value));
            }
        }
        if (key == "weight") read_unsigned(member.weight, value, at, 1, 1000, report);
        if (key == "tier") read_unsigned(member.tier, value, at, 0, 255, report);
    }
    return member;
}

void read_members(PolicyDraft& policy, const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_array()) {
        report.fail(path, "expected an array of members like {\"wan\": \"charter\"}, got " + describe(v));
        return;
    }
    policy.member_count = {v.size(), path};
    if (v.empty()) report.fail(path, "expected at least one member, got []");
    for (size_t i = 0; i < v.size(); ++i) policy.members.push_back(read_member(v[i], pointer_append(path, i), report));
}

PolicyDraft read_policy(const std::string& name, const Json& v, const std::string& path, Reporter& report) {
    PolicyDraft policy;
    policy.path = path;
    policy.written = name;
    policy.name.path = path;
    if (name == "balanced" || name == "main") {
        report.fail(path, quote(name) + " is reserved: a rule's \"policy\": " + quote(name) +
                              (name == "main" ? " sends to the main table" : " balances over every WAN") +
                              "; choose another name");
    } else if (!is_name(name, kMaxPolicyName)) {
        report.fail(path, quote(name) + " must be " + name_rule(kMaxPolicyName));
    } else {
        policy.name.value = name;
    }
    if (!v.is_object()) {
        report.fail(path, "expected an object like {\"members\": [{\"wan\": \"charter\"}]}, got " + describe(v));
        return policy;
    }
    check_keys(v, path, kPolicyKeys, kPolicyRequired, report);
    for (const auto& item : v.items()) {
        const std::string& key = item.key();
        std::string at = pointer_append(path, key);
        if (key == "members") read_members(policy, item.value(), at, report);
        if (key == "last_resort") {
            policy.last_resort.path = at;
            if (auto i = read_choice(item.value(), at, kLastResortNames, "a last resort", report))
                policy.last_resort.value = LastResort(*i);
        }
    }
    return policy;
}

// ---- Rules: one entry of a list ----

Cidr network_of(Cidr c) {
    if (auto* v4 = std::get_if<Ipv4>(&c.addr)) {
        v4->value &= c.len == 0 ? 0 : ~uint32_t(0) << (32 - c.len);
    } else {
        auto& bytes = std::get<Ipv6>(c.addr).bytes;
        for (size_t i = 0; i < bytes.size(); ++i) {
            int keep = std::clamp(int(c.len) - int(i) * 8, 0, 8);
            bytes[i] &= uint8_t(0xff00 >> keep);
        }
    }
    return c;
}

// Decimal digits without a leading zero, at most `max`; nullopt for anything else.
std::optional<unsigned> parse_decimal(std::string_view s, unsigned max) {
    if (s.empty() || s.size() > 6 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    unsigned n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + unsigned(c - '0');
    }
    if (n > max) return std::nullopt;
    return n;
}

// "10.0.0.0/8", "2001:db8::/32", or a plain address (/32 or /128); host bits must be clear.
std::optional<Cidr> read_cidr(const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_string()) {
        report.fail(path, "expected an address or prefix like \"10.0.0.0/8\", got " + describe(v));
        return std::nullopt;
    }
    std::string_view s = v.get_ref<const std::string&>();
    size_t slash = s.find('/');
    std::optional<IpAddr> address = parse_ip(s.substr(0, slash));
    if (!address) {
        report.fail(path, describe(v) + " is not an IPv4 or IPv6 address or prefix");
        return std::nullopt;
    }
    unsigned max = family_of(*address) == Family::V4 ? 32 : 128;
    std::optional<unsigned> len = max;
    if (slash != std::string_view::npos) len = parse_decimal(s.substr(slash + 1), max);
    if (!len) {
        report.fail(path, describe(v) + " has a bad prefix length: expected /0 to /" + std::to_string(max));
        return std::nullopt;
    }
    Cidr cidr{*address, uint8_t(*len)};
    if (Cidr network = network_of(cidr); network != cidr) {
        report.fail(path, describe(v) + " has host bits set; did you mean " + quote(network.str()) + "?");
        return std::nullopt;
    }
    return cidr;
}

// 443 or "443" or "10000-20000".
std::optional<PortRange> read_port(const Json& v, const std::string& path, Reporter& report) {
    std::optional<unsigned> first, last;
    bool shaped = false;  // a number, or a string of the right shape
    if (v.is_number_integer()) {
        shaped = true;
        if (v.is_number_unsigned() && v.get<uint64_t>() <= kMaxPort) first = last = unsigned(v.get<uint64_t>());
    } else if (v.is_string()) {
        std::string_view s = v.get_ref<const std::string&>();
        size_t dash = s.find('-');
        std::string_view a = s.substr(0, dash), b = dash == std::string_view::npos ? a : s.substr(dash + 1);
        constexpr unsigned kAnyNumber = 999999;
        first = parse_decimal(a, kAnyNumber);
        last = parse_decimal(b, kAnyNumber);
        shaped = first && last;
    }
    if (!shaped) {
        report.fail(path, "expected a port like 443 or \"443\", or a range like \"10000-20000\", got " + describe(v));
        return std::nullopt;
    }
    if (!first || !last || *first == 0 || *last == 0 || *first > kMaxPort || *last > kMaxPort) {
        report.fail(path, describe(v) + " is out of range: ports are 1 to 65535");
        return std::nullopt;
    }
    if (*first > *last) {
        report.fail(path, describe(v) + " runs backwards; did you mean " +
                              quote(std::to_string(*last) + "-" + std::to_string(*first)) + "?");
        return std::nullopt;
    }
    return PortRange{uint16_t(*first), uint16_t(*last)};
}

std::optional<std::string> read_iif(const Json& v, const std::string& path, Reporter& report) {
    if (v.is_string()) return v.get<std::string>();
    report.fail(path, "expected the name of a LAN interface, got " + describe(v));
    return std::nullopt;
}

// A list of a rule: an array, not empty (an empty one would match nothing), each entry valid
// and listed once.
template <class T, class ReadOne>
void read_list(ListDraft<T>& list, const Json& v, const std::string& path, std::string_view expected,
               std::string_view anything, ReadOne read_one, Reporter& report) {
    list.path = path;
    if (!v.is_array()) {
        report.fail(path, "expected " + std::string(expected) + ", got " + describe(v));
        return;
    }
    if (v.empty()) {
        std::string key = path.substr(path.rfind('/') + 1);
        report.fail(path, "[] matches nothing; leave " + quote(key) + " out to match " + std::string(anything));
        return;
    }
    bool ok = true;
    std::map<T, std::string> first_seen;
    for (size_t i = 0; i < v.size(); ++i) {
        std::string at = pointer_append(path, i);
        std::optional<T> value = read_one(v[i], at, report);
        if (!value) {
            ok = false;
        } else if (auto [it, fresh] = first_seen.emplace(*value, at); !fresh) {
            report.fail(at, describe(v[i]) + " is already listed at " + it->second);
            ok = false;
        } else {
            list.items.emplace_back(std::move(*value), at);
        }
    }
    list.valid = ok;
}

// ---- Rules: the keys of one rule together ----

bool has_ports(uint8_t proto) { return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP; }

std::string protocol_name(uint8_t proto) {
    for (const auto& [name, number] : kProtocols) {
        if (number == proto) return std::string(name);
    }
    return std::to_string(proto);
}

// The families a valid list holds; an absent list holds both.
std::array<bool, 2> families_of(const ListDraft<Cidr>& list) {
    if (!list.present()) return {true, true};
    std::array<bool, 2> out{false, false};
    for (const auto& [cidr, path] : list.items) out[size_t(cidr.family())] = true;
    return out;
}

void check_ports_have_proto(const RuleDraft& rule, Reporter& report) {
    for (const ListDraft<PortRange>* ports : {&rule.src_port, &rule.dst_port}) {
        if (!ports->present()) continue;
        if (!rule.proto.present()) {
            report.fail(ports->path, "ports need proto tcp, udp or sctp; this rule has no \"proto\"");
        } else if (rule.proto.value && !has_ports(*rule.proto.value)) {
            report.fail(ports->path,
                        "ports need proto tcp, udp or sctp; " + quote(protocol_name(*rule.proto.value)) + " has none");
        }
    }
}

// A rule whose addresses leave no family, or whose ICMP is of the family its addresses are not.
void check_rule_can_match(const RuleDraft& rule, Reporter& report) {
    if ((rule.src.present() && !rule.src.valid) || (rule.dst.present() && !rule.dst.valid)) return;
    std::array<bool, 2> src = families_of(rule.src), dst = families_of(rule.dst);
    bool v4 = src[0] && dst[0], v6 = src[1] && dst[1];
    if (!v4 && !v6) {
        std::string src_family(src[0] ? "IPv4" : "IPv6"), dst_family(src[0] ? "IPv6" : "IPv4");
        report.fail(rule.dst.path, "holds only " + dst_family + " addresses and \"src\" only " + src_family +
                                       " ones: the rule can never match");
        return;
    }
    if (!rule.proto.value) return;
    if (*rule.proto.value == IPPROTO_ICMP && !v4) {
        report.fail(rule.proto.path, "\"icmp\" is IPv4 only and the rule's addresses are IPv6: it can never match "
                                     "(did you mean \"icmpv6\"?)");
    } else if (*rule.proto.value == IPPROTO_ICMPV6 && !v6) {
        report.fail(rule.proto.path, "\"icmpv6\" is IPv6 only and the rule's addresses are IPv4: it can never match "
                                     "(did you mean \"icmp\"?)");
    }
}

void check_sticky(const RuleDraft& rule, Reporter& report) {
    bool sticky = rule.sticky.value && *rule.sticky.value != Sticky::None;
    if (sticky && rule.policy.value == "main") {
        report.fail(rule.sticky.path, quote(sticky_name(*rule.sticky.value)) +
                                          " has nothing to stick to: \"policy\": \"main\" leaves the route to the "
                                          "main table; leave \"sticky\" out");
    }
    bool sticky_known = !rule.sticky.present() || rule.sticky.value;  // an invalid one is reported already
    if (rule.sticky_timeout_s.present() && sticky_known && !sticky) {
        report.warn(rule.sticky_timeout_s.path, "has no effect without \"sticky\"");
    }
}

void read_rule_key(RuleDraft& rule, const std::string& key, const Json& value, const std::string& at,
                   Reporter& report) {
    constexpr std::string_view kCidrs = "an array of IPv4 or IPv6 prefixes like [\"10.0.0.0/8\"]";
    constexpr std::string_view kPorts = "an array of ports like [443, \"10000-20000\"]";
    if (key == "name") {
        rule.name.path = at;
        if (value.is_string() && is_name(value.get_ref<const std::string&>(), kMaxRuleName)) {
            rule.name.value = value.get<std::string>();
        } else {
            report.fail(at, describe(value) + " must be " + name_rule(kMaxRuleName));
        }
    } else if (key == "src") {
        read_list(rule.src, value, at, kCidrs, "any source address", read_cidr, report);
    } else if (key == "dst") {
        read_list(rule.dst, value, at, kCidrs, "any destination address", read_cidr, report);
    } else if (key == "proto") {
        rule.proto.path = at;
        if (auto i = read_choice(value, at, kProtocolNames, "a protocol", report)) {
            rule.proto.value = kProtocols[*i].second;
        }
    } else if (key == "src_port") {
        read_list(rule.src_port, value, at, kPorts, "any source port", read_port, report);
    } else if (key == "dst_port") {
        read_list(rule.dst_port, value, at, kPorts, "any destination port", read_port, report);
    } else if (key == "iif") {
        read_list(rule.iif, value, at, "an array of LAN interfaces like [\"ether3\"]", "every LAN", read_iif, report);
    } else if (key == "policy") {
        rule.policy.path = at;
        if (value.is_string()) {
            rule.policy.value = value.get<std::string>();
        } else {
            report.fail(at, "expected the name of a policy, \"balanced\" or \"main\", got " + describe(value));
        }
    } else if (key == "sticky") {
        rule.sticky.path = at;
        if (auto i = read_choice(value, at, kStickyNames, "a kind of stickiness", report)) {
            rule.sticky.value = Sticky(*i);
        }
    } else if (key == "sticky_timeout_s") {
        Field<unsigned> timeout;
        read_unsigned(timeout, value, at, 1, kMaxStickyTimeoutS, report);
        rule.sticky_timeout_s = {timeout.value, at};
    }
}

RuleDraft read_rule(const Json& v, const std::string& path, Reporter& report) {
    RuleDraft rule;
    rule.path = path;
    if (!v.is_object()) {
        report.fail(path, "expected an object, got " + describe(v));
        return rule;
    }
    check_keys(v, path, kRuleKeys, kRuleRequired, report);
    for (const auto& item : v.items()) {
        read_rule_key(rule, item.key(), item.value(), pointer_append(path, item.key()), report);
    }
    check_ports_have_proto(rule, report);
    check_rule_can_match(rule, report);
    check_sticky(rule, report);
    return rule;
}

}  // namespace

void read_policies(ConfigDraft& draft, const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_object()) {
        report.fail(path, "expected an object of named policies like {\"voip\": {\"members\": [...]}}, got " +
                              describe(v));
        return;
    }
    for (const auto& item : v.items()) {
        draft.policies.push_back(read_policy(item.key(), item.value(), pointer_append(path, item.key()), report));
    }
}

void read_rules(ConfigDraft& draft, const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_array()) {
        report.fail(path, "expected an array of rules, got " + describe(v));
        return;
    }
    draft.rule_count = {v.size(), path};
    if (v.size() > kMaxRules) {
        report.fail(path, "expected at most " + std::to_string(kMaxRules) + " rules, got " + std::to_string(v.size()));
    }
    for (size_t i = 0; i < v.size(); ++i) draft.rules.push_back(read_rule(v[i], pointer_append(path, i), report));
}

}  // namespace wb::config_detail
