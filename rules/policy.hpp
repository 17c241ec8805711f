// Policy rules compiled for nftables: the ordered `rules` of the config become a few interval
// maps keyed by a concatenation (saddr . daddr . l4proto . sport . dport), looked up in order,
// so that classifying a new connection costs about the same with 1000 rules as with 1.
//
// First match wins although a pipapo map gives no order among overlapping elements: rules are
// put in layers. A rule goes one layer above the highest layer of any earlier rule it overlaps
// (two rules overlap when every field's lists intersect), so no two rules of a layer overlap and
// a packet matching several rules finds the earliest in the lowest layer. Cost grows with how
// deeply rules overlap, not with how many there are.
//
// `iif` is never a key field (nft 1.0.6 cannot print a six-field key): when a rule uses it, the
// rules are compiled once per LAN, from the rules that apply there, and the table dispatches on
// the interface first. Pure: no I/O.
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

// The compiled form of one family's rules for packets from one LAN: what one chain looks up.
struct CompiledRules {
    std::string lan;  // the LAN; empty: any (no rule of the family uses `iif`)
    // The key: both addresses, and every other field some rule here constrains; never Iifname.
    std::vector<nft::MatchField> fields;
    std::vector<std::vector<nft::Element>> layers;  // each layer's map elements (goto rule_NAME)
    std::optional<size_t> catch_all;  // the first rule matching everything here, if any (later ones never match here)
    std::vector<size_t> rules;        // the config rules of this family that can match here, in order
    size_t elements() const;
};
// The rules of `family` that apply to packets from `lan`: those without `iif` and those naming
// it. With `lan` empty, every rule, as for a packet whose LAN is unknown (first_match's "").
CompiledRules compile_rules(const Config& config, Family family, const std::string& lan = "");

// One family's rules as the table holds them. When no rule that can match uses `iif`, one
// CompiledRules for every LAN (chain rules4, maps rules4_N); otherwise one per LAN in
// config.lans order (chains rules4_LAN, maps rules4_LAN_N), and rules4 dispatches on iifname.
struct CompiledFamily {
    bool by_lan = false;
    std::vector<CompiledRules> chains;  // one with lan "", or one per LAN
    std::vector<size_t> rules;          // the config rules of this family that can match on some LAN, in order
    size_t elements() const;            // in all the chains' maps
};
CompiledFamily compile_family(const Config& config, Family family);

// Names in the table.
std::string rule_chain_name(const RuleConfig& rule);                        // "rule_sip"
// With a LAN, its own chain and maps: "rules4_ether3", "rules4_ether3_1". A LAN name's bytes that
// nft's parser does not take in a name become "/HH" ('/' is never in an interface name).
std::string rules_chain_name(Family family, const std::string& lan = "");              // "rules4" / "rules6"
std::string rules_map_name(Family family, size_t layer, const std::string& lan = "");  // "rules4_1" (layer 0)
std::string rules_lans_map_name(Family family);  // "rules4_lans": LAN -> its chain
std::string policy_map_name(const PolicyConfig& policy, Family family);     // "policy_voip" / "policy6_voip"
std::string sticky_set_name(const RuleConfig& rule, const WanConfig& wan, Family family);  // "sticky_bank_charter" / "sticky6_..."

}  // namespace wb
