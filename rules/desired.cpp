#include "rules/desired.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "rules/balance.hpp"
#include "rules/desired_rules.hpp"

namespace wb {
namespace {

using namespace desired_detail;

using nft::BaseChain;
using nft::Chain;
using nft::ChainType;
using nft::Counter;
using nft::CtDirectionReply;
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
using nft::Ip6InPrefix;
using nft::NfprotoIpv4;
using nft::NfprotoIpv6;
using nft::NumgenVmap;
using nft::OifnameIs;
using nft::Return;
using nft::Set;
using nft::SetMarkBits;
using nft::Table;
using NftRule = nft::Rule;

constexpr int kManglePriority = -150;
// The HA guard: after conntrack (-200), so "ct state new" is known, and before the mangle chains,
// so a packet it drops is never marked or balanced.
constexpr int kGuardPriority = -160;
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

// A new connection from a LAN: picked over the balance map, or, for a family with rules,
// classified by them first (rules4 / rules6).
NftRule lan_rule(const Config& config, Family family, bool has_rules) {
    std::vector<nft::Statement> pick = pick_statements(config, family, balance_map_name(family));
    NftRule rule;
    rule.statements = {CtStateNew{}, pick[0], IifnameInSet{"lans"}, FibDaddrNotLocal{}};
    std::string what = family == Family::V4 ? "new from a LAN" : "new IPv6 from a LAN";
    if (has_rules) {
        rule.statements.push_back(nft::Goto{rules_chain_name(family)});
        rule.comment = what + ": the rules decide";
        return rule;
    }
    rule.statements.push_back(pick[1]);
    rule.comment = what + ": pick a WAN (" + std::string(classifier_name(config.classifier)) + ")";
    return rule;
}

// Link-local traffic (neighbour discovery is untracked, but DHCPv6 and pings to fe80:: are
// not) and multicast belong to one link: never marked, never balanced.
std::vector<NftRule> link_local_returns() {
    const Ipv6 fe80 = *Ipv6::parse("fe80::");
    const Ipv6 ff00 = *Ipv6::parse("ff00::");
    return {NftRule{{Ip6InPrefix{true, fe80, 10}, Return{}}, "link-local: never marked or balanced"},
            NftRule{{Ip6InPrefix{false, fe80, 10}, Return{}}, "link-local: never marked or balanced"},
            NftRule{{Ip6InPrefix{false, ff00, 8}, Return{}}, "multicast: never marked or balanced"}};
}

Chain prerouting_chain(const Config& config, uint32_t mask, const std::array<bool, 2>& has_rules) {
    Chain prerouting{"prerouting", BaseChain{ChainType::Filter, Hook::Prerouting, kManglePriority}, {}};
    prerouting.rules.push_back(
        NftRule{{MarkVmap{MarkKind::Ct, mask, "by_mark"}}, "known connection: the packet takes its WAN's mark"});
    // After the known-connection rule: link-local traffic never has a ct mark to restore.
    if (config.any_ipv6())
        for (auto& rule : link_local_returns()) prerouting.rules.push_back(rule);
    prerouting.rules.push_back(
        NftRule{{CtStateNew{}, IifnameVmap{"by_wan"}}, "new from a WAN: answer through that WAN"});
    prerouting.rules.push_back(lan_rule(config, Family::V4, has_rules[0]));
    if (config.any_ipv6()) prerouting.rules.push_back(lan_rule(config, Family::V6, has_rules[1]));
    return prerouting;
}

Chain output_chain(const Config& config, uint32_t mask) {
    // A route chain: the kernel re-routes a locally generated packet whose mark changed here.
    Chain output{"output", BaseChain{ChainType::Route, Hook::Output, kManglePriority}, {}};
    output.rules.push_back(
        NftRule{{MarkVmap{MarkKind::Ct, mask, "by_mark"}}, "replies of connections that came in on a WAN"});
    if (config.any_ipv6())
        for (auto& rule : link_local_returns()) output.rules.push_back(rule);
    output.rules.push_back(NftRule{{CtStateNew{}, MarkVmap{MarkKind::Meta, mask, "by_mark"}},
                                   "sockets that chose a WAN (SO_MARK) keep it for their replies"});
    return output;
}

// Per WAN and family: SNAT to the WAN's shared (VRRP) address for forwarded LAN traffic only —
// the router's own packets keep its own address, since VRRPv3's checksum covers the source
// (docs/design.md, HA pair) — else masquerade, when the config asks for it.
std::optional<NftRule> nat_rule(const Config& config, const WanConfig& wan, Family family) {
    nft::Statement proto = family == Family::V4 ? nft::Statement{NfprotoIpv4{}} : nft::Statement{NfprotoIpv6{}};
    std::optional<IpAddr> snat;
    if (family == Family::V4 && wan.snat) snat = IpAddr{*wan.snat};
    if (family == Family::V6 && wan.snat6) snat = IpAddr{*wan.snat6};
    if (snat) return NftRule{{proto, IifnameInSet{"lans"}, OifnameIs{wan.interface}, nft::Snat{*snat}}, wan.name};
    if (!config.masquerade) return std::nullopt;
    return NftRule{{proto, OifnameIs{wan.interface}, Masquerade{}}, wan.name};
}

Chain postrouting_chain(const Config& config) {
    Chain postrouting{"postrouting", BaseChain{ChainType::Nat, Hook::Postrouting, kSrcnatPriority}, {}};
    for (const auto& wan : config.wans)
        if (auto rule = nat_rule(config, wan, Family::V4)) postrouting.rules.push_back(std::move(*rule));
    for (const auto& wan : config.wans)
        if (wan.ipv6)
            if (auto rule = nat_rule(config, wan, Family::V6)) postrouting.rules.push_back(std::move(*rule));
    return postrouting;
}

// An HA pair: the new primary holds the addresses a few hundred ms before conntrackd has
// committed the synced connections; a mid-stream TCP packet would open a new entry there and be
// answered with an RST. Dropped instead, the peer retransmits into the committed entry.
Chain guard_chain() {
    return Chain{"guard",
                 BaseChain{ChainType::Filter, Hook::Prerouting, kGuardPriority},
                 {NftRule{{nft::TcpNotSyn{}, CtStateNew{}, Counter{}, nft::Drop{}},
                          "HA pair: TCP that is not a SYN opens no connection"}}};
}

// Packets of forwarded connections coming back in on a WAN, counted per WAN and family: the
// WAN's path is alive (docs/design.md, Reply counters). The forward hook never sees the
// router's own traffic (its probes among it), and the reply direction leaves out what the
// internet sends unasked (the original direction of a connection from a WAN). Mangle priority:
// counted before a firewall's filter chain could drop what did arrive.
Chain replies_chain() {
    return Chain{"replies",
                 BaseChain{ChainType::Filter, Hook::Forward, kManglePriority},
                 {NftRule{{CtDirectionReply{}, IifnameVmap{"reply_wans"}}, "replies to LAN connections, counted per WAN"}}};
}

// One counter per family the WAN carries; the map's lookup already chose the WAN.
Chain reply_counter_chain(const WanConfig& wan) {
    Chain chain{reply_chain_name(wan), std::nullopt, {}};
    chain.rules.push_back(NftRule{{NfprotoIpv4{}, Counter{}}, reply_counter_comment(Family::V4)});
    if (wan.ipv6) chain.rules.push_back(NftRule{{NfprotoIpv6{}, Counter{}}, reply_counter_comment(Family::V6)});
    return chain;
}

// Both families share the marks, so by_mark, by_wan and the WAN chains serve both. The mark
// of connections a rule sends to the main table is restored like a WAN's, so their later
// packets look up main too. reply_wans takes a WAN's replies to its counters.
std::vector<Set> wan_maps(const Config& config) {
    Set by_mark{"by_mark", KeyType::Mark, 0, true, {}};
    Set by_wan{"by_wan", KeyType::Ifname, 0, true, {}};
    for (const auto& wan : config.wans) {
        by_mark.elements.push_back({wan.mark, wan_chain_name(wan)});
        by_wan.elements.push_back({wan.interface, wan_chain_name(wan)});
    }
    if (config.main_mark) by_mark.elements.push_back({*config.main_mark, to_main_chain_name()});
    Set reply_wans{"reply_wans", KeyType::Ifname, 0, true, {}};
    for (const auto& wan : config.wans) reply_wans.elements.push_back({wan.interface, reply_chain_name(wan)});
    return {by_mark, by_wan, reply_wans};
}

Table build_table(const Config& config, const std::array<Set, 2>& balance, RulesPlane plane) {
    Table table;
    table.comment = "managed by wanbalanced; edit /etc/wanbalance.json instead";
    const uint32_t mask = config.mark_mask;

    Set lans{"lans", KeyType::Ifname, 0, false, {}};
    for (const auto& lan : config.lans) lans.elements.push_back({lan, ""});
    table.sets = {lans};
    for (auto& set : wan_maps(config)) table.sets.push_back(set);
    table.sets.push_back(balance[0]);
    if (config.any_ipv6()) table.sets.push_back(balance[1]);
    for (auto& set : plane.sets) table.sets.push_back(std::move(set));

    for (const auto& wan : config.wans) {
        Chain chain{wan_chain_name(wan), std::nullopt, {}};
        chain.rules.push_back(NftRule{{SetMarkBits{MarkKind::Ct, mask, wan.mark}}, ""});
        chain.rules.push_back(NftRule{{SetMarkBits{MarkKind::Meta, mask, wan.mark}}, ""});
        table.chains.push_back(chain);
    }
    for (const auto& wan : config.wans) table.chains.push_back(reply_counter_chain(wan));
    for (auto& chain : plane.chains) table.chains.push_back(std::move(chain));
    if (config.ha_pair) table.chains.push_back(guard_chain());
    table.chains.push_back(prerouting_chain(config, mask, plane.has_rules));
    table.chains.push_back(output_chain(config, mask));
    table.chains.push_back(postrouting_chain(config));
    table.chains.push_back(replies_chain());
    return table;
}

Nexthop nexthop_for(const WanConfig& wan, const WanInputs& in, Family family, unsigned weight) {
    Nexthop nh;
    if (family == Family::V4 && !in.point_to_point && in.gateway) nh.gateway = *in.gateway;
    // IPv6 over a point-to-point link still has a gateway when RAs name one; on-link otherwise.
    if (family == Family::V6 && in.gateway6) nh.gateway = *in.gateway6;
    nh.ifindex = in.ifindex;
    nh.ifname = wan.interface;
    nh.weight = weight;
    return nh;
}

// A WAN's own table holds its default route whenever the route can exist: probes and replies
// of connections that came in on it must leave through it even while it is down.
bool table_route_possible(const WanInputs& in, Family family) {
    if (in.ifindex <= 0 || !in.admin_up) return false;
    if (family == Family::V4) return in.has_address && (in.gateway || in.point_to_point);
    return in.has_address6 && (in.gateway6 || in.point_to_point || in.on_link6);
}

// The family's routes: each WAN's table default, then the balanced multipath default.
void add_routes(const Config& config, const std::vector<WanInputs>& inputs, const ActiveSet& active, Family family,
                std::vector<Route>& routes) {
    const uint32_t metric = route_metric(family);
    for (size_t i = 0; i < config.wans.size(); ++i) {
        if (!carries(config.wans[i], family) || !table_route_possible(inputs[i], family)) continue;
        routes.push_back(Route{family, config.wans[i].table, metric, {nexthop_for(config.wans[i], inputs[i], family, 1)}});
    }
    if (active.wans.empty()) return;
    unsigned max_weight = 0;
    for (size_t i : active.wans) max_weight = std::max(max_weight, config.wans[i].weight);
    Route balanced{family, balanced_table(config), metric, {}};
    for (size_t i : active.wans) {
        unsigned w = config.wans[i].weight;
        // Config weights go to 1000; the kernel's to 256: scale, keeping every WAN >= 1.
        if (max_weight > kMaxNexthopWeight)
            w = std::max(1u, unsigned((uint64_t(w) * kMaxNexthopWeight + max_weight / 2) / max_weight));
        balanced.nexthops.push_back(nexthop_for(config.wans[i], inputs[i], family, w));
    }
    routes.push_back(balanced);
}

// The family's rules: suppress, one fwmark rule per WAN carrying it (priority by WAN index, so
// it is stable across reloads), the rules' main and unreachable marks, the balanced table. An IPv6 packet with the mark of a WAN
// without IPv6 falls through to the balanced table, as an empty table lookup would anyway.
void add_rules(const Config& config, Family family, std::vector<Rule>& rules) {
    const uint32_t p = config.rule_priority;
    rules.push_back(Rule{family, p, std::nullopt, 0xffffffff, kMainTable, uint8_t(0)});
    for (size_t i = 0; i < config.wans.size(); ++i) {
        const auto& wan = config.wans[i];
        if (carries(wan, family))
            rules.push_back(Rule{family, p + 1 + uint32_t(i), wan.mark, config.mark_mask, wan.table, std::nullopt});
    }
    // Connections the rules send to the main table, or refuse, by their marks; only when the
    // config has them, so the balanced table's priority stays where it was without.
    uint32_t next = p + 1 + uint32_t(config.wans.size());
    if (config.main_mark) rules.push_back(Rule{family, next++, config.main_mark, config.mark_mask, kMainTable, std::nullopt});
    if (config.unreachable_mark)
        rules.push_back(
            Rule{family, next++, config.unreachable_mark, config.mark_mask, 0, std::nullopt, RuleAction::Unreachable});
    // After the WANs' rules, so marked packets find their WAN first; packets with a mark of no
    // WAN of ours (WireGuard's, say) are balanced too rather than left without a default route.
    rules.push_back(Rule{family, next, std::nullopt, 0xffffffff, balanced_table(config), std::nullopt});
}

}  // namespace

namespace desired_detail {

bool carries(const WanConfig& wan, Family family) { return family == Family::V4 || wan.ipv6; }

bool in_service(const WanInputs& in, Family family) {
    return in.health_of(family) == Health::Up && in.link_usable(family);
}

std::string balance_map_name(Family family) { return family == Family::V4 ? "balance" : "balance6"; }

std::vector<nft::Statement> pick_statements(const Config& config, Family family, const std::string& map) {
    std::vector<nft::Statement> out;
    if (family == Family::V4) out.push_back(NfprotoIpv4{});
    else out.push_back(NfprotoIpv6{});
    if (config.classifier == Classifier::RoundRobin)
        out.push_back(NumgenVmap{kBalanceBuckets, map});
    else
        out.push_back(HashVmap{classifier_fields(config.classifier), kBalanceBuckets, kHashSeed, map, family});
    return out;
}

// The balance map of a family: every WAN carrying it in the tiers in service, as if all were
// up, is home; buckets of the WANs out of service go to the others, everyone else's clients
// stay where they are.
Set balance_map(const Config& config, const ActiveSet& active, Family family) {
    Set balance{balance_map_name(family), KeyType::HashBucket, kBalanceBuckets, true, {}};
    std::vector<BalanceMember> home;
    std::vector<size_t> home_wan, active_in_home;
    for (size_t i = 0; i < config.wans.size(); ++i) {
        if (!carries(config.wans[i], family)) continue;
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
        balance.elements.push_back({bucket, wan_chain_name(config.wans[home_wan[owners[bucket]]]), true});
    return balance;
}

}  // namespace desired_detail

std::string_view health_name(Health h) {
    switch (h) {
        case Health::Up: return "up";
        case Health::Down: return "down";
        case Health::Disabled: return "disabled";
        case Health::Draining: return "draining";
    }
    return "?";
}

std::string wan_chain_name(const WanConfig& wan) { return "wan_" + wan.name; }

std::string reply_chain_name(const WanConfig& wan) { return std::string(kReplyChainPrefix) + wan.name; }

const char* reply_counter_comment(Family family) { return family == Family::V4 ? "ipv4" : "ipv6"; }

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
        const WanConfig& wan = config.wans[i];
        WanInputs in;
        in.ifindex = int(1000 + i);
        in.admin_up = in.carrier = in.has_address = true;
        in.gateway = wan.gateway;
        // An "auto" gateway is only known at runtime; show the route as on-link meanwhile.
        in.point_to_point = !in.gateway.has_value();
        in.health = Health::Up;
        if (wan.ipv6) {
            in.has_address6 = true;
            in.gateway6 = wan.gateway6;
            in.on_link6 = !wan.gateway6.has_value();
            in.health6 = Health::Up;
        }
        out.push_back(in);
    }
    return out;
}

ActiveSet active_wans(const Config& config, const std::vector<WanInputs>& inputs, Family family) {
    auto up = [&](size_t i) { return carries(config.wans[i], family) && in_service(inputs[i], family); };
    ActiveSet out;
    std::optional<unsigned> best_tier;
    for (size_t i = 0; i < config.wans.size(); ++i)
        if (up(i)) best_tier = std::min(best_tier.value_or(config.wans[i].tier), config.wans[i].tier);
    if (best_tier) {
        for (size_t i = 0; i < config.wans.size(); ++i)
            if (up(i) && config.wans[i].tier == *best_tier) out.wans.push_back(i);
        return out;
    }
    out.all_down = true;
    for (size_t i = 0; i < config.wans.size(); ++i)
        if (carries(config.wans[i], family) && inputs[i].health_of(family) != Health::Disabled &&
            inputs[i].health_of(family) != Health::Draining && inputs[i].link_usable(family))
            out.wans.push_back(i);
    return out;
}

Desired build_desired(const Config& config, const std::vector<WanInputs>& inputs) {
    Desired d;
    d.active = active_wans(config, inputs, Family::V4);
    if (config.any_ipv6()) d.active6 = active_wans(config, inputs, Family::V6);
    std::array<Set, 2> balance{balance_map(config, d.active, Family::V4), balance_map(config, d.active6, Family::V6)};
    RulesPlane plane = build_rules_plane(config, inputs, {&d.active, &d.active6}, balance);
    d.rule_sends = plane.sends;
    d.table = build_table(config, balance, std::move(plane));
    add_routes(config, inputs, d.active, Family::V4, d.routes);
    add_rules(config, Family::V4, d.rules);
    if (config.any_ipv6()) {
        add_routes(config, inputs, d.active6, Family::V6, d.routes);
        add_rules(config, Family::V6, d.rules);
    }
    return d;
}

namespace {

// The table with each hash-bucket map's elements replaced by a comment line in the map: "# 1021
// buckets: 511 to wan_charter, 510 to wan_integra (`wanbalancectl ruleset --full` lists them)".
std::string render_summarized(const nft::Table& table) {
    nft::Table shown = table;
    std::map<std::string, std::string> summaries;
    for (nft::Set& set : shown.sets) {
        if (set.key_type != nft::KeyType::HashBucket || set.elements.empty()) continue;
        std::map<std::string, size_t> per_chain;
        for (const nft::Element& e : set.elements) ++per_chain[e.goto_chain];
        std::string line = "\t\t# " + std::to_string(set.elements.size()) + " buckets:";
        bool first = true;
        for (const auto& [chain, n] : per_chain) {
            line += std::string(first ? " " : ", ") + std::to_string(n) + " to " + chain;
            first = false;
        }
        summaries[set.name] = line + " (`wanbalancectl ruleset --full` lists them)\n";
        set.elements.clear();
    }
    std::string out = nft::render(shown);
    for (const auto& [name, line] : summaries) {
        size_t at = out.find("\tmap " + name + " {\n");
        if (at == std::string::npos) continue;
        size_t type_end = out.find('\n', out.find('\n', at) + 1);  // after the map's type line
        out.insert(type_end + 1, line);
    }
    return out;
}

}  // namespace

std::string render_ruleset(const Config& config, const Desired& desired, bool full) {
    std::string out = "#!/usr/sbin/nft -f\n";
    out += "# wanbalance ruleset for " + config.path + ", with every WAN up.\n";
    out += full ? "# The nftables part below is what `nft list table inet wanbalance` will show.\n\n"
                : "# The nftables part below is what `nft list table inet wanbalance` will show, but for the\n"
                  "# hash buckets of the balance maps, summed up in a comment (--full lists them).\n\n";
    out += full ? render(desired.table) : render_summarized(desired.table);
    out += "\n# Routes (proto wanbalance):\n";
    for (const auto& r : desired.routes) out += "#   " + ip_command(r) + "\n";
    out += "#\n# Policy rules (proto wanbalance):\n";
    for (const auto& r : desired.rules) out += "#   " + ip_command(r) + "\n";
    out += desired_detail::rules_summary(config);
    bool any_auto = false;
    for (const auto& wan : config.wans)
        if (!wan.gateway) {
            if (!any_auto) out += "#\n";
            any_auto = true;
            out += "# " + wan.name + ": gateway \"auto\": at runtime its routes go via the gateway that DHCP or PPP sets on " +
                   wan.interface + ".\n";
        }
    for (const auto& wan : config.wans)
        if (wan.ipv6 && !wan.gateway6) {
            if (!any_auto) out += "#\n";
            any_auto = true;
            out += "# " + wan.name + ": gateway6 \"auto\": at runtime its IPv6 routes go via the default route that router "
                   "advertisements put on " + wan.interface + ".\n";
        }
    return out;
}

}  // namespace wb
