// ICMP echo probing of every WAN out of that WAN: one raw socket per WAN, bound to its
// interface and carrying its mark, driven by sd-event timers. No ping processes, no blocking.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/ipv4.hpp"
#include "base/status.hpp"

namespace wb {

struct ProbeSpec {
    std::string interface;
    uint32_t mark = 0;            // SO_MARK: the WAN's mark, so policy routing sends it out of the WAN
    std::vector<Ipv4> targets;    // resolved: the configured targets, or the gateway
    std::chrono::milliseconds interval{300};
    std::chrono::milliseconds timeout{600};
    unsigned min_targets_up = 1;
    bool operator==(const ProbeSpec&) const = default;
};

// One finished round: every target either answered within the timeout or did not.
struct RoundOutcome {
    uint64_t round = 0;    // 1, 2, ... per WAN since it was first configured
    bool success = false;  // answered >= min_targets_up
    unsigned answered = 0, sent = 0;
    std::optional<std::chrono::microseconds> rtt;  // mean RTT of the answers in this round
    std::string problem;  // why nothing was sent, e.g. "sendto 192.0.2.53: Network is unreachable"
};

struct ProbeStats {
    std::optional<double> rtt_ms;  // smoothed (EWMA, 1/8 like TCP's srtt) over answered probes
    double loss_pct = 0;           // over the last kLossWindow probes
    // Since the WAN was first configured. A probe that could not be sent (no interface, no
    // route) counts as sent and lost: a WAN that cannot send is as dead as one nobody answers.
    uint64_t sent = 0, lost = 0;
};

inline constexpr unsigned kLossWindow = 100;

class Prober {
public:
    // Called once per finished round, in round order per WAN, from the event loop.
    using RoundCallback = std::function<void(const std::string& wan, const RoundOutcome& outcome)>;

    static Expected<std::unique_ptr<Prober>> create(sd_event* event, RoundCallback callback);
    ~Prober();
    Prober(const Prober&) = delete;
    Prober& operator=(const Prober&) = delete;

    // Starts or updates probing of `wan`; its first round goes out on the next loop iteration.
    // An equal spec changes nothing (schedule and stats survive a reload). A changed one keeps
    // the stats and the round numbers; a new interface or mark re-opens the socket and drops the
    // rounds in flight (their answers cannot reach the new socket), so numbers may skip.
    // A missing interface is not an error: each round then fails with the reason and retries the
    // bind, so an interface that appears (or is re-created) is picked up without a call here.
    // Other socket errors (no CAP_NET_RAW) are returned, and rounds keep retrying as well.
    Status configure(const std::string& wan, const ProbeSpec& spec);
    // Stops probing WANs not in `wans` (removed by a reload).
    void retain(const std::vector<std::string>& wans);
    // Pauses/resumes a WAN's rounds (no carrier: nothing to learn; rounds resume at once on resume).
    void pause(const std::string& wan, bool paused);

    ProbeStats stats(const std::string& wan) const;
    // Whether the last timer could be armed: a failure means rounds may stop (the daemon logs it).
    Status timer_status() const;
    // The ICMP identifier of the WAN's echo requests (for packet captures and tests).
    std::optional<uint16_t> identifier(const std::string& wan) const;

private:
    Prober() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
