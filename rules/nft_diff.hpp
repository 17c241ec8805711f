// The difference between the ruleset in the kernel and the desired one, as an ordered list of
// operations that netlink/nft_apply sends as ONE nftables transaction. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "rules/nft.hpp"

namespace wb::nft {

// Replace the whole table atomically: "add table" (no-op if present), "delete table", then the
// table with every set, element, chain and rule. Used at start (adopting whatever a previous run
// left) and when the daemon cannot trust its record of the kernel.
struct OpReplaceTable {
    Table table;
    bool operator==(const OpReplaceTable&) const = default;
};
// Delete the table if it exists (clean stop).
struct OpDeleteTable {
    std::string name = kTableName;
    bool operator==(const OpDeleteTable&) const = default;
};
struct OpAddChain {  // the chain (base or regular) with its rules
    Chain chain;
    bool operator==(const OpAddChain&) const = default;
};
struct OpDeleteChain {  // flushes its rules and deletes it
    std::string name;
    bool operator==(const OpDeleteChain&) const = default;
};
struct OpReplaceRules {  // flush the chain's rules, add these (the chain's hook is unchanged)
    std::string chain;
    std::vector<Rule> rules;
    bool operator==(const OpReplaceRules&) const = default;
};
struct OpAddSet {  // the set with its elements
    Set set;
    bool operator==(const OpAddSet&) const = default;
};
struct OpDeleteSet {
    std::string name;
    bool operator==(const OpDeleteSet&) const = default;
};
// Elements to add to / delete from an existing set. `set` carries the set's name, key type and
// modulus (needed to encode keys) and, in `set.elements`, only the elements concerned.
struct OpAddElements {
    Set set;
    bool operator==(const OpAddElements&) const = default;
};
struct OpDeleteElements {
    Set set;
    bool operator==(const OpDeleteElements&) const = default;
};

// Empty a set ("flush set"): a dynamic set whose entries must go (Set::keep_entries went false).
struct OpFlushSet {
    std::string name;
    bool operator==(const OpFlushSet&) const = default;
};

using Op = std::variant<OpReplaceTable, OpDeleteTable, OpAddChain, OpDeleteChain, OpReplaceRules,
                        OpAddSet, OpDeleteSet, OpAddElements, OpDeleteElements, OpFlushSet>;

struct Plan {
    std::vector<Op> ops;
    bool empty() const { return ops.empty(); }
};

// Minimal, dependency-ordered change from `current` to `desired`:
//  - no current table, another table comment, or a base chain whose hook changes: one
//    OpReplaceTable;
//  - a set that is new: OpAddSet; gone: OpDeleteSet; whose shape (key, kind, flags, timeout)
//    changes: OpDeleteSet then OpAddSet. Every chain whose rules refer to a set that goes (or a
//    chain that goes) is emptied before and gets its rules back after, even if they are equal;
//  - a chain whose rules differ: OpReplaceRules;
//  - a set whose elements differ: OpDeleteElements (changed or gone keys) then OpAddElements;
//    for an interval set, whose kernel lists elements in the order they were added, every
//    element after the longest common prefix is deleted and added in order;
//  - a dynamic set: its elements are never compared; keep_entries going from true to false
//    gives OpFlushSet;
//  - equal tables: an empty plan.
// Order: element deletions, flushes and rule replacements that drop references first; then set
// and chain deletions; then new chains, new sets, element additions and rule replacements that
// add references.
Plan diff(const std::optional<Table>& current, const Table& desired);

// One line per op for logs and --verbose output, e.g. "replace 2 elements of map balance".
std::string describe(const Op& op);

}  // namespace wb::nft
