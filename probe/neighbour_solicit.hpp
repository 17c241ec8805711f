// Whether a gateway answers on its link, asked the way the kernel itself asks before it can send
// it anything: an ARP request (IPv4) or a neighbour solicitation (IPv6), sent on the interface
// without going through the kernel's neighbour table. For `check --live`; needs CAP_NET_RAW.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "base/ip.hpp"
#include "base/status.hpp"

namespace wb {

struct SolicitRequest {
    std::string interface;
    int ifindex = 0;
    IpAddr gateway;
    std::optional<IpAddr> source;  // IPv4: the sender address in the request (else 0.0.0.0, an ARP probe)
    unsigned tries = 3;
    std::chrono::milliseconds interval{400};  // between tries, and how long the last one waits
};

// true: an answer from the gateway; false: none after every try; an error when nothing could be
// sent (EPERM without CAP_NET_RAW, ENODEV, ENETDOWN on a link that is down).
Expected<bool> solicit_neighbour(const SolicitRequest& request);

}  // namespace wb
