#include "rules/desired.hpp"

#include <algorithm>
#include <cstdio>

#include "rules/balance.hpp"

namespace wb {
namespace {

using nft::BaseChain;
using nft::Chain;
using nft::ChainType;
using nft::CtStateNew;
using nft::FibDaddrNotLocal;
using nft::HashField;
using nft::HashVmap;
using nft::Hook;
using nft::IifnameInSet;
using nft::IifnameVmap;
using nft::KeyType;
using nft::MarkKind;
using nft::MarkVmap;
using nft::Masquerade;
using nft::NfprotoIpv4;
using nft::NumgenVmap;
using nft::OifnameIs;
using nft::Set;
using nft::SetMarkBits;
using nft::Table;
using NftRule = nft::Rule;

constexpr int kManglePriority = -150;
constexpr int kSrcnatPriority = 100;
constexpr unsigned kMaxNexthopWeight = 256;  // rtnh_hops is a byte holding weight - 1

std::vector<HashField> classifier_fields(Classifier c) {
    switch (c) {
        case Classifier::SrcAddress: return {HashField::SrcAddr};
        case Classifier::DstAddress: return {HashField::DstAddr};
        case Classifier::BothAddresses: return {HashField::SrcAddr, HashField::DstAddr};
        case Classifier::BothPorts: return {HashField::SrcPort, HashField::DstPort};
        case Classifier::BothAddressesAndPorts:
            return {HashField::SrcAddr, HashField::DstAddr, HashField::SrcPort, HashField::DstPort};
        case Classifier::SrcAddressAndPort: return {HashField::SrcAddr, HashField::SrcPort};
        case Classifier::DstAddressAndPort: return {HashField::DstAddr, HashField::DstPort};
        case Classifier::RoundRobin: return {};
    }
    return {};
}

NftRule balance_rule(const Config& config) {
    NftRule rule;
    rule.statements = {CtStateNew{}, NfprotoIpv4{}, IifnameInSet{"lans"}, FibDaddrNotLocal{}};
    if (config.classifier == Classifier::RoundRobin)
        rule.statements.push_back(NumgenVmap{kBalanceBuckets, "balance"});
    else
        rule.statements.push_back(
            HashVmap{classifier_fields(config.classifier), kBalanceBuckets, kHashSeed, "balance"});
    rule.comment = "new from a LAN: pick a WAN (" + std::string(classifier_name(config.classifier)) + ")";
    return rule;
}

Table build_table(const Config& config, const ActiveSet& active) {
    Table table;
    table.comment = "managed by wanbalanced; edit /etc/wanbalance.json instead";
    const uint32_t mask = config.mark_mask;

    Set lans{"lans", KeyType::Ifname, 0, false, {}};
    for (const auto& lan : config.lans) lans.elements.push_back({lan, ""});
    Set by_mark{"by_mark", KeyType::Mark, 0, true, {}};
    Set by_wan{"by_wan", KeyType::Ifname, 0, true, {}};
    for (const auto& wan : config.wans) {
        by_mark.elements.push_back({wan.mark, wan_chain_name(wan)});
        by_wan.elements.push_back({wan.interface, wan_chain_name(wan)});
    }
    Set balance{"balance", KeyType::HashBucket, kBalanceBuckets, true, {}};
    // Home: every WAN of the tiers in service, as if all were up. Buckets of the WANs out of
    // service go to the others; everyone else's clients stay where they are.
    std::vector<BalanceMember> home;
    std::vector<size_t> home_wan, active_in_home;
    for (size_t i = 0; i < config.wans.size(); ++i) {
        bool tier_in_service = std::any_of(active.wans.begin(), active.wans.end(),
                                           [&](size_t a) { return config.wans[a].tier == config.wans[i].tier; });
        if (!tier_in_service) continue;
        if (std::find(active.wans.begin(), active.wans.end(), i) != active.wans.end())
            active_in_home.push_back(home.size());
        home.push_back({config.wans[i].name, config.wans[i].weight});
        home_wan.push_back(i);
    }
    std::vector<uint32_t> owners = assign_buckets(home, active_in_home, kBalanceBuckets);
    for (uint32_t bucket = 0; bucket < owners.size(); ++bucket)
        balance.elements.push_back({bucket, wan_chain_name(config.wans[home_wan[owners[bucket]]])});
    table.sets = {lans, by_mark, by_wan, balance};

    for (const auto& wan : config.wans) {
        Chain chain{wan_chain_name(wan), std::nullopt, {}};
        chain.rules.push_back(NftRule{{SetMarkBits{MarkKind::Ct, mask, wan.mark}}, ""});
        chain.rules.push_back(NftRule{{SetMarkBits{MarkKind::Meta, mask, wan.mark}}, ""});
        table.chains.push_back(chain);
    }

    Chain prerouting{"prerouting", BaseChain{ChainType::Filter, Hook::Prerouting, kManglePriority}, {}};
    prerouting.rules.push_back(
        NftRule{{MarkVmap{MarkKind::Ct, mask, "by_mark"}}, "known connection: the packet takes its WAN's mark"});
    prerouting.rules.push_back(
        NftRule{{CtStateNew{}, IifnameVmap{"by_wan"}}, "new from a WAN: answer through that WAN"});
    prerouting.rules.push_back(balance_rule(config));
    table.chains.push_back(prerouting);

    // A route chain: the kernel re-routes a locally generated packet whose mark changed here.
    Chain output{"output", BaseChain{ChainType::Route, Hook::Output, kManglePriority}, {}};
    output.rules.push_back(
        NftRule{{MarkVmap{MarkKind::Ct, mask, "by_mark"}}, "replies of connections that came in on a WAN"});
    output.rules.push_back(NftRule{{CtStateNew{}, MarkVmap{MarkKind::Meta, mask, "by_mark"}},
                                "sockets that chose a WAN (SO_MARK) keep it for their replies"});
    table.chains.push_back(output);

    Chain postrouting{"postrouting", BaseChain{ChainType::Nat, Hook::Postrouting, kSrcnatPriority}, {}};
    if (config.masquerade)
        for (const auto& wan : config.wans)
            postrouting.rules.push_back(NftRule{{NfprotoIpv4{}, OifnameIs{wan.interface}, Masquerade{}}, wan.name});
    table.chains.push_back(postrouting);
    return table;
}

Nexthop nexthop_for(const WanConfig& wan, const WanInputs& in, unsigned weight) {
    Nexthop nh;
    if (!in.point_to_point) nh.gateway = in.gateway;
    nh.ifindex = in.ifindex;
    nh.ifname = wan.interface;
    nh.weight = weight;
    return nh;
}

// A WAN's own table holds its default route whenever the route can exist: probes and replies
// of connections that came in on it must leave through it even while it is down.
bool table_route_possible(const WanInputs& in) {
    return in.ifindex > 0 && in.admin_up && in.has_address && (in.gateway || in.point_to_point);
}

}  // namespace

std::string_view health_name(Health h) {
    switch (h) {
        case Health::Up: return "up";
        case Health::Down: return "down";
        case Health::Disabled: return "disabled";
    }
    return "?";
}

std::string wan_chain_name(const WanConfig& wan) { return "wan_" + wan.name; }

uint32_t balanced_table(const Config& config) {
    auto taken = [&](uint32_t id) {
        return reserved_table_name(id).has_value() ||
               std::any_of(config.wans.begin(), config.wans.end(), [&](const WanConfig& w) { return w.table == id; });
    };
    uint32_t id = kBalancedTable;
    if (!taken(id)) return id;
    for (const auto& w : config.wans) id = std::max(id, w.table);
    do ++id;
    while (taken(id));
    return id;
}

std::vector<WanInputs> assume_all_up(const Config& config) {
    std::vector<WanInputs> out;
    for (size_t i = 0; i < config.wans.size(); ++i) {
        WanInputs in;
        in.ifindex = int(1000 + i);
        in.admin_up = in.carrier = in.has_address = true;
        in.gateway = config.wans[i].gateway;
        // An "auto" gateway is only known at runtime; show the route as on-link meanwhile.
        in.point_to_point = !in.gateway.has_value();
        in.health = Health::Up;
        out.push_back(in);
    }
    return out;
}

ActiveSet active_wans(const Config& config, const std::vector<WanInputs>& inputs, Family) {
    ActiveSet out;
    std::optional<unsigned> best_tier;
    for (size_t i = 0; i < config.wans.size(); ++i)
        if (inputs[i].health == Health::Up && inputs[i].link_usable())
            best_tier = std::min(best_tier.value_or(config.wans[i].tier), config.wans[i].tier);
    if (best_tier) {
        for (size_t i = 0; i < config.wans.size(); ++i)
            if (inputs[i].health == Health::Up && inputs[i].link_usable() && config.wans[i].tier == *best_tier)
                out.wans.push_back(i);
        return out;
    }
    out.all_down = true;
    for (size_t i = 0; i < config.wans.size(); ++i)
        if (inputs[i].health != Health::Disabled && inputs[i].link_usable()) out.wans.push_back(i);
    return out;
}

Desired build_desired(const Config& config, const std::vector<WanInputs>& inputs) {
    Desired d;
    d.active = active_wans(config, inputs);
    d.table = build_table(config, d.active);

    for (size_t i = 0; i < config.wans.size(); ++i) {
        if (!table_route_possible(inputs[i])) continue;
        d.routes.push_back(Route{Family::V4, config.wans[i].table, route_metric(Family::V4), {nexthop_for(config.wans[i], inputs[i], 1)}});
    }
    const uint32_t balanced = balanced_table(config);
    if (!d.active.wans.empty()) {
        unsigned max_weight = 0;
        for (size_t i : d.active.wans) max_weight = std::max(max_weight, config.wans[i].weight);
        Route main{Family::V4, balanced, route_metric(Family::V4), {}};
        for (size_t i : d.active.wans) {
            unsigned w = config.wans[i].weight;
            // Config weights go to 1000; the kernel's to 256: scale, keeping every WAN >= 1.
            if (max_weight > kMaxNexthopWeight)
                w = std::max(1u, unsigned((uint64_t(w) * kMaxNexthopWeight + max_weight / 2) / max_weight));
            main.nexthops.push_back(nexthop_for(config.wans[i], inputs[i], w));
        }
        d.routes.push_back(main);
    }

    d.rules.push_back(Rule{Family::V4, config.rule_priority, std::nullopt, 0xffffffff, kMainTable, uint8_t(0)});
    for (size_t i = 0; i < config.wans.size(); ++i) {
        const auto& wan = config.wans[i];
        d.rules.push_back(Rule{Family::V4, config.rule_priority + 1 + uint32_t(i), wan.mark, config.mark_mask, wan.table, std::nullopt});
    }
    // After the WANs' rules, so marked packets find their WAN first; packets with a mark of no
    // WAN of ours (WireGuard's, say) are balanced too rather than left without a default route.
    d.rules.push_back(Rule{Family::V4, config.rule_priority + 1 + uint32_t(config.wans.size()), std::nullopt, 0xffffffff, balanced,
                           std::nullopt});
    return d;
}

std::string render_ruleset(const Config& config, const Desired& desired) {
    std::string out = "#!/usr/sbin/nft -f\n";
    out += "# wanbalance ruleset for " + config.path + ", with every WAN up.\n";
    out += "# The nftables part below is what `nft list table inet wanbalance` will show.\n\n";
    out += render(desired.table);
    out += "\n# Routes (proto wanbalance):\n";
    for (const auto& r : desired.routes) out += "#   " + ip_command(r) + "\n";
    out += "#\n# Policy rules (proto wanbalance):\n";
    for (const auto& r : desired.rules) out += "#   " + ip_command(r) + "\n";
    bool any_auto = false;
    for (const auto& wan : config.wans)
        if (!wan.gateway) {
            if (!any_auto) out += "#\n";
            any_auto = true;
            out += "# " + wan.name + ": gateway \"auto\": at runtime its routes go via the gateway that DHCP or PPP sets on " +
                   wan.interface + ".\n";
        }
    return out;
}

}  // namespace wb
