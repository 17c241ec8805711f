// wanbalanced's shell around the pure core: owns the event loop, the kernel port, the prober and
// the control socket; turns what happens into core events and performs the effects it returns.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/event_ptr.hpp"
#include "config/config.hpp"
#include "control/protocol.hpp"
#include "control/server.hpp"
#include "core/wan_state.hpp"
#include "daemon/hooks.hpp"
#include "daemon/instance_lock.hpp"
#include "daemon/state_store.hpp"
#include "netlink/conntrack_counter.hpp"
#include "netlink/conntrack_events.hpp"
#include "netlink/kernel_sync.hpp"
#include "netlink/kernel_watch.hpp"
#include "netlink/netlink_kernel.hpp"
#include "netlink/nft_monitor.hpp"
#include "probe/prober.hpp"
#include "probe/syn_watch.hpp"

namespace wb {

// How long after `wanbalancectl handover` a stop leaves the data plane for the next daemon.
inline constexpr auto kHandoverWindow = std::chrono::seconds(60);

struct DaemonOptions {
    std::string config_path = kDefaultConfigPath;
    std::string runtime_dir;  // resolved
    std::string state_dir;    // resolved
    bool verbose = false;
};

// Kernel changes made by the reconciles of one reload, for its summary.
struct ChangeCount {
    unsigned nft_ops = 0, routes = 0, rules = 0;
    unsigned total() const { return nft_ops + routes + rules; }
};

class Daemon {
public:
    explicit Daemon(DaemonOptions options);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Loads the config (exit 78 on errors, kernel untouched), opens the kernel sockets, applies
    // the first ruleset, then runs the loop until SIGTERM/SIGINT; cleans up; returns the exit code.
    int run();

private:
    // daemon.cpp: life cycle and event sources.
    std::optional<ConfigResult> load_startup_config();
    int setup(const Config& config);
    Status open_loop();
    Status open_kernel();
    Status open_sources();
    void teardown();
    template <void (Daemon::*H)()>
    static int on_readable(sd_event_source*, int, uint32_t, void* self) {
        (static_cast<Daemon*>(self)->*H)();
        return 0;
    }
    Status watch_readable(int fd, sd_event_io_handler_t handler, SourcePtr& source);
    void on_signal(int signo);
    void on_kernel_readable();
    void on_nft_notification();
    void on_verify_timer();
    void on_probe_round(const ProbeKey& key, const RoundOutcome& outcome);
    std::string gateway_silence(const ProbeKey& key) const;

    // connections.cpp: `wanbalancectl connections`, and the probes' flows it and status leave out.
    ProbeFlows probe_flows() const;
    Reply connections(const ConnectionsRequest& request) const;

    // drain.cpp: operator overrides, and a drain's timeout.
    Reply set_override_now(const std::string& wan, Override mode, const std::string& why);
    void arm_drain_timer(const std::string& wan, unsigned seconds);
    void on_drain_timeout(const std::string& wan, unsigned seconds);

    // traffic.cpp: replies and unanswered new connections as evidence about a WAN's path.
    std::optional<uint64_t> replies_of(const ProbeKey& key);
    void watch_traffic();
    std::chrono::microseconds syn_deadline(const ProbeKey& key) const;
    void on_ct_event(const CtEvent& e);
    void arm_syn_timer();
    void on_syn_timer();

    // reconcile.cpp: the core's events in, its effects out, the kernel kept equal to the desire.
    Effects dispatch(const Event& event);
    void perform(const Effects& effects);
    void request_reconcile();
    void reconcile();
    void update_degraded(const ApplyReport& applied);
    KernelFacts kernel_facts() const;
    void configure_probes();
    void configure_probe(const WanConfig& wan, const WanState& w, Family family, std::vector<ProbeKey>& keys);
    void check_router_advertisements();
    void check_live();
    void flush(const Flush& f);
    void apply_sysctls();
    void restore_sysctls();
    void report(const std::string& key, const Status& status);

    // control_handler.cpp: the control socket's commands and systemd's STATUS=.
    void on_control(const Request& request, Respond respond);
    Reply reload();
    Reply set_override(const SetRequest& request);
    Reply handover();
    Reply set_role(const RoleRequest& request);
    std::string shown_role() const;
    void remember_applied_config();
    nlohmann::json status_json(const ConntrackCounter::Counts& connections);
    ConnClassifier rule_classifier() const;
    void notify_status();

    DaemonOptions options_;
    StateStore store_;
    State state_;
    std::string config_text_;   // of the running config, saved as the last applied once it is in
    std::string config_error_;  // the config file's problems while the last applied one runs
    std::string role_;          // the HA role last told (wanbalancectl role), kept across restarts; "" never told
    std::chrono::steady_clock::time_point handover_until_;  // a stop before then leaves the kernel as is
    std::chrono::steady_clock::time_point started_;

    EventPtr event_;
    SourcePtr kernel_source_;
    SourcePtr reconcile_source_;
    SourcePtr verify_source_;
    SourcePtr nft_monitor_source_;
    SourcePtr counter_source_;
    std::vector<SourcePtr> signal_sources_;
    InstanceLock instance_lock_;

    std::unique_ptr<NetlinkKernel> kernel_;
    std::unique_ptr<KernelSync> sync_;
    std::unique_ptr<nft::NftMonitor> nft_monitor_;  // others' changes to our table
    std::unique_ptr<KernelWatch> watch_;
    std::unique_ptr<ConntrackCounter> counter_;  // status's connection counts, off the loop
    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<Prober> prober_;
    std::unique_ptr<HookRunner> hooks_;
    std::unique_ptr<ConntrackEvents> ct_events_;  // nullptr: traffic hints are off
    SourcePtr syn_timer_;
    SynWatch syn_watch_;
    std::map<ProbeKey, Usec> last_hint_;
    struct RepliesCache {
        Usec at = 0;
        std::vector<ReplyCount> counts;
        bool ok = false;
    };
    std::optional<RepliesCache> replies_cache_;

    std::map<std::string, std::string> reported_;  // failing thing -> its error, logged once until it clears
    std::map<std::string, int> src_valid_mark_set_;  // interface -> the ifindex on which we set it
    std::array<std::vector<RuleSend>, 2> rule_sends_;  // of the last reconcile, for status
    std::map<std::string, std::string> ra_warnings_;  // WAN -> why its "auto" gateway6 cannot be learned
    std::vector<ConfigError> live_warnings_;          // the live check's findings at start or the last reload
    std::map<std::string, std::string> degraded_;     // WAN -> what the kernel refused of it (last reconcile)
    struct DrainTimer {
        Daemon* daemon = nullptr;
        std::string wan;
        unsigned seconds = 0;
        SourcePtr source;
    };
    std::map<std::string, std::unique_ptr<DrainTimer>> drain_timers_;  // WAN -> its drain's timeout
    ChangeCount changes_;                          // since the last reload started
    SysctlRecord sysctls_;                         // originals of what we changed
};

}  // namespace wb
