// The WAN-state core: every rule about what state a WAN is in, as a value and a step function
// (State, Event) -> (State, Effects). No I/O, no sd-event, no netlink: the daemon feeds it what
// happened and performs what it returns (journal entries, hooks, conntrack flushes, reconciles).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/ip.hpp"
#include "base/log_event.hpp"
#include "config/config.hpp"
#include "probe/health.hpp"
#include "rules/desired.hpp"

namespace wb {

using WallTime = std::chrono::system_clock::time_point;

// The operator's word on a WAN (`wanbalancectl set WAN up|down|auto`).
enum class Override { Auto, Up, Down, Drain };
std::string_view override_name(Override o);
std::optional<Override> parse_override(std::string_view name);

// What the kernel says about one interface.
struct LinkFacts {
    int ifindex = 0;
    bool admin_up = false;
    bool carrier = false;
    bool has_address = false;  // an IPv4 address on it
    bool point_to_point = false;
    std::optional<Ipv4> auto_gateway;  // the default route's gateway others put on it (DHCP, PPP)
    bool has_address6 = false;          // a usable global IPv6 address on it
    std::optional<Ipv6> auto_gateway6;  // the IPv6 default route's gateway others put on it (RAs)
    bool operator==(const LinkFacts&) const = default;
};
using KernelFacts = std::map<std::string, LinkFacts>;  // by interface name; absent: no such interface

// A probe round's figures as the prober keeps them (smoothed RTT, loss over its window).
struct ProbeFigures {
    std::optional<double> rtt_ms;
    double loss_pct = 0;
    bool operator==(const ProbeFigures&) const = default;
};

// Why a WAN's link cannot carry a family's traffic: a status word ("no-carrier") and the words
// an operator would use ("no carrier on ether1"); {"up", ""} when it can.
struct LinkProblem {
    std::string word, text;
};
LinkProblem link_problem(const WanConfig& wan, const WanInputs& in, Family family = Family::V4);

// One family's health of one WAN: IPv4 and IPv6 are probed and decided apart (an ISP's IPv6
// often breaks while its IPv4 works); the link and the operator's override act on both.
struct FamilyHealth {
    Health health = Health::Down;
    WallTime since;
    std::string reason;
    unsigned transitions = 0;
    bool decided = false;           // decided at least once (the first is logged, not announced)
    bool seen = false;              // link facts known at least once (machine initialised)
    HealthMachine machine{ProbeState::Up};
    std::string probe_reason;       // why the machine is in its state
    ProbeFigures figures;           // as of the last probe round
    bool operator==(const FamilyHealth&) const = default;
};

struct WanState {
    std::array<FamilyHealth, 2> families;  // by Family; IPv6's is unused for a WAN without gateway6
    Override override_mode = Override::Auto;
    WanInputs inputs;               // link facts and gateways (their health is unused: see `families`)

    FamilyHealth& of(Family f) { return families[size_t(f)]; }
    const FamilyHealth& of(Family f) const { return families[size_t(f)]; }
    // IPv4's health: the WAN's own (status JSON's top level, `set`'s answer).
    Health health() const { return of(Family::V4).health; }
    bool operator==(const WanState&) const = default;
};

// A state change to log and hand to the hooks once the kernel reflects it.
struct Announcement {
    Level level = Level::Info;
    LogEvent event;
    std::string message;
    bool operator==(const Announcement&) const = default;
};

// Connections of one WAN and family to delete once the kernel no longer sends new ones there.
struct Flush {
    uint32_t mark = 0;
    std::string wan;
    Family family = Family::V4;
    bool operator==(const Flush&) const = default;
};

struct LogLine {
    Level level = Level::Info;
    std::string message;
    bool operator==(const LogLine&) const = default;
};

struct State {
    Config config;
    std::vector<WanState> wans;  // same order as config.wans
    std::array<bool, 2> all_down{};  // by Family: no WAN of that family is healthy
    bool ready = false;          // the first ruleset is in the kernel
    bool operator_cause = false;  // deciding an operator's request: its transitions are operator events
    // Decided, not yet performed: they wait for the kernel to change (KernelApplied).
    std::vector<Announcement> pending_announcements;
    std::vector<Flush> pending_flushes;
};

// ---- events ----

// The kernel's links, addresses or default routes changed (or a reconcile is about to run).
struct KernelChanged {
    KernelFacts links;
};
// One finished probe round of a WAN's family.
struct ProbeRound {
    std::string wan;
    bool success = false;
    // A failed round: why, e.g. "0/2 targets answered within 50 ms; gateway 203.0.113.11 does
    // not answer ARP" or why nothing could be sent. A good one: "2/2 targets answered".
    std::string detail;
    ProbeFigures figures;
    Family family = Family::V4;
};
struct OverrideRequested {
    std::string wan;
    Override mode = Override::Auto;
    std::string why;  // "" for the operator's own request; else what made it (a drain's timeout)
};
// A new, valid configuration replaces the running one.
struct Reloaded {
    Config config;
};
// The operator's overrides as the previous run left them (by WAN name), before the first reconcile.
struct Restored {
    std::map<std::string, Override> overrides;
};
// The periodic check that the kernel still holds what we put there.
struct Timer {};
// The desired state of the current State has been applied to the kernel (as far as it could be).
struct KernelApplied {};

using Event = std::variant<KernelChanged, ProbeRound, OverrideRequested, Reloaded, Restored, Timer, KernelApplied>;

// ---- effects ----

struct Effects {
    std::vector<LogLine> logs;                // to log now
    std::vector<Announcement> announcements;  // journal events and hooks: only after the kernel changed
    std::vector<Flush> flushes;               // conntrack deletions: only after the kernel changed
    bool reconcile = false;                   // the desired kernel state may differ: apply it
    bool replace_table = false;               // the table must be replaced whole (mark mask changed)
    std::vector<std::string> notes;           // for a reload's summary ("dsl removed or renumbered")
    std::optional<std::string> error;         // the event was refused (an override of an unknown WAN)
};

struct Step {
    State state;
    Effects effects;
};

// A fresh state for `config`: every WAN down and undecided, since `now`.
State initial_state(Config config, WallTime now);

// The one way the state changes.
Step step(State state, const Event& event, WallTime now);

// Per WAN, the inputs build_desired() takes (same order as config.wans).
std::vector<WanInputs> desired_inputs(const State& state);

// Every WAN's override that is not Auto, by WAN name: what a restart must restore.
std::map<std::string, Override> overrides_of(const State& state);

// The index of the WAN called `name`, if any.
std::optional<size_t> find_wan(const State& state, std::string_view name);

// systemd's STATUS= text: "2/3 WANs up: charter, integra".
std::string status_line(const State& state);

}  // namespace wb
