// RFC 6298 section 2, with microsecond integers: the first sample R sets srtt = R and
// rttvar = R/2; each later one sets rttvar = 3/4·rttvar + 1/4·|srtt − R|, then srtt = 7/8·srtt + 1/8·R.
#include "probe/rtt.hpp"

#include <algorithm>

namespace wb {

void RttEstimator::sample(uint64_t rtt) {
    if (!srtt_) {
        srtt_ = rtt;
        rttvar_ = rtt / 2;
        return;
    }
    uint64_t error = *srtt_ > rtt ? *srtt_ - rtt : rtt - *srtt_;
    rttvar_ = (3 * *rttvar_ + error) / 4;
    srtt_ = (7 * *srtt_ + rtt) / 8;
}

uint64_t RttEstimator::deadline(uint64_t floor, uint64_t ceiling) const {
    if (!srtt_) return ceiling;
    return std::min(std::max(*srtt_ + 4 * *rttvar_, floor), ceiling);
}

}  // namespace wb
