// ConntrackCounter against the real kernel: counts made on the worker thread reach their
// callbacks only through process(), requests made during a count share the next one, and the
// counter can be destroyed at any moment, also in the middle of a dump of a big table.
#include <doctest/doctest.h>
#include <poll.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "netlink/conntrack_counter.hpp"
#include "tests/kernel/netns.hpp"

using namespace wb;
using namespace std::chrono_literals;
using wb::test::must;
using Counts = ConntrackCounter::Counts;
using Marks = std::map<uint32_t, unsigned>;

namespace {

// `n` UDP entries with mark 0x100 and `n` with 0x200, loaded in one conntrack process.
void fill(int n) {
    must("f=$(mktemp) && for m in 256 512; do seq 1 " + std::to_string(n) +
         " | awk -v m=$m '{ printf \"-I -s 10.%d.%d.%d -d 192.0.2.1 -p udp --sport 1000 --dport 53 -t 300 -m %d\\n\", "
         "m / 256, int($1 / 250), $1 % 250, m }'; done > $f && conntrack -R $f >/dev/null 2>&1; rc=$?; rm -f $f; "
         "exit $rc");
}

std::unique_ptr<ConntrackCounter> open_counter() {
    auto counter = ConntrackCounter::open();
    REQUIRE_MESSAGE(counter.has_value(), counter.error().message);
    return std::move(*counter);
}

// Calls process() whenever fd() is readable until `done()` holds (or 10 s have passed).
template <class Pred>
void process_until(ConntrackCounter& counter, Pred done) {
    auto until = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < until) {
        pollfd p{counter.fd(), POLLIN, 0};
        if (poll(&p, 1, 100) > 0) counter.process();
    }
    REQUIRE(done());
}

}  // namespace

TEST_CASE("a count runs on the worker and reaches its callback through process()") {
    test::enter_fresh_netns();
    fill(300);
    must("conntrack -I -s 203.0.113.2 -d 192.0.2.53 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id 4242 -t 30 -m 256");
    auto counter = open_counter();
    std::vector<Counts> got;
    auto record = [&](const Expected<Counts>& counts) {
        REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
        got.push_back(*counts);
    };
    counter->count(0x3f00, ProbeFlows{}, record);
    counter->count(0x3f00, ProbeFlows(std::set<uint16_t>{4242}), record);
    CHECK(got.empty());  // never from count() itself
    process_until(*counter, [&] { return got.size() == 2; });
    // The second request came before the worker could finish the first: both may share one count
    // (with the newest request's ids), or the first was counted alone.
    CHECK(got[1].by_mark == Marks{{0x100, 300}, {0x200, 300}});
    CHECK((got[0] == got[1] || got[0].by_mark == Marks{{0x100, 301}, {0x200, 300}}));

    // Nothing left over: a later request gets a fresh count.
    must("conntrack -I -s 10.9.9.9 -d 192.0.2.1 -p udp --sport 1000 --dport 53 -t 300 -m 512");
    counter->count(0x3f00, ProbeFlows(std::set<uint16_t>{4242}), record);
    process_until(*counter, [&] { return got.size() == 3; });
    CHECK(got[2].by_mark == Marks{{0x100, 300}, {0x200, 301}});

    // A WAN's IPv6 connections count with its IPv4 ones; its ICMPv6 probes do not.
    must("conntrack -I -s 2001:db8:1::2 -d 2001:db8:ff::1 -p udp --sport 1000 --dport 53 -t 300 -m 512");
    must("conntrack -I -s 2001:db8:1::2 -d 2001:db8:ff::53 -p icmpv6 --icmpv6-type 128 --icmpv6-code 0 "
         "--icmpv6-id 4243 -t 30 -m 512");
    counter->count(0x3f00, ProbeFlows(std::set<uint16_t>{4242, 4243}), record);
    process_until(*counter, [&] { return got.size() == 4; });
    CHECK(got[3].by_mark == Marks{{0x100, 300}, {0x200, 302}});
}

TEST_CASE("requests made while a big table is counted share the next count") {
    test::enter_fresh_netns();
    fill(10000);
    auto counter = open_counter();
    // Each callback notes which result it got: its address, unique within one process() call.
    std::set<std::pair<int, const void*>> results;
    int calls = 0, answered = 0;
    for (int i = 0; i < 10; ++i)
        counter->count(0x3f00, ProbeFlows{}, [&](const Expected<Counts>& counts) {
            REQUIRE(counts.has_value());
            CHECK(counts->by_mark == Marks{{0x100, 10000}, {0x200, 10000}});
            results.emplace(calls, &counts);
            ++answered;
        });
    auto until = std::chrono::steady_clock::now() + 10s;
    while (answered < 10 && std::chrono::steady_clock::now() < until) {
        pollfd p{counter->fd(), POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            ++calls;
            counter->process();
        }
    }
    CHECK(answered == 10);
    // The first request's count, perhaps, then one count for all the others.
    CHECK(results.size() <= 2);
}

TEST_CASE("destroyed in the middle of a dump: the worker stops after it, no callback runs") {
    test::enter_fresh_netns();
    fill(25000);
    auto counter = open_counter();
    bool called = false;
    counter->count(0x3f00, ProbeFlows{}, [&](const Expected<Counts>&) { called = true; });
    std::this_thread::sleep_for(2ms);  // the dump is under way
    auto start = std::chrono::steady_clock::now();
    counter.reset();
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK_FALSE(called);

    // Idle, and with nothing ever asked.
    auto idle = open_counter();
    start = std::chrono::steady_clock::now();
    idle.reset();
    CHECK(std::chrono::steady_clock::now() - start < 100ms);
}
