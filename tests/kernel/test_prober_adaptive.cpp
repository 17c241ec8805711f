// The prober's adaptive deadlines against the real kernel: a target that suddenly answers late is
// lost at its short deadline when nothing else vouches for the path, and merely late while the
// WAN's own traffic keeps coming back; late answers teach the RTT; Prober::suspect() starts a
// confirmation round at once. Late answers come from tests/kernel/slow_echo.py (no netem here).
#include <signal.h>

#include <fstream>

#include "tests/kernel/prober_harness.hpp"

using namespace prober_test;

namespace {

// slow_echo.py answering for `address` in `peer`, whose kernel no longer answers pings itself;
// killed however the test ends.
class SlowEcho {
public:
    SlowEcho(const Peer& peer, const std::string& address)
        : delay_file_("/tmp/wb-slow-echo-" + std::to_string(getpid()) + "-" + peer.name()) {
        set_delay(std::chrono::milliseconds(0));
        peer.sh("sysctl -qw net.ipv4.icmp_echo_ignore_all=1");
        std::string pid = peer.sh("sh -c 'python3 " WB_SOURCE_DIR "/tests/kernel/slow_echo.py " + address + " " +
                                  delay_file_ + " >/dev/null 2>&1 & echo $!'");
        pid_ = std::stoi(pid);
        usleep(300000);  // python's start-up
    }
    ~SlowEcho() {
        kill(pid_, SIGKILL);
        std::remove(delay_file_.c_str());
    }
    SlowEcho(const SlowEcho&) = delete;
    SlowEcho& operator=(const SlowEcho&) = delete;
    void set_delay(std::chrono::milliseconds d) { std::ofstream(delay_file_) << d.count() << "\n"; }

private:
    std::string delay_file_;
    int pid_ = 0;
};

}  // namespace

TEST_CASE("late answers: lost at the short deadline without traffic, late but fine while the WAN's replies grow") {
    enter_router();
    Peer peer("a");
    link_to(peer, "wanA", "203.0.113", {"192.0.2.53"});
    must("ip route add default via 203.0.113.1 dev wanA");
    SlowEcho echo(peer, "192.0.2.53");

    uint64_t replies = 0;
    bool traffic = false;
    Harness h;
    h.replies = [&](const ProbeKey&) -> std::optional<uint64_t> { return traffic ? ++replies : replies; };
    ProbeSpec spec;
    h.configure(v4("a"), "wanA", 0x100, {"192.0.2.53"}, 100ms, 400ms);

    // Quick answers first: the deadline settles on the floor.
    REQUIRE(h.wait_rounds(v4("a"), true, 8, 3000ms, 0));
    CHECK(h.prober->deadline(v4("a")) == std::chrono::microseconds(50000));

    // 150 ms answers while the WAN's connections keep getting replies: late, not lost.
    traffic = true;
    echo.set_delay(150ms);
    size_t mark = h.seen.size();
    h.run_for(1500ms);
    auto busy = h.of(v4("a"), mark);
    REQUIRE(busy.size() >= 5);
    for (const auto& s : busy) {
        CAPTURE(s.outcome.round);
        CHECK(s.outcome.success);
    }
    CHECK(std::any_of(busy.begin(), busy.end(), [](const Seen& s) { return s.outcome.traffic_alive; }));
    // The late answers taught the RTT: the deadline now covers 150 ms.
    auto stats = h.prober->stats(v4("a"));
    REQUIRE(stats.targets.size() == 1);
    REQUIRE(stats.targets[0].srtt_ms.has_value());
    CHECK(*stats.targets[0].srtt_ms > 50);
    CHECK(h.prober->deadline(v4("a")) > std::chrono::microseconds(150000));

    // Back to quick answers until the deadline is short again, then 150 ms with no traffic to
    // vouch for the path: the first rounds are lost at the short deadline, a burst confirms.
    echo.set_delay(0ms);
    traffic = false;
    REQUIRE(h.run_until([&] { return h.prober->deadline(v4("a")) < std::chrono::microseconds(100000); }, 10000ms));
    mark = h.seen.size();
    echo.set_delay(150ms);
    REQUIRE(h.wait_rounds(v4("a"), false, 1, 2000ms, mark));
    auto quiet = h.of(v4("a"), mark);
    auto failed = std::find_if(quiet.begin(), quiet.end(), [](const Seen& s) { return !s.outcome.success; });
    REQUIRE(failed != quiet.end());
    CHECK_FALSE(failed->outcome.traffic_alive);
    CHECK(failed->outcome.deadline < std::chrono::microseconds(150000));
    REQUIRE(h.wait_rounds(v4("a"), false, 2, 2000ms, mark));
    auto after = h.of(v4("a"), mark);
    CHECK(std::any_of(after.begin(), after.end(), [](const Seen& s) { return s.outcome.confirmation; }));
}

TEST_CASE("suspect() sends a confirmation round at once, once; a quiet path is left alone") {
    enter_router();
    Peer peer("a");
    link_to(peer, "wanA", "203.0.113", {"192.0.2.53"});
    must("ip route add default via 203.0.113.1 dev wanA");
    Harness h;
    // One round a second: a round within 100 ms of the call can only be the confirmation.
    h.configure(v4("a"), "wanA", 0x100, {"192.0.2.53"}, 1000ms, 600ms);
    REQUIRE(h.wait_rounds(v4("a"), true, 1, 2000ms, 0));
    h.run_for(200ms);
    size_t mark = h.seen.size();
    auto asked = Clock::now();
    CHECK(h.prober->suspect(v4("a")));
    CHECK_FALSE(h.prober->suspect(v4("a")));  // already confirming
    CHECK(h.prober->stats(v4("a")).suspect);
    REQUIRE(h.wait_rounds(v4("a"), true, 1, 500ms, mark));
    auto confirmed = h.of(v4("a"), mark);
    CHECK(confirmed.front().outcome.confirmation);
    CHECK(ms_between(asked, confirmed.front().at) < 100);
    // Answered: the burst is over and the schedule is back to one round a second.
    CHECK_FALSE(h.prober->stats(v4("a")).suspect);
    mark = h.seen.size();
    h.run_for(700ms);
    CHECK(h.of(v4("a"), mark).empty());
    CHECK_FALSE(h.prober->suspect(ProbeKey{"nobody", Family::V4}));
}
