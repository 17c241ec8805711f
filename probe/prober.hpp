// Probing of every WAN out of that WAN, per family: ICMP echo, TCP handshakes and DNS queries
// (probe/transport.hpp), each socket bound to the WAN's interface and carrying its mark, driven by
// sd-event timers. No ping processes, no blocking. IPv4 and IPv6 of one WAN are probed, counted
// and judged apart.
//
// Deadlines adapt to the path (docs/design.md, Detection): each target keeps an RFC 6298 srtt and
// rttvar from its answers (late ones too), and a probe not answered by srtt + 4·rttvar (at least
// kDeadlineFloor, at most the timeout) is lost, unless the WAN's own connections got replies
// since the round went out: then it may take up to the timeout (a congested link answers late,
// it is not dead). A failed round makes the path suspect: the next rounds go out at once, one
// per adaptive deadline (a confirmation burst), until a round succeeds.
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
#include "config/config.hpp"

namespace wb {

// What is probed: one family of one WAN.
struct ProbeKey {
    std::string wan;
    Family family = Family::V4;
    auto operator<=>(const ProbeKey&) const = default;
};

// The least adaptive deadline: timer slack, the kernel's and the scheduler's delays on a busy
// router. Never above the spec's timeout.
inline constexpr std::chrono::milliseconds kDeadlineFloor{50};

struct ProbeSpec {
    std::string interface;
    uint32_t mark = 0;            // SO_MARK: the WAN's mark, so policy routing sends it out of the WAN
    // Resolved: the configured targets of the key's family, or its gateway (ICMP); all of that
    // family. A link-local IPv6 target (fe80::1) is reached on `interface`.
    std::vector<ProbeTarget> targets;
    std::chrono::milliseconds interval{300};
    std::chrono::milliseconds timeout{600};
    unsigned min_targets_up = 1;
    // Failed rounds in a row that take the WAN down: a confirmation burst stops there (the WAN is
    // down; back to one round per interval).
    unsigned down_after = 3;
    bool operator==(const ProbeSpec&) const = default;
};

// One finished round: every target either answered within the timeout or did not.
struct RoundOutcome {
    uint64_t round = 0;    // 1, 2, ... per WAN since it was first configured
    bool success = false;  // answered >= min_targets_up
    unsigned answered = 0, sent = 0;
    std::optional<std::chrono::microseconds> rtt;  // mean RTT of the answers in this round
    std::string problem;  // why nothing was sent, e.g. "sendto 192.0.2.53: Network is unreachable"
    bool confirmation = false;  // went out at once as part of a confirmation burst, not on schedule
    // The WAN's connections got replies while this round was out, so its probes had up to the
    // timeout instead of their adaptive deadlines.
    bool traffic_alive = false;
    std::chrono::microseconds deadline{0};  // the longest deadline this round's probes had
};

// One target of a path, for status.
struct TargetStats {
    ProbeTarget target;
    std::optional<double> srtt_ms, rttvar_ms;  // RFC 6298, over every answer (late ones too)
    double loss_pct = 0;                       // over its last kLossWindow probes
    uint64_t sent = 0, lost = 0;
    std::optional<std::chrono::microseconds> last_answer_age;  // since its last answer; nullopt: never
    std::chrono::microseconds deadline{0};                     // its adaptive deadline now
};

struct ProbeStats {
    // Over the last kStatsRounds rounds: the mean RTT of the probes answered within their
    // deadlines (nullopt while the last round got no answer, or while paused), and the share of
    // probes lost.
    std::optional<double> rtt_ms;
    double loss_pct = 0;
    // Since the WAN was first configured. A probe that could not be sent (no interface, no
    // route) counts as sent and lost: a WAN that cannot send is as dead as one nobody answers.
    uint64_t sent = 0, lost = 0;
    std::vector<TargetStats> targets;  // in the spec's order
    bool suspect = false;              // a confirmation burst is running
};

inline constexpr unsigned kLossWindow = 100;  // a target's loss
inline constexpr unsigned kStatsRounds = 10;  // a path's RTT and loss

class Prober {
public:
    // Called once per finished round, in round order per key, from the event loop.
    using RoundCallback = std::function<void(const ProbeKey& key, const RoundOutcome& outcome)>;
    // How many reply packets of the WAN's own (LAN) connections have come in on this path so far:
    // a counter that only grows (nftables, netlink/kernel_port.hpp read_reply_counters). nullopt:
    // unknown (no evidence either way). Asked when a round goes out and when it would fail.
    using RepliesFn = std::function<std::optional<uint64_t>(const ProbeKey& key)>;

    static Expected<std::unique_ptr<Prober>> create(sd_event* event, RoundCallback callback,
                                                    RepliesFn replies = {});
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

    // Traffic says the path may be dead (new connections on it unanswered): start a confirmation
    // burst now, unless one is running or the path is paused or unknown. Returns whether it
    // started. Evidence only: the WAN still goes down only on failed rounds.
    bool suspect(const ProbeKey& key);
    // The path's adaptive deadline now: the largest of its targets' (the timeout before any
    // answer). SynWatch uses it for how long a new connection may wait for its first reply.
    std::chrono::microseconds deadline(const ProbeKey& key) const;

    ProbeStats stats(const ProbeKey& key) const;
    // Whether the last timer could be armed: a failure means rounds may stop (the daemon logs it).
    Status timer_status() const;
    // The ICMP / ICMPv6 identifier of the key's echo requests (for packet captures, tests, and
    // to keep the probes out of the connection counts).
    std::optional<uint16_t> identifier(const ProbeKey& key) const;
    // The targets of the key, every kind (their conntrack entries are the router's own, not LAN
    // connections).
    std::vector<ProbeTarget> targets(const ProbeKey& key) const;

private:
    Prober() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
