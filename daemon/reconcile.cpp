// The core's events in and its effects out: what happened becomes an Event, the core decides,
// and the daemon performs — log lines at once, the kernel through KernelSync, and only then the
// journal events, hooks and conntrack flushes. One deferred reconcile per loop turn.
#include "base/format.hpp"
#include "daemon/daemon.hpp"
#include "daemon/degraded.hpp"
#include "daemon/live_check.hpp"
#include "daemon/log.hpp"
#include "daemon/reconcile_step.hpp"

namespace wb {

Effects Daemon::dispatch(const Event& event) {
    Step s = step(std::move(state_), event, std::chrono::system_clock::now());
    state_ = std::move(s.state);
    return std::move(s.effects);
}

void Daemon::perform(const Effects& fx) {
    for (const LogLine& l : fx.logs) log(l.level, l.message);
    if (fx.replace_table) sync_->forget_table();
    // Announced once the kernel has changed: when the journal says a WAN is down, or a hook
    // runs, the failover is done. Then the dead WAN's connections go, onto the new paths.
    for (const Announcement& a : fx.announcements) {
        log_event(a.level, a.event, a.message);
        hooks_->run(state_.config.hooks_dir, {a.event.kind, a.event.wan, a.event.interface, a.event.state, a.event.family});
    }
    for (const Flush& f : fx.flushes) flush(f);
    if (fx.reconcile) request_reconcile();
}

void Daemon::request_reconcile() {
    int r = sd_event_source_set_enabled(reconcile_source_.get(), SD_EVENT_ONESHOT);
    report("reconcile", r < 0 ? Status::fail(-r, "Could not schedule a reconcile: " + errno_text(-r)) : Status::ok());
}

void Daemon::reconcile() {
    // Whatever asked for a reconcile is served by this one.
    sd_event_source_set_enabled(reconcile_source_.get(), SD_EVENT_OFF);
    Reconciled r = reconcile_step(state_, *sync_, kernel_facts(), std::chrono::system_clock::now());
    for (const LogLine& l : r.seen.logs) log(l.level, l.message);
    for (const auto& [key, status] : r.applied.results) report(key, status);
    update_degraded(r.applied);
    rule_sends_ = std::move(r.rule_sends);
    changes_.nft_ops += r.applied.nft_ops;
    changes_.routes += r.applied.routes_changed();
    changes_.rules += r.applied.rules_changed();
    perform(r.released);
    configure_probes();
    apply_sysctls();
    check_router_advertisements();
    notify_status();
}

KernelFacts Daemon::kernel_facts() const {
    const KernelSnapshot& snap = watch_->snapshot();
    KernelFacts facts;
    for (const WanConfig& wan : state_.config.wans) {
        const LinkState* link = snap.link(wan.interface);
        if (!link) continue;
        LinkFacts f{link->ifindex, link->admin_up, link->carrier, !link->addresses.empty(), link->point_to_point, {}};
        auto gateway = snap.auto_gateways.find(link->ifindex);
        if (gateway != snap.auto_gateways.end()) f.auto_gateway = gateway->second;
        f.has_address6 = !link->addresses6.empty();
        auto gateway6 = snap.auto_gateways6.find(link->ifindex);
        if (gateway6 != snap.auto_gateways6.end()) f.auto_gateway6 = gateway6->second;
        facts[wan.interface] = f;
    }
    return facts;
}

// One family of one WAN: its own targets of that family, else its gateway of that family.
void Daemon::configure_probe(const WanConfig& wan, const WanState& w, Family family, std::vector<ProbeKey>& keys) {
    ProbeKey key{wan.name, family};
    keys.push_back(key);
    ProbeSpec spec;
    spec.interface = wan.interface;
    spec.mark = wan.mark;
    if (family == Family::V4) {
        spec.targets.assign(wan.probe.targets.begin(), wan.probe.targets.end());
        if (spec.targets.empty() && w.inputs.gateway) spec.targets.push_back(icmp_target(*w.inputs.gateway));
    } else {
        spec.targets.assign(wan.probe.targets6.begin(), wan.probe.targets6.end());
        if (spec.targets.empty() && w.inputs.gateway6) spec.targets.push_back(icmp_target(*w.inputs.gateway6));
    }
    spec.interval = wan.probe.interval;
    spec.timeout = wan.probe.timeout;
    spec.min_targets_up = wan.probe.min_targets_up;
    spec.down_after = wan.probe.down_after;
    // An override does not pause probing: `set WAN auto` must hand back to a machine that
    // knows the WAN's health now, not as it was before the override.
    bool can_probe = w.inputs.link_usable(family) && !spec.targets.empty();
    std::string what = family == Family::V4 ? "probe " + wan.name : "IPv6 probe " + wan.name;
    if (!spec.targets.empty()) report(what, prober_->configure(key, spec));
    prober_->pause(key, !can_probe);
}

void Daemon::configure_probes() {
    std::vector<ProbeKey> keys;
    for (size_t i = 0; i < state_.config.wans.size(); ++i) {
        const WanConfig& wan = state_.config.wans[i];
        configure_probe(wan, state_.wans[i], Family::V4, keys);
        if (wan.ipv6) configure_probe(wan, state_.wans[i], Family::V6, keys);
    }
    prober_->retain(keys);
    syn_watch_.retain(keys);
    report("probe timers", prober_->timer_status());
}

// Each WAN that becomes degraded, or whose reason changes, says so once; so does each that
// recovers. The errors themselves were logged by report().
void Daemon::update_degraded(const ApplyReport& applied) {
    auto now = degraded_wans(state_.config, applied);
    for (const auto& [wan, reason] : now) {
        auto was = degraded_.find(wan);
        if (was == degraded_.end() || was->second != reason)
            log(Level::Error, "WAN " + wan + " is degraded: the kernel refused part of what the configuration asks (" +
                                  reason + ")");
    }
    for (const auto& [wan, reason] : degraded_)
        if (!now.count(wan)) log(Level::Notice, "WAN " + wan + " is no longer degraded: the kernel holds what the configuration asks");
    degraded_ = std::move(now);
}

void Daemon::flush(const Flush& f) {
    auto n = kernel_->delete_by_mark(f.family, f.mark, state_.config.mark_mask);
    std::string noun = f.family == Family::V4 ? "connection" : "IPv6 connection";
    if (n)
        log(Level::Info, f.wan + ": flushed " + counted(*n, noun) +
                             (*n == 1 ? " so it re-establishes" : " so they re-establish") + " on a live WAN");
    else
        log(Level::Error, f.wan + ": " + n.error().message);
}

// A WAN whose IPv6 gateway is "auto" learns it from router advertisements, which a forwarding
// router ignores unless accept_ra is 2: said once per WAN in the log, and shown in status.
void Daemon::check_router_advertisements() {
    std::map<std::string, std::string> now;
    for (size_t i = 0; i < state_.config.wans.size(); ++i) {
        const WanConfig& wan = state_.config.wans[i];
        int ifindex = state_.wans[i].inputs.ifindex;
        if (!wan.ipv6 || wan.gateway6 || ifindex == 0) continue;
        auto conf = kernel_->get_ipv6_conf(ifindex);
        if (!conf || conf->accepts_ra()) continue;
        now[wan.name] = "gateway6 is \"auto\" but " + wan.interface + " ignores router advertisements (net.ipv6.conf." +
                        wan.interface + ".accept_ra=" + std::to_string(conf->accept_ra) +
                        (conf->forwarding ? " while forwarding; set it to 2)" : "; set it to 1 or 2)");
    }
    for (const auto& [wan, text] : now) {
        auto was = ra_warnings_.find(wan);
        if (was == ra_warnings_.end() || was->second != text) log(Level::Warning, wan + ": " + text);
    }
    ra_warnings_ = std::move(now);
}

// The live check (docs/design.md, Live check) at start and on reload: each finding is a warning
// in the journal and in status. The neighbour table is asked, not the wire: a gateway that does
// not answer ARP is said by the WAN's reason once its probes fail.
void Daemon::check_live() {
    auto findings = live_check(state_.config, options_.config_path, false);
    report("live check", findings ? Status::ok() : findings.error());
    live_warnings_ = findings ? std::move(*findings) : std::vector<ConfigError>{};
    for (const auto& f : live_warnings_) log(Level::Warning, "live check: " + f.format(options_.config_path));
}

void Daemon::apply_sysctls() {
    // Replies that arrive on a WAN whose nexthop is withdrawn pass strict rp_filter only when
    // the reverse-path lookup sees the restored mark (docs/design.md, kernel facts): src_valid_mark=1.
    bool changed = false;
    for (size_t i = 0; i < state_.config.wans.size(); ++i) {
        const std::string& iface = state_.config.wans[i].interface;
        int ifindex = state_.wans[i].inputs.ifindex;
        auto done = src_valid_mark_set_.find(iface);
        if (ifindex == 0) {
            if (done != src_valid_mark_set_.end()) src_valid_mark_set_.erase(done);
            continue;
        }
        if (done != src_valid_mark_set_.end() && done->second == ifindex) continue;
        auto current = kernel_->get_src_valid_mark(ifindex);
        if (!current) {
            report("src_valid_mark " + iface, current.error());
            continue;
        }
        auto it = sysctls_.find(iface);
        if (it == sysctls_.end() || it->second.ifindex != ifindex) {
            sysctls_[iface] = {ifindex, *current};
            changed = true;
        }
        if (!*current) {
            Status s = kernel_->set_src_valid_mark(ifindex, true);
            report("src_valid_mark " + iface, s);
            if (!s) continue;
        }
        src_valid_mark_set_[iface] = ifindex;
    }
    if (changed) report("state directory", store_.save_sysctls(sysctls_));
}

void Daemon::restore_sysctls() {
    for (const auto& [iface, original] : sysctls_) {
        if (original.src_valid_mark) continue;
        Status s = kernel_->set_src_valid_mark(original.ifindex, false);
        // The interface may be gone (its sysctls went with it) or re-created with a new index.
        if (!s && s.err != ENODEV) log(Level::Error, s.message);
    }
    sysctls_.clear();
    src_valid_mark_set_.clear();
    store_.remove_sysctls();
}

void Daemon::report(const std::string& key, const Status& status) {
    auto it = reported_.find(key);
    if (status) {
        if (it != reported_.end()) {
            log(Level::Notice, key + ": recovered (was: " + it->second + ")");
            reported_.erase(it);
        }
        return;
    }
    if (it != reported_.end() && it->second == status.message) return;  // already said
    log(Level::Error, status.message);
    reported_[key] = status.message;
}

}  // namespace wb
