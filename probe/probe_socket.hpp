// Internal to the probe module: what every TCP and DNS probe socket gets, exactly like the ICMP
// one (icmp_transport.cpp): bound to the WAN's interface and carrying its mark, so policy routing
// sends it out of that WAN and nowhere else; and the socket address of a target.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <functional>
#include <span>

#include "base/ip.hpp"
#include "base/status.hpp"
#include "probe/transport.hpp"

namespace wb::probe_detail {

// SO_BINDTODEVICE setup.interface and SO_MARK setup.mark on `fd`. Fails with the errno
// (ENODEV: the interface is gone).
Status bind_and_mark(int fd, const TransportSetup& setup);

// The address to connect or send to. fe80::1 exists on every link: a link-local or multicast
// IPv6 target gets the scope of the interface the socket is bound to (`ifindex`).
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};
SocketAddress socket_address(const IpAddr& address, uint16_t port, int ifindex);

// The address and port of a received datagram's source, when it is of the family asked for.
bool same_endpoint(const sockaddr_storage& from, const IpAddr& address, uint16_t port);

// One datagram as a probe socket received it: its bytes, its source, and the kernel's receive
// time (SO_TIMESTAMPNS) as CLOCK_MONOTONIC, or the time it was read without a timestamp.
struct Datagram {
    std::span<const uint8_t> bytes;
    const sockaddr_storage& from;
    Usec at;
};

// Reads every datagram queued on the non-blocking `fd` (until EAGAIN), handing each to `take`.
// A datagram longer than the buffer is truncated: probes read only their headers.
void read_datagrams(int fd, const std::function<void(const Datagram&)>& take);

}  // namespace wb::probe_detail
