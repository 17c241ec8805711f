// Reads the anonymous counters of the rules in table inet wanbalance back from the kernel: one
// GETRULE dump, parsed with libnftnl. The reply counters (docs/design.md) are read this way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "netlink/nft_apply.hpp"

namespace wb::nft {

// A rule holding a `counter`: where it is, its comment ("" without one), and the values.
struct RuleCounter {
    std::string chain;
    std::string comment;
    uint64_t packets = 0;
    uint64_t bytes = 0;
    bool operator==(const RuleCounter&) const = default;
};

// The counters of every rule of `table` (of chain `chain` only, unless empty) that has one, in
// the kernel's order, from one dump. A table or chain that does not exist has none. Rules of
// chains whose name does not start with `chain_prefix` are skipped before they are parsed.
Expected<std::vector<RuleCounter>> read_rule_counters(NftSocket& sock, const std::string& table,
                                                      const std::string& chain = "",
                                                      const std::string& chain_prefix = "");

}  // namespace wb::nft
