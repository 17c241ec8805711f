// Runs the operator's hook executables (hooks_dir) on every WAN state change: asynchronously,
// each in its own process group, killed after a timeout; never blocks probing or failover.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.hpp"

namespace wb {

inline constexpr auto kHookTimeout = std::chrono::seconds(20);
inline constexpr size_t kMaxRunningHooks = 32;

struct HookEvent {
    std::string event;      // WANBALANCE_EVENT: wan-down, wan-up, all-down, config-reloaded
    std::string wan;        // WANBALANCE_WAN
    std::string interface;  // WANBALANCE_INTERFACE
    std::string state;      // WANBALANCE_STATE: up, down, disabled
};

class HookRunner {
public:
    explicit HookRunner(sd_event* event, std::chrono::milliseconds timeout = kHookTimeout);
    ~HookRunner();  // kills hooks still running
    HookRunner(const HookRunner&) = delete;
    HookRunner& operator=(const HookRunner&) = delete;

    // Starts every executable regular file in `dir` (sorted by name) with the event in its
    // environment. A missing dir is not an error. Returns how many were started.
    size_t run(const std::string& dir, const HookEvent& event);
    size_t running() const { return children_.size(); }

private:
    struct Child;
    Status watch(Child& child);  // reaps it and enforces the timeout
    void on_exit(pid_t pid, int code, int status);
    void on_timeout(pid_t pid);

    sd_event* event_;
    std::chrono::milliseconds timeout_;
    std::map<pid_t, std::unique_ptr<Child>> children_;
};

}  // namespace wb
