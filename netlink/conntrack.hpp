// Conntrack over ctnetlink (libmnl): count connections per WAN mark and delete one WAN's
// connections, leaving every other entry alone.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "base/noncopyable.hpp"
#include "base/ip.hpp"
#include "base/status.hpp"
#include "rules/policy.hpp"

namespace wb {

// Sorts a marked connection into a group by its original direction (the policy rule that
// matches it, say); nullopt: in no group.
using ConnClassifier = std::function<std::optional<size_t>(const PacketKey& original)>;

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
    // are not counted, nor ICMP/ICMPv6 echoes whose identifier is in skip_icmp_ids (the daemon's own
    // probes: the operator asks how many connections a WAN carries, not how many pings).
    Expected<std::map<uint32_t, unsigned>> count_by_mark(uint32_t mask, const std::set<uint16_t>& skip_icmp_ids = {});
    // The same counts, and each counted entry's original direction (PacketKey, iif unknown)
    // handed to `classify` when there is one.
    Expected<ConnCounts> count(uint32_t mask, const std::set<uint16_t>& skip_icmp_ids, const ConnClassifier& classify);

    // Deletes every entry of `family` whose (ctmark & mask) == mark; returns how many were deleted.
    Expected<unsigned> delete_by_mark(Family family, uint32_t mark, uint32_t mask);

private:
    Conntrack() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
