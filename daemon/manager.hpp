// The daemon's core: owns the event loop, the kernel sockets, the config and every WAN's state,
// and keeps the kernel equal to build_desired(config, inputs) — reconcile, never replay.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/event_ptr.hpp"
#include "config/config.hpp"
#include "daemon/control.hpp"
#include "daemon/hooks.hpp"
#include "daemon/log.hpp"
#include "netlink/conntrack.hpp"
#include "netlink/kernel_watch.hpp"
#include "netlink/nft_apply.hpp"
#include "netlink/nft_monitor.hpp"
#include "netlink/route_netlink.hpp"
#include "probe/health.hpp"
#include "daemon/sysctl_state.hpp"
#include "probe/prober.hpp"
#include "rules/desired.hpp"

namespace wb {

struct DaemonOptions {
    std::string config_path = kDefaultConfigPath;
    std::string runtime_dir;  // resolved
    bool verbose = false;
};

enum class Override { Auto, Up, Down };

// Why a WAN's link cannot carry traffic: a status word ("no-carrier") and the words an operator
// would use ("no carrier on ether1"); {"up", ""} when it can.
struct LinkProblem {
    std::string word, text;
};
LinkProblem link_problem(const WanConfig& wan, const WanInputs& in);

// What the daemon knows about one WAN beyond its config.
struct WanRuntime {
    Health health = Health::Down;
    std::chrono::system_clock::time_point since;
    std::string reason = "starting";
    Override override_mode = Override::Auto;
    unsigned transitions = 0;
    WanInputs inputs;
    int src_valid_mark_ifindex = 0;  // the link on which src_valid_mark=1 is known to be set
    bool seen = false;               // inputs computed at least once (health machine initialised)
    bool link_usable = false;        // as of the last update, to turn changes into link events
    HealthMachine machine{ProbeState::Up};
    std::string probe_reason;        // why the machine is in its state
    std::string last_problem;        // the last round's send problem, if any
};

// A state change to log and hand to the hooks once the kernel reflects it.
struct PendingEvent {
    Level level;
    LogEvent event;
    std::string message;
};

// Kernel changes made by one reconcile (or accumulated over a reload), for reload's summary.
struct ChangeCount {
    unsigned nft_ops = 0, routes = 0, rules = 0;
};

class Manager {
public:
    explicit Manager(DaemonOptions options);
    ~Manager();

    // Loads the config (exit 78 on errors, kernel untouched), opens the kernel sockets, applies
    // the first ruleset, then runs the loop until SIGTERM/SIGINT; cleans up; returns the exit code.
    int run();

private:
    int setup(const Config& config);
    void teardown();

    // sd-event callback for a readable fd: forwards to the member function H.
    template <void (Manager::*H)()>
    static int on_readable(sd_event_source*, int, uint32_t, void* self) {
        (static_cast<Manager*>(self)->*H)();
        return 0;
    }
    Status watch_readable(int fd, sd_event_io_handler_t handler, SourcePtr& source);

    // Event handlers (sd-event callbacks forward here).
    void on_kernel_readable();
    void on_signal(int signo);
    void on_verify_timer();
    void on_nft_notification();
    void on_probe_round(const std::string& wan, const RoundOutcome& outcome);
    void configure_probes();
    nlohmann::json on_control(const nlohmann::json& request);

    // Recompute inputs and health, log transitions, apply what differs. Coalesced: request_reconcile
    // schedules one run on the next loop iteration.
    void request_reconcile();
    void reconcile();
    void update_inputs();
    void update_health();
    void set_health(size_t i, Health health, const std::string& reason);
    void apply_desired();
    void announce_events();
    void flush_conntrack();
    void apply_sysctls();
    void restore_sysctls();
    void report(const std::string& key, const Status& status);

    // Reload: parse, report errors (old config keeps running), carry health across by WAN name.
    nlohmann::json reload();
    nlohmann::json set_override(const std::string& wan, const std::string& mode);
    nlohmann::json status_json();
    void notify_status();

    DaemonOptions options_;
    Config config_;
    std::vector<WanRuntime> wans_;
    bool all_down_ = false;
    std::chrono::steady_clock::time_point started_;

    EventPtr event_;
    SourcePtr kernel_source_;
    SourcePtr reconcile_source_;
    SourcePtr verify_source_;
    SourcePtr nft_monitor_source_;
    std::vector<SourcePtr> signal_sources_;

    std::unique_ptr<nft::NftSocket> nft_;
    std::unique_ptr<nft::NftMonitor> nft_monitor_;  // others' changes to our table
    std::unique_ptr<RouteNetlink> rtnl_;
    std::unique_ptr<KernelWatch> watch_;
    std::unique_ptr<Conntrack> conntrack_;
    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<Prober> prober_;
    std::unique_ptr<HookRunner> hooks_;

    std::optional<nft::Table> applied_table_;  // what the kernel holds, as far as we know
    std::map<std::string, std::string> reported_;  // failing thing -> its error, logged once until it clears
    std::vector<PendingEvent> pending_events_;     // state changes, announced after the kernel changed
    std::vector<uint32_t> pending_flush_;          // marks whose conntrack entries go after the next apply
    ChangeCount last_changes_;
    SysctlRecord sysctls_;                         // originals of what we changed
    bool ready_ = false;
    int exit_code_ = 0;
};

}  // namespace wb
