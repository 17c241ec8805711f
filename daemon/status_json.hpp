// The status object of `wanbalancectl status --json` (docs/design.md, status JSON), as a pure
// function of the core's state and the counters the daemon reads from the prober and the kernel.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/wan_state.hpp"
#include "probe/prober.hpp"

namespace wb {

// Per WAN, same order as the config's WANs.
struct WanCounters {
    ProbeStats probe;   // IPv4's probes
    ProbeStats probe6;  // IPv6's (WANs with gateway6)
    std::string ipv6_warning;  // e.g. router advertisements ignored on the interface; "" if none
    unsigned connections = 0;  // conntrack entries with the WAN's mark, the prober's own excluded
    uint64_t rx_bytes = 0, tx_bytes = 0;
};

nlohmann::json status_json(const State& state, const std::vector<WanCounters>& counters,
                           std::chrono::seconds uptime, int pid);

// "2026-11-30T01:34:23Z"
std::string iso8601(WallTime t);

}  // namespace wb
