// Routes and policy rules over rtnetlink (libnl-3 messages): read what wanbalance owns,
// replace what changed, delete what is stale. Never touches a route or rule it does not own
// (protocol kRouteProtocol). Also the per-interface IPv4 sysctl it needs (src_valid_mark).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "rules/routing.hpp"

namespace wb {

class RouteNetlink {
public:
    static Expected<std::unique_ptr<RouteNetlink>> open();  // NETLINK_ROUTE, current netns
    ~RouteNetlink();
    RouteNetlink(const RouteNetlink&) = delete;
    RouteNetlink& operator=(const RouteNetlink&) = delete;

    // IPv4 default routes (any table) and IPv4 rules with protocol kRouteProtocol.
    Expected<std::vector<Route>> dump_own_routes();
    Expected<std::vector<Rule>> dump_own_rules();

    // Whether a default route that is NOT ours occupies (table, metric) — the kernel would
    // replace it with ours, so the caller must not. Returns its description, e.g.
    // "default via 203.0.113.1 dev ether1 proto dhcp", or "" if the slot is free.
    Expected<std::string> foreign_default_route(uint32_t table, uint32_t metric);

    // Each sends one request and waits for the kernel's answer.
    Status replace_route(const Route& route);  // NLM_F_CREATE|NLM_F_REPLACE, protocol ours
    // Matches table, metric, protocol and nexthops: pass what dump_own_routes() returned.
    Status delete_route(const Route& route);   // ESRCH/ENOENT count as success
    Status add_rule(const Rule& rule);         // EEXIST counts as success
    Status delete_rule(const Rule& rule);      // ENOENT counts as success

    // net.ipv4.conf.IFACE.src_valid_mark over RTM_SETLINK (IFLA_INET_CONF); no /proc writes.
    Expected<bool> get_src_valid_mark(int ifindex);
    Status set_src_valid_mark(int ifindex, bool on);

    unsigned messages_sent() const { return messages_; }  // requests sent since open()
    // Messages the kernel answered with since open() (dump entries, replies; not ACKs): shows
    // that the kernel-side protocol filter keeps a full BGP table out of dump_own_routes().
    unsigned replies_received() const;

private:
    RouteNetlink() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    unsigned messages_ = 0;
};

// What a sync did; errors are per route/rule ("Could not replace default route in table 101
// (via 203.0.113.1 dev ether1): Network is unreachable"), the rest still applied.
struct SyncReport {
    unsigned added = 0, replaced = 0, deleted = 0, unchanged = 0;
    std::vector<Status> errors;
    bool changed() const { return added + replaced + deleted > 0; }
};

// Read what we own, skip what is equal, replace what changed, delete what is stale.
SyncReport sync_routes(RouteNetlink& nl, const std::vector<Route>& desired);
SyncReport sync_rules(RouteNetlink& nl, const std::vector<Rule>& desired);

}  // namespace wb
