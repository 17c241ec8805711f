// Which WAN each of the PCC hash buckets goes to: weighted shares within a bucket, and only a
// failed WAN's buckets move when it leaves or returns (weighted Maglev population), so clients stay put.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wb {

struct BalanceMember {
    std::string name;  // seeds this member's bucket preference order; stable across runs
    unsigned weight;   // > 0
};

// Bucket counts per member by largest remainder: they sum to `buckets`, and every member gets at
// least one (when there are no more members than buckets), so a WAN of weight 1 among WANs of
// weight 1000 still takes connections. A member whose share buckets * weight / total weight is
// under one gets exactly one; the others share the rest by weight, each within one bucket of
// its share of the rest. Without such a member, each is within one bucket of buckets * weight /
// total weight.
std::vector<uint32_t> bucket_quotas(const std::vector<BalanceMember>& members, uint32_t buckets);

// For each bucket 0..buckets-1, the index of the member that owns it; empty when there are no
// members. `buckets` must be prime (so every member's preference order visits every bucket).
std::vector<uint32_t> assign_buckets(const std::vector<BalanceMember>& members, uint32_t buckets);

// The assignment with some members out of service, moving as little as possible: `home` is
// every member of the tier with all of them up, `active` the indices into `home` in service.
// A bucket whose home owner is active keeps it; only the others' buckets are shared out over
// the active members, topping each up towards its quota over the active set (each ends within
// one bucket of it). So a WAN that fails moves only its own clients, and when it returns it
// takes back exactly its buckets. Returns indices into `home`; empty when `active` is empty.
std::vector<uint32_t> assign_buckets(const std::vector<BalanceMember>& home, const std::vector<size_t>& active,
                                     uint32_t buckets);

}  // namespace wb
