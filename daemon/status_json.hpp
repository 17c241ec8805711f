// The status object of `wanbalancectl status --json` (docs/design.md, status JSON), as a pure
// function of the core's state and the counters the daemon reads from the prober and the kernel.
#pragma once

#include <chrono>
#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/wan_state.hpp"
#include "rules/desired.hpp"
#include "probe/prober.hpp"

namespace wb {

// Per WAN, same order as the config's WANs.
struct WanCounters {
    ProbeStats probe;   // IPv4's probes
    ProbeStats probe6;  // IPv6's (WANs with gateway6)
    std::string ipv6_warning;  // e.g. router advertisements ignored on the interface; "" if none
    unsigned connections = 0;  // conntrack entries with the WAN's mark, the prober's own excluded
    uint64_t rx_bytes = 0, tx_bytes = 0;
    std::string degraded;  // what the kernel refused for the WAN (daemon/degraded.hpp); "" if none
};

// What the status says about policy rules: where each sends now (Desired::rule_sends of the
// last reconcile) and the connections each has (conntrack entries it matches, by rule index).
struct RuleCounters {
    std::array<std::vector<RuleSend>, 2> sends;
    std::map<size_t, unsigned> connections;
};

nlohmann::json status_json(const State& state, const std::vector<WanCounters>& counters,
                           std::chrono::seconds uptime, int pid, const RuleCounters& rules = {});

// The "rules" array (docs/design.md, status JSON): one object per config rule, in order:
// name, policy, wan (the one WAN taking its new connections, else null), wans, via ("policy",
// "last_resort", "main", "unreachable"), sticky, connections, and "ipv6" (the same for IPv6,
// null when the rule or the config has no IPv6).
nlohmann::json rules_json(const Config& config, const RuleCounters& rules);

// "2026-11-30T01:34:23Z"
std::string iso8601(WallTime t);

}  // namespace wb
