// Desired kernel state as a pure function of the config and what is known about each WAN:
// the `inet wanbalance` table, the routes and the policy rules. No I/O; running the result
// through the appliers twice changes nothing the second time.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/ip.hpp"
#include "config/config.hpp"
#include "rules/nft.hpp"
#include "rules/routing.hpp"

namespace wb {

inline constexpr uint32_t kBalanceBuckets = 1021;  // prime: the Maglev permutation needs it
inline constexpr uint32_t kHashSeed = 0x77616e62;   // "wanb"; pinned so reloads keep clients put
// wanbalance's own table for the balanced multipath default: looked up after the WANs' fwmark
// rules, before main, so others' default routes in main are shadowed while it runs, never fought.
inline constexpr uint32_t kBalancedTable = 100;

// The balanced table's id: kBalancedTable unless a WAN's table is that, then the first id above
// every WAN table that is free and not reserved.
uint32_t balanced_table(const Config& config);

enum class Health { Up, Down, Disabled, Draining };  // docs/design.md, States
std::string_view health_name(Health h);

// Everything the desired state depends on besides the config, per WAN (same order as
// Config::wans). Filled by the daemon from the kernel and the prober.
struct WanInputs {
    int ifindex = 0;           // 0: the interface does not exist (yet)
    bool admin_up = false;
    bool carrier = false;
    bool has_address = false;  // an IPv4 address on the interface
    bool point_to_point = false;
    std::optional<Ipv4> gateway;  // resolved: the configured one, or the auto one if known
    Health health = Health::Down;
    // IPv6, for a WAN with gateway6 (else all unset).
    bool has_address6 = false;     // a usable global IPv6 address on the interface
    std::optional<Ipv6> gateway6;  // resolved: the configured one, or the one RAs put there
    Health health6 = Health::Down;
    // Offline output only (assume_all_up): IPv6 routes on-link while an "auto" gateway6 is
    // unknown, without making the IPv4 routes on-link as point_to_point would.
    bool on_link6 = false;

    // The link can carry IPv4 traffic: exists, admin up, carrier, an address, and a gateway
    // (or a point-to-point link).
    bool link_usable() const {
        return ifindex > 0 && admin_up && carrier && has_address && (gateway || point_to_point);
    }
    // The same for a family: IPv6 needs a global address and a gateway6 (or point-to-point).
    bool link_usable(Family f) const {
        if (f == Family::V4) return link_usable();
        return ifindex > 0 && admin_up && carrier && has_address6 && (gateway6 || point_to_point || on_link6);
    }
    Health health_of(Family f) const { return f == Family::V4 ? health : health6; }
    bool operator==(const WanInputs&) const = default;
};

// Inputs for offline output (`wanbalancectl ruleset`): every interface present as ifindex
// 1000+i, usable, healthy in both families; "auto" gateways stay unknown (routes on-link).
std::vector<WanInputs> assume_all_up(const Config& config);

// Which WANs take new LAN connections (indices into Config::wans): the healthy usable WANs of
// the lowest tier that has any; if none is healthy, every usable WAN that is not disabled
// (probes may fail because their targets are down: keep the links that have a carrier).
struct ActiveSet {
    std::vector<size_t> wans;
    bool all_down = false;  // no WAN is healthy: the fallback above is in effect
};
// Per family: only WANs that carry it count (for IPv6, those with gateway6).
ActiveSet active_wans(const Config& config, const std::vector<WanInputs>& inputs, Family family = Family::V4);

// Where a config rule sends new connections now, in one family.
struct RuleSend {
    enum class Kind { Wans, Main, Unreachable, None };  // None: the rule cannot match this family
    Kind kind = Kind::None;
    std::vector<size_t> wans;  // Kind::Wans: the WANs taking its new connections (indices into Config::wans)
    bool last_resort = false;  // its policy has no member in service: the policy's last_resort applies
    bool operator==(const RuleSend&) const = default;
};

// With no WAN carrying IPv6 the IPv6 parts are absent: an IPv4-only config gives exactly the
// table, routes and rules it gave before dual-stack.
struct Desired {
    nft::Table table;
    std::vector<Route> routes;  // per family (IPv4, then IPv6): per-WAN table defaults, then the balanced default
    // Per family: suppress rule, one fwmark rule per WAN, the main and unreachable marks' rules
    // (only with Config::main_mark / unreachable_mark), then the balanced table.
    std::vector<Rule> rules;
    ActiveSet active;           // IPv4
    ActiveSet active6;          // IPv6 (empty without IPv6 WANs)
    // Per family, one per Config::rules entry, in order (empty without rules).
    std::array<std::vector<RuleSend>, 2> rule_sends;
    const ActiveSet& active_of(Family f) const { return f == Family::V4 ? active : active6; }
};

Desired build_desired(const Config& config, const std::vector<WanInputs>& inputs);

// Names used in the table, exposed for tests and status.
std::string wan_chain_name(const WanConfig& wan);  // "wan_charter"

// The reply counters (docs/design.md, "Reply counters"): chain "replies_<WAN>" holds one rule
// per family the WAN carries, `meta nfproto ipv4 counter comment "ipv4"` ("ipv6"), reached
// from base chain "replies" through map "reply_wans". The kernel port reads them back by
// these names.
inline constexpr std::string_view kReplyChainPrefix = "replies_";
std::string reply_chain_name(const WanConfig& wan);  // "replies_charter"
const char* reply_counter_comment(Family family);    // "ipv4", "ipv6"

// `wanbalancectl ruleset`: the nft table (nft -f syntax) then the routes and rules as `ip`
// commands, each section introduced by a comment. Not `full`: each hash-bucket map's 1021
// elements are left out and summed up in a comment inside the map (which WAN chain gets how
// many buckets); the text is then still nft -f syntax, but not what the kernel lists.
std::string render_ruleset(const Config& config, const Desired& desired, bool full = true);

}  // namespace wb
