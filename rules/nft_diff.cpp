#include "rules/nft_diff.hpp"

#include <map>
#include <set>
#include <variant>

namespace wb::nft {
namespace {

std::vector<KeyType> key_fields(const Set& set) {
    return set.concat.empty() ? std::vector<KeyType>{set.key_type} : set.concat;
}

// Sets are identified by name; one whose key, kind, flags or timeout change cannot be altered
// in place: it is deleted and added again. Elements and keep_entries are not its shape.
bool same_shape(const Set& a, const Set& b) {
    return key_fields(a) == key_fields(b) && a.bucket_modulus == b.bucket_modulus && a.verdict_map == b.verdict_map &&
           a.interval == b.interval && a.timeout_s == b.timeout_s;
}

Set with_elements(const Set& shape, std::vector<Element> elements) {
    Set out = shape;
    out.elements = std::move(elements);
    return out;
}

struct ElementChanges {
    std::vector<Element> removed;  // keys that go away or change their verdict
    std::vector<Element> added;    // keys that are new or change their verdict
};

ElementChanges diff_elements(const Set& current, const Set& desired) {
    std::map<Key, const Element*> old_by_key, new_by_key;
    for (const auto& e : current.elements) old_by_key[e.key] = &e;
    for (const auto& e : desired.elements) new_by_key[e.key] = &e;
    ElementChanges out;
    for (const auto& e : current.elements) {
        auto it = new_by_key.find(e.key);
        if (it == new_by_key.end() || !(*it->second == e)) out.removed.push_back(e);
    }
    for (const auto& e : desired.elements) {
        auto it = old_by_key.find(e.key);
        if (it == old_by_key.end() || !(*it->second == e)) out.added.push_back(e);
    }
    return out;
}

// A pipapo set lists its elements in the order they were added, survivors of deletions first.
// To list them in the desired order, the elements after the longest common prefix go and come
// back in order (appending rules to the config only adds).
ElementChanges diff_ordered_elements(const Set& current, const Set& desired) {
    size_t same = 0;
    while (same < current.elements.size() && same < desired.elements.size() &&
           current.elements[same] == desired.elements[same])
        ++same;
    return {{current.elements.begin() + long(same), current.elements.end()},
            {desired.elements.begin() + long(same), desired.elements.end()}};
}

// The names a rule's statements refer to: sets and maps, and chains (goto).
bool refers_to(const std::vector<Rule>& rules, const std::set<std::string>& sets,
               const std::set<std::string>& chains) {
    for (const auto& rule : rules)
        for (const auto& st : rule.statements) {
            bool hit = std::visit(
                [&](const auto& s) {
                    if constexpr (requires { s.map; }) return sets.count(s.map) > 0;
                    else if constexpr (requires { s.set; }) return sets.count(s.set) > 0;
                    else if constexpr (requires { s.chain; }) return chains.count(s.chain) > 0;
                    else return false;
                },
                st);
            if (hit) return true;
        }
    return false;
}

// The ops, in the order the kernel needs: references dropped, then objects removed, then
// objects added (chains before the sets whose elements go to them), then references added.
struct Steps {
    std::vector<Op> drop_refs, removals, add_chains, add_sets, add_refs;

    Plan plan() {
        Plan out;
        for (auto* group : {&drop_refs, &removals, &add_chains, &add_sets, &add_refs})
            for (auto& op : *group) out.ops.push_back(std::move(op));
        return out;
    }
};

// Sets that go away (deleted, or deleted and added again with another shape).
std::set<std::string> gone_sets(const Table& current, const Table& desired) {
    std::set<std::string> out;
    for (const auto& s : current.sets)
        if (const Set* d = desired.find_set(s.name); !d || !same_shape(s, *d)) out.insert(s.name);
    return out;
}

void diff_sets(const Table& current, const Table& desired, const std::set<std::string>& gone, Steps& steps) {
    for (const auto& s : current.sets)
        if (gone.count(s.name)) steps.removals.push_back(OpDeleteSet{s.name});
    for (const auto& s : desired.sets) {
        const Set* old = current.find_set(s.name);
        if (!old || gone.count(s.name)) {
            steps.add_sets.push_back(OpAddSet{s});
            continue;
        }
        // The packet path fills a dynamic set: only emptied when its entries must go.
        if (s.dynamic()) {
            if (old->keep_entries && !s.keep_entries) steps.drop_refs.push_back(OpFlushSet{s.name});
            continue;
        }
        ElementChanges ch = s.interval ? diff_ordered_elements(*old, s) : diff_elements(*old, s);
        if (!ch.removed.empty()) steps.drop_refs.push_back(OpDeleteElements{with_elements(s, std::move(ch.removed))});
        if (!ch.added.empty()) steps.add_refs.push_back(OpAddElements{with_elements(s, std::move(ch.added))});
    }
}

void diff_chains(const Table& current, const Table& desired, const std::set<std::string>& gone_sets, Steps& steps) {
    std::set<std::string> gone_chains;
    for (const auto& c : current.chains) {
        if (desired.find_chain(c.name)) continue;
        gone_chains.insert(c.name);
        if (!c.rules.empty()) steps.drop_refs.push_back(OpReplaceRules{c.name, {}});
        steps.removals.push_back(OpDeleteChain{c.name});
    }
    for (const auto& c : desired.chains) {
        const Chain* old = current.find_chain(c.name);
        if (!old) {
            // New chains start empty so their rules can refer to anything added in this plan.
            Chain empty = c;
            empty.rules.clear();
            steps.add_chains.push_back(OpAddChain{empty});
            if (!c.rules.empty()) steps.add_refs.push_back(OpReplaceRules{c.name, c.rules});
        } else if (refers_to(old->rules, gone_sets, gone_chains)) {
            // Its rules hold what goes away: emptied first, filled again once the new exists
            // (a set added again is another set to the kernel, even for equal rules).
            steps.drop_refs.push_back(OpReplaceRules{c.name, {}});
            if (!c.rules.empty()) steps.add_refs.push_back(OpReplaceRules{c.name, c.rules});
        } else if (old->rules != c.rules) {
            steps.add_refs.push_back(OpReplaceRules{c.name, c.rules});
        }
    }
}

}  // namespace

Plan diff(const std::optional<Table>& current, const Table& desired) {
    Plan whole;
    whole.ops.push_back(OpReplaceTable{desired});
    if (!current || current->name != desired.name || current->comment != desired.comment) return whole;
    for (const auto& c : desired.chains) {
        const Chain* old = current->find_chain(c.name);
        if (old && old->base != c.base) return whole;  // a hook cannot change in place
    }
    Steps steps;
    std::set<std::string> gone = gone_sets(*current, desired);
    diff_sets(*current, desired, gone, steps);
    diff_chains(*current, desired, gone, steps);
    return steps.plan();
}

std::string describe(const Op& op) {
    struct Describe {
        std::string operator()(const OpReplaceTable& o) const {
            return "replace table inet " + o.table.name + " (" + std::to_string(o.table.sets.size()) + " sets, " +
                   std::to_string(o.table.chains.size()) + " chains)";
        }
        std::string operator()(const OpDeleteTable& o) const { return "delete table inet " + o.name; }
        std::string operator()(const OpAddChain& o) const { return "add chain " + o.chain.name; }
        std::string operator()(const OpDeleteChain& o) const { return "delete chain " + o.name; }
        std::string operator()(const OpReplaceRules& o) const {
            return "replace the rules of chain " + o.chain + " (" + std::to_string(o.rules.size()) + " rules)";
        }
        std::string operator()(const OpAddSet& o) const { return "add set " + o.set.name; }
        std::string operator()(const OpDeleteSet& o) const { return "delete set " + o.name; }
        std::string operator()(const OpAddElements& o) const {
            return "add " + std::to_string(o.set.elements.size()) + " elements to " + o.set.name;
        }
        std::string operator()(const OpFlushSet& o) const { return "flush set " + o.name; }
        std::string operator()(const OpDeleteElements& o) const {
            return "delete " + std::to_string(o.set.elements.size()) + " elements from " + o.set.name;
        }
    };
    return std::visit(Describe{}, op);
}

}  // namespace wb::nft
