// ICMP and ICMPv6 echo probing of every WAN out of that WAN, per family: one raw socket per WAN
// and family, bound to its interface and carrying its mark, driven by sd-event timers. No ping
// processes, no blocking. IPv4 and IPv6 of one WAN are probed, counted and judged apart.
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

#include "base/ip.hpp"
#include "base/status.hpp"

namespace wb {

// What is probed: one family of one WAN.
struct ProbeKey {
    std::string wan;
    Family family = Family::V4;
    auto operator<=>(const ProbeKey&) const = default;
};

struct ProbeSpec {
    std::string interface;
    uint32_t mark = 0;            // SO_MARK: the WAN's mark, so policy routing sends it out of the WAN
    // Resolved: the configured targets of the key's family, or its gateway; all of that family.
    // A link-local IPv6 target (fe80::1) is reached on `interface`.
    std::vector<IpAddr> targets;
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
    // Called once per finished round, in round order per key, from the event loop.
    using RoundCallback = std::function<void(const ProbeKey& key, const RoundOutcome& outcome)>;

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
    // Everything here is per key: a WAN's IPv4 and IPv6 are two independent probers.
    Status configure(const ProbeKey& key, const ProbeSpec& spec);
    // Stops probing keys not in `keys` (WANs removed by a reload, gateway6 dropped).
    void retain(const std::vector<ProbeKey>& keys);
    // Pauses/resumes a key's rounds (no carrier: nothing to learn; rounds resume at once on resume).
    void pause(const ProbeKey& key, bool paused);

    ProbeStats stats(const ProbeKey& key) const;
    // Whether the last timer could be armed: a failure means rounds may stop (the daemon logs it).
    Status timer_status() const;
    // The ICMP / ICMPv6 identifier of the key's echo requests (for packet captures, tests, and
    // to keep the probes out of the connection counts).
    std::optional<uint16_t> identifier(const ProbeKey& key) const;

private:
    Prober() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
