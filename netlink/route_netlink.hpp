// Routes and policy rules over rtnetlink (libnl-3 messages): dump what wanbalance owns, replace
// or delete one route, add or delete one rule (kernel_sync.hpp decides which). Never touches a
// route or rule it does not own (protocol kRouteProtocol). IPv4 and IPv6 alike. Also the
// per-interface sysctls it needs: src_valid_mark (set), IPv6 accept_ra/forwarding (read).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/noncopyable.hpp"
#include "base/status.hpp"
#include "netlink/kernel_port.hpp"
#include "netlink/system_view.hpp"
#include "rules/routing.hpp"

namespace wb {

class RouteNetlink : NonCopyable {
public:
    static Expected<std::unique_ptr<RouteNetlink>> open();  // NETLINK_ROUTE, current netns
    ~RouteNetlink();

    // Default routes (any table) and rules with protocol kRouteProtocol: IPv4's, then IPv6's.
    Expected<std::vector<Route>> dump_own_routes();
    Expected<std::vector<Rule>> dump_own_rules();

    // Whether a default route of `family` that is NOT ours occupies (table, metric) — the kernel would
    // replace it with ours, so the caller must not. Returns its description, e.g.
    // "default via 203.0.113.1 dev ether1 proto dhcp", or "" if the slot is free.
    Expected<std::string> foreign_default_route(Family family, uint32_t table, uint32_t metric);

    // Each sends one request and waits for the kernel's answer, its errno verbatim (what counts
    // as success is KernelPort's call, the same for the fake kernel).
    Status replace_route(const Route& route);  // NLM_F_CREATE|NLM_F_REPLACE, protocol ours
    // Matches table, metric, protocol and nexthops (an IPv6 multipath route: table, metric and
    // protocol, every sibling): pass what dump_own_routes() returned.
    Status delete_route(const Route& route);   // ESRCH: no such route
    Status add_rule(const Rule& rule);         // NLM_F_EXCL: EEXIST for an identical rule
    Status delete_rule(const Rule& rule);      // ENOENT: no such rule

    // net.ipv4.conf.IFACE.src_valid_mark over RTM_SETLINK (IFLA_INET_CONF); no /proc writes.
    Expected<bool> get_src_valid_mark(int ifindex);
    Status set_src_valid_mark(int ifindex, bool on);
    // net.ipv6.conf.IFACE.{accept_ra,forwarding} over RTM_GETLINK (IFLA_INET6_CONF); no /proc.
    Expected<Ipv6Conf> get_ipv6_conf(int ifindex);
    // What the neighbour table says of `gateway` on `ifindex` (netlink/system_view.hpp).
    Expected<NeighbourAnswer> neighbour_state(int ifindex, const IpAddr& gateway);

    unsigned messages_sent() const;  // requests sent since open()
    // Messages the kernel answered with since open() (dump entries, replies; not ACKs): shows
    // that the kernel-side protocol filter keeps a full BGP table out of dump_own_routes().
    unsigned replies_received() const;

private:
    RouteNetlink() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
