// The per-WAN health state machine as data: one row per state × event, saying which counter the
// event feeds and when the state changes. keepalived's rise/fall, without the warm-up.
#include "probe/health.hpp"

#include <algorithm>
#include <array>

namespace wb {
namespace {

// What an event does to the consecutive counters before the row's change is considered.
enum class Count {
    Ok,      // one more good round in a row; the failure streak ends
    Failed,  // one more failed round in a row; the success streak ends
    Reset,   // both streaks end (the link changed: earlier rounds say nothing about now)
};

// When the row's `to` state is taken.
enum class When {
    Never,      // stays in `from`
    AtOnce,    // immediately
    DownAfter,  // when the failure streak reaches probe.down_after
    UpAfter,    // when the success streak reaches probe.up_after
};

struct Row {
    ProbeState from;
    HealthEvent event;
    Count count;
    When when;
    ProbeState to;
};

// LinkBack never brings a WAN up by itself: the link may be back while the upstream is not, so
// it has to earn up_after answered rounds like any other down WAN.
constexpr std::array kTable{
    Row{ProbeState::Up, HealthEvent::RoundOk, Count::Ok, When::Never, ProbeState::Up},
    Row{ProbeState::Up, HealthEvent::RoundFailed, Count::Failed, When::DownAfter, ProbeState::Down},
    Row{ProbeState::Up, HealthEvent::LinkLost, Count::Reset, When::AtOnce, ProbeState::Down},
    Row{ProbeState::Up, HealthEvent::LinkBack, Count::Reset, When::Never, ProbeState::Up},
    Row{ProbeState::Down, HealthEvent::RoundOk, Count::Ok, When::UpAfter, ProbeState::Up},
    Row{ProbeState::Down, HealthEvent::RoundFailed, Count::Failed, When::Never, ProbeState::Down},
    Row{ProbeState::Down, HealthEvent::LinkLost, Count::Reset, When::Never, ProbeState::Down},
    Row{ProbeState::Down, HealthEvent::LinkBack, Count::Reset, When::Never, ProbeState::Down},
};

constexpr bool has_one_row_per_state_and_event() {
    for (ProbeState state : {ProbeState::Up, ProbeState::Down})
        for (HealthEvent event :
             {HealthEvent::RoundOk, HealthEvent::RoundFailed, HealthEvent::LinkLost, HealthEvent::LinkBack}) {
            int rows = 0;
            for (const Row& r : kTable) rows += r.from == state && r.event == event;
            if (rows != 1) return false;
        }
    return true;
}
static_assert(has_one_row_per_state_and_event(), "the health table must cover every state × event once");

const Row& row_for(ProbeState state, HealthEvent event) {
    return *std::find_if(kTable.begin(), kTable.end(),
                         [&](const Row& r) { return r.from == state && r.event == event; });
}

std::string rounds_reason(unsigned n, const char* what) {
    return std::to_string(n) + (n == 1 ? " probe round " : " probe rounds ") + what +
           (n == 1 ? "" : " in a row");
}

}  // namespace

std::optional<HealthTransition> HealthMachine::on_event(HealthEvent event, const ProbeConfig& probe) {
    // A threshold of 0 would mean "change without any evidence"; treat it as 1.
    const unsigned down_after = std::max(probe.down_after, 1u);
    const unsigned up_after = std::max(probe.up_after, 1u);
    const Row& row = row_for(state_, event);

    switch (row.count) {
        case Count::Ok:
            ++ok_;
            failed_ = 0;
            break;
        case Count::Failed:
            ++failed_;
            ok_ = 0;
            break;
        case Count::Reset:
            ok_ = failed_ = 0;
            break;
    }

    std::string reason;
    switch (row.when) {
        case When::Never:
            return std::nullopt;
        case When::AtOnce:
            reason = event == HealthEvent::LinkLost ? "link lost" : "link back";
            break;
        case When::DownAfter:
            if (failed_ < down_after) return std::nullopt;
            reason = rounds_reason(down_after, "failed");
            break;
        case When::UpAfter:
            if (ok_ < up_after) return std::nullopt;
            reason = rounds_reason(up_after, "answered");
            break;
    }
    HealthTransition transition{state_, row.to, std::move(reason)};
    state_ = row.to;
    return transition;
}

}  // namespace wb
