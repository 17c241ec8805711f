// RttEstimator: RFC 6298's srtt/rttvar and the deadline they give a probe.
#include <doctest/doctest.h>

#include "probe/rtt.hpp"

using wb::RttEstimator;

TEST_CASE("before any answer the deadline is the ceiling") {
    RttEstimator e;
    CHECK_FALSE(e.srtt().has_value());
    CHECK(e.deadline(50000, 600000) == 600000);
}

TEST_CASE("the first sample sets srtt = R and rttvar = R/2 (RFC 6298 2.2)") {
    RttEstimator e;
    e.sample(20000);
    CHECK(*e.srtt() == 20000);
    CHECK(*e.rttvar() == 10000);
    CHECK(e.deadline(5000, 600000) == 20000 + 4 * 10000);
}

TEST_CASE("later samples: rttvar = 3/4 rttvar + 1/4 |srtt - R|, then srtt = 7/8 srtt + 1/8 R (2.3)") {
    RttEstimator e;
    e.sample(20000);
    e.sample(28000);
    CHECK(*e.rttvar() == (3 * 10000 + 8000) / 4);
    CHECK(*e.srtt() == (7 * 20000 + 28000) / 8);
}

TEST_CASE("a steady path converges: the deadline shrinks to the floor, and never below it") {
    RttEstimator e;
    for (int i = 0; i < 200; ++i) e.sample(300);
    CHECK(*e.srtt() == 300);
    CHECK(*e.rttvar() < 10);
    CHECK(e.deadline(50000, 600000) == 50000);
}

TEST_CASE("a late answer raises the deadline at once; the ceiling still bounds it") {
    RttEstimator e;
    for (int i = 0; i < 50; ++i) e.sample(1000);
    uint64_t before = e.deadline(0, 600000);
    e.sample(300000);  // a full queue
    uint64_t after = e.deadline(0, 600000);
    CHECK(after > before);
    CHECK(after > 300000);  // srtt/8 jump + 4 * a quarter of the error covers the new RTT
    e.sample(3000000);
    CHECK(e.deadline(0, 600000) == 600000);
}

TEST_CASE("reset forgets everything") {
    RttEstimator e;
    e.sample(1000);
    e.reset();
    CHECK_FALSE(e.srtt().has_value());
    CHECK(e.deadline(1, 2) == 2);
}
