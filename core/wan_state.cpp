// The WAN-state core. A WAN's health is decided by the first row of kPrecedence that matches
// (operator override, link, probes); transitions become announcements and flushes that wait until
// the kernel has changed, so a journal entry or a hook never runs ahead of the failover itself.
#include "core/wan_state.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "base/format.hpp"

namespace wb {
namespace {

constexpr std::pair<Override, std::string_view> kOverrideNames[] = {
    {Override::Auto, "auto"}, {Override::Up, "up"}, {Override::Down, "down"}};

// ---- precedence: override > link > probes ----

enum class Match { Any, Yes, No };

struct PrecedenceRow {
    Override override_mode;  // Auto rows also stand for "any override not matched above"
    bool any_override;
    Match link_usable;
    Match probes_up;
    Health health;
    const char* reason;  // nullptr: the link's problem or the machine's reason (see decide_one)
};

// First match wins. An operator's `down` beats everything; a dead link beats `up`.
constexpr std::array kPrecedence{
    PrecedenceRow{Override::Down, false, Match::Any, Match::Any, Health::Disabled, "disabled by operator"},
    PrecedenceRow{Override::Auto, true, Match::No, Match::Any, Health::Down, nullptr},
    PrecedenceRow{Override::Up, false, Match::Yes, Match::Any, Health::Up, "forced up by operator"},
    PrecedenceRow{Override::Auto, false, Match::Yes, Match::Yes, Health::Up, nullptr},
    PrecedenceRow{Override::Auto, false, Match::Yes, Match::No, Health::Down, nullptr},
};

bool matches(Match m, bool value) { return m == Match::Any || (m == Match::Yes) == value; }

struct Verdict {
    Health health;
    std::string reason;
};

Verdict decide_one(const WanConfig& wan, const WanState& w) {
    bool usable = w.inputs.link_usable();
    bool probes_up = w.machine.state() == ProbeState::Up;
    for (const PrecedenceRow& row : kPrecedence) {
        if (!row.any_override && row.override_mode != w.override_mode) continue;
        if (!matches(row.link_usable, usable) || !matches(row.probes_up, probes_up)) continue;
        if (row.reason) return {row.health, row.reason};
        if (!usable) return {row.health, link_problem(wan, w.inputs).text};
        std::string fallback = probes_up ? "probes answered" : "no probe answers yet";
        return {row.health, w.probe_reason.empty() ? fallback : w.probe_reason};
    }
    return {Health::Down, "no rule decides"};  // unreachable: the last two rows cover the rest
}

// ---- transitions ----

void push_flush(State& s, const WanConfig& wan) {
    if (s.config.flush_conntrack) s.pending_flushes.push_back({wan.mark, wan.name});
}

Announcement wan_announcement(const WanConfig& wan, const WanState& w) {
    bool up = w.health == Health::Up;
    std::string state(health_name(w.health));
    std::optional<long> rtt_us;
    if (w.figures.rtt_ms) rtt_us = long(*w.figures.rtt_ms * 1000);
    LogEvent e{up ? kMessageWanUp : kMessageWanDown, up ? "wan-up" : "wan-down", wan.name, wan.interface, state,
               w.reason, rtt_us, w.figures.loss_pct};
    return {up ? Level::Notice : Level::Warning, e,
            "WAN " + wan.name + " (" + wan.interface + ") is " + state + ": " + w.reason};
}

void set_health(State& s, size_t i, const Verdict& v, WallTime now, Effects& fx) {
    WanState& w = s.wans[i];
    const WanConfig& wan = s.config.wans[i];
    bool first = !w.decided;
    w.decided = true;
    if (w.health == v.health && (!first || s.ready)) {
        w.reason = v.reason;
        return;
    }
    bool was_up = w.health == Health::Up;
    w.health = v.health;
    w.reason = v.reason;
    w.since = now;
    if (first && !s.ready) {
        fx.logs.push_back({Level::Info, wan.name + " (" + wan.interface + ") starts " +
                                            std::string(health_name(v.health)) + ": " + v.reason});
        return;
    }
    ++w.transitions;
    s.pending_announcements.push_back(wan_announcement(wan, w));
    // Disabled from down too: with every WAN down it was still balanced over, and the operator
    // cuts it off from everything.
    if ((was_up || v.health == Health::Disabled) && v.health != Health::Up) push_flush(s, wan);
}

void check_all_down(State& s) {
    ActiveSet active = active_wans(s.config, desired_inputs(s));
    if (active.all_down && !s.all_down && !s.config.wans.empty()) {
        bool all_disabled = std::all_of(s.wans.begin(), s.wans.end(),
                                        [](const WanState& w) { return w.health == Health::Disabled; });
        std::string fallback =
            !active.wans.empty() ? "balancing over the " + std::to_string(active.wans.size()) + " WANs whose link is up"
            : all_disabled       ? "every WAN is disabled by the operator: LAN traffic has no way out"
                                 : "no usable link either: LAN traffic has no way out";
        LogEvent e{kMessageAllDown, "all-down", "", "", "down", "no WAN is healthy", {}, {}};
        s.pending_announcements.push_back({Level::Critical, e, "every WAN is down; " + fallback});
    }
    s.all_down = active.all_down;
}

void decide(State& s, WallTime now, Effects& fx) {
    for (size_t i = 0; i < s.wans.size(); ++i) set_health(s, i, decide_one(s.config.wans[i], s.wans[i]), now, fx);
    check_all_down(s);
}

// ---- events ----

WanInputs inputs_from(const WanConfig& wan, const KernelFacts& links) {
    WanInputs next;
    auto it = links.find(wan.interface);
    if (it == links.end()) return next;
    const LinkFacts& f = it->second;
    next.ifindex = f.ifindex;
    next.admin_up = f.admin_up;
    next.carrier = f.carrier;
    next.has_address = f.has_address;
    next.point_to_point = f.point_to_point;
    next.gateway = wan.gateway ? wan.gateway : f.auto_gateway;
    return next;
}

void follow_link(State& s, size_t i, WanInputs next, Effects& fx) {
    const WanConfig& wan = s.config.wans[i];
    WanState& w = s.wans[i];
    if (!wan.gateway && next.gateway && next.gateway != w.inputs.gateway)
        fx.logs.push_back({Level::Info, wan.name + ": gateway on " + wan.interface + " is now " +
                                            next.gateway->str() + " (auto)"});
    bool was_usable = w.inputs.link_usable();
    bool usable = next.link_usable();
    if (next != w.inputs) fx.reconcile = true;
    w.inputs = std::move(next);
    if (!w.seen) {
        // Optimistic start: a usable link starts up so a restart never drains traffic; the
        // probes take it down within down_after rounds if it is dead.
        w.machine = HealthMachine(usable ? ProbeState::Up : ProbeState::Down);
        w.probe_reason = usable ? "link up, probing" : "";
        w.seen = true;
    } else if (was_usable && !usable) {
        if (auto t = w.machine.on_event(HealthEvent::LinkLost, wan.probe)) w.probe_reason = t->reason;
        // Also when the WAN was already down: with every WAN down it was still balanced over,
        // and its connections must now re-establish on a link that is left.
        push_flush(s, wan);
    } else if (!was_usable && usable) {
        w.machine.on_event(HealthEvent::LinkBack, wan.probe);
        w.probe_reason = "link back, probing";
    }
}

void on(State& s, const KernelChanged& e, WallTime now, Effects& fx) {
    for (size_t i = 0; i < s.wans.size(); ++i)
        follow_link(s, i, inputs_from(s.config.wans[i], e.links), fx);
    decide(s, now, fx);
}

void on(State& s, const ProbeRound& e, WallTime now, Effects& fx) {
    auto i = find_wan(s, e.wan);
    if (!i) return;  // a round of a WAN a reload removed
    WanState& w = s.wans[*i];
    w.figures = e.figures;
    if (!w.inputs.link_usable()) return;  // the link decides while it is down
    auto t = w.machine.on_event(e.success ? HealthEvent::RoundOk : HealthEvent::RoundFailed, s.config.wans[*i].probe);
    if (!t) return;
    w.probe_reason = t->reason;
    if (!e.success && !e.problem.empty()) w.probe_reason += " (" + e.problem + ")";
    decide(s, now, fx);
    fx.reconcile = true;
}

void on(State& s, const OverrideRequested& e, WallTime now, Effects& fx) {
    auto i = find_wan(s, e.wan);
    if (!i) {
        std::string names;
        for (const auto& w : s.config.wans) names += (names.empty() ? "" : ", ") + w.name;
        fx.error = "no WAN named " + quoted(e.wan) + " (configured: " + names + ")";
        return;
    }
    s.wans[*i].override_mode = e.mode;
    fx.logs.push_back({Level::Notice, "operator set " + e.wan + " to " + std::string(override_name(e.mode))});
    decide(s, now, fx);
    fx.reconcile = true;
}

void on(State& s, const Reloaded& e, WallTime now, Effects& fx) {
    State old = std::move(s);
    s = initial_state(e.config, now);
    s.all_down = old.all_down;
    s.ready = old.ready;
    s.pending_announcements = std::move(old.pending_announcements);
    s.pending_flushes = std::move(old.pending_flushes);
    // Health, override and history survive a reload by WAN name: a reload never causes a flap.
    for (size_t i = 0; i < s.wans.size(); ++i)
        if (auto j = find_wan(old, s.config.wans[i].name)) s.wans[i] = old.wans[*j];
    // Connections marked for a WAN that is gone, or whose mark or interface changed, can no
    // longer be routed the way they started: delete them so they re-establish.
    for (const WanConfig& was : old.config.wans) {
        auto kept = std::find_if(s.config.wans.begin(), s.config.wans.end(), [&](const WanConfig& w) {
            return w.name == was.name && w.mark == was.mark && w.interface == was.interface;
        });
        if (kept != s.config.wans.end()) continue;
        fx.notes.push_back(was.name + " removed or renumbered");
        if (old.config.flush_conntrack) s.pending_flushes.push_back({was.mark, was.name});
    }
    fx.replace_table = old.config.mark_mask != s.config.mark_mask;
    fx.reconcile = true;
}

void on(State& s, const Restored& e, WallTime now, Effects& fx) {
    std::string restored;
    for (const auto& [wan, mode] : e.overrides) {
        auto i = find_wan(s, wan);
        if (!i || mode == Override::Auto) continue;  // a WAN the config no longer has
        s.wans[*i].override_mode = mode;
        restored += (restored.empty() ? "" : ", ") + wan + " " + std::string(override_name(mode));
    }
    if (restored.empty()) return;
    fx.logs.push_back({Level::Notice, "operator overrides kept from the previous run: " + restored});
    if (s.ready) decide(s, now, fx);  // else the first kernel facts decide, with the overrides in
    fx.reconcile = true;
}

void on(State&, const Timer&, WallTime, Effects& fx) { fx.reconcile = true; }

void on(State& s, const KernelApplied&, WallTime, Effects& fx) {
    s.ready = true;
    fx.announcements = std::move(s.pending_announcements);
    s.pending_announcements.clear();
    // Each mark once, in the order decided: the same WAN may have been flushed for two reasons.
    for (Flush& f : s.pending_flushes) {
        bool seen = std::any_of(fx.flushes.begin(), fx.flushes.end(), [&](const Flush& g) { return g.mark == f.mark; });
        if (!seen) fx.flushes.push_back(std::move(f));
    }
    s.pending_flushes.clear();
}

}  // namespace

std::string_view override_name(Override o) {
    for (const auto& [mode, name] : kOverrideNames)
        if (mode == o) return name;
    return "auto";
}

std::optional<Override> parse_override(std::string_view name) {
    for (const auto& [mode, spelled] : kOverrideNames)
        if (spelled == name) return mode;
    return std::nullopt;
}

LinkProblem link_problem(const WanConfig& wan, const WanInputs& in) {
    if (in.ifindex == 0) return {"absent", "interface " + wan.interface + " does not exist"};
    if (!in.admin_up) return {"admin-down", "interface " + wan.interface + " is administratively down"};
    if (!in.carrier) return {"no-carrier", "no carrier on " + wan.interface};
    if (!in.has_address) return {"no-address", "no IPv4 address on " + wan.interface};
    if (!in.gateway && !in.point_to_point) return {"no-gateway", "no gateway known on " + wan.interface + " (auto)"};
    return {"up", ""};
}

State initial_state(Config config, WallTime now) {
    State s;
    s.config = std::move(config);
    s.wans.resize(s.config.wans.size());
    for (auto& w : s.wans) w.since = now;
    return s;
}

Step step(State state, const Event& event, WallTime now) {
    Effects fx;
    std::visit([&](const auto& e) { on(state, e, now, fx); }, event);
    return {std::move(state), std::move(fx)};
}

std::vector<WanInputs> desired_inputs(const State& state) {
    std::vector<WanInputs> inputs;
    inputs.reserve(state.wans.size());
    for (const auto& w : state.wans) {
        inputs.push_back(w.inputs);
        inputs.back().health = w.health;  // kept once, in WanState; build_desired reads it here
    }
    return inputs;
}

std::map<std::string, Override> overrides_of(const State& state) {
    std::map<std::string, Override> out;
    for (size_t i = 0; i < state.wans.size(); ++i)
        if (state.wans[i].override_mode != Override::Auto) out[state.config.wans[i].name] = state.wans[i].override_mode;
    return out;
}

std::optional<size_t> find_wan(const State& state, std::string_view name) {
    for (size_t i = 0; i < state.config.wans.size(); ++i)
        if (state.config.wans[i].name == name) return i;
    return std::nullopt;
}

std::string status_line(const State& state) {
    unsigned up = 0;
    std::string names;
    for (size_t i = 0; i < state.wans.size(); ++i)
        if (state.wans[i].health == Health::Up) {
            ++up;
            names += (names.empty() ? ": " : ", ") + state.config.wans[i].name;
        }
    return std::to_string(up) + "/" + std::to_string(state.wans.size()) + " WANs up" + names;
}

}  // namespace wb
