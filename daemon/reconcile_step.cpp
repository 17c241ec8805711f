#include "daemon/reconcile_step.hpp"

namespace wb {

Reconciled reconcile_step(State& state, KernelSync& sync, const KernelFacts& facts, WallTime now) {
    Reconciled r;
    Step seen = step(std::move(state), KernelChanged{facts}, now);
    r.seen = std::move(seen.effects);
    r.applied = sync.apply(build_desired(seen.state.config, desired_inputs(seen.state)));
    Step released = step(std::move(seen.state), KernelApplied{}, now);
    state = std::move(released.state);
    r.released = std::move(released.effects);
    r.released.reconcile = false;  // this was the reconcile
    return r;
}

}  // namespace wb
