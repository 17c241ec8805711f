#include <doctest/doctest.h>

#include <map>
#include <string>

#include "rules/balance.hpp"
#include "rules/desired.hpp"

using namespace wb;

namespace {
std::map<uint32_t, uint32_t> counts(const std::vector<uint32_t>& owners) {
    std::map<uint32_t, uint32_t> out;
    for (auto o : owners) ++out[o];
    return out;
}
}  // namespace

TEST_CASE("quotas follow the weights exactly and sum to the bucket count") {
    auto q = bucket_quotas({{"a", 3}, {"b", 1}}, kBalanceBuckets);
    CHECK(q[0] + q[1] == kBalanceBuckets);
    CHECK(q[0] == 766);  // 1021 * 3/4 = 765.75
    CHECK(q[1] == 255);
    auto q3 = bucket_quotas({{"a", 1}, {"b", 1}, {"c", 1}}, kBalanceBuckets);
    CHECK(q3 == std::vector<uint32_t>{341, 340, 340});
    auto big = bucket_quotas({{"a", 1000}, {"b", 1}}, kBalanceBuckets);
    CHECK(big[0] + big[1] == kBalanceBuckets);
    CHECK(big[1] == 1);
}

TEST_CASE("every bucket gets an owner and each member gets its quota") {
    std::vector<BalanceMember> m{{"charter", 3}, {"integra", 1}, {"lte", 2}};
    auto owners = assign_buckets(m, kBalanceBuckets);
    REQUIRE(owners.size() == kBalanceBuckets);
    auto c = counts(owners);
    auto q = bucket_quotas(m, kBalanceBuckets);
    for (uint32_t i = 0; i < m.size(); ++i) CHECK(c[i] == q[i]);
    CHECK(assign_buckets({}, kBalanceBuckets).empty());
}

TEST_CASE("the assignment is deterministic and depends on names, not on call order") {
    std::vector<BalanceMember> m{{"charter", 1}, {"integra", 1}};
    CHECK(assign_buckets(m, kBalanceBuckets) == assign_buckets(m, kBalanceBuckets));
}

TEST_CASE("buckets of a single member cover everything") {
    auto owners = assign_buckets({{"only", 5}}, kBalanceBuckets);
    CHECK(counts(owners)[0] == kBalanceBuckets);
}

TEST_CASE("removing one WAN moves few buckets between the survivors") {
    // Clients keep their WAN when another WAN fails: only the dead WAN's buckets should move,
    // plus a small amount of Maglev churn.
    std::vector<BalanceMember> four{{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};
    std::vector<BalanceMember> three{{"a", 1}, {"b", 1}, {"d", 1}};
    auto before = assign_buckets(four, kBalanceBuckets);
    auto after = assign_buckets(three, kBalanceBuckets);
    const std::vector<std::string> names4{"a", "b", "c", "d"}, names3{"a", "b", "d"};
    unsigned survivors = 0, moved = 0;
    for (uint32_t b = 0; b < kBalanceBuckets; ++b) {
        if (names4[before[b]] == "c") continue;
        ++survivors;
        if (names4[before[b]] != names3[after[b]]) ++moved;
    }
    MESSAGE("buckets moved between surviving WANs: " << moved << " of " << survivors);
    CHECK(moved < survivors / 10);
    // And when it comes back, the original assignment returns exactly.
    CHECK(assign_buckets(four, kBalanceBuckets) == before);
}

TEST_CASE("with a WAN out of service only its buckets move, and the others stay within one of their quota") {
    std::vector<BalanceMember> home;
    for (int i = 0; i < 63; ++i) home.push_back({"wan" + std::to_string(i), unsigned(1 + i % 4)});
    auto all_up = assign_buckets(home, kBalanceBuckets);
    std::vector<size_t> everyone(home.size());
    for (size_t i = 0; i < home.size(); ++i) everyone[i] = i;
    CHECK(assign_buckets(home, everyone, kBalanceBuckets) == all_up);  // nothing out: plain Maglev

    for (size_t down : {size_t(0), size_t(17), size_t(62)}) {
        CAPTURE(down);
        std::vector<size_t> active;
        std::vector<BalanceMember> members;
        for (size_t i = 0; i < home.size(); ++i)
            if (i != down) {
                active.push_back(i);
                members.push_back(home[i]);
            }
        auto owners = assign_buckets(home, active, kBalanceBuckets);
        REQUIRE(owners.size() == kBalanceBuckets);
        unsigned moved_survivors = 0;
        for (uint32_t b = 0; b < kBalanceBuckets; ++b) {
            CHECK(owners[b] != down);
            if (all_up[b] != down && owners[b] != all_up[b]) ++moved_survivors;
        }
        CHECK(moved_survivors == 0);
        auto c = counts(owners);
        auto q = bucket_quotas(members, kBalanceBuckets);
        for (size_t k = 0; k < active.size(); ++k) {
            CAPTURE(active[k]);
            CHECK(c[uint32_t(active[k])] + 1 >= q[k]);
            CHECK(c[uint32_t(active[k])] <= q[k] + 1);
        }
    }
}

TEST_CASE("two WANs out, then one back: it takes back exactly its own buckets") {
    std::vector<BalanceMember> home{{"a", 3}, {"b", 1}, {"c", 2}, {"d", 1}, {"e", 1}};
    auto all_up = assign_buckets(home, kBalanceBuckets);
    auto two_down = assign_buckets(home, {0, 2, 4}, kBalanceBuckets);
    auto one_back = assign_buckets(home, {0, 1, 2, 4}, kBalanceBuckets);
    for (uint32_t b = 0; b < kBalanceBuckets; ++b) {
        if (all_up[b] == 1) CHECK(one_back[b] == 1);                          // b's own buckets came back
        if (all_up[b] != 1 && all_up[b] != 3) CHECK(one_back[b] == all_up[b]);  // the live ones never moved
        if (all_up[b] != 1 && all_up[b] != 3) CHECK(two_down[b] == all_up[b]);
        CHECK(one_back[b] != 3);
    }
    CHECK(assign_buckets(home, {}, kBalanceBuckets).empty());
}

// Issue 10: 62 WANs at weight 1000 and one at weight 1 gave the last one no bucket at all (its
// share, 1021/62001 of a bucket, rounded to nothing), so it never took a connection.
TEST_CASE("every WAN with a weight gets at least one bucket: 62 x 1000 and 1 x 1") {
    std::vector<BalanceMember> home;
    for (int i = 0; i < 62; ++i) home.push_back({"big" + std::to_string(i), 1000});
    home.push_back({"small", 1});
    auto q = bucket_quotas(home, kBalanceBuckets);
    CHECK(q[62] == 1);
    uint32_t sum = 0;
    for (size_t i = 0; i < 62; ++i) {
        CAPTURE(i);
        CHECK((q[i] == 16 || q[i] == 17));  // 1020 buckets over 62 equal weights
        sum += q[i];
    }
    CHECK(sum + q[62] == kBalanceBuckets);

    auto owners = assign_buckets(home, kBalanceBuckets);
    auto c = counts(owners);
    CHECK(c[62] == 1);
    for (uint32_t i = 0; i < home.size(); ++i) CHECK(c[i] == q[i]);

    // With some of the big ones out of service the small one keeps its bucket, and the others
    // still move only the dead ones' buckets.
    std::vector<size_t> active;
    for (size_t i = 0; i < home.size(); ++i)
        if (i % 7 != 3) active.push_back(i);
    auto some_down = assign_buckets(home, active, kBalanceBuckets);
    CHECK(counts(some_down)[62] >= 1);
    for (uint32_t b = 0; b < kBalanceBuckets; ++b) {
        if (owners[b] % 7 != 3) CHECK(some_down[b] == owners[b]);
        CHECK(some_down[b] % 7 != 3);
    }
    // Only the small one and one big one left: the small one still has a share of its own.
    auto two = assign_buckets(home, {0, 62}, kBalanceBuckets);
    CHECK(counts(two)[62] >= 1);
    CHECK(counts(two)[0] + counts(two)[62] == kBalanceBuckets);
}

TEST_CASE("the minimum of one bucket: shares under one get one, the rest shared by weight") {
    // One at 1000 and 62 at 1: each small share is 0.96 of a bucket; before, two of them got none.
    std::vector<BalanceMember> m{{"big", 1000}};
    for (int i = 0; i < 62; ++i) m.push_back({"s" + std::to_string(i), 1});
    auto q = bucket_quotas(m, kBalanceBuckets);
    CHECK(q[0] == kBalanceBuckets - 62);
    for (size_t i = 1; i < m.size(); ++i) CHECK(q[i] == 1);

    // Random weights, often tiny next to big ones: every member gets a bucket, the quotas sum to
    // the table, a heavier member never gets fewer buckets than a lighter one, and no member
    // gets more than one bucket over its full share unless it got the minimum. When every share
    // is at least one bucket, each is within one bucket of it (plain largest remainder).
    uint64_t seed = 10;
    auto next = [&seed] { return (seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
    for (int round = 0; round < 500; ++round) {
        std::vector<BalanceMember> members;
        size_t n = 1 + next() % 63;
        for (size_t i = 0; i < n; ++i) {
            unsigned weight = next() % 4 == 0 ? 1 + unsigned(next() % 3) : 1 + unsigned(next() % 1000);
            members.push_back({"m" + std::to_string(i), weight});
        }
        CAPTURE(round);
        auto quotas = bucket_quotas(members, kBalanceBuckets);
        uint64_t total = 0, sum = 0;
        for (const auto& member : members) total += member.weight;
        bool all_at_least_one = true;
        for (size_t i = 0; i < n; ++i) {
            double share = double(kBalanceBuckets) * members[i].weight / double(total);
            all_at_least_one = all_at_least_one && share >= 1.0;
            CHECK(quotas[i] >= 1);
            if (quotas[i] > 1) CHECK(double(quotas[i]) < share + 1.0);
            for (size_t j = 0; j < n; ++j)
                if (members[i].weight > members[j].weight) CHECK(quotas[i] >= quotas[j]);
            sum += quotas[i];
        }
        CHECK(sum == kBalanceBuckets);
        if (all_at_least_one) {
            for (size_t i = 0; i < n; ++i) {
                double share = double(kBalanceBuckets) * members[i].weight / double(total);
                CHECK(double(quotas[i]) > share - 1.0);
            }
        }
        auto owners = assign_buckets(members, kBalanceBuckets);
        auto c = counts(owners);
        for (uint32_t i = 0; i < n; ++i) CHECK(c[i] == quotas[i]);
    }
}
