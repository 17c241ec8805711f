#include <doctest/doctest.h>

#include "probe/health.hpp"

using wb::HealthEvent;
using wb::HealthMachine;
using wb::ProbeConfig;
using wb::ProbeState;

namespace {

ProbeConfig thresholds(unsigned down_after, unsigned up_after) {
    ProbeConfig probe;
    probe.down_after = down_after;
    probe.up_after = up_after;
    return probe;
}

// Feeds `n` events and returns how many of them changed the state.
int feed(HealthMachine& m, HealthEvent e, unsigned n, const ProbeConfig& probe) {
    int transitions = 0;
    for (unsigned i = 0; i < n; ++i) transitions += m.on_event(e, probe).has_value();
    return transitions;
}

}  // namespace

TEST_CASE("Up goes down after exactly down_after failed rounds, not before") {
    for (unsigned down_after : {1u, 2u, 3u, 7u}) {
        CAPTURE(down_after);
        auto probe = thresholds(down_after, 5);
        HealthMachine m;
        CHECK(feed(m, HealthEvent::RoundFailed, down_after - 1, probe) == 0);
        CHECK(m.state() == ProbeState::Up);
        CHECK(m.consecutive_failed() == down_after - 1);
        auto t = m.on_event(HealthEvent::RoundFailed, probe);
        REQUIRE(t.has_value());
        CHECK(t->from == ProbeState::Up);
        CHECK(t->to == ProbeState::Down);
        CHECK(m.state() == ProbeState::Down);
        // More failures while down change nothing.
        CHECK(feed(m, HealthEvent::RoundFailed, 10, probe) == 0);
        CHECK(m.state() == ProbeState::Down);
    }
}

TEST_CASE("transition reasons name the count") {
    HealthMachine m;
    auto probe = thresholds(3, 5);
    feed(m, HealthEvent::RoundFailed, 2, probe);
    CHECK(m.on_event(HealthEvent::RoundFailed, probe)->reason == "3 probe rounds failed in a row");
    feed(m, HealthEvent::RoundOk, 4, probe);
    CHECK(m.on_event(HealthEvent::RoundOk, probe)->reason == "5 probe rounds answered in a row");
    CHECK(m.on_event(HealthEvent::LinkLost, probe)->reason == "link lost");
    HealthMachine single;
    CHECK(single.on_event(HealthEvent::RoundFailed, thresholds(1, 1))->reason == "1 probe round failed");
}

TEST_CASE("a good round in between resets the failure count") {
    auto probe = thresholds(3, 5);
    HealthMachine m;
    for (int i = 0; i < 20; ++i) {
        CHECK(feed(m, HealthEvent::RoundFailed, 2, probe) == 0);
        CHECK_FALSE(m.on_event(HealthEvent::RoundOk, probe).has_value());
        CHECK(m.consecutive_failed() == 0);
        CHECK(m.consecutive_ok() == 1);
    }
    CHECK(m.state() == ProbeState::Up);
}

TEST_CASE("Down goes up after exactly up_after answered rounds; a failure restarts the count") {
    auto probe = thresholds(3, 5);
    HealthMachine m(ProbeState::Down);
    CHECK(feed(m, HealthEvent::RoundOk, 4, probe) == 0);
    CHECK_FALSE(m.on_event(HealthEvent::RoundFailed, probe).has_value());
    CHECK(m.consecutive_ok() == 0);
    CHECK(feed(m, HealthEvent::RoundOk, 4, probe) == 0);
    CHECK(m.state() == ProbeState::Down);
    auto t = m.on_event(HealthEvent::RoundOk, probe);
    REQUIRE(t.has_value());
    CHECK(t->from == ProbeState::Down);
    CHECK(t->to == ProbeState::Up);
    CHECK(m.state() == ProbeState::Up);
    CHECK(feed(m, HealthEvent::RoundOk, 10, probe) == 0);
}

TEST_CASE("link lost goes down at once; link back stays down and must earn up_after rounds") {
    auto probe = thresholds(3, 5);
    HealthMachine m;
    feed(m, HealthEvent::RoundFailed, 2, probe);
    auto t = m.on_event(HealthEvent::LinkLost, probe);
    REQUIRE(t.has_value());
    CHECK(t->to == ProbeState::Down);
    CHECK(m.consecutive_failed() == 0);
    CHECK(m.consecutive_ok() == 0);

    // Rounds answered before the link came back do not count toward up_after.
    feed(m, HealthEvent::RoundOk, 4, probe);
    CHECK_FALSE(m.on_event(HealthEvent::LinkBack, probe).has_value());
    CHECK(m.state() == ProbeState::Down);
    CHECK(m.consecutive_ok() == 0);
    CHECK(feed(m, HealthEvent::RoundOk, 4, probe) == 0);
    CHECK(m.on_event(HealthEvent::RoundOk, probe).has_value());
    CHECK(m.state() == ProbeState::Up);

    // Lost again while down: no transition, counters reset.
    HealthMachine d(ProbeState::Down);
    feed(d, HealthEvent::RoundOk, 3, probe);
    CHECK_FALSE(d.on_event(HealthEvent::LinkLost, probe).has_value());
    CHECK(d.consecutive_ok() == 0);

    // Link back while up (a missed "lost"): stays up, failure streak restarts.
    HealthMachine u;
    feed(u, HealthEvent::RoundFailed, 2, probe);
    CHECK_FALSE(u.on_event(HealthEvent::LinkBack, probe).has_value());
    CHECK(u.state() == ProbeState::Up);
    CHECK(feed(u, HealthEvent::RoundFailed, 2, probe) == 0);
    CHECK(u.on_event(HealthEvent::RoundFailed, probe).has_value());
}

TEST_CASE("20 flaps: each down and each up happens exactly at its threshold") {
    auto probe = thresholds(3, 5);
    HealthMachine m;
    int downs = 0, ups = 0;
    for (int flap = 0; flap < 20; ++flap) {
        CAPTURE(flap);
        // Noise that must not flip anything: a failed round between good ones.
        CHECK(feed(m, HealthEvent::RoundFailed, 2, probe) == 0);
        CHECK(feed(m, HealthEvent::RoundOk, 1, probe) == 0);
        CHECK(feed(m, HealthEvent::RoundFailed, 2, probe) == 0);
        auto down = m.on_event(HealthEvent::RoundFailed, probe);
        downs += down && down->to == ProbeState::Down;
        CHECK(m.state() == ProbeState::Down);
        CHECK(feed(m, HealthEvent::RoundOk, 4, probe) == 0);
        CHECK(feed(m, HealthEvent::RoundFailed, 1, probe) == 0);
        CHECK(feed(m, HealthEvent::RoundOk, 4, probe) == 0);
        auto up = m.on_event(HealthEvent::RoundOk, probe);
        ups += up && up->to == ProbeState::Up;
        CHECK(m.state() == ProbeState::Up);
    }
    CHECK(downs == 20);
    CHECK(ups == 20);
}

TEST_CASE("thresholds of 0 act as 1") {
    auto probe = thresholds(0, 0);
    HealthMachine m;
    CHECK(m.on_event(HealthEvent::RoundFailed, probe).has_value());
    CHECK(m.on_event(HealthEvent::RoundOk, probe).has_value());
}
