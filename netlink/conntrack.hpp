// Conntrack over ctnetlink (libmnl): count connections per WAN mark and delete one WAN's
// connections, leaving every other entry alone.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <vector>

#include "base/noncopyable.hpp"
#include "base/ip.hpp"
#include "base/status.hpp"
#include "netlink/ctnetlink_parse.hpp"
#include "rules/policy.hpp"

namespace wb {

// Sorts a marked connection into a group by its original direction (the policy rule that
// matches it, say); nullopt: in no group.
using ConnClassifier = std::function<std::optional<size_t>(const PacketKey& original)>;

// The daemon's own probe traffic: it carries a WAN's mark, but it is no connection anyone made.
struct ProbeFlows {
    std::set<uint16_t> icmp_ids;  // ICMP/ICMPv6 echo identifiers of the probers
    // TCP and DNS probes: (IPPROTO_TCP or IPPROTO_UDP, target, port) of the original direction.
    // A LAN host talking to the very same service is left out of the counts too.
    std::set<std::tuple<uint8_t, IpAddr, uint16_t>> sockets;
    // ICMP probe targets: an echo flow to one is a probe whatever its identifier (an earlier
    // run's, say). A LAN host pinging the very same target is left out too.
    std::set<IpAddr> icmp_targets;
    ProbeFlows() = default;
    explicit ProbeFlows(std::set<uint16_t> ids) : icmp_ids(std::move(ids)) {}
    bool contains(std::optional<uint16_t> icmp_id, const PacketKey& original) const;
};

struct ConnCounts {
    std::map<uint32_t, unsigned> by_mark;  // (ctmark & mask) -> entries, both families
    std::map<size_t, unsigned> by_group;   // what the classifier returned -> entries
    bool operator==(const ConnCounts&) const = default;
};

class Conntrack : NonCopyable {
public:
    static Expected<std::unique_ptr<Conntrack>> open();  // NETLINK_NETFILTER, current netns
    ~Conntrack();

    // Number of entries (IPv4 and IPv6) per (ctmark & mask), over one dump each. Entries whose masked mark is 0
    // are not counted, nor the daemon's own probes (`probes`:
    // probes: the operator asks how many connections a WAN carries, not how many pings).
    Expected<std::map<uint32_t, unsigned>> count_by_mark(uint32_t mask, const ProbeFlows& probes = {});
    // The same counts, and each counted entry's original direction (PacketKey, iif unknown)
    // handed to `classify` when there is one.
    Expected<ConnCounts> count(uint32_t mask, const ProbeFlows& probes, const ConnClassifier& classify);
    // The entries wanbalance marked (masked mark != 0), both families, without the probes':
    // `wanbalancectl connections`. Ended TCP connections too (their state says so).
    Expected<std::vector<CtEntry>> marked(uint32_t mask, const ProbeFlows& probes);

    // Deletes every entry of `family` whose (ctmark & mask) == mark; returns how many were deleted.
    Expected<unsigned> delete_by_mark(Family family, uint32_t mark, uint32_t mask);

private:
    Conntrack() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
