// The per-WAN health state machine (keepalived-style rise/fall), as a table: state × event →
// state. Pure: the daemon feeds it probe rounds and link events and acts on the transitions.
#pragma once

#include <optional>
#include <string>

#include "config/config.hpp"

namespace wb {

enum class ProbeState { Up, Down };
enum class HealthEvent { RoundOk, RoundFailed, LinkLost, LinkBack };

struct HealthTransition {
    ProbeState from, to;
    std::string reason;  // "3 probe rounds failed in a row", "5 probe rounds answered in a row", "link lost"
};

class HealthMachine {
public:
    // A new WAN whose link is usable starts Up (optimistic: a restart must not drain traffic);
    // one whose link is not starts Down and must earn Up with up_after good rounds.
    explicit HealthMachine(ProbeState initial = ProbeState::Up) : state_(initial) {}

    // Applies one event under `probe` (down_after / up_after); returns the transition if the
    // state changed. LinkLost goes Down at once; LinkBack keeps Down and restarts the count.
    std::optional<HealthTransition> on_event(HealthEvent event, const ProbeConfig& probe);

    ProbeState state() const { return state_; }
    unsigned consecutive_ok() const { return ok_; }
    unsigned consecutive_failed() const { return failed_; }
    bool operator==(const HealthMachine&) const = default;

private:
    ProbeState state_;
    unsigned ok_ = 0, failed_ = 0;
};

}  // namespace wb
