#include <doctest/doctest.h>

#include "rules/desired.hpp"
#include "rules/nft_diff.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb;
using namespace wb::nft;
using wb::test::article_config;
using wb::test::healthy;

namespace {
template <class T>
size_t index_of(const Plan& p) {
    for (size_t i = 0; i < p.ops.size(); ++i)
        if (std::holds_alternative<T>(p.ops[i])) return i;
    return SIZE_MAX;
}
}  // namespace

TEST_CASE("nothing in the kernel yet: one atomic table replacement") {
    auto c = article_config();
    auto t = build_desired(c, healthy(c)).table;
    auto plan = diff(std::nullopt, t);
    REQUIRE(plan.ops.size() == 1);
    CHECK(std::get<OpReplaceTable>(plan.ops[0]).table == t);
}

TEST_CASE("an unchanged table gives an empty plan") {
    auto c = article_config();
    auto t = build_desired(c, healthy(c)).table;
    CHECK(diff(t, t).empty());
}

TEST_CASE("a health change touches only the balance map, and only the buckets that move") {
    auto c = article_config();
    auto in = healthy(c);
    auto before = build_desired(c, in).table;
    in[1].health = Health::Down;
    auto after = build_desired(c, in).table;
    auto plan = diff(before, after);
    REQUIRE(plan.ops.size() == 2);
    const auto& del = std::get<OpDeleteElements>(plan.ops[0]);
    const auto& add = std::get<OpAddElements>(plan.ops[1]);
    CHECK(del.set.name == "balance");
    CHECK(add.set.name == "balance");
    CHECK(del.set.elements.size() == add.set.elements.size());
    // Exactly integra's buckets move to charter.
    for (const auto& e : del.set.elements) CHECK(e.goto_chain == "wan_integra");
    for (const auto& e : add.set.elements) CHECK(e.goto_chain == "wan_charter");
    CHECK(add.set.elements.size() < kBalanceBuckets);
    CHECK(add.set.elements.size() > 400);
}

TEST_CASE("adding a WAN creates its chain before any element refers to it") {
    auto c = article_config();
    auto before = build_desired(c, healthy(c)).table;
    WanConfig lte = c.wans[1];
    lte.name = "lte";
    lte.interface = "wwan0";
    lte.table = 103;
    lte.mark = 0x300;
    c.wans.push_back(lte);
    auto after = build_desired(c, healthy(c)).table;
    auto plan = diff(before, after);
    size_t add_chain = index_of<OpAddChain>(plan);
    size_t add_elems = index_of<OpAddElements>(plan);
    REQUIRE(add_chain != SIZE_MAX);
    REQUIRE(add_elems != SIZE_MAX);
    CHECK(add_chain < add_elems);
    CHECK(std::get<OpAddChain>(plan.ops[add_chain]).chain.name == "wan_lte");
    bool postrouting_replaced = false;
    for (const auto& op : plan.ops)
        if (auto* r = std::get_if<OpReplaceRules>(&op)) postrouting_replaced |= r->chain == "postrouting";
    CHECK(postrouting_replaced);
}

TEST_CASE("removing a WAN deletes the elements that refer to its chain before the chain") {
    auto c = article_config();
    auto before = build_desired(c, healthy(c)).table;
    c.wans.pop_back();
    auto after = build_desired(c, healthy(c)).table;
    auto plan = diff(before, after);
    size_t del_elems = index_of<OpDeleteElements>(plan);
    size_t del_chain = index_of<OpDeleteChain>(plan);
    REQUIRE(del_elems != SIZE_MAX);
    REQUIRE(del_chain != SIZE_MAX);
    CHECK(del_elems < del_chain);
}

TEST_CASE("a classifier change replaces only the prerouting rules") {
    auto c = article_config();
    auto before = build_desired(c, healthy(c)).table;
    c.classifier = Classifier::SrcAddress;
    auto plan = diff(before, build_desired(c, healthy(c)).table);
    REQUIRE(plan.ops.size() == 1);
    CHECK(std::get<OpReplaceRules>(plan.ops[0]).chain == "prerouting");
    CHECK(describe(plan.ops[0]) == "replace the rules of chain prerouting (3 rules)");
}

TEST_CASE("a set whose key type changes is deleted and added again, its users emptied before and refilled after") {
    auto c = article_config();
    auto before = build_desired(c, healthy(c)).table;
    auto after = before;
    REQUIRE(after.sets[4].name == "balance");
    after.sets[4].bucket_modulus = 509;
    auto plan = diff(before, after);
    // prerouting's rules are textually equal, but the map they look up is another one.
    REQUIRE(plan.ops.size() == 4);
    CHECK(std::get<OpReplaceRules>(plan.ops[0]) == OpReplaceRules{"prerouting", {}});
    CHECK(std::get<OpDeleteSet>(plan.ops[1]).name == "balance");
    CHECK(std::get<OpAddSet>(plan.ops[2]).set == after.sets[4]);
    CHECK(std::get<OpReplaceRules>(plan.ops[3]) == OpReplaceRules{"prerouting", after.find_chain("prerouting")->rules});
}
