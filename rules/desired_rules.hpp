// The policy rules' part of the desired state (desired.cpp builds the rest and calls this):
// policy maps, the layer maps and chains, sticky sets, and where each rule sends now.
// Internal to rules/; pure like the rest of build_desired.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "rules/desired.hpp"
#include "rules/policy.hpp"

namespace wb::desired_detail {

// Whether a WAN carries `family`: every WAN carries IPv4, only those with gateway6 IPv6.
bool carries(const WanConfig& wan, Family family);
// In service for the family: healthy and the link usable.
bool in_service(const WanInputs& in, Family family);

std::string balance_map_name(Family family);  // "balance" / "balance6"
// "meta nfproto ipvN" then the pick over MAP: "jhash FIELDS mod 1021 seed S vmap @MAP", or
// "numgen inc mod 1021 vmap @MAP" for round-robin.
std::vector<nft::Statement> pick_statements(const Config& config, Family family, const std::string& map);
// The balance map of a family; its verdicts jump, so a rule's chain goes on after the pick.
nft::Set balance_map(const Config& config, const ActiveSet& active, Family family);

std::string to_main_chain_name();         // "to_main"
std::string to_unreachable_chain_name();  // "to_unreachable"

// What the rules add to the table, for each family that has rules (IPv6 only with IPv6 WANs).
struct RulesPlane {
    std::array<CompiledRules, 2> compiled;
    std::array<bool, 2> has_rules{};  // prerouting sends the family's new LAN connections to rules4/rules6
    std::vector<nft::Set> sets;       // policy maps, layer maps, sticky sets
    std::vector<nft::Chain> chains;   // to_main, to_unreachable, rule_NAME, rules4, rules6
    std::array<std::vector<RuleSend>, 2> sends;
};
// `balance` holds the balance maps already built, per family (IPv6's empty without IPv6 WANs).
RulesPlane build_rules_plane(const Config& config, const std::vector<WanInputs>& inputs,
                             const std::array<const ActiveSet*, 2>& active, const std::array<nft::Set, 2>& balance);

// For `wanbalancectl ruleset`: comment lines ("# ...") naming each rule's layer per family and
// its policy, and the number of layers; empty without rules.
std::string rules_summary(const Config& config);

}  // namespace wb::desired_detail
