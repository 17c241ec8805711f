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

// Largest remainder over the members with in_pool set: their quotas sum to `buckets` and each is
// within one bucket of buckets * weight / (the pool's total weight). Others are left alone.
void largest_remainder(const std::vector<BalanceMember>& members, const std::vector<bool>& in_pool,
                       uint32_t buckets, std::vector<uint32_t>& quotas) {
    uint64_t total = 0;
    for (size_t i = 0; i < members.size(); ++i)
        if (in_pool[i]) total += members[i].weight;
    if (total == 0) return;
    struct Remainder {
        uint64_t value;
        size_t index;
    };
    std::vector<Remainder> remainders;
    uint32_t given = 0;
    for (size_t i = 0; i < members.size(); ++i) {
        if (!in_pool[i]) continue;
        uint64_t exact = uint64_t(buckets) * members[i].weight;
        quotas[i] = uint32_t(exact / total);
        given += quotas[i];
        remainders.push_back({exact % total, i});
    }
    // Largest remainder first; ties go to the earlier member so the result is deterministic.
    std::stable_sort(remainders.begin(), remainders.end(),
                     [](const Remainder& a, const Remainder& b) { return a.value > b.value; });
    for (size_t k = 0; given < buckets; ++k, ++given) ++quotas[remainders[k % remainders.size()].index];
}

}  // namespace

std::vector<uint32_t> bucket_quotas(const std::vector<BalanceMember>& members, uint32_t buckets) {
    std::vector<uint32_t> quotas(members.size(), 0);
    std::vector<bool> in_pool(members.size());
    size_t weighted = 0;
    for (size_t i = 0; i < members.size(); ++i) {
        in_pool[i] = members[i].weight > 0;
        weighted += in_pool[i] ? 1 : 0;
    }
    // A member whose share is under one bucket would get none and never see a connection: it
    // gets exactly one, and the others share what is left by weight. Repeat, since that share is
    // smaller (until no member of the pool is under one bucket). Without any such member this is
    // plain largest remainder.
    uint32_t left = buckets;
    for (bool changed = weighted <= buckets; changed;) {
        changed = false;
        uint64_t total = 0;
        for (size_t i = 0; i < members.size(); ++i)
            if (in_pool[i]) total += members[i].weight;
        const uint32_t share_of = left;  // the shares of this round, all against the same total
        for (size_t i = 0; i < members.size(); ++i) {
            if (!in_pool[i] || uint64_t(share_of) * members[i].weight >= total) continue;
            in_pool[i] = false;
            quotas[i] = 1;
            --left;
            changed = true;
        }
    }
    largest_remainder(members, in_pool, left, quotas);
    return quotas;
}

namespace {

// A member's preference order over the buckets (Maglev): offset + k*skip, a permutation
// because the bucket count is prime.
struct Cursor {
    uint64_t offset, skip, next = 0;
    Cursor(const std::string& name, uint32_t buckets)
        : offset(fnv1a(name, 0x6f6666736574ull) % buckets),
          skip(buckets > 1 ? fnv1a(name, 0x736b6970ull) % (buckets - 1) + 1 : 1) {}
    uint32_t advance(uint32_t buckets) { return uint32_t((offset + next++ * skip) % buckets); }
};

constexpr uint32_t kFree = UINT32_MAX;

// Members take turns claiming their next preferred free bucket until each has its quota or no
// free bucket is left. `owner` holds kFree for free buckets; values written are member indices
// mapped through `ids`.
void populate(const std::vector<BalanceMember>& members, const std::vector<uint32_t>& ids,
              std::vector<uint32_t> quotas, std::vector<uint32_t>& owner) {
    const auto buckets = uint32_t(owner.size());
    uint32_t free = uint32_t(std::count(owner.begin(), owner.end(), kFree));
    std::vector<Cursor> cursors;
    for (const auto& m : members) cursors.emplace_back(m.name, buckets);
    bool progress = true;
    while (free > 0 && progress) {
        progress = false;
        for (size_t i = 0; i < members.size() && free > 0; ++i) {
            if (quotas[i] == 0) continue;
            uint32_t bucket;
            do bucket = cursors[i].advance(buckets);
            while (owner[bucket] != kFree);
            owner[bucket] = ids[i];
            --quotas[i];
            --free;
            progress = true;
        }
    }
}

}  // namespace

std::vector<uint32_t> assign_buckets(const std::vector<BalanceMember>& members, uint32_t buckets) {
    if (members.empty() || buckets == 0) return {};
    std::vector<uint32_t> owner(buckets, kFree);
    std::vector<uint32_t> ids(members.size());
    std::iota(ids.begin(), ids.end(), 0u);
    populate(members, ids, bucket_quotas(members, buckets), owner);
    return owner;
}

std::vector<uint32_t> assign_buckets(const std::vector<BalanceMember>& home, const std::vector<size_t>& active,
                                     uint32_t buckets) {
    if (active.empty() || buckets == 0) return {};
    std::vector<uint32_t> owner = assign_buckets(home, buckets);
    std::vector<bool> in_service(home.size(), false);
    for (size_t i : active) in_service[i] = true;
    for (auto& o : owner)
        if (!in_service[o]) o = kFree;

    std::vector<BalanceMember> members;
    std::vector<uint32_t> ids;
    for (size_t i : active) {
        members.push_back(home[i]);
        ids.push_back(uint32_t(i));
    }
    // Each active member's shortfall against its quota over the active set. The shortfalls add
    // up to at least the free buckets (a member may hold one bucket over its new quota).
    std::vector<uint32_t> quotas = bucket_quotas(members, buckets);
    for (size_t k = 0; k < members.size(); ++k) {
        auto held = uint32_t(std::count(owner.begin(), owner.end(), ids[k]));
        quotas[k] = quotas[k] > held ? quotas[k] - held : 0;
    }
    populate(members, ids, quotas, owner);
    return owner;
}

}  // namespace wb
