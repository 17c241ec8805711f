#include "rules/nft_diff.hpp"

#include <map>
#include <set>

namespace wb::nft {
namespace {

// Sets are identified by name; a set whose key or kind changes cannot be altered in place.
bool same_shape(const Set& a, const Set& b) {
    return a.key_type == b.key_type && a.bucket_modulus == b.bucket_modulus && a.verdict_map == b.verdict_map;
}

bool same_sets_shape(const Table& a, const Table& b) {
    if (a.sets.size() != b.sets.size()) return false;
    for (const auto& s : b.sets) {
        const Set* old = a.find_set(s.name);
        if (!old || !same_shape(*old, s)) return false;
    }
    return true;
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

}  // namespace

Plan diff(const std::optional<Table>& current, const Table& desired) {
    Plan plan;
    if (!current || current->name != desired.name || current->comment != desired.comment ||
        !same_sets_shape(*current, desired)) {
        plan.ops.push_back(OpReplaceTable{desired});
        return plan;
    }
    for (const auto& c : desired.chains) {
        const Chain* old = current->find_chain(c.name);
        if (old && old->base != c.base) {  // a hook cannot change in place
            plan.ops.push_back(OpReplaceTable{desired});
            return plan;
        }
    }

    // Rules may refer to chains (through maps) and sets; chains are referred to by map
    // elements. Drop references first, then remove, then add, then add references.
    std::vector<Op> drop_refs, removals, additions, add_refs;

    for (const auto& s : desired.sets) {
        ElementChanges ch = diff_elements(*current->find_set(s.name), s);
        if (!ch.removed.empty()) drop_refs.push_back(OpDeleteElements{with_elements(s, std::move(ch.removed))});
        if (!ch.added.empty()) add_refs.push_back(OpAddElements{with_elements(s, std::move(ch.added))});
    }
    for (const auto& c : current->chains) {
        if (!desired.find_chain(c.name)) {
            if (!c.rules.empty()) drop_refs.push_back(OpReplaceRules{c.name, {}});
            removals.push_back(OpDeleteChain{c.name});
        }
    }
    for (const auto& c : desired.chains) {
        const Chain* old = current->find_chain(c.name);
        if (!old) {
            // New chains start empty so their rules can refer to anything added in this plan.
            Chain empty = c;
            empty.rules.clear();
            additions.push_back(OpAddChain{empty});
            if (!c.rules.empty()) add_refs.push_back(OpReplaceRules{c.name, c.rules});
        } else if (old->rules != c.rules) {
            add_refs.push_back(OpReplaceRules{c.name, c.rules});
        }
    }

    for (auto* group : {&drop_refs, &removals, &additions, &add_refs})
        for (auto& op : *group) plan.ops.push_back(std::move(op));
    return plan;
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
