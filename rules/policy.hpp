// Policy rules compiled for nftables: the ordered `rules` of the config become a few interval
// maps keyed by a concatenation (iifname . saddr . daddr . l4proto . sport . dport), looked up
// in order, so that classifying a new connection costs about the same with 1000 rules as with 1.
//
// First match wins although a pipapo map gives no order among overlapping elements: rules are
// put in layers. A rule goes one layer above the highest layer of any earlier rule it overlaps
// (two rules overlap when every field's lists intersect), so no two rules of a layer overlap and
// a packet matching several rules finds the earliest in the lowest layer. Cost grows with how
// deeply rules overlap, not with how many there are. Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/ip.hpp"
#include "config/config.hpp"
#include "rules/nft.hpp"

namespace wb {

// What a connection's first packet shows the classifier (and what conntrack keeps of it).
struct PacketKey {
    Family family = Family::V4;
    IpAddr src, dst;
    uint8_t proto = 0;               // IPPROTO_*
    uint16_t sport = 0, dport = 0;   // host order; 0 for protocols without ports
    std::string iif;                 // the LAN it came in on; empty: unknown (any `iif` matches)
};

// The index in config.rules of the first rule that matches, as the kernel would choose it.
std::optional<size_t> first_match(const Config& config, const PacketKey& packet);

// The compiled form of one family's rules.
struct CompiledRules {
    std::vector<nft::MatchField> fields;        // the key: every field some rule of this family constrains (at least 2)
    std::vector<std::vector<nft::Element>> layers;  // each layer's map elements (goto rule_NAME)
    std::optional<size_t> catch_all;            // the first rule matching everything, if any (later rules never match)
    std::vector<size_t> rules;                  // the config rules of this family that can match, in order
    size_t elements() const;
};
CompiledRules compile_rules(const Config& config, Family family);

// Names in the table.
std::string rule_chain_name(const RuleConfig& rule);                        // "rule_sip"
std::string rules_chain_name(Family family);                                // "rules4" / "rules6"
std::string rules_map_name(Family family, size_t layer);                    // "rules4_1" (layer from 0: "_1")
std::string policy_map_name(const PolicyConfig& policy, Family family);     // "policy_voip" / "policy6_voip"
std::string sticky_set_name(const RuleConfig& rule, const WanConfig& wan, Family family);  // "sticky_bank_charter" / "sticky6_..."

}  // namespace wb
