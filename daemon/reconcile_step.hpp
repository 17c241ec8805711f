// One reconcile as the daemon runs it, without the loop: the core learns the kernel's facts,
// the kernel is made to hold the desired state, and only then does the core release what waited
// for it (journal events, hooks, flushes). Unit-tested against the fake kernel.
#pragma once

#include <array>
#include <vector>

#include "core/wan_state.hpp"
#include "netlink/kernel_sync.hpp"

namespace wb {

struct Reconciled {
    Effects seen;         // of the facts: log lines (what waits for the kernel stays pending)
    ApplyReport applied;  // what the kernel did
    Effects released;     // after the kernel changed: announcements and flushes
    std::array<std::vector<RuleSend>, 2> rule_sends;  // where each policy rule sends now, per family
};

Reconciled reconcile_step(State& state, KernelSync& sync, const KernelFacts& facts, WallTime now);

}  // namespace wb
