// The prober: per probed path (a WAN's IPv4 or IPv6) its transports (one per probe kind in use),
// a round timer that sends one probe per target, and a judge timer that declares probes lost at
// their adaptive deadlines and reports finished rounds.
// Rounds may overlap; they are reported strictly in order, each as soon as it and all earlier
// rounds are finished. Everything is judged on the judge timer, never inside a transport's
// callback: the round callback may reconfigure or remove the path, and with it the transport.
#include "probe/prober.hpp"

#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <random>
#include <set>
#include <utility>

#include "base/event_ptr.hpp"
#include "base/format.hpp"
#include "probe/rtt.hpp"
#include "probe/transport.hpp"

namespace wb {
namespace {

// Deadlines are tens of milliseconds and up; 1 ms lets sd-event coalesce wake-ups without
// distorting them.
constexpr Usec kTimerAccuracyUsec = 1000;
// TCP's srtt gain (RFC 6298): the path's RTT as status shows it.

Usec to_usec(std::chrono::milliseconds ms) { return static_cast<Usec>(ms.count()) * 1000u; }

enum class Fate { Outstanding, Answered, Lost, NotSent };

struct Probe {
    size_t target = 0;  // index into the spec's targets
    uint64_t token = 0;
    Usec sent_at = 0;
    Usec deadline = 0;  // absolute: the target's adaptive deadline when sent, or the ceiling
    Usec rtt = 0;
    Fate fate = Fate::Outstanding;
};

struct Round {
    uint64_t number = 0;
    Usec ceiling = 0;  // sent + timeout: the longest any probe of it may take
    Usec deadline = 0;  // the longest adaptive deadline its probes were given (relative)
    unsigned min_targets_up = 1;
    bool confirmation = false;
    std::optional<uint64_t> replies_at_start;
    bool traffic_checked = false, traffic_alive = false;
    std::vector<Probe> probes;
    std::string problem;

    bool finished() const {
        return std::none_of(probes.begin(), probes.end(), [](const Probe& p) { return p.fate == Fate::Outstanding; });
    }
};

// A probe judged lost whose answer may still come: it still teaches the target's RTT.
struct Late {
    uint64_t token = 0;
    size_t target = 0;
    ProbeKind kind = ProbeKind::Icmp;
    Usec sent_at = 0, until = 0;
};

struct TargetState {
    RttEstimator rtt;
    std::deque<bool> window;  // lost? for the last kLossWindow probes
    uint64_t sent = 0, lost = 0;
    std::optional<Usec> last_answer;
};

}  // namespace

struct Prober::Impl {
    // One probed path: one family of one WAN.
    struct Wan {
        Impl* impl = nullptr;
        uint64_t serial = 0;  // tells a path apart from a re-created one of the same key
        ProbeKey key;
        ProbeSpec spec;
        uint16_t identifier = 0;
        uint64_t rounds_started = 0;
        Usec last_round_at = 0;  // when the round timer last fired (its schedule, not the delay)
        bool paused = false;
        bool suspect = false;       // a confirmation burst is running
        unsigned failed_streak = 0;  // reported rounds failed in a row
        std::deque<Round> rounds;  // started, not yet reported; oldest first
        std::vector<TargetState> targets;  // as spec.targets
        std::vector<Late> late;

        struct RoundFigures {
            unsigned probes = 0, lost = 0, answered = 0;
            Usec rtt_sum = 0;  // of the answered ones
        };
        std::deque<RoundFigures> recent;  // the last kStatsRounds reported rounds, oldest first
        uint64_t sent = 0, lost = 0;

        std::map<ProbeKind, std::unique_ptr<ProbeTransport>> transports;
        SourcePtr round_timer;
        SourcePtr judge_timer;
    };

    EventPtr event;
    RoundCallback callback;
    RepliesFn replies;
    std::map<ProbeKey, std::unique_ptr<Wan>> wans;
    uint64_t next_serial = 1;
    uint64_t next_token = 1;
    uint16_t next_identifier = 0;
    Status timer_status;  // the last failure to arm a timer (ok once one succeeds again)

    uint16_t allocate_identifier();
    void arm(sd_event_source* timer, Usec at, bool enabled);
    Usec floor(const Wan& w) const { return std::min(to_usec(kDeadlineFloor), to_usec(w.spec.timeout)); }
    Expected<ProbeTransport*> transport(Wan& w, ProbeKind kind);
    void start_round(Wan& w, bool confirmation);
    void check_traffic(Wan& w, Round& r);
    void on_answer(Wan& w, const ProbeAnswer& answer);
    void judge(Wan& w);
    void arm_judge(Wan& w, std::optional<Usec> at = std::nullopt);
    bool deliver(Wan& w);
    RoundOutcome account(Wan& w, const Round& r);
    void after_outcome(Wan& w, const RoundOutcome& outcome);
    void reset_targets(Wan& w, const ProbeSpec& old);

    static int on_round_timer(sd_event_source*, uint64_t usec, void* userdata);
    static int on_judge(sd_event_source*, uint64_t usec, void* userdata);
};

uint16_t Prober::Impl::allocate_identifier() {
    // Unique among this process's paths (a WAN's IPv4 and IPv6 too); the random start keeps two daemons (or a daemon and a
    // test) in one namespace from picking the same identifiers.
    std::set<uint16_t> used;
    for (const auto& [key, w] : wans) used.insert(w->identifier);
    do ++next_identifier;
    while (next_identifier == 0 || used.count(next_identifier));
    return next_identifier;
}

void Prober::Impl::arm(sd_event_source* timer, Usec at, bool enabled) {
    int r = enabled ? sd_event_source_set_time(timer, at) : 0;
    if (r >= 0) r = sd_event_source_set_enabled(timer, enabled ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
    timer_status = r < 0 ? Status::fail(-r, "Could not arm a probe timer: " + errno_text(-r)) : Status::ok();
}

// The path's transport for `kind`, opened on first use. A missing interface is retried at each
// round, so an interface that (re)appears is picked up without the daemon having to say so.
Expected<ProbeTransport*> Prober::Impl::transport(Wan& w, ProbeKind kind) {
    auto it = w.transports.find(kind);
    if (it != w.transports.end()) return it->second.get();
    TransportSetup setup{w.spec.interface, w.spec.mark, w.key.family, w.identifier};
    Wan* path = &w;
    auto opened = open_transport(kind, event.get(), setup, [path](const ProbeAnswer& a) { path->impl->on_answer(*path, a); });
    if (!opened) return opened.error();
    ProbeTransport* raw = opened->get();
    w.transports.emplace(kind, std::move(*opened));
    return raw;
}

void Prober::Impl::start_round(Wan& w, bool confirmation) {
    Round round;
    round.number = ++w.rounds_started;
    round.min_targets_up = w.spec.min_targets_up;
    round.confirmation = confirmation;
    Usec now = monotonic_usec();
    round.ceiling = now + to_usec(w.spec.timeout);
    if (replies) round.replies_at_start = replies(w.key);
    if (w.spec.targets.empty()) round.problem = "no probe targets (gateway unknown)";

    bool interface_gone = false;
    for (size_t i = 0; i < w.spec.targets.size(); ++i) {
        const ProbeTarget& target = w.spec.targets[i];
        Probe& probe = round.probes.emplace_back(Probe{i, next_token++});
        auto t = transport(w, target.kind);
        if (!t) {
            probe.fate = Fate::NotSent;
            if (round.problem.empty()) round.problem = t.error().message;
            continue;
        }
        probe.sent_at = monotonic_usec();
        Usec allowed = w.targets[i].rtt.deadline(floor(w), to_usec(w.spec.timeout));
        probe.deadline = probe.sent_at + allowed;
        round.deadline = std::max(round.deadline, allowed);
        if (int err = (*t)->send(target, probe.token)) {
            probe.fate = Fate::NotSent;
            if (round.problem.empty())
                round.problem = "sendto " + describe(target) + " via " + w.spec.interface + ": " + errno_text(err);
            // The bound ifindex no longer exists (ip_route_output_key_hash_rcu: -ENODEV).
            if (err == ENODEV || err == ENXIO) interface_gone = true;
        }
    }
    // Replies to earlier rounds cannot arrive on a vanished interface; they will time out.
    if (interface_gone) w.transports.clear();
    w.rounds.push_back(std::move(round));
    arm_judge(w);
}

// Whether the WAN's connections got replies since the round went out. If they did, its probes
// are late, not lost, until the ceiling: a saturated link delays probes and traffic alike, and
// the traffic coming back proves the path works.
void Prober::Impl::check_traffic(Wan& w, Round& r) {
    if (r.traffic_checked) return;
    r.traffic_checked = true;
    if (!replies || !r.replies_at_start) return;
    std::optional<uint64_t> now = replies(w.key);
    // A counter that went down was rewritten (a reload re-created its chain): no evidence.
    if (!now || *now <= *r.replies_at_start) return;
    r.traffic_alive = true;
    for (Probe& p : r.probes)
        if (p.fate == Fate::Outstanding) p.deadline = r.ceiling;
}

void Prober::Impl::on_answer(Wan& w, const ProbeAnswer& answer) {
    auto learn = [&](size_t target, Usec sent_at) {
        Usec rtt = answer.at > sent_at ? answer.at - sent_at : 1;
        w.targets[target].rtt.sample(rtt);
        w.targets[target].last_answer = answer.at;
        return rtt;
    };
    for (Round& r : w.rounds)
        for (Probe& p : r.probes) {
            if (p.token != answer.token || p.fate != Fate::Outstanding) continue;
            if (answer.at > p.deadline) check_traffic(w, r);
            p.rtt = learn(p.target, p.sent_at);
            // The judge timer may not have run yet; an answer after its deadline is still lost.
            p.fate = answer.at <= p.deadline ? Fate::Answered : Fate::Lost;
            arm_judge(w, monotonic_usec());
            return;
        }
    auto late = std::find_if(w.late.begin(), w.late.end(), [&](const Late& l) { return l.token == answer.token; });
    if (late == w.late.end()) return;
    learn(late->target, late->sent_at);
    w.late.erase(late);
}

void Prober::Impl::judge(Wan& w) {
    // Answers queued while the daemon was busy carry their arrival time: read them first.
    for (auto& [kind, t] : w.transports) t->poll();
    Usec now = monotonic_usec();
    for (Round& r : w.rounds)
        for (Probe& p : r.probes) {
            if (p.fate != Fate::Outstanding || p.deadline > now) continue;
            check_traffic(w, r);
            if (p.deadline > now) continue;
            p.fate = Fate::Lost;
            w.late.push_back(Late{p.token, p.target, w.spec.targets[p.target].kind, p.sent_at, r.ceiling});
        }
    std::erase_if(w.late, [&](const Late& l) {
        if (l.until > now) return false;
        auto t = w.transports.find(l.kind);
        if (t != w.transports.end()) t->second->forget(l.token);
        return true;
    });
    arm_judge(w);
}

void Prober::Impl::arm_judge(Wan& w, std::optional<Usec> at) {
    std::optional<Usec> earliest = at;
    auto consider = [&](Usec t) {
        if (!earliest || t < *earliest) earliest = t;
    };
    // Only the oldest round can be reported (in order): a finished one behind it waits.
    if (!w.rounds.empty() && w.rounds.front().finished()) consider(0);
    for (const Round& r : w.rounds) {
        for (const Probe& p : r.probes)
            if (p.fate == Fate::Outstanding) consider(p.deadline);
    }
    for (const Late& l : w.late) consider(l.until);
    arm(w.judge_timer.get(), earliest.value_or(0), earliest.has_value());
}

RoundOutcome Prober::Impl::account(Wan& w, const Round& r) {
    RoundOutcome outcome;
    outcome.round = r.number;
    outcome.problem = r.problem;
    outcome.confirmation = r.confirmation;
    outcome.traffic_alive = r.traffic_alive;
    // With traffic coming back the probes had until the ceiling.
    outcome.deadline = std::chrono::microseconds(r.traffic_alive ? to_usec(w.spec.timeout) : r.deadline);
    Usec rtt_sum = 0;
    for (const Probe& p : r.probes) {
        bool lost = p.fate != Fate::Answered;
        TargetState& t = w.targets[p.target];
        ++w.sent;
        w.lost += lost;
        ++t.sent;
        t.lost += lost;
        t.window.push_back(lost);
        if (t.window.size() > kLossWindow) t.window.pop_front();
        outcome.sent += p.fate != Fate::NotSent;
        if (p.fate == Fate::Answered) {
            ++outcome.answered;
            rtt_sum += p.rtt;
        }
    }
    if (outcome.answered) outcome.rtt = std::chrono::microseconds(rtt_sum / outcome.answered);
    w.recent.push_back({unsigned(r.probes.size()), unsigned(r.probes.size()) - outcome.answered, outcome.answered, rtt_sum});
    if (w.recent.size() > kStatsRounds) w.recent.pop_front();
    // More required answers than targets could never succeed; ask for all of them instead.
    unsigned required = std::clamp<unsigned>(r.min_targets_up, 1, std::max<size_t>(r.probes.size(), 1));
    outcome.success = !r.probes.empty() && outcome.answered >= required;
    return outcome;
}

// A failed round that sent its probes makes the path suspect: the next round goes out at once,
// and so on (each lasting its adaptive deadline) until one succeeds or the WAN is down.
void Prober::Impl::after_outcome(Wan& w, const RoundOutcome& outcome) {
    uint64_t now = monotonic_usec();
    if (outcome.success) {
        w.failed_streak = 0;
        if (w.suspect) {
            w.suspect = false;
            arm(w.round_timer.get(), now + to_usec(w.spec.interval), !w.paused);
        }
        return;
    }
    ++w.failed_streak;
    bool confirm = outcome.sent > 0 && !w.paused && w.failed_streak < std::max(w.spec.down_after, 1u);
    if (confirm) {
        w.suspect = true;
        arm(w.round_timer.get(), now, true);
    } else if (w.suspect) {
        w.suspect = false;
        arm(w.round_timer.get(), now + to_usec(w.spec.interval), !w.paused);
    }
}

// Reports every finished round at the head of the queue. The callback may reconfigure or remove
// this path; returns false when `w` no longer exists, so callers stop touching it.
bool Prober::Impl::deliver(Wan& w) {
    const ProbeKey key = w.key;
    const uint64_t serial = w.serial;
    Impl* self = w.impl;
    Wan* current = &w;
    while (!current->rounds.empty() && current->rounds.front().finished()) {
        Round round = std::move(current->rounds.front());
        current->rounds.pop_front();
        RoundOutcome outcome = self->account(*current, round);
        self->after_outcome(*current, outcome);
        self->callback(key, outcome);
        auto it = self->wans.find(key);
        if (it == self->wans.end() || it->second->serial != serial) return false;
        current = it->second.get();
    }
    return true;
}

int Prober::Impl::on_round_timer(sd_event_source*, uint64_t usec, void* userdata) {
    Wan& w = *static_cast<Wan*>(userdata);
    // Keep the grid (no drift from dispatch delay) unless a whole interval was missed. During a
    // burst this is only the fallback: the round's judgement pulls the next one forward.
    Usec interval = to_usec(w.spec.interval);
    Usec next = usec + interval;
    Usec now = monotonic_usec();
    if (next <= now) next = now + interval;
    w.last_round_at = usec;
    w.impl->arm(w.round_timer.get(), next, !w.paused);
    w.impl->start_round(w, w.suspect);
    return 0;
}

int Prober::Impl::on_judge(sd_event_source*, uint64_t, void* userdata) {
    Wan& w = *static_cast<Wan*>(userdata);
    w.impl->judge(w);
    w.impl->deliver(w);
    return 0;
}

Expected<std::unique_ptr<Prober>> Prober::create(sd_event* event, RoundCallback callback, RepliesFn replies) {
    if (!event) return Status::fail(EINVAL, "Prober needs an event loop");
    std::unique_ptr<Prober> prober(new Prober());
    prober->impl_ = std::make_unique<Impl>();
    prober->impl_->event.reset(sd_event_ref(event));
    prober->impl_->callback = std::move(callback);
    prober->impl_->replies = std::move(replies);
    prober->impl_->next_identifier = static_cast<uint16_t>(std::random_device{}());
    return prober;
}

Prober::~Prober() = default;

// Keeps what was learnt about targets that stay; new ones start unknown.
void Prober::Impl::reset_targets(Wan& w, const ProbeSpec& old) {
    std::vector<TargetState> states(w.spec.targets.size());
    for (size_t i = 0; i < w.spec.targets.size(); ++i)
        for (size_t j = 0; j < old.targets.size() && j < w.targets.size(); ++j)
            if (old.targets[j] == w.spec.targets[i]) states[i] = w.targets[j];
    w.targets = std::move(states);
    // Rounds in flight refer to the old targets by index.
    w.rounds.clear();
    w.late.clear();
}

Status Prober::configure(const ProbeKey& key, const ProbeSpec& spec) {
    Impl& impl = *impl_;
    // "charter" for IPv4 as ever, "charter (IPv6)" for IPv6.
    const std::string wan = key.family == Family::V4 ? key.wan : key.wan + " (" + std::string(family_label(key.family)) + ")";
    if (spec.interface.empty() || spec.interface.size() >= IFNAMSIZ)
        return Status::fail(EINVAL, "Cannot probe " + wan + ": \"" + spec.interface + "\" is not an interface name");
    if (spec.interval.count() <= 0 || spec.timeout.count() <= 0)
        return Status::fail(EINVAL, "Cannot probe " + wan + ": interval and timeout must be positive");
    for (const ProbeTarget& target : spec.targets)
        if (family_of(target.address) != key.family)
            return Status::fail(EINVAL, "Cannot probe " + wan + ": target " + describe(target) + " is not an " +
                                            std::string(family_label(key.family)) + " address");

    uint64_t loop_now = 0;
    sd_event_now(impl.event.get(), CLOCK_MONOTONIC, &loop_now);

    auto it = impl.wans.find(key);
    if (it != impl.wans.end()) {
        Impl::Wan& w = *it->second;
        if (w.spec == spec) return Status::ok();
        const bool rebind = w.spec.interface != spec.interface || w.spec.mark != spec.mark;
        const bool reschedule = w.spec.interval != spec.interval;
        ProbeSpec old = std::move(w.spec);
        w.spec = spec;
        // Rounds in flight went out of the old interface (their answers would not reach the new
        // sockets) or to the old targets: they are dropped rather than reported as failures.
        if (rebind) w.transports.clear();
        if (rebind || old.targets != spec.targets) impl.reset_targets(w, old);
        impl.arm_judge(w);
        if (reschedule && !w.suspect)
            impl.arm(w.round_timer.get(), std::max<Usec>(w.last_round_at + to_usec(spec.interval), loop_now), !w.paused);
        return Status::ok();
    }

    auto owned = std::make_unique<Impl::Wan>();
    Impl::Wan& w = *owned;
    w.impl = &impl;
    w.serial = impl.next_serial++;
    w.key = key;
    w.spec = spec;
    w.targets.resize(spec.targets.size());
    w.identifier = impl.allocate_identifier();
    sd_event_source* source = nullptr;
    if (int r = sd_event_add_time(impl.event.get(), &source, CLOCK_MONOTONIC, loop_now, kTimerAccuracyUsec,
                                  Impl::on_round_timer, &w);
        r < 0)
        return Status::fail(-r, "Could not add the probe timer for " + wan + ": " + errno_text(-r));
    w.round_timer.reset(source);
    if (int r = sd_event_add_time(impl.event.get(), &source, CLOCK_MONOTONIC, loop_now, kTimerAccuracyUsec,
                                  Impl::on_judge, &w);
        r < 0)
        return Status::fail(-r, "Could not add the probe deadline timer for " + wan + ": " + errno_text(-r));
    w.judge_timer.reset(source);
    if (int r = sd_event_source_set_enabled(source, SD_EVENT_OFF); r < 0)
        return Status::fail(-r, "Could not add the probe deadline timer for " + wan + ": " + errno_text(-r));
    impl.wans.emplace(key, std::move(owned));

    // A missing interface is normal (PPP, USB modems): rounds fail with the reason and retry
    // the bind each round. Anything else (no CAP_NET_RAW) is worth saying now, too.
    for (const ProbeTarget& target : spec.targets) {
        auto t = impl.transport(w, target.kind);
        if (!t && t.error().err != ENODEV) return t.error();
    }
    return Status::ok();
}

void Prober::retain(const std::vector<ProbeKey>& keys) {
    std::set<ProbeKey> keep(keys.begin(), keys.end());
    std::erase_if(impl_->wans, [&](const auto& entry) { return !keep.count(entry.first); });
}

void Prober::pause(const ProbeKey& key, bool paused) {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end() || it->second->paused == paused) return;
    Impl::Wan& w = *it->second;
    w.paused = paused;
    w.suspect = false;
    uint64_t loop_now = 0;
    sd_event_now(impl_->event.get(), CLOCK_MONOTONIC, &loop_now);
    // Resuming starts a round at once: the carrier just came back and the daemon wants to know.
    impl_->arm(w.round_timer.get(), loop_now, !paused);
}

bool Prober::suspect(const ProbeKey& key) {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end()) return false;
    Impl::Wan& w = *it->second;
    // Already confirming, already failing (rounds are judged anyway), or nothing to learn.
    if (w.paused || w.suspect || w.failed_streak > 0 || w.spec.targets.empty()) return false;
    w.suspect = true;
    impl_->arm(w.round_timer.get(), monotonic_usec(), true);
    return true;
}

std::chrono::microseconds Prober::deadline(const ProbeKey& key) const {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end()) return std::chrono::microseconds{0};
    const Impl::Wan& w = *it->second;
    Usec longest = 0;
    for (const TargetState& t : w.targets)
        longest = std::max(longest, t.rtt.deadline(impl_->floor(w), to_usec(w.spec.timeout)));
    return std::chrono::microseconds(longest ? longest : to_usec(w.spec.timeout));
}

Status Prober::timer_status() const { return impl_->timer_status; }

namespace {

double loss_pct(const std::deque<bool>& window) {
    if (window.empty()) return 0;
    return 100.0 * static_cast<double>(std::count(window.begin(), window.end(), true)) /
           static_cast<double>(window.size());
}

std::optional<double> ms(std::optional<uint64_t> usec) {
    if (!usec) return std::nullopt;
    return static_cast<double>(*usec) / 1000.0;
}

}  // namespace

ProbeStats Prober::stats(const ProbeKey& key) const {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end()) return {};
    const Impl::Wan& w = *it->second;
    ProbeStats stats;
    // Over the last kStatsRounds rounds; no RTT while the last round got no answer at all, nor
    // while the path is paused (its link is down: nothing is being answered).
    unsigned probes = 0, lost = 0, answered = 0;
    Usec rtt_sum = 0;
    for (const auto& f : w.recent) {
        probes += f.probes;
        lost += f.lost;
        answered += f.answered;
        rtt_sum += f.rtt_sum;
    }
    if (answered && w.recent.back().answered && !w.paused) stats.rtt_ms = static_cast<double>(rtt_sum) / answered / 1000.0;
    stats.loss_pct = probes ? 100.0 * lost / probes : 0;
    stats.sent = w.sent;
    stats.lost = w.lost;
    stats.suspect = w.suspect;
    Usec now = monotonic_usec();
    for (size_t i = 0; i < w.spec.targets.size() && i < w.targets.size(); ++i) {
        const TargetState& t = w.targets[i];
        TargetStats& out = stats.targets.emplace_back();
        out.target = w.spec.targets[i];
        out.srtt_ms = ms(t.rtt.srtt());
        out.rttvar_ms = ms(t.rtt.rttvar());
        out.loss_pct = loss_pct(t.window);
        out.sent = t.sent;
        out.lost = t.lost;
        if (t.last_answer) out.last_answer_age = std::chrono::microseconds(now > *t.last_answer ? now - *t.last_answer : 0);
        out.deadline = std::chrono::microseconds(t.rtt.deadline(impl_->floor(w), to_usec(w.spec.timeout)));
    }
    return stats;
}

std::optional<uint16_t> Prober::identifier(const ProbeKey& key) const {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end()) return std::nullopt;
    return it->second->identifier;
}

std::vector<ProbeTarget> Prober::targets(const ProbeKey& key) const {
    auto it = impl_->wans.find(key);
    return it == impl_->wans.end() ? std::vector<ProbeTarget>{} : it->second->spec.targets;
}

}  // namespace wb
