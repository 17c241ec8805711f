// Operator overrides (`wanbalancectl set WAN up|down|drain|auto`) and a drain's timeout: a WAN
// set to drain takes no new connections while its open ones run out; with --timeout S, once S
// seconds pass with it still drained it is set down, which cuts what is left.
#include <systemd/sd-event.h>

#include "base/format.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace wb {

Reply Daemon::set_override_now(const std::string& wan, Override mode, const std::string& why) {
    Effects fx = dispatch(OverrideRequested{wan, mode, why});
    if (fx.error) return error_reply(*fx.error);
    fx.reconcile = false;  // now: the reply says what the kernel does
    perform(fx);
    reconcile();
    // Kept for the next run: a crash, a watchdog restart or an upgrade keeps a drained WAN drained.
    report("state directory", store_.save_overrides(overrides_of(state_)));
    auto i = find_wan(state_, wan);
    return SetReply{wan, std::string(health_name(state_.wans[*i].health()))};
}

void Daemon::arm_drain_timer(const std::string& wan, unsigned seconds) {
    auto timer = std::make_unique<DrainTimer>();
    timer->daemon = this;
    timer->wan = wan;
    timer->seconds = seconds;
    auto fire = [](sd_event_source*, uint64_t, void* data) {
        auto* t = static_cast<DrainTimer*>(data);
        t->daemon->on_drain_timeout(t->wan, t->seconds);
        return 0;
    };
    sd_event_source* source = nullptr;
    int r = sd_event_add_time_relative(event_.get(), &source, CLOCK_MONOTONIC, uint64_t(seconds) * 1000000, 0, fire,
                                       timer.get());
    if (r < 0) {
        log(Level::Error, wan + ": could not arm the drain's timeout (" + errno_text(-r) +
                              "); it drains until `wanbalancectl set " + wan + " down`");
        return;
    }
    timer->source.reset(source);
    drain_timers_[wan] = std::move(timer);
}

void Daemon::on_drain_timeout(const std::string& wan, unsigned seconds) {
    // The timer's own source is freed with it: take the entry out first, free it after.
    auto node = drain_timers_.extract(wan);
    auto i = find_wan(state_, wan);
    if (!i || state_.wans[*i].override_mode != Override::Drain) return;  // reloaded away, or set since
    set_override_now(wan, Override::Down, "drain timed out after " + std::to_string(seconds) +
                                              " s: the connections left are cut");
}

}  // namespace wb
