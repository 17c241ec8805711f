// Routes and policy rules as values: what wanbalance wants in the kernel's FIB, for both families.
// Every route and rule it owns carries protocol kRouteProtocol; that is how they are found again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/ip.hpp"
#include "base/route_tables.hpp"

namespace wb {

// Route/rule protocol number, named "wanbalance" by packaging/rt_protos.d/wanbalance.conf.
inline constexpr uint8_t kRouteProtocol = 87;

// The metric of wanbalance's default routes: 0 for IPv4; the kernel turns an IPv6 route's 0 into
// 1024 (IP6_RT_PRIO_USER), so IPv6 asks for 1024 and finds it again as such.
uint32_t route_metric(Family family);

struct Nexthop {
    std::optional<IpAddr> gateway;  // of the route's family; nullopt: on-link (point-to-point)
    int ifindex = 0;
    std::string ifname;  // for messages and `ip` syntax
    unsigned weight = 1;  // 1..256 (the kernel stores weight-1 in rtnh_hops)
    bool operator==(const Nexthop&) const = default;
};

// A default route (0.0.0.0/0 or ::/0) in `table`. The kernel's identity of an IPv4 route is
// (table, dst/len, tos, priority) — fib_table_insert() — and of an IPv6 one (table, dst/len,
// metric), so (family, table, metric) identifies ours. An IPv6 gateway may be link-local.
struct Route {
    Family family = Family::V4;
    uint32_t table = kMainTable;
    uint32_t metric = 0;
    std::vector<Nexthop> nexthops;  // one: a plain route; several: multipath
    bool operator==(const Route&) const = default;
};

// A policy rule. Identity as fib_nl_newrule()/rule_find() compare it: every attribute,
// so "changing" a rule means deleting the old one and adding the new.
enum class RuleAction { Lookup, Unreachable };  // "lookup TABLE" / "unreachable" (FR_ACT_UNREACHABLE)

struct Rule {
    Family family = Family::V4;  // `ip rule` or `ip -6 rule`: each family has its own rule list
    uint32_t priority = 0;
    std::optional<uint32_t> fwmark;       // with fwmask
    uint32_t fwmask = 0xffffffff;
    uint32_t table = kMainTable;
    std::optional<uint8_t> suppress_prefixlen;  // "lookup main suppress_prefixlength 0"
    RuleAction action = RuleAction::Lookup;      // Unreachable: no table (`table` ignored)
    bool operator==(const Rule&) const = default;
};

// `ip` command syntax, for `wanbalancectl ruleset` and for log lines:
// "ip route replace default proto wanbalance table 101 via 203.0.113.1 dev ether1"
// ("ip -6 route replace default ... metric 1024 via fe80::1 dev ether1" for IPv6)
std::string ip_command(const Route& route);
// "ip rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto wanbalance" ("ip -6 rule ...")
std::string ip_command(const Rule& rule);
// Short description for messages: "default route in table 101 (via 203.0.113.1 dev ether1)",
// "IPv6 default route in table 101 (...)", "IPv6 rule 20001 (...)"
std::string describe(const Route& route);
std::string describe(const Rule& rule);

// Whether the kernel would hold the same thing for both: compares what the kernel stores
// (gateways, ifindexes, weights — not ifname, which is only for messages). A single-path route
// has no weight in the kernel, so a lone nexthop's weight is ignored; a rule's fwmask only
// counts with an fwmark.
// Different families are never equal.
bool kernel_equal(const Route& a, const Route& b);
bool kernel_equal(const Rule& a, const Rule& b);

// "main", "default", "local" for the reserved ids, else the number.
std::string table_name(uint32_t table);

}  // namespace wb
