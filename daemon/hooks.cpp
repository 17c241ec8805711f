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
#include "config/hooks_trust.hpp"
#include "daemon/log.hpp"

extern char** environ;

namespace wb {

struct HookRunner::Child {
    HookRunner* runner = nullptr;
    pid_t pid = 0;
    std::string path;
    std::string event;
    std::string key;  // its queue
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
    if (names.empty()) return 0;
    Queue& queue = queues_[ev.wan];
    for (const auto& name : names) queue.jobs.push_back({dir, name, ev});
    if (queue.jobs.size() > kHookBacklogWarning && !queue.warned) {
        queue.warned = true;
        log(Level::Warning, std::to_string(queue.jobs.size()) + " hook runs are waiting for " +
                                (ev.wan.empty() ? "events without a WAN" : "WAN " + ev.wan) +
                                ": a WAN's hooks run one at a time, so one may be hanging (each is killed after " +
                                std::to_string(timeout_.count()) + " ms)");
    }
    if (!queue.busy) start_next(ev.wan);
    return names.size();
}

size_t HookRunner::pending() const {
    size_t n = 0;
    for (const auto& [key, queue] : queues_) n += queue.jobs.size();
    return n;
}

void HookRunner::start_next(const std::string& key) {
    auto it = queues_.find(key);
    if (it == queues_.end()) return;
    Queue& queue = it->second;
    while (!queue.jobs.empty()) {
        Job job = std::move(queue.jobs.front());
        queue.jobs.pop_front();
        if (queue.jobs.empty()) queue.warned = false;
        if (start(key, job)) {
            queue.busy = true;
            return;
        }
    }
    queues_.erase(it);  // idle and empty: forgotten, so removed WANs leave nothing behind
}

// Starts one hook, unless it is no longer trusted; false when it is not running.
bool HookRunner::start(const std::string& key, const Job& job) {
    const HookEvent& ev = job.event;
    std::string path = job.dir + "/" + job.name;
    std::string what = ev.event + (ev.wan.empty() ? "" : " " + ev.wan);
    // Just before it runs: the hook or its directory may have changed since start or reload.
    if (auto problems = check_hook(job.dir, job.name, geteuid()); !problems.empty()) {
        for (const auto& p : problems) log(Level::Error, "hook " + path + " not run for " + what + ": " + p.message);
        return false;
    }
    std::vector<std::string> env_strings = {
        "WANBALANCE_EVENT=" + ev.event, "WANBALANCE_WAN=" + ev.wan, "WANBALANCE_INTERFACE=" + ev.interface,
        "WANBALANCE_STATE=" + ev.state, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    if (!ev.family.empty()) env_strings.push_back("WANBALANCE_FAMILY=" + ev.family);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    auto pid = spawn_hook(path, envp.data());
    if (!pid) {
        log(Level::Error, pid.error().message);
        return false;
    }
    auto child = std::make_unique<Child>();
    child->runner = this;
    child->pid = *pid;
    child->path = path;
    child->event = what;
    child->key = key;
    if (Status s = watch(*child); !s) {
        // Nothing would reap it or enforce its timeout: better not to leave it running.
        log(Level::Error, "Could not watch hook " + path + ": " + s.message + "; killed it");
        kill(-*pid, SIGKILL);
        waitpid(*pid, nullptr, 0);
        return false;
    }
    children_[*pid] = std::move(child);
    return true;
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
    std::string key = c.key;
    children_.erase(it);
    // The next hook of the same WAN, now that this one is done.
    if (auto q = queues_.find(key); q != queues_.end()) q->second.busy = false;
    start_next(key);
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
