// Follows the kernel's links, IPv4 and IPv6 addresses and default routes over rtnetlink notifications:
// subscribe first, then dump, so the notifications are the truth. Non-blocking; the daemon
// polls fd() from its event loop and calls process() when it is readable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/ip.hpp"
#include "base/noncopyable.hpp"
#include "base/status.hpp"

namespace wb {

struct LinkState {
    int ifindex = 0;
    std::string name;
    bool admin_up = false;        // IFF_UP
    bool carrier = false;         // IFF_LOWER_UP (and operstate not down)
    bool point_to_point = false;  // IFF_POINTOPOINT (PPP, tun): no gateway needed
    std::vector<Ipv4> addresses;  // IPv4 addresses on the link
    // Global IPv6 addresses that can be a source now: not link-local, not tentative or failed
    // DAD (a SLAAC address counts once DAD is done).
    std::vector<Ipv6> addresses6;
    uint64_t rx_bytes = 0, tx_bytes = 0;
    bool operator==(const LinkState&) const = default;
};

struct KernelSnapshot {
    std::map<std::string, LinkState> links;  // by name
    // Gateways of IPv4 default routes in the main table that are not wanbalance's
    // (DHCP, PPP, static), by output ifindex: what "gateway": "auto" follows. When several
    // exist for one interface, the one with the lowest metric.
    std::map<int, Ipv4> auto_gateways;
    // The same for IPv6 default routes in main (router advertisements: proto ra; DHCPv6 clients,
    // static): what "gateway6": "auto" follows, by output ifindex. Several on one interface (the
    // ISP's router changed and the old route has not expired): the lowest metric, then the one
    // added last, so a new router is followed as soon as it advertises.
    std::map<int, Ipv6> auto_gateways6;

    const LinkState* link(const std::string& name) const;
};

// What a batch of notifications touched, so the daemon re-plans only when needed.
struct KernelChanges {
    std::vector<std::string> links;  // names whose LinkState changed (appeared/vanished too)
    bool auto_gateways = false;      // some auto_gateways or auto_gateways6 entry changed
    bool own_routes = false;         // a route/rule with our protocol was added or removed
    bool resynced = false;           // notifications were lost (ENOBUFS) and state was re-dumped
    bool any() const { return !links.empty() || auto_gateways || own_routes || resynced; }
};

class KernelWatch : NonCopyable {
public:
    static Expected<std::unique_ptr<KernelWatch>> open();  // subscribes, then dumps everything
    ~KernelWatch();

    int fd() const;
    // Reads every pending notification without blocking; applies them to the snapshot.
    Expected<KernelChanges> process();
    // Re-reads link counters (bytes) for status output.
    Status refresh_counters();
    const KernelSnapshot& snapshot() const { return snapshot_; }

private:
    KernelWatch() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    KernelSnapshot snapshot_;
};

}  // namespace wb
