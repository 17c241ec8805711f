// Which WAN each of the PCC hash buckets goes to: exact weighted shares, and few buckets move
// when a WAN leaves or returns (weighted Maglev population), so clients mostly stay put.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wb {

struct BalanceMember {
    std::string name;  // seeds this member's bucket preference order; stable across runs
    unsigned weight;   // > 0
};

// Bucket counts per member by largest remainder: they sum to `buckets` and each is within one
// bucket of buckets * weight / total weight.
std::vector<uint32_t> bucket_quotas(const std::vector<BalanceMember>& members, uint32_t buckets);

// For each bucket 0..buckets-1, the index of the member that owns it; empty when there are no
// members. `buckets` must be prime (so every member's preference order visits every bucket).
std::vector<uint32_t> assign_buckets(const std::vector<BalanceMember>& members, uint32_t buckets);

}  // namespace wb
