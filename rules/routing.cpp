#include "rules/routing.hpp"

#include "base/format.hpp"

namespace wb {
namespace {

std::string dev_name(const Nexthop& nh) {
    return nh.ifname.empty() ? "ifindex:" + std::to_string(nh.ifindex) : nh.ifname;
}

// "via 203.0.113.1 dev ether1", or "dev ppp0" for an on-link nexthop.
std::string via(const Nexthop& nh) {
    std::string out;
    if (nh.gateway) out = "via " + str(*nh.gateway) + " ";
    return out + "dev " + dev_name(nh);
}

std::string rule_selector(const Rule& rule) {
    std::string out;
    if (rule.fwmark) out += "fwmark " + hex(*rule.fwmark) + "/" + hex(rule.fwmask) + " ";
    // An unreachable rule has no table: the kernel answers ICMP unreachable itself.
    if (rule.action == RuleAction::Unreachable) return out + "unreachable";
    out += "lookup " + table_name(rule.table);
    if (rule.suppress_prefixlen) out += " suppress_prefixlength " + std::to_string(*rule.suppress_prefixlen);
    return out;
}

bool same_nexthop(const Nexthop& a, const Nexthop& b, bool with_weight) {
    return a.gateway == b.gateway && a.ifindex == b.ifindex && (!with_weight || a.weight == b.weight);
}

// "ip" or "ip -6".
std::string ip_tool(Family family) { return family == Family::V4 ? "ip" : "ip -6"; }

// "IPv6 " before what is about IPv6; IPv4 messages read as they always did.
std::string family_prefix(Family family) {
    return family == Family::V4 ? std::string() : std::string(family_label(family)) + " ";
}

}  // namespace

uint32_t route_metric(Family family) { return family == Family::V4 ? 0 : 1024; }

std::string table_name(uint32_t table) {
    return reserved_table_name(table).value_or(std::to_string(table));
}

// The metric is printed in the main table, where it is what sets our default route apart from
// the system's own (DHCP at 100, 1024 …), and wherever it is not 0.
std::string ip_command(const Route& route) {
    std::string out = ip_tool(route.family) + " route replace default proto wanbalance table " + table_name(route.table);
    if (route.table == kMainTable || route.metric != 0) out += " metric " + std::to_string(route.metric);
    if (route.nexthops.size() == 1) return out + " " + via(route.nexthops[0]);
    for (const auto& nh : route.nexthops)
        out += " nexthop " + via(nh) + " weight " + std::to_string(nh.weight);
    return out;
}

std::string ip_command(const Rule& rule) {
    return ip_tool(rule.family) + " rule add priority " + std::to_string(rule.priority) + " " + rule_selector(rule) +
           " proto wanbalance";
}

std::string describe(const Route& route) {
    std::string out = family_prefix(route.family) + "default route in table " + table_name(route.table);
    if (route.metric != route_metric(route.family)) out += " metric " + std::to_string(route.metric);
    out += " (";
    for (size_t i = 0; i < route.nexthops.size(); ++i) {
        if (i > 0) out += ", ";
        out += via(route.nexthops[i]);
        if (route.nexthops.size() > 1) out += " weight " + std::to_string(route.nexthops[i].weight);
    }
    return out + ")";
}

std::string describe(const Rule& rule) {
    return family_prefix(rule.family) + "rule " + std::to_string(rule.priority) + " (" + rule_selector(rule) + ")";
}

bool kernel_equal(const Route& a, const Route& b) {
    if (a.family != b.family || a.table != b.table || a.metric != b.metric || a.nexthops.size() != b.nexthops.size())
        return false;
    // Order counts: the kernel keeps multipath nexthops in the order given, and the hash
    // threshold splits the flow space in that order.
    bool multipath = a.nexthops.size() > 1;
    for (size_t i = 0; i < a.nexthops.size(); ++i)
        if (!same_nexthop(a.nexthops[i], b.nexthops[i], multipath)) return false;
    return true;
}

bool kernel_equal(const Rule& a, const Rule& b) {
    if (a.family != b.family || a.priority != b.priority || a.action != b.action ||
        a.suppress_prefixlen != b.suppress_prefixlen || a.fwmark != b.fwmark)
        return false;
    // The table of an unreachable rule means nothing (ip rule sends none; rule_find() only
    // compares one that was given).
    if (a.action == RuleAction::Lookup && a.table != b.table) return false;
    return !a.fwmark || a.fwmask == b.fwmask;
}

}  // namespace wb
