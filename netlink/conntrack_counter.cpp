// The conntrack counter's two sides: count() and process() on the loop's thread, run() on the
// worker. They share only what `mutex` guards; the callbacks never leave the loop's thread, and
// the ctnetlink socket is used by the worker alone once it runs.
#include "netlink/conntrack_counter.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/fd.hpp"
#include "base/ipv4.hpp"
#include "netlink/conntrack.hpp"

namespace wb {

struct ConntrackCounter::Impl {
    std::unique_ptr<Conntrack> conntrack;  // the worker's, once it runs
    Fd event;                              // eventfd: worker -> loop
    std::thread worker;

    std::mutex mutex;
    std::condition_variable wake;
    // Guarded by mutex: the newest request (tickets count up from 1), its parameters, the
    // finished counts (each with the newest ticket it answers) and the stop request.
    uint64_t wanted = 0;
    uint32_t mask = 0;
    ProbeFlows probes;
    ConnClassifier classify;
    std::deque<std::pair<uint64_t, Expected<Counts>>> finished;
    bool stopping = false;

    // The loop's thread only: the callbacks in ticket order.
    uint64_t next_ticket = 0;
    std::deque<std::pair<uint64_t, Done>> waiting;

    Expected<Counts> count_now(uint32_t m, const ProbeFlows& ids, const ConnClassifier& c) {
        try {
            return conntrack->count(m, ids, c);
        } catch (const std::exception& e) {
            return Status::fail(ENOMEM, std::string("Could not read the conntrack table: ") + e.what());
        }
    }

    void run() {
        uint64_t taken = 0;  // the newest ticket a count has started for
        std::unique_lock lock(mutex);
        for (;;) {
            wake.wait(lock, [&] { return stopping || wanted > taken; });
            if (stopping) return;
            taken = wanted;
            const uint32_t m = mask;
            const ProbeFlows ids = probes;
            const ConnClassifier c = classify;
            lock.unlock();
            Expected<Counts> counts = count_now(m, ids, c);
            lock.lock();
            finished.emplace_back(taken, std::move(counts));
            uint64_t one = 1;
            // Cannot fail short of 2^64 - 1 unread wake-ups; EINTR only from a signal handler.
            while (write(event.fd, &one, sizeof one) < 0 && errno == EINTR) {
            }
        }
    }

    void stop() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        wake.notify_one();
        if (worker.joinable()) worker.join();
    }
};

Expected<std::unique_ptr<ConntrackCounter>> ConntrackCounter::open() {
    auto conntrack = Conntrack::open();
    if (!conntrack) return conntrack.error();
    std::unique_ptr<ConntrackCounter> counter(new ConntrackCounter);
    counter->impl_ = std::make_unique<Impl>();
    Impl& s = *counter->impl_;
    s.conntrack = std::move(*conntrack);
    s.event = Fd{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    if (!s.event) return Status::fail(errno, "Could not create an eventfd for conntrack counts: " + errno_text(errno));
    // The thread inherits the mask: a signal meant for the loop's signalfd must not land on it.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int err = 0;
    try {
        s.worker = std::thread([&s] { s.run(); });
    } catch (const std::system_error& e) {
        err = e.code().value();
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (err) return Status::fail(err, "Could not start the conntrack counting thread: " + errno_text(err));
    return counter;
}

ConntrackCounter::~ConntrackCounter() {
    if (impl_) impl_->stop();
}

void ConntrackCounter::count(uint32_t mask, ProbeFlows probes, ConnClassifier classify, Done done) {
    Impl& s = *impl_;
    const uint64_t ticket = ++s.next_ticket;
    s.waiting.emplace_back(ticket, std::move(done));
    {
        std::lock_guard lock(s.mutex);
        s.wanted = ticket;
        s.mask = mask;
        s.probes = std::move(probes);
        s.classify = std::move(classify);
    }
    s.wake.notify_one();
}

int ConntrackCounter::fd() const { return impl_->event.fd; }

void ConntrackCounter::process() {
    Impl& s = *impl_;
    // Read the wake-up before taking the results: a count finishing in between is taken now
    // and leaves a wake-up that finds nothing, instead of a result nobody wakes up for.
    uint64_t wakeups = 0;
    while (read(s.event.fd, &wakeups, sizeof wakeups) < 0 && errno == EINTR) {
    }
    std::deque<std::pair<uint64_t, Expected<Counts>>> results;
    {
        std::lock_guard lock(s.mutex);
        results.swap(s.finished);
    }
    for (const auto& [ticket, counts] : results) {
        // Taken off the queue first: a callback may ask again, which appends to it.
        std::vector<Done> ready;
        for (; !s.waiting.empty() && s.waiting.front().first <= ticket; s.waiting.pop_front())
            ready.push_back(std::move(s.waiting.front().second));
        for (const Done& done : ready) done(counts);
    }
}

}  // namespace wb
