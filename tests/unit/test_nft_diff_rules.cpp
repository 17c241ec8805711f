// The diff of tables with policy rules (sets added, removed and re-shaped in place, dynamic
// sets flushed, rule maps kept in the kernel's order), and each plan applied to the fake kernel.
#include <doctest/doctest.h>

#include <algorithm>

#include "rules/nft_diff.hpp"
#include "tests/unit/fake_kernel.hpp"
#include "tests/unit/nft_keys.hpp"

using namespace wb::nft;
using wb::Family;
using wb::test::FakeKernel;
using namespace wb::test;

namespace {

template <class T>
std::vector<size_t> indices_of(const Plan& p) {
    std::vector<size_t> out;
    for (size_t i = 0; i < p.ops.size(); ++i)
        if (std::holds_alternative<T>(p.ops[i])) out.push_back(i);
    return out;
}

size_t index_of(const Plan& p, const Op& op) {
    auto it = std::find(p.ops.begin(), p.ops.end(), op);
    return it == p.ops.end() ? SIZE_MAX : size_t(it - p.ops.begin());
}

// Where a chain is emptied, and where it gets its rules back.
size_t flush_of(const Plan& p, const std::string& chain) { return index_of(p, OpReplaceRules{chain, {}}); }
size_t refill_of(const Plan& p, const Table& desired, const std::string& chain) {
    return index_of(p, OpReplaceRules{chain, desired.find_chain(chain)->rules});
}

Set& set_of(Table& t, const std::string& name) {
    for (auto& s : t.sets)
        if (s.name == name) return s;
    FAIL("no set " << name);
    throw 0;
}
Chain& chain_of(Table& t, const std::string& name) {
    for (auto& c : t.chains)
        if (c.name == name) return c;
    FAIL("no chain " << name);
    throw 0;
}

// `desired` with its sets and chains in the order of `kernel`'s: the kernel lists them in the
// order they were made, so what a plan adds or re-creates comes last.
Table in_kernel_order(Table desired, const Table& kernel) {
    auto rank = [](const auto& list, const std::string& name) {
        for (size_t i = 0; i < list.size(); ++i)
            if (list[i].name == name) return i;
        return list.size();
    };
    std::stable_sort(desired.sets.begin(), desired.sets.end(),
                     [&](const Set& a, const Set& b) { return rank(kernel.sets, a.name) < rank(kernel.sets, b.name); });
    std::stable_sort(desired.chains.begin(), desired.chains.end(), [&](const Chain& a, const Chain& b) {
        return rank(kernel.chains, a.name) < rank(kernel.chains, b.name);
    });
    return desired;
}

// The plan applies to a kernel holding `current` and leaves what `nft list` would show of
// `desired` (render() lists pipapo sets in the kernel's order, so the order is checked too).
void applies(const Table& current, const Table& desired, const Plan& plan) {
    FakeKernel kernel;
    REQUIRE(kernel.apply(Plan{{OpReplaceTable{current}}}).is_ok());
    wb::Status s = kernel.apply(plan);
    INFO(s.message);
    REQUIRE(s.is_ok());
    CHECK(render(*kernel.table()) == render(in_kernel_order(desired, *kernel.table())));
    CHECK(kernel.table()->sets.size() == desired.sets.size());
    CHECK(kernel.table()->chains.size() == desired.chains.size());
}

}  // namespace

TEST_CASE("an unchanged table of policy rules gives an empty plan") {
    Table t = policy_rules_table();
    CHECK(diff(t, t).empty());
}

TEST_CASE("only a table comment, a hook or no table at all replace the whole table") {
    Table t = policy_rules_table();
    Table other_comment = t;
    other_comment.comment = "other";
    Table other_hook = t;
    chain_of(other_hook, "prerouting").base->priority = -140;
    Table no_sets = t;
    no_sets.sets.clear();
    for (const auto& [current, desired] : {std::pair{std::optional<Table>{}, t}, {t, other_comment}, {t, other_hook}}) {
        Plan plan = diff(current, desired);
        REQUIRE(plan.ops.size() == 1);
        CHECK(std::get<OpReplaceTable>(plan.ops[0]).table == desired);
    }
    // A change in the number of sets is no reason any more.
    CHECK(indices_of<OpReplaceTable>(diff(t, no_sets)).empty());
}

TEST_CASE("a new rule map is added before the rule that looks it up") {
    Table before = policy_rules_table(), after = before;
    after.sets.push_back(rule_map("rules4_3", {KeyType::Ipv4Addr, KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService},
                                  {element({addr("0.0.0.0/0"), addr("203.0.113.0/24"), proto(6), any_port()}, "rule_https")}));
    auto& rules4 = chain_of(after, "rules4").rules;
    rules4.insert(rules4.begin() + 2, rules4[1]);
    std::get<ConcatVmap>(rules4[2].statements[0]).map = "rules4_3";
    Plan plan = diff(before, after);
    REQUIRE(plan.ops.size() == 2);
    CHECK(std::get<OpAddSet>(plan.ops[0]).set == after.sets.back());
    CHECK(plan.ops[1] == Op{OpReplaceRules{"rules4", rules4}});
    applies(before, after, plan);
}

TEST_CASE("a removed rule map is deleted after the rules that looked it up are emptied") {
    Table before = policy_rules_table(), after = before;
    std::erase_if(after.sets, [](const Set& s) { return s.name == "rules4_2"; });
    auto& rules4 = chain_of(after, "rules4").rules;
    rules4.erase(rules4.begin() + 1);
    Plan plan = diff(before, after);
    REQUIRE(plan.ops.size() == 3);
    CHECK(flush_of(plan, "rules4") == 0);
    CHECK(plan.ops[1] == Op{OpDeleteSet{"rules4_2"}});
    CHECK(refill_of(plan, after, "rules4") == 2);
    applies(before, after, plan);
}

TEST_CASE("a rule map whose key changes is deleted and added again in the same plan") {
    Table before = policy_rules_table(), after = before;
    Set& map = set_of(after, "rules4_1");
    map.concat.insert(map.concat.begin(), KeyType::Ifname);
    for (auto& e : map.elements) std::get<FieldRanges>(e.key).insert(std::get<FieldRanges>(e.key).begin(), iif("ether3"));
    auto& lookup = std::get<ConcatVmap>(chain_of(after, "rules4").rules[0].statements[0]);
    lookup.fields.insert(lookup.fields.begin(), MatchField::Iifname);
    Plan plan = diff(before, after);
    REQUIRE(plan.ops.size() == 4);
    CHECK(flush_of(plan, "rules4") == 0);
    CHECK(plan.ops[1] == Op{OpDeleteSet{"rules4_1"}});
    CHECK(plan.ops[2] == Op{OpAddSet{map}});
    CHECK(refill_of(plan, after, "rules4") == 3);
    applies(before, after, plan);
}

TEST_CASE("a sticky set whose timeout changes is re-created: every chain using it gets its equal rules again") {
    Table before = policy_rules_table(), after = before;
    set_of(after, "sticky_bank_charter").timeout_s = 900;
    Plan plan = diff(before, after);
    REQUIRE(chain_of(before, "rule_bank").rules == chain_of(after, "rule_bank").rules);
    REQUIRE(plan.ops.size() == 4);
    CHECK(flush_of(plan, "rule_bank") == 0);
    CHECK(plan.ops[1] == Op{OpDeleteSet{"sticky_bank_charter"}});
    CHECK(plan.ops[2] == Op{OpAddSet{set_of(after, "sticky_bank_charter")}});
    CHECK(refill_of(plan, after, "rule_bank") == 3);
    applies(before, after, plan);
}

TEST_CASE("a dynamic set: its entries are never diffed, a WAN going down flushes them, nothing re-creates it") {
    Table up = policy_rules_table(), down = up;
    set_of(down, "sticky_bank_integra").keep_entries = false;
    Plan plan = diff(up, down);
    REQUIRE(plan.ops.size() == 1);
    CHECK(plan.ops[0] == Op{OpFlushSet{"sticky_bank_integra"}});
    CHECK(describe(plan.ops[0]) == "flush set sticky_bank_integra");
    // Staying down or coming back up changes nothing in the kernel.
    CHECK(diff(down, down).empty());
    CHECK(diff(down, up).empty());
    // What the packet path put there never shows in a diff.
    Table with_entries = up;
    set_of(with_entries, "sticky_bank_integra").elements.push_back(element({addr("10.0.0.1"), addr("1.1.1.1")}, ""));
    CHECK(diff(with_entries, up).empty());
    CHECK(diff(up, with_entries).empty());

    FakeKernel kernel;
    REQUIRE(kernel.apply(Plan{{OpReplaceTable{up}}}).is_ok());
    REQUIRE(kernel.add_set_entries("sticky_bank_integra", {element({addr("10.0.0.1"), addr("1.1.1.1")}, ""),
                                                           element({addr("10.0.0.2"), addr("1.1.1.1")}, "")}));
    REQUIRE(kernel.add_set_entries("sticky_bank_charter", {element({addr("10.0.0.3"), addr("1.1.1.1")}, "")}));
    REQUIRE(kernel.apply(plan).is_ok());
    auto entries = [&](const std::string& name) { return kernel.table()->find_set(name)->elements.size(); };
    CHECK(entries("sticky_bank_integra") == 0);
    CHECK(entries("sticky_bank_charter") == 1);
}

TEST_CASE("a rule map's changed elements keep the kernel's order: everything after the common prefix is re-added") {
    Table before = policy_rules_table(), after = before;
    auto& elements = set_of(after, "rules4_1").elements;
    elements.erase(elements.begin() + 1);  // rule_voip's element goes, rule_bank's moves up
    elements.push_back(element({addr("0.0.0.0/0"), addr("192.0.2.20"), proto(6), port(22)}, "rule_https", true));
    Plan plan = diff(before, after);
    REQUIRE(plan.ops.size() == 2);
    const auto& del = std::get<OpDeleteElements>(plan.ops[0]).set;
    const auto& add = std::get<OpAddElements>(plan.ops[1]).set;
    const auto& old = set_of(before, "rules4_1").elements;
    CHECK(del.elements == std::vector<Element>(old.begin() + 1, old.end()));
    CHECK(add.elements == std::vector<Element>(elements.begin() + 1, elements.end()));
    applies(before, after, plan);

    // Appending only adds.
    Table appended = before;
    set_of(appended, "rules4_2").elements.push_back(element({addr("10.9.0.0/16"), addr("198.18.0.0/15"), any_proto(), any_port()}, "rule_bank"));
    Plan append = diff(before, appended);
    REQUIRE(append.ops.size() == 1);
    CHECK(std::get<OpAddElements>(append.ops[0]).set.elements.size() == 1);
    applies(before, appended, append);
}

TEST_CASE("a chain that rules goto is deleted after those rules are emptied") {
    Table before = policy_rules_table(), after = before;
    std::erase_if(after.chains, [](const Chain& c) { return c.name == "rule_https"; });
    std::erase_if(after.sets, [](const Set& s) { return s.name == "rules4_1" || s.name == "rules6_1"; });
    auto& rules4 = chain_of(after, "rules4").rules;
    rules4.erase(rules4.begin());
    auto& rules6 = chain_of(after, "rules6").rules;
    rules6.erase(rules6.begin());
    // And to_main is goto'ed by rule_https only: nothing else changes for it.
    Plan plan = diff(before, after);
    const size_t delete_chain = index_of(plan, OpDeleteChain{"rule_https"});
    REQUIRE(delete_chain != SIZE_MAX);
    CHECK(index_of(plan, OpDeleteSet{"rules4_1"}) < delete_chain);
    CHECK(flush_of(plan, "rule_https") < delete_chain);
    CHECK(flush_of(plan, "rules4") < index_of(plan, OpDeleteSet{"rules4_1"}));
    CHECK(refill_of(plan, after, "rules4") > delete_chain);
    applies(before, after, plan);
}

TEST_CASE("the fake kernel refuses what the real one refuses for policy rules") {
    Table t = policy_rules_table();
    FakeKernel kernel;
    REQUIRE(kernel.apply(Plan{{OpReplaceTable{t}}}).is_ok());
    auto refused = [&](Op op) {
        wb::Status s = kernel.apply(Plan{{std::move(op)}});
        return s.is_ok() ? 0 : s.err;
    };
    // A set still looked up, updated or gone to; a chain still goto'ed.
    CHECK(refused(OpDeleteSet{"sticky_bank_charter"}) == EBUSY);
    CHECK(refused(OpDeleteSet{"rules4_1"}) == EBUSY);
    CHECK(refused(OpDeleteChain{"to_main"}) == EBUSY);
    // Missing targets; a verdict lookup in a plain set; "update" on a set that is not dynamic.
    CHECK(refused(OpReplaceRules{"rules4", {Rule{{Goto{"nowhere"}}, ""}}}) == ENOENT);
    CHECK(refused(OpReplaceRules{"rules4", {Rule{{ConcatVmap{Family::V4, {MatchField::SrcAddr, MatchField::DstAddr},
                                                             "sticky_bank_charter"}},
                                                  ""}}}) == EINVAL);
    CHECK(refused(OpReplaceRules{"rule_bank", {Rule{{UpdateSet{Family::V4, true, "rules4_1"}}, ""}}}) == EOPNOTSUPP);
    CHECK(refused(OpFlushSet{"nowhere"}) == ENOENT);
    // A set of another shape under an existing name; an element overlapping another.
    Set reshaped = set_of(t, "sticky_bank_charter");
    reshaped.concat.clear();
    CHECK(refused(OpAddSet{reshaped}) == EEXIST);
    Set overlap = set_of(t, "rules4_1");
    overlap.elements = {element({addr("10.1.0.0/16"), addr("1.2.3.4"), proto(17), port(5060)}, "rule_voip")};
    CHECK(refused(OpAddElements{overlap}) == EEXIST);
    CHECK(render(*kernel.table()) == render(t));
}
