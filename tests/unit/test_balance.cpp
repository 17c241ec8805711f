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
