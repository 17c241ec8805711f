// The daemon's life: load the config, open the loop and the kernel, apply the first ruleset,
// serve events until SIGTERM, then remove everything it made. Event sources forward to the core.
#include "base/format.hpp"
#include "daemon/daemon.hpp"
#include "daemon/degraded.hpp"

#include <signal.h>
#include <systemd/sd-daemon.h>

#include <unistd.h>

#include "base/exit_codes.hpp"
#include "config/hooks_trust.hpp"
#include "daemon/log.hpp"
#include "netlink/system_view.hpp"

namespace wb {
namespace {

constexpr auto kVerifyInterval = std::chrono::seconds(5);

uint64_t usec(std::chrono::microseconds d) { return uint64_t(d.count()); }

Status sd_check(int r, const std::string& what) {
    if (r >= 0) return Status::ok();
    return Status::fail(-r, what + ": " + errno_text(-r));
}

}  // namespace

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)), store_(options_.state_dir) {}

Daemon::~Daemon() {
    // Everything that holds event sources goes before the loop they belong to.
    prober_.reset();
    hooks_.reset();
    control_.reset();
    signal_sources_.clear();
    kernel_source_.reset();
    counter_source_.reset();
    counter_.reset();  // joins its thread; status requests still waiting are never answered
    reconcile_source_.reset();
    verify_source_.reset();
    nft_monitor_source_.reset();
    event_.reset();
}

int Daemon::run() {
    auto loaded = load_startup_config();
    if (!loaded) return kExitConfig;
    if (int rc = setup(*loaded->config); rc != kExitOk) {
        teardown();
        return rc;
    }
    int r = sd_event_loop(event_.get());
    if (r < 0) log(Level::Error, "the event loop failed: " + errno_text(-r));
    if (std::chrono::steady_clock::now() < handover_until_) {
        // A package upgrade: the next wanbalanced adopts the table, routes and rules as they are.
        sd_notify(0, "STOPPING=1\nSTATUS=Handing over: routes, rules and nftables table stay for the next wanbalanced");
        log(Level::Notice, "stopping for a handover: the data plane stays in place for the next wanbalanced to adopt");
        return r < 0 ? kExitFailure : kExitOk;
    }
    sd_notify(0, "STOPPING=1\nSTATUS=Removing wanbalance's routes, rules and nftables table");
    log(Level::Info, "stopping: removing everything wanbalanced created");
    teardown();
    log(Level::Info, "stopped");
    return r < 0 ? kExitFailure : kExitOk;
}

std::optional<ConfigResult> Daemon::load_startup_config() {
    ConfigResult loaded = load_config(options_.config_path);
    require_trusted_hooks(loaded, geteuid());
    for (const auto& w : loaded.warnings) log(Level::Warning, w.format(options_.config_path));
    if (loaded.config) {
        config_text_ = loaded.text;
        return loaded;
    }
    for (const auto& e : loaded.errors) log(Level::Error, e.format(options_.config_path));
    // A restart (crash, watchdog, upgrade) with a broken edit in the file: keep routing with what
    // was last applied rather than leave the old ruleset in the kernel with nobody managing it.
    auto text = store_.last_config();
    if (!text) return std::nullopt;
    ConfigResult last = parse_config(*text, options_.config_path);
    if (!last.config) {
        log(Level::Error, "the last applied configuration (" + store_.last_config_path() + ") is not valid either");
        return std::nullopt;
    }
    config_error_ = loaded.errors.front().format(options_.config_path);
    if (loaded.errors.size() > 1) config_error_ += " (and " + std::to_string(loaded.errors.size() - 1) + " more)";
    log(Level::Critical, options_.config_path + " is invalid; running the last applied configuration (" +
                             store_.last_config_path() + ") until the file is fixed and reloaded");
    config_text_ = *text;
    return last;
}

int Daemon::setup(const Config& config) {
    started_ = std::chrono::steady_clock::now();
    state_ = initial_state(config, std::chrono::system_clock::now());
    // Before anything touches the kernel: a second daemon there would delete the first's objects.
    if (Status s = instance_lock_.acquire(); !s) {
        log(Level::Error, s.message);
        return kExitFailure;
    }
    if (Status s = store_.prepare(); !s) log(Level::Warning, s.message + "; overrides and the last config are not kept");
    for (auto step : {&Daemon::open_loop, &Daemon::open_kernel, &Daemon::open_sources}) {
        if (Status s = (this->*step)(); !s) {
            log(Level::Error, s.message);
            return kExitFailure;
        }
    }
    sysctls_ = store_.sysctls();  // a crashed run's originals win
    log(Level::Info, "starting with " + config.path + ": " + counted(config.wans.size(), "WAN") + ", " +
                         counted(config.lans.size(), "LAN"));
    check_live();
    perform(dispatch(Restored{store_.overrides()}));
    role_ = store_.role().value_or("");
    if (!role_.empty()) log(Level::Info, "HA role " + role_ + ", as the previous run was last told");
    // Adopt or replace whatever a previous run left: nothing is recorded as applied yet, so the
    // first apply replaces the table atomically, and route/rule sync reads back what we own.
    reconcile();
    if (!sync_->table_applied()) {
        log(Level::Error, "giving up: the nftables ruleset could not be installed");
        return kExitFailure;
    }
    // A start whose changes the kernel refused fails (docs/design.md, Degraded): a unit that
    // says "started" with a route missing would be believed.
    if (!degraded_.empty()) {
        std::string why = degraded_summary(degraded_);
        log(Level::Error, "giving up: the kernel refused part of the configuration: " + why);
        sd_notify(0, ("STATUS=Failed: the kernel refused part of the configuration: " + why).c_str());
        return kExitFailure;
    }
    remember_applied_config();
    sd_notify(0, "READY=1");
    notify_status();
    return kExitOk;
}

Status Daemon::open_loop() {
    sd_event* loop = nullptr;
    if (Status s = sd_check(sd_event_default(&loop), "Could not create the event loop"); !s) return s;
    event_.reset(loop);
    sigset_t mask;
    sigemptyset(&mask);
    // SIGCHLD too: sd-event reaps hook processes through child sources.
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&mask, s);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    for (int signo : {SIGTERM, SIGINT, SIGHUP}) {
        sd_event_source* src = nullptr;
        auto handler = [](sd_event_source*, const struct signalfd_siginfo* si, void* self) {
            static_cast<Daemon*>(self)->on_signal(int(si->ssi_signo));
            return 0;
        };
        int r = sd_event_add_signal(event_.get(), &src, signo, handler, this);
        if (Status s = sd_check(r, "Could not watch signals"); !s) return s;
        signal_sources_.emplace_back(src);
    }
    if (Status s = sd_check(sd_event_set_watchdog(event_.get(), true), "Could not arm the watchdog"); !s) return s;
    // The control socket first: it refuses to start a second daemon before either touches the kernel.
    auto handler = [this](const Request& request, Respond respond) { on_control(request, std::move(respond)); };
    auto control = ControlServer::open(event_.get(), options_.runtime_dir, handler);
    if (!control) return control.error();
    control_ = std::move(*control);
    return Status::ok();
}

Status Daemon::open_kernel() {
    auto watch = KernelWatch::open();
    if (!watch) return watch.error();
    watch_ = std::move(*watch);
    auto kernel = NetlinkKernel::open();
    if (!kernel) return kernel.error();
    kernel_ = std::move(*kernel);
    sync_ = std::make_unique<KernelSync>(*kernel_);
    if (Status s = watch_readable(watch_->fd(), on_readable<&Daemon::on_kernel_readable>, kernel_source_); !s)
        return Status::fail(s.err, "Could not watch the kernel's link, address and route notifications: " + s.message);
    auto counter = ConntrackCounter::open();
    if (!counter) return needs_net_admin(counter.error());
    counter_ = std::move(*counter);
    auto on_counted = [](sd_event_source*, int, uint32_t, void* self) {
        static_cast<Daemon*>(self)->counter_->process();
        return 0;
    };
    if (Status s = watch_readable(counter_->fd(), on_counted, counter_source_); !s)
        return Status::fail(s.err, "Could not watch the conntrack counts: " + s.message);
    // Without it a foreign change to our table is still repaired, by the verify timer.
    std::string fallback =
        "; changes to the table are checked every " + std::to_string(kVerifyInterval.count()) + " s only";
    if (auto monitor = nft::NftMonitor::open(kernel_->nft().portid()); !monitor) {
        log(Level::Warning, monitor.error().message + fallback);
    } else {
        nft_monitor_ = std::move(*monitor);
        Status s = watch_readable(nft_monitor_->fd(), on_readable<&Daemon::on_nft_notification>, nft_monitor_source_);
        if (!s) log(Level::Warning, "Could not watch nftables notifications: " + s.message + fallback);
    }
    return Status::ok();
}

Status Daemon::open_sources() {
    sd_event_source* reconcile_source = nullptr;
    auto on_defer = [](sd_event_source*, void* self) {
        static_cast<Daemon*>(self)->reconcile();
        return 0;
    };
    int r = sd_event_add_defer(event_.get(), &reconcile_source, on_defer, this);
    if (Status s = sd_check(r, "Could not add the reconcile source"); !s) return s;
    reconcile_source_.reset(reconcile_source);
    r = sd_event_source_set_enabled(reconcile_source, SD_EVENT_OFF);
    if (Status s = sd_check(r, "Could not add the reconcile source"); !s) return s;
    sd_event_source* verify_source = nullptr;
    auto on_timer = [](sd_event_source*, uint64_t, void* self) {
        static_cast<Daemon*>(self)->on_verify_timer();
        return 0;
    };
    r = sd_event_add_time_relative(event_.get(), &verify_source, CLOCK_MONOTONIC, usec(kVerifyInterval), 0, on_timer,
                                   this);
    if (Status s = sd_check(r, "Could not add the verify timer"); !s) return s;
    verify_source_.reset(verify_source);

    hooks_ = std::make_unique<HookRunner>(event_.get());
    auto prober = Prober::create(
        event_.get(), [this](const ProbeKey& key, const RoundOutcome& outcome) { on_probe_round(key, outcome); },
        [this](const ProbeKey& key) { return replies_of(key); });
    if (!prober)
        return Status::fail(prober.error().err, prober.error().message + (prober.error().err == EPERM
                                                                               ? " (wanbalanced needs CAP_NET_RAW)"
                                                                               : ""));
    prober_ = std::move(*prober);
    watch_traffic();
    return Status::ok();
}

void Daemon::teardown() {
    if (sync_)
        for (const Status& s : sync_->teardown()) log(Level::Error, s.message);
    if (kernel_) restore_sysctls();
}

Status Daemon::watch_readable(int fd, sd_event_io_handler_t handler, SourcePtr& source) {
    sd_event_source* raw = nullptr;
    if (Status s = sd_check(sd_event_add_io(event_.get(), &raw, fd, EPOLLIN, handler, this), "Could not watch fd"); !s)
        return s;
    source.reset(raw);
    return Status::ok();
}

void Daemon::on_signal(int signo) {
    if (signo == SIGHUP) {
        reload();
        return;
    }
    sd_event_exit(event_.get(), 0);
}

void Daemon::on_kernel_readable() {
    auto changes = watch_->process();
    if (!changes) {
        report("kernel notifications", changes.error());
        return;
    }
    report("kernel notifications", Status::ok());
    if (changes->resynced) log(Level::Warning, "kernel notifications were lost; re-read links, addresses and routes");
    if (changes->any()) request_reconcile();
}

void Daemon::on_verify_timer() {
    // Repairs what someone changed behind our back: a flushed ruleset, deleted routes or rules.
    auto exists = kernel_->table_exists();
    if (exists && !*exists && sync_->table_applied()) {
        log(Level::Warning, "table inet wanbalance disappeared (nft flush ruleset?); reinstalling it");
        sync_->forget_table();
    }
    perform(dispatch(Timer{}));
    report("verify timer", sd_check(sd_event_source_set_time_relative(verify_source_.get(), usec(kVerifyInterval)),
                                    "Could not re-arm the verify timer"));
    report("verify timer", sd_check(sd_event_source_set_enabled(verify_source_.get(), SD_EVENT_ONESHOT),
                                    "Could not re-arm the verify timer"));
}

void Daemon::on_nft_notification() {
    // Someone else changed table inet wanbalance (a flushed ruleset, a deleted rule or element):
    // our record of it is stale, so the next apply replaces it whole, in one transaction.
    auto change = nft_monitor_->process();
    if (!change) {
        report("nftables notifications", change.error());
        return;
    }
    if (!change->any()) return;
    log(Level::Warning, change->describe() + "; reinstalling it");
    sync_->forget_table();
    request_reconcile();
}

// "; gateway 203.0.113.11 does not answer ARP" while the kernel's neighbour entry for the WAN's
// gateway is unresolved (INCOMPLETE or FAILED), else "": the probes go through it, so the kernel
// is asking for it already.
std::string Daemon::gateway_silence(const ProbeKey& key) const {
    auto i = find_wan(state_, key.wan);
    if (!i) return "";
    const WanInputs& in = state_.wans[*i].inputs;
    std::optional<IpAddr> gateway;
    if (key.family == Family::V4 && in.gateway) gateway = *in.gateway;
    if (key.family == Family::V6 && in.gateway6) gateway = *in.gateway6;
    if (!gateway || in.point_to_point || in.ifindex <= 0) return "";
    auto answer = kernel_->route_netlink().neighbour_state(in.ifindex, *gateway);
    if (!answer || *answer != NeighbourAnswer::Silent) return "";
    return "; gateway " + str(*gateway) + " does not answer " +
           (key.family == Family::V4 ? "ARP" : "neighbour solicitations");
}

void Daemon::on_probe_round(const ProbeKey& key, const RoundOutcome& outcome) {
    // Only the core runs here: a failover's reconcile (which reconfigures the prober) is deferred
    // to the loop, so the prober is never re-entered from its own callback.
    ProbeStats st = prober_->stats(key);
    std::string detail = outcome.problem;
    std::string answered = std::to_string(outcome.answered) + "/" + std::to_string(outcome.sent) + " targets answered";
    if (outcome.success) {
        detail = answered;
    } else if (detail.empty() && outcome.sent > 0) {
        // Sent and unanswered: how many answered, within what, and whether the gateway is there.
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(outcome.deadline).count();
        detail = answered + " within " + std::to_string(ms) + " ms" + gateway_silence(key);
    }
    perform(dispatch(ProbeRound{key.wan, outcome.success, detail, {st.rtt_ms, st.loss_pct}, key.family}));
}

}  // namespace wb
