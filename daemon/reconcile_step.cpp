#include "daemon/reconcile_step.hpp"

namespace wb {

Reconciled reconcile_step(State& state, KernelSync& sync, const KernelFacts& facts, WallTime now) {
    Reconciled r;
    Step seen = step(std::move(state), KernelChanged{facts}, now);
    r.seen = std::move(seen.effects);
    Desired desired = build_desired(seen.state.config, desired_inputs(seen.state));
    r.applied = sync.apply(desired);
    r.rule_sends = std::move(desired.rule_sends);
    Step released = step(std::move(seen.state), KernelApplied{}, now);
    state = std::move(released.state);
    r.released = std::move(released.effects);
    r.released.reconcile = false;  // this was the reconcile
    return r;
}

}  // namespace wb
