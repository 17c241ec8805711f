// Traffic as evidence about a WAN's path (docs/design.md, Detection), both ways:
// - replies to the WAN's own LAN connections, counted by nftables (chain "replies"), tell the
//   prober the path is alive while its probes are merely late;
// - new LAN TCP connections on a WAN that hear nothing back (conntrack events, SynWatch) start a
//   confirmation burst at once instead of at the next scheduled round.
// Neither takes a WAN down: failed probe rounds do.
#include <netinet/in.h>

#include <algorithm>

#include "base/format.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace wb {
namespace {

// One nftables dump answers every path asking within this long (a round starts for each WAN at
// nearly the same time).
constexpr Usec kRepliesCacheUsec = 2000;

}  // namespace

std::optional<uint64_t> Daemon::replies_of(const ProbeKey& key) {
    Usec now = monotonic_usec();
    if (!replies_cache_ || now - replies_cache_->at > kRepliesCacheUsec) {
        auto counts = kernel_ ? kernel_->read_reply_counters() : Expected<std::vector<ReplyCount>>(std::vector<ReplyCount>{});
        report("reply counters", counts ? Status::ok() : counts.error());
        replies_cache_ = RepliesCache{now, counts ? std::move(*counts) : std::vector<ReplyCount>{}, counts.has_value()};
    }
    if (!replies_cache_->ok) return std::nullopt;
    for (const ReplyCount& c : replies_cache_->counts)
        if (c.wan == key.wan && c.family == key.family) return c.packets;
    return std::nullopt;
}

void Daemon::watch_traffic() {
    auto events = ConntrackEvents::open(event_.get(), [this](const CtEvent& e) { on_ct_event(e); });
    if (!events) {
        log(Level::Warning, "Traffic hints are off (" + events.error().message +
                                "): failures are found by probe rounds alone");
        return;
    }
    ct_events_ = std::move(*events);
    sd_event_source* source = nullptr;
    auto on_timer = [](sd_event_source*, uint64_t, void* self) {
        static_cast<Daemon*>(self)->on_syn_timer();
        return 0;
    };
    int r = sd_event_add_time(event_.get(), &source, CLOCK_MONOTONIC, 0, 1000, on_timer, this);
    if (r >= 0) r = sd_event_source_set_enabled(source, SD_EVENT_OFF);
    if (r < 0) {
        log(Level::Warning, "Traffic hints are off (could not add their timer: " + errno_text(-r) + ")");
        ct_events_.reset();
        return;
    }
    syn_timer_.reset(source);
}

// How long a new connection may go without its first reply before it counts against its WAN:
// twice the path's adaptive probe deadline (servers sit beyond the probe targets).
std::chrono::microseconds Daemon::syn_deadline(const ProbeKey& key) const {
    return std::max(2 * prober_->deadline(key), std::chrono::microseconds(kDeadlineFloor) * 2);
}

void Daemon::on_ct_event(const CtEvent& e) {
    if (e.kind != CtEvent::Kind::New) {
        if (e.kind == CtEvent::Kind::Destroy || e.seen_reply) syn_watch_.answered(e.id);
        return;
    }
    if (e.l4proto != IPPROTO_TCP || e.seen_reply) return;
    uint32_t mark = e.mark & state_.config.mark_mask;
    for (const WanConfig& wan : state_.config.wans) {
        if (wan.mark != mark || (e.family == Family::V6 && !wan.ipv6)) continue;
        syn_watch_.opened(ProbeKey{wan.name, e.family}, e.id, monotonic_usec());
        arm_syn_timer();
        return;
    }
}

void Daemon::arm_syn_timer() {
    if (!syn_timer_) return;
    auto due = syn_watch_.next_due([this](const ProbeKey& k) { return syn_deadline(k); });
    int r = due ? sd_event_source_set_time(syn_timer_.get(), *due) : 0;
    if (r >= 0) r = sd_event_source_set_enabled(syn_timer_.get(), due ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
    report("traffic hint timer", r < 0 ? Status::fail(-r, "Could not arm the traffic hint timer: " + errno_text(-r))
                                       : Status::ok());
}

void Daemon::on_syn_timer() {
    Usec now = monotonic_usec();
    auto overdue = syn_watch_.overdue(now, [this](const ProbeKey& k) { return syn_deadline(k); });
    for (const ProbeKey& key : overdue) {
        // One hint per interval at most: a busy LAN talking to slow servers must not turn probing
        // into a flood.
        Usec& last = last_hint_[key];
        auto wan = std::find_if(state_.config.wans.begin(), state_.config.wans.end(),
                                [&](const WanConfig& w) { return w.name == key.wan; });
        if (wan == state_.config.wans.end() ||
            (last && now - last < static_cast<Usec>(wan->probe.interval.count()) * 1000))
            continue;
        if (!prober_->suspect(key)) continue;
        last = now;
        auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(syn_deadline(key)).count();
        std::string family = key.family == Family::V6 ? " (IPv6)" : "";
        log(Level::Info, key.wan + family + ": " + std::to_string(kOverdueConnections) +
                             " new connections got no reply within " + std::to_string(waited) +
                             " ms; confirming with probes now");
    }
    arm_syn_timer();
}

}  // namespace wb
