// The clocks probes are timed with, and the choice of transport by probe kind.
#include "probe/transport.hpp"

#include <time.h>

#include <algorithm>

namespace wb {

Usec monotonic_usec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<Usec>(ts.tv_sec) * 1000000u + static_cast<Usec>(ts.tv_nsec) / 1000u;
}

Usec realtime_to_monotonic(const timespec& realtime) {
    timespec real_now{}, mono_now{};
    clock_gettime(CLOCK_REALTIME, &real_now);
    clock_gettime(CLOCK_MONOTONIC, &mono_now);
    auto usec = [](const timespec& t) {
        return static_cast<int64_t>(t.tv_sec) * 1000000 + static_cast<int64_t>(t.tv_nsec) / 1000;
    };
    // How long ago the kernel stamped it; a stamp "in the future" (the wall clock was stepped)
    // counts as now.
    int64_t ago = std::max<int64_t>(usec(real_now) - usec(realtime), 0);
    int64_t mono = usec(mono_now);
    return static_cast<Usec>(std::max<int64_t>(mono - ago, 0));
}

Expected<std::unique_ptr<ProbeTransport>> open_transport(ProbeKind kind, sd_event* event, const TransportSetup& setup,
                                                         ProbeTransport::AnswerFn on_answer) {
    switch (kind) {
        case ProbeKind::Icmp: return open_icmp_transport(event, setup, std::move(on_answer));
        case ProbeKind::Tcp: return open_tcp_transport(event, setup, std::move(on_answer));
        case ProbeKind::Dns: return open_dns_transport(event, setup, std::move(on_answer));
    }
    return Status::fail(EINVAL, "unknown probe kind");
}

}  // namespace wb
