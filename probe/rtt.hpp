// A target's round-trip estimate and the deadline it gives its probes: RFC 6298's srtt and rttvar
// (alpha 1/8, beta 1/4, K = 4), in microseconds. Pure.
#pragma once

#include <cstdint>
#include <optional>

namespace wb {

class RttEstimator {
public:
    // One measured round trip (an on-time or a late answer alike: a late one is exactly what the
    // estimate must learn from).
    void sample(uint64_t rtt_usec);
    // Forgets every sample (the target or the path changed).
    void reset() { *this = RttEstimator{}; }

    std::optional<uint64_t> srtt() const { return srtt_; }
    std::optional<uint64_t> rttvar() const { return rttvar_; }
    // srtt + 4·rttvar, at least `floor` and at most `ceiling`; `ceiling` before the first sample
    // (nothing is known yet, so the probe gets all the time it may have).
    uint64_t deadline(uint64_t floor, uint64_t ceiling) const;

private:
    std::optional<uint64_t> srtt_, rttvar_;
};

}  // namespace wb
