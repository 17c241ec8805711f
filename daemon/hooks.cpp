#include "daemon/hooks.hpp"

#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/event_ptr.hpp"
#include "base/handle.hpp"
#include "base/status.hpp"
#include "base/ipv4.hpp"
#include "daemon/log.hpp"

extern char** environ;

namespace wb {

struct HookRunner::Child {
    HookRunner* runner = nullptr;
    pid_t pid = 0;
    std::string path;
    std::string event;
    SourcePtr exit_source;
    SourcePtr timer_source;
};

HookRunner::HookRunner(sd_event* event, std::chrono::milliseconds timeout) : event_(event), timeout_(timeout) {}

HookRunner::~HookRunner() {
    for (auto& [pid, child] : children_) kill(-pid, SIGKILL);
}

namespace {

// Executable regular files in `dir`, sorted by name; none when it does not exist.
std::vector<std::string> hook_names(const std::string& dir) {
    Handle<DIR, closedir> d(opendir(dir.c_str()));
    std::vector<std::string> names;
    if (!d) return names;
    while (struct dirent* e = readdir(d.get())) {
        if (e->d_name[0] == '.') continue;
        std::string path = dir + "/" + e->d_name;
        struct stat st;
        if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0)
            names.push_back(e->d_name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

// Starts `path` in its own process group (a timeout kills the hook's children too) with the
// default signal mask (the daemon blocks the signals it handles through sd-event).
Expected<pid_t> spawn_hook(std::string path, char** envp) {
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    char* argv[] = {path.data(), nullptr};
    pid_t pid = 0;
    int err = posix_spawn(&pid, path.c_str(), nullptr, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    if (err != 0) return Status::fail(err, "Could not run hook " + path + ": " + errno_text(err));
    return pid;
}

}  // namespace

size_t HookRunner::run(const std::string& dir, const HookEvent& ev) {
    std::vector<std::string> names = hook_names(dir);
    std::vector<std::string> env_strings = {
        "WANBALANCE_EVENT=" + ev.event, "WANBALANCE_WAN=" + ev.wan, "WANBALANCE_INTERFACE=" + ev.interface,
        "WANBALANCE_STATE=" + ev.state, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    size_t started = 0;
    for (const auto& name : names) {
        std::string path = dir + "/" + name;
        if (children_.size() >= kMaxRunningHooks) {
            log(Level::Warning, "hook " + path + " not run for " + ev.event + ": " + std::to_string(kMaxRunningHooks) +
                                    " hooks are still running");
            continue;
        }
        auto pid = spawn_hook(path, envp.data());
        if (!pid) {
            log(Level::Error, pid.error().message);
            continue;
        }
        auto child = std::make_unique<Child>();
        child->runner = this;
        child->pid = *pid;
        child->path = path;
        child->event = ev.event + (ev.wan.empty() ? "" : " " + ev.wan);
        if (Status s = watch(*child); !s) {
            // Nothing would reap it or enforce its timeout: better not to leave it running.
            log(Level::Error, "Could not watch hook " + path + ": " + s.message + "; killed it");
            kill(-*pid, SIGKILL);
            waitpid(*pid, nullptr, 0);
            continue;
        }
        children_[*pid] = std::move(child);
        ++started;
    }
    return started;
}

Status HookRunner::watch(Child& child) {
    sd_event_source* exit_source = nullptr;
    auto on_child = [](sd_event_source*, const siginfo_t* si, void* c) {
        static_cast<Child*>(c)->runner->on_exit(si->si_pid, si->si_code, si->si_status);
        return 0;
    };
    if (int r = sd_event_add_child(event_, &exit_source, child.pid, WEXITED, on_child, &child); r < 0)
        return Status::fail(-r, errno_text(-r));
    child.exit_source.reset(exit_source);
    sd_event_source* timer_source = nullptr;
    auto on_timer = [](sd_event_source*, uint64_t, void* c) {
        auto* self = static_cast<Child*>(c);
        self->runner->on_timeout(self->pid);
        return 0;
    };
    auto usec = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(timeout_).count());
    if (int r = sd_event_add_time_relative(event_, &timer_source, CLOCK_MONOTONIC, usec, 0, on_timer, &child); r < 0)
        return Status::fail(-r, errno_text(-r));
    child.timer_source.reset(timer_source);
    return Status::ok();
}

void HookRunner::on_exit(pid_t pid, int code, int status) {
    auto it = children_.find(pid);
    if (it == children_.end()) return;
    const Child& c = *it->second;
    if (code == CLD_EXITED && status != 0)
        log(Level::Warning, "hook " + c.path + " (" + c.event + ") exited with status " + std::to_string(status));
    else if (code == CLD_KILLED || code == CLD_DUMPED)
        log(Level::Warning, "hook " + c.path + " (" + c.event + ") was killed by signal " + std::to_string(status));
    children_.erase(it);
}

void HookRunner::on_timeout(pid_t pid) {
    auto it = children_.find(pid);
    if (it == children_.end()) return;
    log(Level::Warning, "hook " + it->second->path + " (" + it->second->event + ") still running after " +
                            std::to_string(timeout_.count()) + " ms: killed");
    // The exit source reaps it and logs the signal.
    kill(-pid, SIGKILL);
}

}  // namespace wb
