// Conntrack counts off the event loop: a dump of a big table (50 000 entries and more) takes
// long, and probe rounds must not wait for it. A worker thread counts on its own ctnetlink
// socket; the daemon polls fd() from its event loop and calls process() when it is readable,
// which hands each result to the callbacks that asked for it, on the loop's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "base/noncopyable.hpp"
#include "base/status.hpp"
#include "netlink/conntrack.hpp"

namespace wb {

class ConntrackCounter : NonCopyable {
public:
    using Counts = ConnCounts;  // as Conntrack::count
    using Done = std::function<void(const Expected<Counts>& counts)>;

    // Opens the ctnetlink socket (current netns) and the eventfd, and starts the worker thread
    // with every signal blocked (the loop takes its signals through signalfd).
    static Expected<std::unique_ptr<ConntrackCounter>> open();
    // Stops the worker and joins it: at once when it is idle, else after the dump it runs (the
    // kernel keeps talking, or the dump fails after kAnswerTimeout of silence). Callbacks still
    // waiting are dropped without being called.
    ~ConntrackCounter();

    // Asks for Conntrack::count(mask, probes, classify) on the worker (which calls
    // `classify`: give it a copy of what it needs); `done` runs later from process(), never from
    // here. Requests that arrive while a count runs share the next count, made with the newest
    // request's parameters. Loop thread only.
    void count(uint32_t mask, ProbeFlows probes, ConnClassifier classify, Done done);
    void count(uint32_t mask, ProbeFlows probes, Done done) {
        count(mask, std::move(probes), {}, std::move(done));
    }

    // An eventfd, readable once a count has finished.
    int fd() const;
    // Runs the callbacks of every finished count, each request's exactly once. Loop thread only;
    // a callback may call count() again but must not destroy the counter.
    void process();

private:
    ConntrackCounter() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
