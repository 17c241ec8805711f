// How one kind of probe goes out and comes back: the prober (prober.cpp) owns rounds, deadlines
// and judgement; a transport owns sockets. One transport per probed path (a WAN's IPv4 or IPv6)
// and kind: ICMP echo (icmp_transport.cpp), TCP handshake (tcp_transport.cpp), DNS query
// (dns_transport.cpp). Each socket is bound to the WAN's interface and carries its mark, so
// policy routing sends it out of that WAN and nowhere else.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/ip.hpp"
#include "base/status.hpp"
#include "config/config.hpp"

namespace wb {

using Usec = uint64_t;  // CLOCK_MONOTONIC, microseconds

// CLOCK_MONOTONIC now, in microseconds.
Usec monotonic_usec();
// A kernel receive timestamp (SO_TIMESTAMPNS: CLOCK_REALTIME) as CLOCK_MONOTONIC, for RTTs that do
// not include the daemon's own scheduling delay.
Usec realtime_to_monotonic(const timespec& realtime);

struct TransportSetup {
    std::string interface;  // SO_BINDTODEVICE
    uint32_t mark = 0;      // SO_MARK
    Family family = Family::V4;
    uint16_t identifier = 0;  // ICMP echo identifier; unique per path in this process
};

// One answer: which probe, and when it arrived (the kernel's receive time where the transport can
// get it, else when the daemon read it). `at` may be earlier than the moment the callback runs.
struct ProbeAnswer {
    uint64_t token = 0;
    Usec at = 0;
};

class ProbeTransport {
public:
    using AnswerFn = std::function<void(const ProbeAnswer&)>;
    virtual ~ProbeTransport() = default;

    // Sends one probe to `target` (of this transport's kind and family). `token` comes back in
    // the answer. Returns 0, or the errno (ENODEV/ENXIO: the interface is gone; the prober then
    // re-creates the transport).
    // A transport may call the answer callback only from the event loop, never inside send().
    virtual int send(const ProbeTarget& target, uint64_t token) = 0;
    // Reads everything already received without waiting, calling the answer callback: the prober
    // calls this before it judges a deadline, so an answer queued while the daemon was busy is
    // still counted at the time it arrived.
    virtual void poll() = 0;
    // The probe was judged lost and its late answer is no longer wanted: release what it holds
    // (a TCP socket). A transport forgets a probe by itself once it has reported its answer (the
    // prober never calls forget() for it, and never from inside the answer callback).
    virtual void forget(uint64_t token) = 0;
};

// Opens the transport for `kind`: the socket(s), bound and marked, watched on `event`. A missing
// interface fails with ENODEV (the prober retries each round).
Expected<std::unique_ptr<ProbeTransport>> open_transport(ProbeKind kind, sd_event* event, const TransportSetup& setup,
                                                         ProbeTransport::AnswerFn on_answer);

// The ones open_transport() dispatches to.
Expected<std::unique_ptr<ProbeTransport>> open_icmp_transport(sd_event* event, const TransportSetup& setup,
                                                              ProbeTransport::AnswerFn on_answer);
Expected<std::unique_ptr<ProbeTransport>> open_tcp_transport(sd_event* event, const TransportSetup& setup,
                                                             ProbeTransport::AnswerFn on_answer);
Expected<std::unique_ptr<ProbeTransport>> open_dns_transport(sd_event* event, const TransportSetup& setup,
                                                             ProbeTransport::AnswerFn on_answer);

}  // namespace wb
