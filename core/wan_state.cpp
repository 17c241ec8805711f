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
    {Override::Auto, "auto"}, {Override::Up, "up"}, {Override::Down, "down"}, {Override::Drain, "drain"}};

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
    PrecedenceRow{Override::Drain, false, Match::Any, Match::Any, Health::Draining,
                  "drained by operator: no new connections, the open ones run out"},
    PrecedenceRow{Override::Auto, true, Match::No, Match::Any, Health::Down, nullptr},
    PrecedenceRow{Override::Up, false, Match::Yes, Match::Any, Health::Up, "forced up by operator"},
    PrecedenceRow{Override::Auto, false, Match::Yes, Match::Yes, Health::Up, nullptr},
    PrecedenceRow{Override::Auto, false, Match::Yes, Match::No, Health::Down, nullptr},
};

bool matches(Match m, bool value) { return m == Match::Any || (m == Match::Yes) == value; }

struct Verdict {
    Health health;
    std::string reason;
    bool by_operator = false;  // an override row decided it (down, drain, forced up)
};

Verdict decide_one(const WanConfig& wan, const WanState& w, Family f) {
    const FamilyHealth& h = w.of(f);
    bool usable = w.inputs.link_usable(f);
    bool probes_up = h.machine.state() == ProbeState::Up;
    for (const PrecedenceRow& row : kPrecedence) {
        if (!row.any_override && row.override_mode != w.override_mode) continue;
        if (!matches(row.link_usable, usable) || !matches(row.probes_up, probes_up)) continue;
        if (row.reason) return {row.health, row.reason, !row.any_override && row.override_mode != Override::Auto};
        if (!usable) return {row.health, link_problem(wan, w.inputs, f).text};
        std::string fallback = probes_up ? "probes answered" : "no probe answers yet";
        return {row.health, h.probe_reason.empty() ? fallback : h.probe_reason};
    }
    return {Health::Down, "no rule decides"};  // unreachable: the last two rows cover the rest
}

// ---- transitions ----

bool carries(const WanConfig& wan, Family f) { return f == Family::V4 || wan.ipv6; }

// In an HA pair, a WAN whose link this router lost is the pair's to fail over: keepalived moves
// the addresses to the other router, and conntrackd has already copied these connections there.
// conntrackd copies deletions too, so a flush here would delete them on the other router as
// well (seen in the lab: one WAN's connections lost in a takeover). They are kept.
bool kept_for_pair(const State& s, const WanState& w, Family f) {
    return s.config.ha_pair && !w.inputs.link_usable(f);
}

void push_flush(State& s, const WanConfig& wan, const WanState& w, Family f) {
    if (s.config.flush_conntrack && !kept_for_pair(s, w, f)) s.pending_flushes.push_back({wan.mark, wan.name, f});
}

// " for IPv6": a dual-stack WAN's lines say which family; an IPv4-only WAN's read as they always did.
std::string for_family(const WanConfig& wan, Family f) {
    return wan.ipv6 ? " for " + std::string(family_label(f)) : "";
}

// A failover is a wan-down or wan-up event; what an operator's `set` made is an event of its own
// kind (docs/design.md, Journal), so that `journalctl MESSAGE_ID=<wan-down>` lists failovers only.
Announcement wan_announcement(const WanConfig& wan, const FamilyHealth& h, Family f, bool by_operator) {
    bool up = h.health == Health::Up;
    std::string state(health_name(h.health));
    std::optional<long> rtt_us;
    if (h.figures.rtt_ms) rtt_us = long(*h.figures.rtt_ms * 1000);
    const char* id = by_operator ? kMessageOperatorSet : up ? kMessageWanUp : kMessageWanDown;
    const char* kind = by_operator ? "operator-set" : up ? "wan-up" : "wan-down";
    LogEvent e{id, kind, wan.name, wan.interface, state, h.reason, rtt_us, h.figures.loss_pct, std::string(family_name(f))};
    return {by_operator ? Level::Notice : up ? Level::Notice : Level::Warning, e,
            "WAN " + wan.name + " (" + wan.interface + ") is " + state + for_family(wan, f) + ": " + h.reason};
}

void set_health(State& s, size_t i, Family f, const Verdict& v, WallTime now, Effects& fx) {
    FamilyHealth& h = s.wans[i].of(f);
    const WanConfig& wan = s.config.wans[i];
    bool first = !h.decided;
    h.decided = true;
    if (h.health == v.health && (!first || s.ready)) {
        h.reason = v.reason;
        return;
    }
    bool was_up = h.health == Health::Up;
    h.health = v.health;
    h.reason = v.reason;
    h.since = now;
    if (first && !s.ready) {
        fx.logs.push_back({Level::Info, wan.name + " (" + wan.interface + ") starts " +
                                            std::string(health_name(v.health)) + for_family(wan, f) + ": " + v.reason});
        return;
    }
    ++h.transitions;
    // What an operator's set decided is an operator event; what the link or the probes decide
    // (also when `auto` hands a WAN back) is a failover.
    s.pending_announcements.push_back(wan_announcement(wan, h, f, s.operator_cause && v.by_operator));
    // Disabled from down too: with every WAN down it was still balanced over, and the operator
    // cuts it off from everything.
    // Draining keeps what is open: that is the point of it.
    if ((was_up || v.health == Health::Disabled) && v.health != Health::Up && v.health != Health::Draining) {
        push_flush(s, wan, s.wans[i], f);
        if (s.config.flush_conntrack && kept_for_pair(s, s.wans[i], f))
            fx.logs.push_back({Level::Info, wan.name + ": connections kept" + for_family(wan, f) +
                                                " for the other router of the HA pair (its link is lost here, and "
                                                "conntrackd would delete them there too)"});
    }
}

void check_all_down(State& s, Family f) {
    if (f == Family::V6 && !s.config.any_ipv6()) {
        s.all_down[size_t(f)] = false;
        return;
    }
    ActiveSet active = active_wans(s.config, desired_inputs(s), f);
    if (active.all_down && !s.all_down[size_t(f)] && !s.config.wans.empty()) {
        bool all_disabled = std::all_of(s.wans.begin(), s.wans.end(),
                                        [](const WanState& w) { return w.health() == Health::Disabled; });
        std::string fallback =
            !active.wans.empty() ? "balancing over the " + std::to_string(active.wans.size()) + " WANs whose link is up"
            : all_disabled       ? "every WAN is disabled by the operator: LAN traffic has no way out"
                                 : "no usable link either: LAN traffic has no way out";
        std::string which = s.config.any_ipv6() ? " for " + std::string(family_label(f)) : "";
        LogEvent e{kMessageAllDown, "all-down", "", "", "down", "no WAN is healthy", {}, {}, std::string(family_name(f))};
        s.pending_announcements.push_back({Level::Critical, e, "every WAN is down" + which + "; " + fallback});
    }
    s.all_down[size_t(f)] = active.all_down;
}

void decide(State& s, WallTime now, Effects& fx) {
    for (Family f : kFamilies) {
        for (size_t i = 0; i < s.wans.size(); ++i)
            if (carries(s.config.wans[i], f)) set_health(s, i, f, decide_one(s.config.wans[i], s.wans[i], f), now, fx);
        check_all_down(s, f);
    }
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
    if (wan.ipv6) {  // a WAN without gateway6 keeps its IPv6 inputs unset: they change nothing
        next.has_address6 = f.has_address6;
        next.gateway6 = wan.gateway6 ? wan.gateway6 : f.auto_gateway6;
    }
    return next;
}

void log_auto_gateways(const WanConfig& wan, const WanInputs& was, const WanInputs& next, Effects& fx) {
    if (!wan.gateway && next.gateway && next.gateway != was.gateway)
        fx.logs.push_back({Level::Info, wan.name + ": gateway on " + wan.interface + " is now " +
                                            next.gateway->str() + " (auto)"});
    if (wan.ipv6 && !wan.gateway6 && next.gateway6 && next.gateway6 != was.gateway6)
        fx.logs.push_back({Level::Info, wan.name + ": IPv6 gateway on " + wan.interface + " is now " +
                                            next.gateway6->str() + " (auto, from router advertisements)"});
}

// One family's machine follows the link: it starts with it, goes down when it is lost and
// probes again when it is back.
void follow_family(State& s, const WanConfig& wan, WanState& w, Family f, bool was_usable, bool usable) {
    FamilyHealth& h = w.of(f);
    if (!h.seen) {
        // Optimistic start: a usable link starts up so a restart never drains traffic; the
        // probes take it down within down_after rounds if it is dead.
        h.machine = HealthMachine(usable ? ProbeState::Up : ProbeState::Down);
        h.probe_reason = usable ? "link up, probing" : "";
        h.seen = true;
    } else if (was_usable && !usable) {
        if (auto t = h.machine.on_event(HealthEvent::LinkLost, wan.probe)) h.probe_reason = t->reason;
        // Also when the WAN was already down: with every WAN down it was still balanced over,
        // and its connections must now re-establish on a link that is left.
        push_flush(s, wan, w, f);
    } else if (!was_usable && usable) {
        h.machine.on_event(HealthEvent::LinkBack, wan.probe);
        h.probe_reason = "link back, probing";
    }
}

void follow_link(State& s, size_t i, WanInputs next, Effects& fx) {
    const WanConfig& wan = s.config.wans[i];
    WanState& w = s.wans[i];
    log_auto_gateways(wan, w.inputs, next, fx);
    if (next != w.inputs) fx.reconcile = true;
    WanInputs was = std::exchange(w.inputs, std::move(next));
    for (Family f : kFamilies)
        if (carries(wan, f)) follow_family(s, wan, w, f, was.link_usable(f), w.inputs.link_usable(f));
}

void on(State& s, const KernelChanged& e, WallTime now, Effects& fx) {
    for (size_t i = 0; i < s.wans.size(); ++i)
        follow_link(s, i, inputs_from(s.config.wans[i], e.links), fx);
    decide(s, now, fx);
}

// A round that changed nothing: how the path is now, and how far the machine is from turning.
std::string current_reason(const HealthMachine& m, const ProbeRound& e, const ProbeConfig& probe) {
    if (e.success)
        return m.state() == ProbeState::Up
                   ? e.detail
                   : e.detail + " (" + std::to_string(m.consecutive_ok()) + " of the " +
                         std::to_string(probe.up_after) + " good rounds in a row that bring it back)";
    if (m.state() == ProbeState::Down) return e.detail;
    return "a probe round failed (" + std::to_string(m.consecutive_failed()) + " of the " +
           std::to_string(probe.down_after) + " in a row that take it down): " + e.detail;
}

void on(State& s, const ProbeRound& e, WallTime now, Effects& fx) {
    auto i = find_wan(s, e.wan);
    if (!i || !carries(s.config.wans[*i], e.family)) return;  // a round of what a reload removed
    WanState& w = s.wans[*i];
    FamilyHealth& h = w.of(e.family);
    h.figures = e.figures;
    if (!w.inputs.link_usable(e.family)) return;  // the link decides while it is down
    const ProbeConfig& probe = s.config.wans[*i].probe;
    auto t = h.machine.on_event(e.success ? HealthEvent::RoundOk : HealthEvent::RoundFailed, probe);
    // What takes it down is said as it happens; after that the reason says how the path is now.
    if (!t) {  // only this family's reason changes: no other WAN needs deciding
        h.probe_reason = current_reason(h.machine, e, probe);
        set_health(s, *i, e.family, decide_one(s.config.wans[*i], w, e.family), now, fx);
        return;
    }
    h.probe_reason = t->reason;
    if (!e.success && !e.detail.empty()) h.probe_reason += ": " + e.detail;  // shown inside parentheses: none of its own
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
    fx.logs.push_back({Level::Notice, "operator set " + e.wan + " to " + std::string(override_name(e.mode)) +
                                          (e.why.empty() ? "" : " (" + e.why + ")")});
    s.operator_cause = true;
    decide(s, now, fx);
    s.operator_cause = false;
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
    for (size_t i = 0; i < s.wans.size(); ++i) {
        auto j = find_wan(old, s.config.wans[i].name);
        if (!j) continue;
        s.wans[i] = old.wans[*j];
        // IPv6 newly carried (or no longer): its health starts afresh from the next kernel facts.
        if (old.config.wans[*j].ipv6 != s.config.wans[i].ipv6) {
            FamilyHealth fresh;
            fresh.since = now;
            s.wans[i].of(Family::V6) = fresh;
        }
    }
    // Connections marked for a WAN that is gone, or whose mark or interface changed, can no
    // longer be routed the way they started: delete them so they re-establish.
    for (const WanConfig& was : old.config.wans) {
        auto kept = std::find_if(s.config.wans.begin(), s.config.wans.end(), [&](const WanConfig& w) {
            return w.name == was.name && w.mark == was.mark && w.interface == was.interface;
        });
        if (kept != s.config.wans.end()) continue;
        fx.notes.push_back(was.name + " removed or renumbered");
        if (old.config.flush_conntrack)
            for (Family f : kFamilies)
                if (carries(was, f)) s.pending_flushes.push_back({was.mark, was.name, f});
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
    // Each mark and family once, in the order decided: the same WAN may have been flushed for two reasons.
    for (Flush& f : s.pending_flushes) {
        bool seen = std::any_of(fx.flushes.begin(), fx.flushes.end(),
                                [&](const Flush& g) { return g.mark == f.mark && g.family == f.family; });
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

LinkProblem link_problem(const WanConfig& wan, const WanInputs& in, Family family) {
    if (in.ifindex == 0) return {"absent", "interface " + wan.interface + " does not exist"};
    if (!in.admin_up) return {"admin-down", "interface " + wan.interface + " is administratively down"};
    if (!in.carrier) return {"no-carrier", "no carrier on " + wan.interface};
    if (family == Family::V6) {
        if (!in.has_address6) return {"no-address", "no global IPv6 address on " + wan.interface};
        if (!in.gateway6 && !in.point_to_point)
            return {"no-gateway", "no IPv6 gateway known on " + wan.interface + " (auto: no router advertisement yet)"};
        return {"up", ""};
    }
    if (!in.has_address) return {"no-address", "no IPv4 address on " + wan.interface};
    if (!in.gateway && !in.point_to_point) return {"no-gateway", "no gateway known on " + wan.interface + " (auto)"};
    return {"up", ""};
}

State initial_state(Config config, WallTime now) {
    State s;
    s.config = std::move(config);
    s.wans.resize(s.config.wans.size());
    for (auto& w : s.wans)
        for (auto& h : w.families) h.since = now;
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
        // Kept once, in WanState; build_desired reads it here.
        inputs.back().health = w.of(Family::V4).health;
        inputs.back().health6 = w.of(Family::V6).health;
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
    std::string out;
    for (Family f : kFamilies) {
        if (f == Family::V6 && !state.config.any_ipv6()) break;
        unsigned up = 0, carried = 0;
        std::string names;
        for (size_t i = 0; i < state.wans.size(); ++i) {
            if (!carries(state.config.wans[i], f)) continue;
            ++carried;
            if (state.wans[i].of(f).health != Health::Up) continue;
            ++up;
            names += (names.empty() ? ": " : ", ") + state.config.wans[i].name;
        }
        if (f == Family::V4) out = std::to_string(up) + "/" + std::to_string(carried) + " WANs up" + names;
        else out += "; IPv6 " + std::to_string(up) + "/" + std::to_string(carried) + " up" + names;
    }
    return out;
}

}  // namespace wb
