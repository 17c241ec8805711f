#include "daemon/manager.hpp"

#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "daemon/log.hpp"

namespace wb {
namespace {

constexpr auto kVerifyInterval = std::chrono::seconds(5);

}  // namespace

LinkProblem link_problem(const WanConfig& wan, const WanInputs& in) {
    if (in.ifindex == 0) return {"absent", "interface " + wan.interface + " does not exist"};
    if (!in.admin_up) return {"admin-down", "interface " + wan.interface + " is administratively down"};
    if (!in.carrier) return {"no-carrier", "no carrier on " + wan.interface};
    if (!in.has_address) return {"no-address", "no IPv4 address on " + wan.interface};
    if (!in.gateway && !in.point_to_point) return {"no-gateway", "no gateway known on " + wan.interface + " (auto)"};
    return {"up", ""};
}

Manager::Manager(DaemonOptions options) : options_(std::move(options)) {}

Manager::~Manager() {
    // Everything that holds event sources goes before the loop they belong to.
    prober_.reset();
    hooks_.reset();
    control_.reset();
    signal_sources_.clear();
    kernel_source_.reset();
    reconcile_source_.reset();
    verify_source_.reset();
    nft_monitor_source_.reset();
    event_.reset();
}

int Manager::run() {
    ConfigResult loaded = load_config(options_.config_path);
    if (!loaded.config) {
        for (const auto& e : loaded.errors) log(Level::Error, e.format(options_.config_path));
        return 78;
    }
    int rc = setup(*loaded.config);
    if (rc != 0) {
        teardown();
        return rc;
    }
    sd_event_loop(event_.get());
    sd_notify(0, "STOPPING=1\nSTATUS=Removing wanbalance's routes, rules and nftables table");
    log(Level::Info, "stopping: removing everything wanbalanced created");
    teardown();
    log(Level::Info, "stopped");
    return exit_code_;
}

int Manager::setup(const Config& config) {
    config_ = config;
    started_ = std::chrono::steady_clock::now();
    wans_.assign(config_.wans.size(), WanRuntime{});
    for (auto& w : wans_) w.since = std::chrono::system_clock::now();

    sd_event* loop = nullptr;
    if (int r = sd_event_default(&loop); r < 0) {
        log(Level::Error, "Could not create the event loop: " + errno_text(-r));
        return 1;
    }
    event_.reset(loop);
    sigset_t mask;
    sigemptyset(&mask);
    // SIGCHLD too: sd-event reaps hook processes through child sources.
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&mask, s);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) {
        sd_event_source* src = nullptr;
        sd_event_add_signal(
            event_.get(), &src, s,
            [](sd_event_source*, const struct signalfd_siginfo* si, void* self) {
                static_cast<Manager*>(self)->on_signal(int(si->ssi_signo));
                return 0;
            },
            this);
        signal_sources_.emplace_back(src);
    }
    sd_event_set_watchdog(event_.get(), true);

    // The control socket first: it refuses to start a second daemon before either touches the kernel.
    auto control = ControlServer::open(event_.get(), options_.runtime_dir,
                                       [this](const nlohmann::json& req) { return on_control(req); });
    if (!control) {
        log(Level::Error, control.error().message);
        return 1;
    }
    control_ = std::move(*control);

    auto watch = KernelWatch::open();
    auto nft = nft::NftSocket::open();
    auto rtnl = RouteNetlink::open();
    auto ct = Conntrack::open();
    for (const Status* s : {watch ? nullptr : &watch.error(), nft ? nullptr : &nft.error(),
                            rtnl ? nullptr : &rtnl.error(), ct ? nullptr : &ct.error()}) {
        if (s) {
            log(Level::Error, s->message + (s->err == EPERM ? " (wanbalanced needs CAP_NET_ADMIN)" : ""));
            return 1;
        }
    }
    watch_ = std::move(*watch);
    nft_ = std::move(*nft);
    rtnl_ = std::move(*rtnl);
    conntrack_ = std::move(*ct);

    if (Status s = watch_readable(watch_->fd(), on_readable<&Manager::on_kernel_readable>, kernel_source_); !s) {
        log(Level::Error, "Could not watch the kernel's link, address and route notifications: " + s.message);
        return 1;
    }
    // Without it a foreign change to our table is still repaired, by the verify timer.
    if (auto monitor = nft::NftMonitor::open(nft_->portid()); !monitor) {
        log(Level::Warning, monitor.error().message + "; changes to the table are checked every " +
                                std::to_string(kVerifyInterval.count()) + " s only");
    } else {
        nft_monitor_ = std::move(*monitor);
        if (Status s = watch_readable(nft_monitor_->fd(), on_readable<&Manager::on_nft_notification>,
                                      nft_monitor_source_);
            !s)
            log(Level::Warning, "Could not watch nftables notifications: " + s.message +
                                    "; changes to the table are checked every " +
                                    std::to_string(kVerifyInterval.count()) + " s only");
    }
    sd_event_source* reconcile_source = nullptr;
    sd_event_add_defer(
        event_.get(), &reconcile_source,
        [](sd_event_source*, void* self) {
            static_cast<Manager*>(self)->reconcile();
            return 0;
        },
        this);
    reconcile_source_.reset(reconcile_source);
    sd_event_source_set_enabled(reconcile_source_.get(), SD_EVENT_OFF);
    uint64_t now = 0;
    sd_event_now(event_.get(), CLOCK_MONOTONIC, &now);
    sd_event_source* verify_source = nullptr;
    sd_event_add_time(
        event_.get(), &verify_source, CLOCK_MONOTONIC,
        now + std::chrono::duration_cast<std::chrono::microseconds>(kVerifyInterval).count(), 0,
        [](sd_event_source*, uint64_t, void* self) {
            static_cast<Manager*>(self)->on_verify_timer();
            return 0;
        },
        this);
    verify_source_.reset(verify_source);

    hooks_ = std::make_unique<HookRunner>(event_.get());
    auto prober = Prober::create(event_.get(), [this](const std::string& wan, const RoundOutcome& outcome) {
        on_probe_round(wan, outcome);
    });
    if (!prober) {
        log(Level::Error, prober.error().message + (prober.error().err == EPERM ? " (wanbalanced needs CAP_NET_RAW)" : ""));
        return 1;
    }
    prober_ = std::move(*prober);

    sysctls_ = load_sysctl_record(options_.runtime_dir);  // a crashed run's originals win
    log(Level::Info, "starting with " + config_.path + ": " + std::to_string(config_.wans.size()) + " WANs, " +
                         std::to_string(config_.lans.size()) + " LANs");
    // Adopt or replace whatever a previous run left: applied_table_ is empty, so the first
    // apply replaces the table atomically, and route/rule sync reads back what we own.
    reconcile();
    if (!applied_table_) {
        log(Level::Error, "giving up: the nftables ruleset could not be installed");
        return 1;
    }
    ready_ = true;
    sd_notify(0, "READY=1");
    notify_status();
    return 0;
}

void Manager::teardown() {
    if (nft_) {
        Status s = nft_->apply(nft::Plan{{nft::OpDeleteTable{}}});
        if (!s) log(Level::Error, s.message);
    }
    if (rtnl_) {
        for (const auto& e : sync_routes(*rtnl_, {}).errors) log(Level::Error, e.message);
        for (const auto& e : sync_rules(*rtnl_, {}).errors) log(Level::Error, e.message);
        restore_sysctls();
    }
    applied_table_.reset();
}

Status Manager::watch_readable(int fd, sd_event_io_handler_t handler, SourcePtr& source) {
    sd_event_source* raw = nullptr;
    if (int r = sd_event_add_io(event_.get(), &raw, fd, EPOLLIN, handler, this); r < 0)
        return Status::fail(-r, errno_text(-r));
    source.reset(raw);
    return Status::ok();
}

void Manager::on_signal(int signo) {
    if (signo == SIGHUP) {
        reload();
        return;
    }
    sd_event_exit(event_.get(), 0);
}

void Manager::on_kernel_readable() {
    auto changes = watch_->process();
    if (!changes) {
        log(Level::Error, changes.error().message);
        return;
    }
    if (changes->resynced) log(Level::Warning, "kernel notifications were lost; re-read links, addresses and routes");
    if (changes->any()) request_reconcile();
}

void Manager::on_verify_timer() {
    // Repairs what someone changed behind our back: a flushed ruleset, deleted routes or rules.
    auto exists = nft_->table_exists();
    if (exists && !*exists && applied_table_) {
        log(Level::Warning, "table inet wanbalance disappeared (nft flush ruleset?); reinstalling it");
        applied_table_.reset();
    }
    reconcile();
    uint64_t now = 0;
    sd_event_now(event_.get(), CLOCK_MONOTONIC, &now);
    sd_event_source_set_time(verify_source_.get(),
                             now + std::chrono::duration_cast<std::chrono::microseconds>(kVerifyInterval).count());
    sd_event_source_set_enabled(verify_source_.get(), SD_EVENT_ONESHOT);
}

void Manager::on_nft_notification() {
    // Someone else changed table inet wanbalance (a flushed ruleset, a deleted rule or element):
    // our record of it is stale, so the next apply replaces it whole, in one transaction.
    auto change = nft_monitor_->process();
    if (!change) {
        report("nftables notifications", change.error());
        return;
    }
    if (!change->any()) return;
    log(Level::Warning, change->describe() + "; reinstalling it");
    applied_table_.reset();
    request_reconcile();
}

void Manager::request_reconcile() { sd_event_source_set_enabled(reconcile_source_.get(), SD_EVENT_ONESHOT); }

void Manager::reconcile() {
    update_inputs();
    update_health();
    apply_desired();
    // Announced once the kernel has changed: when the journal says a WAN is down, or a hook
    // runs, the failover is done. Then the dead WAN's connections go, onto the new paths.
    announce_events();
    flush_conntrack();
    apply_sysctls();
    notify_status();
}

void Manager::announce_events() {
    std::vector<PendingEvent> events;
    events.swap(pending_events_);
    for (const auto& p : events) {
        log_event(p.level, p.event, p.message);
        if (hooks_) hooks_->run(config_.hooks_dir, {p.event.kind, p.event.wan, p.event.interface, p.event.state});
    }
}

void Manager::update_inputs() {
    const KernelSnapshot& snap = watch_->snapshot();
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        const WanConfig& wan = config_.wans[i];
        WanInputs& in = wans_[i].inputs;
        WanInputs next;
        next.health = in.health;
        if (const LinkState* link = snap.link(wan.interface)) {
            next.ifindex = link->ifindex;
            next.admin_up = link->admin_up;
            next.carrier = link->carrier;
            next.has_address = !link->addresses.empty();
            next.point_to_point = link->point_to_point;
            if (wan.gateway) {
                next.gateway = wan.gateway;
            } else if (auto it = snap.auto_gateways.find(link->ifindex); it != snap.auto_gateways.end()) {
                next.gateway = it->second;
            }
        }
        if (!wan.gateway && next.gateway != in.gateway && next.gateway)
            log(Level::Info, wan.name + ": gateway on " + wan.interface + " is now " + next.gateway->str() + " (auto)");
        in = next;

        WanRuntime& w = wans_[i];
        bool usable = in.link_usable();
        if (!w.seen) {
            // Optimistic start: a usable link starts up so a restart never drains traffic; the
            // probes take it down within down_after rounds if it is dead.
            w.machine = HealthMachine(usable ? ProbeState::Up : ProbeState::Down);
            w.probe_reason = usable ? "link up, probing" : "";
            w.seen = true;
        } else if (w.link_usable && !usable) {
            if (auto t = w.machine.on_event(HealthEvent::LinkLost, wan.probe)) w.probe_reason = t->reason;
            // Also when the WAN was already down: with every WAN down it was still balanced
            // over, and its connections must now re-establish on a link that is left.
            if (config_.flush_conntrack) pending_flush_.push_back(wan.mark);
        } else if (!w.link_usable && usable) {
            w.machine.on_event(HealthEvent::LinkBack, wan.probe);
            w.probe_reason = "link back, probing";
        }
        w.link_usable = usable;
    }
    configure_probes();
}

void Manager::configure_probes() {
    std::vector<std::string> names;
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        const WanConfig& wan = config_.wans[i];
        const WanRuntime& w = wans_[i];
        names.push_back(wan.name);
        ProbeSpec spec;
        spec.interface = wan.interface;
        spec.mark = wan.mark;
        spec.targets = wan.probe.targets;
        if (spec.targets.empty() && w.inputs.gateway) spec.targets.push_back(*w.inputs.gateway);
        spec.interval = wan.probe.interval;
        spec.timeout = wan.probe.timeout;
        spec.min_targets_up = wan.probe.min_targets_up;
        // An override does not pause probing: `set WAN auto` must hand back to a machine that
        // knows the WAN's health now, not as it was before the override (a forced-up WAN that
        // recovered meanwhile would be taken down and flushed on stale rounds).
        bool can_probe = w.link_usable && !spec.targets.empty();
        if (!spec.targets.empty()) report("probe " + wan.name, prober_->configure(wan.name, spec));
        prober_->pause(wan.name, !can_probe);
    }
    prober_->retain(names);
}

void Manager::on_probe_round(const std::string& name, const RoundOutcome& outcome) {
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        if (config_.wans[i].name != name) continue;
        WanRuntime& w = wans_[i];
        w.last_problem = outcome.problem;
        if (!w.link_usable) return;  // the link decides while it is down
        auto t = w.machine.on_event(outcome.success ? HealthEvent::RoundOk : HealthEvent::RoundFailed,
                                    config_.wans[i].probe);
        if (t) {
            w.probe_reason = t->reason;
            if (!outcome.success && !outcome.problem.empty()) w.probe_reason += " (" + outcome.problem + ")";
            reconcile();  // fail over now, not on the next loop iteration
        }
        return;
    }
}

void Manager::update_health() {
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        const WanRuntime& w = wans_[i];
        std::string problem = link_problem(config_.wans[i], w.inputs).text;
        if (w.override_mode == Override::Down)
            set_health(i, Health::Disabled, "disabled by operator");
        else if (!problem.empty())
            set_health(i, Health::Down, problem);
        else if (w.override_mode == Override::Up)
            set_health(i, Health::Up, "forced up by operator");
        else if (w.machine.state() == ProbeState::Up)
            set_health(i, Health::Up, w.probe_reason.empty() ? "probes answered" : w.probe_reason);
        else
            set_health(i, Health::Down, w.probe_reason.empty() ? "no probe answers yet" : w.probe_reason);
    }
    ActiveSet active = active_wans(config_, [&] {
        std::vector<WanInputs> in;
        for (const auto& w : wans_) in.push_back(w.inputs);
        return in;
    }());
    if (active.all_down && !all_down_ && !config_.wans.empty()) {
        LogEvent e{kMessageAllDown, "all-down", "", "", "down", "no WAN is healthy", {}, {}};
        bool all_disabled = std::all_of(wans_.begin(), wans_.end(),
                                        [](const WanRuntime& w) { return w.health == Health::Disabled; });
        std::string fallback = !active.wans.empty() ? "balancing over the " + std::to_string(active.wans.size()) +
                                                          " WANs whose link is up"
                               : all_disabled ? "every WAN is disabled by the operator: LAN traffic has no way out"
                                              : "no usable link either: LAN traffic has no way out";
        pending_events_.push_back({Level::Critical, e, "every WAN is down; " + fallback});
    }
    all_down_ = active.all_down;
}

void Manager::set_health(size_t i, Health health, const std::string& reason) {
    WanRuntime& w = wans_[i];
    w.inputs.health = health;
    if (w.health == health && ready_) {
        w.reason = reason;
        return;
    }
    bool first = !ready_ && w.reason == "starting";
    bool was_up = w.health == Health::Up;
    w.health = health;
    w.reason = reason;
    w.since = std::chrono::system_clock::now();
    const WanConfig& wan = config_.wans[i];
    if (first) {
        log(Level::Info, wan.name + " (" + wan.interface + ") starts " + std::string(health_name(health)) + ": " + reason);
        return;
    }
    ++w.transitions;
    bool up = health == Health::Up;
    ProbeStats st = prober_ ? prober_->stats(wan.name) : ProbeStats{};
    LogEvent e{up ? kMessageWanUp : kMessageWanDown, up ? "wan-up" : "wan-down", wan.name, wan.interface,
               std::string(health_name(health)), reason,
               st.rtt_ms ? std::optional<long>(long(*st.rtt_ms * 1000)) : std::nullopt, st.loss_pct};
    pending_events_.push_back({up ? Level::Notice : Level::Warning, e,
                               "WAN " + wan.name + " (" + wan.interface + ") is " +
                                   std::string(health_name(health)) + ": " + reason});
    // Disabled from down too: with every WAN down it was still balanced over, and the
    // operator drains it of everything.
    if ((was_up || health == Health::Disabled) && !up && config_.flush_conntrack && conntrack_) {
        // After the map and routes change (reconcile applies next), so re-opened connections
        // cannot be classified onto the dead WAN again.
        pending_flush_.push_back(wan.mark);
    }
}

void Manager::apply_desired() {
    std::vector<WanInputs> inputs;
    for (const auto& w : wans_) inputs.push_back(w.inputs);
    Desired d = build_desired(config_, inputs);

    nft::Plan plan = nft::diff(applied_table_, d.table);
    if (!plan.empty()) {
        Status s = nft_->apply(plan);
        if (!s && applied_table_) {
            // Our record may be stale (someone edited the table): replace it whole.
            applied_table_.reset();
            plan = nft::diff(applied_table_, d.table);
            s = nft_->apply(plan);
        }
        report("nftables", s);
        if (s) {
            last_changes_.nft_ops += unsigned(plan.ops.size());
            applied_table_ = d.table;
        } else {
            applied_table_.reset();
        }
    }
    auto join = [](const SyncReport& r) {
        Status s;
        for (const auto& e : r.errors) {
            s.err = e.err;
            s.message += (s.message.empty() ? "" : "; ") + e.message;
        }
        return s;
    };
    SyncReport routes = sync_routes(*rtnl_, d.routes);
    report("routes", join(routes));
    SyncReport rules = sync_rules(*rtnl_, d.rules);
    report("rules", join(rules));
    last_changes_.routes += routes.added + routes.replaced + routes.deleted;
    last_changes_.rules += rules.added + rules.replaced + rules.deleted;
}

void Manager::flush_conntrack() {
    std::sort(pending_flush_.begin(), pending_flush_.end());
    pending_flush_.erase(std::unique(pending_flush_.begin(), pending_flush_.end()), pending_flush_.end());
    for (uint32_t mark : pending_flush_) {
        auto n = conntrack_->delete_by_mark(mark, config_.mark_mask);
        for (size_t i = 0; i < config_.wans.size(); ++i)
            if (config_.wans[i].mark == mark) {
                if (n)
                    log(Level::Info, config_.wans[i].name + ": flushed " + std::to_string(*n) +
                                         " connections so they re-establish on a live WAN");
                else
                    log(Level::Error, config_.wans[i].name + ": " + n.error().message);
            }
    }
    pending_flush_.clear();
}

void Manager::apply_sysctls() {
    // Replies that arrive on a WAN whose nexthop is withdrawn pass strict rp_filter only when
    // the reverse-path lookup sees the restored mark (DESIGN.md §7): src_valid_mark=1.
    bool changed = false;
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        WanRuntime& w = wans_[i];
        const std::string& iface = config_.wans[i].interface;
        int ifindex = w.inputs.ifindex;
        if (ifindex == 0 || w.src_valid_mark_ifindex == ifindex) {
            if (ifindex == 0) w.src_valid_mark_ifindex = 0;
            continue;
        }
        auto current = rtnl_->get_src_valid_mark(ifindex);
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
            Status s = rtnl_->set_src_valid_mark(ifindex, true);
            report("src_valid_mark " + iface, s);
            if (!s) continue;
        }
        w.src_valid_mark_ifindex = ifindex;
    }
    if (changed) save_sysctl_record(options_.runtime_dir, sysctls_);
}

void Manager::restore_sysctls() {
    for (const auto& [iface, original] : sysctls_) {
        if (original.src_valid_mark) continue;
        Status s = rtnl_->set_src_valid_mark(original.ifindex, false);
        // The interface may be gone (its sysctls went with it) or re-created with a new index.
        if (!s && s.err != ENODEV) log(Level::Error, s.message);
    }
    sysctls_.clear();
    for (auto& w : wans_) w.src_valid_mark_ifindex = 0;
    remove_sysctl_record(options_.runtime_dir);
}

void Manager::report(const std::string& key, const Status& status) {
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
