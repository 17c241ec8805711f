#include "rules/balance.hpp"

#include <algorithm>
#include <numeric>

namespace wb {
namespace {

// FNV-1a, 64 bit: stable across builds and machines (std::hash is not).
uint64_t fnv1a(const std::string& text, uint64_t salt) {
    uint64_t h = 0xcbf29ce484222325ull ^ salt;
    for (unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

}  // namespace

std::vector<uint32_t> bucket_quotas(const std::vector<BalanceMember>& members, uint32_t buckets) {
    std::vector<uint32_t> quotas(members.size(), 0);
    uint64_t total = 0;
    for (const auto& m : members) total += m.weight;
    if (total == 0) return quotas;
    struct Remainder {
        uint64_t value;
        size_t index;
    };
    std::vector<Remainder> remainders;
    uint32_t given = 0;
    for (size_t i = 0; i < members.size(); ++i) {
        uint64_t exact = uint64_t(buckets) * members[i].weight;
        quotas[i] = uint32_t(exact / total);
        given += quotas[i];
        remainders.push_back({exact % total, i});
    }
    // Largest remainder first; ties go to the earlier member so the result is deterministic.
    std::stable_sort(remainders.begin(), remainders.end(),
                     [](const Remainder& a, const Remainder& b) { return a.value > b.value; });
    for (size_t k = 0; given < buckets; ++k, ++given) ++quotas[remainders[k % remainders.size()].index];
    return quotas;
}

std::vector<uint32_t> assign_buckets(const std::vector<BalanceMember>& members, uint32_t buckets) {
    if (members.empty() || buckets == 0) return {};
    std::vector<uint32_t> quotas = bucket_quotas(members, buckets);
    struct Cursor {
        uint64_t offset, skip, next = 0;
    };
    std::vector<Cursor> cursors;
    for (const auto& m : members) {
        uint64_t offset = fnv1a(m.name, 0x6f6666736574ull) % buckets;
        uint64_t skip = buckets > 1 ? fnv1a(m.name, 0x736b6970ull) % (buckets - 1) + 1 : 1;
        cursors.push_back({offset, skip});
    }
    constexpr uint32_t kFree = UINT32_MAX;
    std::vector<uint32_t> owner(buckets, kFree);
    std::vector<uint32_t> taken(members.size(), 0);
    uint32_t filled = 0;
    // Members take turns claiming their next preferred free bucket until each has its quota.
    while (filled < buckets) {
        for (size_t i = 0; i < members.size() && filled < buckets; ++i) {
            if (taken[i] == quotas[i]) continue;
            auto& c = cursors[i];
            uint32_t bucket;
            do {
                bucket = uint32_t((c.offset + c.next * c.skip) % buckets);
                ++c.next;
            } while (owner[bucket] != kFree);
            owner[bucket] = uint32_t(i);
            ++taken[i];
            ++filled;
        }
    }
    return owner;
}

}  // namespace wb
