#include "rules/desired_rules.hpp"

#include <algorithm>

#include "rules/balance.hpp"

namespace wb::desired_detail {
namespace {

using nft::Chain;
using nft::Element;
using nft::KeyType;
using nft::MarkKind;
using nft::Set;
using nft::Statement;
using NftRule = nft::Rule;

nft::Statement nfproto(Family family) {
    if (family == Family::V4) return nft::NfprotoIpv4{};
    return nft::NfprotoIpv6{};
}

KeyType address_type(Family family) { return family == Family::V4 ? KeyType::Ipv4Addr : KeyType::Ipv6Addr; }

KeyType field_type(nft::MatchField field, Family family) {
    switch (field) {
        case nft::MatchField::Iifname: return KeyType::Ifname;
        case nft::MatchField::SrcAddr:
        case nft::MatchField::DstAddr: return address_type(family);
        case nft::MatchField::L4proto: return KeyType::InetProto;
        case nft::MatchField::SrcPort:
        case nft::MatchField::DstPort: return KeyType::InetService;
    }
    return KeyType::InetService;
}

bool can_match(const CompiledFamily& compiled, size_t rule) {
    return std::binary_search(compiled.rules.begin(), compiled.rules.end(), rule);  // in config order
}

// One policy in one family: the lowest tier with a member in service, its members there
// ("home", as if all were up) and which of them are in service.
struct PolicyState {
    std::vector<BalanceMember> home;
    std::vector<size_t> home_wan;        // index into Config::wans, per home member
    std::vector<size_t> active_in_home;  // indices into home
    std::vector<size_t> active_wans() const {
        std::vector<size_t> out;
        for (size_t h : active_in_home) out.push_back(home_wan[h]);
        return out;
    }
};

PolicyState policy_state(const Config& config, const std::vector<WanInputs>& inputs, const PolicyConfig& policy,
                         Family family) {
    auto up = [&](const PolicyMember& m) { return carries(config.wans[m.wan], family) && in_service(inputs[m.wan], family); };
    std::optional<unsigned> tier;
    for (const auto& m : policy.members)
        if (up(m)) tier = std::min(tier.value_or(m.tier), m.tier);
    PolicyState state;
    if (!tier) return state;
    for (const auto& m : policy.members) {
        if (!carries(config.wans[m.wan], family) || m.tier != *tier) continue;
        if (up(m)) state.active_in_home.push_back(state.home.size());
        state.home.push_back({config.wans[m.wan].name, m.weight});
        state.home_wan.push_back(m.wan);
    }
    return state;
}

std::vector<Element> every_bucket_jumps_to(const std::string& chain) {
    std::vector<Element> out;
    for (uint32_t bucket = 0; bucket < kBalanceBuckets; ++bucket) out.push_back({bucket, chain, true});
    return out;
}

// A policy's buckets over its members in service, moving only a failed member's buckets
// (like the balance map); with none in service, its last resort.
Set policy_map(const Config& config, const std::vector<WanInputs>& inputs, const PolicyConfig& policy, Family family,
               const Set& balance) {
    Set map{policy_map_name(policy, family), KeyType::HashBucket, kBalanceBuckets, true, {}};
    PolicyState state = policy_state(config, inputs, policy, family);
    if (!state.active_in_home.empty()) {
        std::vector<uint32_t> owners = assign_buckets(state.home, state.active_in_home, kBalanceBuckets);
        for (uint32_t bucket = 0; bucket < owners.size(); ++bucket)
            map.elements.push_back({bucket, wan_chain_name(config.wans[state.home_wan[owners[bucket]]]), true});
        return map;
    }
    // A last resort whose chain the config gave no mark for (the loader always allocates one)
    // stays empty rather than naming a chain that is not there: the pick then matches nothing.
    switch (policy.last_resort) {
        case LastResort::Balanced: map.elements = balance.elements; break;
        case LastResort::Main:
            if (config.main_mark) map.elements = every_bucket_jumps_to(to_main_chain_name());
            break;
        case LastResort::Unreachable:
            if (config.unreachable_mark) map.elements = every_bucket_jumps_to(to_unreachable_chain_name());
            break;
    }
    return map;
}

// The WANs a rule may send to in a family, in config order: its policy's members (and every
// WAN when its last resort is "balanced"), or every WAN for "balanced".
std::vector<size_t> reachable_wans(const Config& config, const RuleConfig& rule, Family family) {
    std::vector<size_t> out;
    for (size_t i = 0; i < config.wans.size(); ++i) {
        if (!carries(config.wans[i], family)) continue;
        bool reachable = rule.target == RuleTarget::Balanced;
        if (rule.target == RuleTarget::Policy) {
            const PolicyConfig& p = config.policies[rule.policy];
            reachable = p.last_resort == LastResort::Balanced ||
                        std::any_of(p.members.begin(), p.members.end(), [&](const PolicyMember& m) { return m.wan == i; });
        }
        if (reachable) out.push_back(i);
    }
    return out;
}

bool sticky_in(const RuleConfig& rule) { return rule.sticky != Sticky::None && rule.target != RuleTarget::Main; }

Set sticky_set(const Config& config, const std::vector<WanInputs>& inputs, const RuleConfig& rule, size_t wan,
               Family family) {
    Set set{sticky_set_name(rule, config.wans[wan], family), address_type(family), 0, false, {}};
    if (rule.sticky == Sticky::SrcDst) set.concat = {address_type(family), address_type(family)};
    set.timeout_s = std::max<uint32_t>(1, rule.sticky_timeout_s);
    // Entries of a WAN out of service go in the same transaction that takes it out, so its
    // clients move (and record their new WAN on their next connection).
    set.keep_entries = in_service(inputs[wan], family);
    return set;
}

std::string map_of(const Config& config, const RuleConfig& rule, Family family) {
    if (rule.target == RuleTarget::Policy) return policy_map_name(config.policies[rule.policy], family);
    return balance_map_name(family);
}

// A rule's statements for one family: known sticky clients go straight to their WAN; others
// are picked over the map (whose verdicts jump, so evaluation comes back here) and recorded by
// the WAN the pick marked the connection with.
void add_rule_family(const Config& config, const RuleConfig& rule, Family family, Chain& chain) {
    const bool with_dst = rule.sticky == Sticky::SrcDst;
    const std::vector<size_t> wans = sticky_in(rule) ? reachable_wans(config, rule, family) : std::vector<size_t>{};
    for (size_t w : wans) {
        const std::string set = sticky_set_name(rule, config.wans[w], family);
        chain.rules.push_back(NftRule{{nfproto(family), nft::AddrInSet{family, with_dst, set},
                                       nft::UpdateSet{family, with_dst, set}, nft::Goto{wan_chain_name(config.wans[w])}},
                                      ""});
    }
    chain.rules.push_back(NftRule{pick_statements(config, family, map_of(config, rule, family)), ""});
    for (size_t w : wans) {
        const std::string set = sticky_set_name(rule, config.wans[w], family);
        // No explicit "meta nfproto" first: the set's address key implies it, and nft puts that
        // check right before the address loads, after the mark test. So do we, byte for byte.
        chain.rules.push_back(NftRule{{nft::MarkIs{MarkKind::Ct, config.mark_mask, config.wans[w].mark},
                                       nft::UpdateSet{family, with_dst, set}},
                                      ""});
    }
}

Chain rule_chain(const Config& config, size_t index, const std::array<bool, 2>& families) {
    const RuleConfig& rule = config.rules[index];
    Chain chain{rule_chain_name(rule), std::nullopt, {}};
    if (rule.target == RuleTarget::Main) {
        if (config.main_mark) chain.rules.push_back(NftRule{{nft::Goto{to_main_chain_name()}}, ""});
        return chain;
    }
    for (Family f : kFamilies)
        if (families[size_t(f)]) add_rule_family(config, rule, f, chain);
    return chain;
}

Chain mark_chain(const std::string& name, uint32_t mask, uint32_t mark) {
    Chain chain{name, std::nullopt, {}};
    chain.rules.push_back(NftRule{{nft::SetMarkBits{MarkKind::Ct, mask, mark}}, ""});
    chain.rules.push_back(NftRule{{nft::SetMarkBits{MarkKind::Meta, mask, mark}}, ""});
    return chain;
}

// rules4 / rules6, or a LAN's rules4_LAN: the layers in order (the first whose map holds the
// packet decides), then what no rule takes: the balance map, or the catch-all rule.
Chain rules_chain(const Config& config, const CompiledRules& compiled, Family family) {
    Chain chain{rules_chain_name(family, compiled.lan), std::nullopt, {}};
    for (size_t layer = 0; layer < compiled.layers.size(); ++layer)
        chain.rules.push_back(NftRule{
            {nfproto(family), nft::ConcatVmap{family, compiled.fields, rules_map_name(family, layer, compiled.lan)}}, ""});
    if (compiled.catch_all) {
        const RuleConfig& rule = config.rules[*compiled.catch_all];
        chain.rules.push_back(NftRule{{nft::Goto{rule_chain_name(rule)}}, "rule " + rule.name + ": everything else"});
    } else {
        chain.rules.push_back(NftRule{pick_statements(config, family, balance_map_name(family)),
                                      "no rule matched: pick a WAN (" + std::string(classifier_name(config.classifier)) + ")"});
    }
    return chain;
}

// rules4 / rules6 when the rules are split by LAN: on to the chain of the LAN the packet came
// in on (prerouting sends only packets from the LANs).
Chain dispatch_chain(Family family) {
    Chain chain{rules_chain_name(family), std::nullopt, {}};
    chain.rules.push_back(NftRule{{nft::IifnameVmap{rules_lans_map_name(family)}}, "the rules of the LAN it came in on"});
    return chain;
}

Set lans_map(const CompiledFamily& compiled, Family family) {
    Set map{rules_lans_map_name(family), KeyType::Ifname, 0, true, {}};
    for (const auto& c : compiled.chains) map.elements.push_back({c.lan, rules_chain_name(family, c.lan)});
    return map;
}

Set layer_map(const CompiledRules& compiled, Family family, size_t layer) {
    Set map{rules_map_name(family, layer, compiled.lan), address_type(family), 0, true, compiled.layers[layer]};
    for (auto field : compiled.fields) map.concat.push_back(field_type(field, family));
    map.interval = true;
    return map;
}

// Policies some rule that can match in the family uses, in config order.
std::vector<size_t> used_policies(const Config& config, const CompiledFamily& compiled) {
    std::vector<size_t> out;
    for (size_t r : compiled.rules)
        if (config.rules[r].target == RuleTarget::Policy) out.push_back(config.rules[r].policy);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

void add_family_sets(const Config& config, const std::vector<WanInputs>& inputs, Family family, const Set& balance,
                     RulesPlane& plane) {
    const CompiledFamily& compiled = plane.compiled[size_t(family)];
    for (size_t p : used_policies(config, compiled))
        plane.sets.push_back(policy_map(config, inputs, config.policies[p], family, balance));
    for (const CompiledRules& chain : compiled.chains)
        for (size_t layer = 0; layer < chain.layers.size(); ++layer) plane.sets.push_back(layer_map(chain, family, layer));
    if (compiled.by_lan) plane.sets.push_back(lans_map(compiled, family));
    for (size_t r : compiled.rules)
        if (sticky_in(config.rules[r]))
            for (size_t w : reachable_wans(config, config.rules[r], family))
                plane.sets.push_back(sticky_set(config, inputs, config.rules[r], w, family));
}

RuleSend send_of(const Config& config, const std::vector<WanInputs>& inputs, const RuleConfig& rule, Family family,
                 const ActiveSet& active) {
    RuleSend send;
    if (rule.target == RuleTarget::Main) {
        send.kind = RuleSend::Kind::Main;
        return send;
    }
    send.kind = RuleSend::Kind::Wans;
    send.wans = active.wans;
    if (rule.target == RuleTarget::Balanced) return send;
    const PolicyConfig& policy = config.policies[rule.policy];
    PolicyState state = policy_state(config, inputs, policy, family);
    send.last_resort = state.active_in_home.empty();
    if (!send.last_resort) send.wans = state.active_wans();
    else if (policy.last_resort == LastResort::Main) send = {RuleSend::Kind::Main, {}, true};
    else if (policy.last_resort == LastResort::Unreachable) send = {RuleSend::Kind::Unreachable, {}, true};
    return send;
}

// One per config rule; None where the rule cannot match in the family.
std::vector<RuleSend> sends_of(const Config& config, const std::vector<WanInputs>& inputs,
                               const CompiledFamily& compiled, Family family, const ActiveSet& active) {
    std::vector<RuleSend> out(config.rules.size());
    for (size_t r : compiled.rules) out[r] = send_of(config, inputs, config.rules[r], family, active);
    return out;
}

std::string plural(size_t n, const std::string& word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// "policy voip, sticky src-dst 600 s"
std::string policy_text(const Config& config, const RuleConfig& rule) {
    std::string out = "policy " + rule.target_name(config.policies);
    if (sticky_in(rule))
        out += ", sticky " + std::string(sticky_name(rule.sticky)) + " " + std::to_string(rule.sticky_timeout_s) + " s";
    return out;
}

// "a", "a and b", "a, b and c"
std::string join_and(const std::vector<std::string_view>& words) {
    std::string out;
    for (size_t i = 0; i < words.size(); ++i)
        out += (i == 0 ? "" : i + 1 == words.size() ? " and " : ", ") + std::string(words[i]);
    return out;
}

// Per rule, where one chain's compiled rules hold it: "layer 2", "catch-all", or "".
std::vector<std::string> placements(const Config& config, const CompiledRules& compiled) {
    std::vector<std::string> out(config.rules.size());
    for (size_t layer = 0; layer < compiled.layers.size(); ++layer)
        for (const auto& e : compiled.layers[layer])
            for (size_t r : compiled.rules)
                if (out[r].empty() && e.goto_chain == rule_chain_name(config.rules[r]))
                    out[r] = "layer " + std::to_string(layer + 1);
    if (compiled.catch_all) out[*compiled.catch_all] = "catch-all";
    return out;
}

// Per rule, where a family holds it: "IPv4 layer 2", "IPv4 catch-all", or by LAN, the LANs with
// the same place together: "IPv4 layer 1 on ether3 and ether4, catch-all on ether5"; or "".
std::vector<std::string> placements(const Config& config, const CompiledFamily& compiled, Family family) {
    std::vector<std::vector<std::string>> per_chain;
    for (const auto& chain : compiled.chains) per_chain.push_back(placements(config, chain));
    std::vector<std::string> out(config.rules.size());
    for (size_t r = 0; r < config.rules.size(); ++r) {
        std::vector<std::pair<std::string, std::vector<std::string_view>>> groups;  // place, its LANs
        for (size_t c = 0; c < per_chain.size(); ++c) {
            const std::string& place = per_chain[c][r];
            if (place.empty()) continue;
            auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& other) { return other.first == place; });
            if (g == groups.end()) g = groups.insert(groups.end(), {place, {}});
            g->second.push_back(compiled.chains[c].lan);
        }
        for (const auto& [place, lans] : groups) {
            out[r] += (out[r].empty() ? std::string(family_label(family)) + " " : ", ") + place;
            if (compiled.by_lan) out[r] += " on " + join_and(lans);
        }
    }
    return out;
}

// "IPv4: 2 layers, 5 map elements", or per LAN: "IPv4 on ether3: ...".
std::string chain_line(const CompiledRules& chain, Family family) {
    std::string where(family_label(family));
    if (!chain.lan.empty()) where += " on " + chain.lan;
    return "#   " + where + ": " + plural(chain.layers.size(), "layer") + ", " + plural(chain.elements(), "map element") + "\n";
}

}  // namespace

std::string rules_summary(const Config& config) {
    if (config.rules.empty()) return "";
    std::string out = "#\n# Rules, first match wins (the layer maps a rule is in; its policy):\n";
    std::array<std::vector<std::string>, 2> where;
    for (Family f : kFamilies) {
        if (f == Family::V6 && !config.any_ipv6()) continue;
        CompiledFamily compiled = compile_family(config, f);
        where[size_t(f)] = placements(config, compiled, f);
        if (compiled.rules.empty()) continue;
        for (const auto& chain : compiled.chains) out += chain_line(chain, f);
    }
    for (size_t r = 0; r < config.rules.size(); ++r) {
        std::string at;
        for (const auto& w : where)
            if (!w.empty() && !w[r].empty()) at += (at.empty() ? "" : ", ") + w[r];
        if (at.empty()) at = "never matches (earlier rules take all of its connections, or no WAN carries its family)";
        out += "#   " + config.rules[r].name + ": " + at + "; " + policy_text(config, config.rules[r]) + "\n";
    }
    return out;
}

std::string to_main_chain_name() { return "to_main"; }
std::string to_unreachable_chain_name() { return "to_unreachable"; }

RulesPlane build_rules_plane(const Config& config, const std::vector<WanInputs>& inputs,
                             const std::array<const ActiveSet*, 2>& active, const std::array<nft::Set, 2>& balance) {
    RulesPlane plane;
    // With its mark, whether or not a rule uses it: by_mark refers to to_main.
    if (config.main_mark) plane.chains.push_back(mark_chain(to_main_chain_name(), config.mark_mask, *config.main_mark));
    if (config.unreachable_mark)
        plane.chains.push_back(mark_chain(to_unreachable_chain_name(), config.mark_mask, *config.unreachable_mark));
    if (config.rules.empty()) return plane;
    for (Family f : kFamilies) {
        // IPv6 LAN traffic is only balanced with IPv6 WANs; without them its rules have nothing to do.
        if (f == Family::V6 && !config.any_ipv6()) continue;
        plane.compiled[size_t(f)] = compile_family(config, f);
        plane.has_rules[size_t(f)] = !plane.compiled[size_t(f)].rules.empty();
    }
    for (Family f : kFamilies)
        if (plane.has_rules[size_t(f)]) add_family_sets(config, inputs, f, balance[size_t(f)], plane);

    for (size_t r = 0; r < config.rules.size(); ++r) {
        std::array<bool, 2> families{};
        for (Family f : kFamilies) families[size_t(f)] = can_match(plane.compiled[size_t(f)], r);
        if (families[0] || families[1]) plane.chains.push_back(rule_chain(config, r, families));
    }
    for (Family f : kFamilies) {
        if (!plane.has_rules[size_t(f)]) continue;
        const CompiledFamily& compiled = plane.compiled[size_t(f)];
        for (const CompiledRules& chain : compiled.chains) plane.chains.push_back(rules_chain(config, chain, f));
        if (compiled.by_lan) plane.chains.push_back(dispatch_chain(f));
    }
    for (Family f : kFamilies)
        plane.sends[size_t(f)] = sends_of(config, inputs, plane.compiled[size_t(f)], f, *active[size_t(f)]);
    return plane;
}

}  // namespace wb::desired_detail
