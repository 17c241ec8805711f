// Runs the operator's hook executables (hooks_dir) on every WAN state change, asynchronously: the
// hooks of one WAN one at a time, in order (event by event, each event's hooks in name order),
// queued and never dropped; different WANs in parallel. Each runs in its own process group,
// killed after a timeout, and is checked for trust (config/hooks_trust.hpp) just before it
// starts. Never blocks probing or failover.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.hpp"

namespace wb {

inline constexpr auto kHookTimeout = std::chrono::seconds(20);
// A WAN with more hook runs than this waiting is warned about (once until its queue drains):
// its hooks are probably hanging. Nothing is dropped.
inline constexpr size_t kHookBacklogWarning = 100;

struct HookEvent {
    std::string event;      // WANBALANCE_EVENT: wan-down, wan-up, all-down, config-reloaded
    std::string wan;        // WANBALANCE_WAN
    std::string interface;  // WANBALANCE_INTERFACE
    std::string state;      // WANBALANCE_STATE: up, down, disabled
    std::string family;     // WANBALANCE_FAMILY: ipv4, ipv6 (empty for events of no family)
};

class HookRunner {
public:
    explicit HookRunner(sd_event* event, std::chrono::milliseconds timeout = kHookTimeout);
    ~HookRunner();  // kills hooks still running; those waiting are not run
    HookRunner(const HookRunner&) = delete;
    HookRunner& operator=(const HookRunner&) = delete;

    // Queues every executable regular file in `dir` (sorted by name) to run with the event in
    // its environment, after the hooks queued before for the same WAN (events without a WAN
    // share one queue). A missing dir is not an error. Returns how many were queued.
    size_t run(const std::string& dir, const HookEvent& event);
    size_t running() const { return children_.size(); }
    size_t pending() const;  // queued, not started yet

private:
    struct Child;
    struct Job {
        std::string dir, name;
        HookEvent event;
    };
    struct Queue {
        std::deque<Job> jobs;
        bool busy = false;    // one of its hooks is running
        bool warned = false;  // about its backlog, since it was last empty
    };
    void start_next(const std::string& key);  // the queue's next hook that can start
    bool start(const std::string& key, const Job& job);
    Status watch(Child& child);  // reaps it and enforces the timeout
    void on_exit(pid_t pid, int code, int status);
    void on_timeout(pid_t pid);

    sd_event* event_;
    std::chrono::milliseconds timeout_;
    std::map<std::string, Queue> queues_;  // by WANBALANCE_WAN
    std::map<pid_t, std::unique_ptr<Child>> children_;
};

}  // namespace wb
