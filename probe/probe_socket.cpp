// Binding and marking probe sockets, and target socket addresses (probe/probe_socket.hpp).
#include "probe/probe_socket.hpp"

#include <algorithm>
#include <cerrno>

#include "base/format.hpp"

namespace wb::probe_detail {

Status bind_and_mark(int fd, const TransportSetup& setup) {
    // Bound by name, the kernel stores the ifindex: a re-created interface needs a new socket.
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, setup.interface.c_str(),
                   static_cast<socklen_t>(setup.interface.size())) < 0) {
        int err = errno;
        return Status::fail(err, "Could not bind the probe socket to " + setup.interface + ": " + errno_text(err));
    }
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &setup.mark, sizeof setup.mark) < 0) {
        int err = errno;
        return Status::fail(err, "Could not set mark " + hex(setup.mark) + " on the probe socket for " +
                                     setup.interface + ": " + errno_text(err));
    }
    return Status::ok();
}

SocketAddress socket_address(const IpAddr& address, uint16_t port, int ifindex) {
    SocketAddress out;
    if (const auto* v4 = std::get_if<Ipv4>(&address)) {
        auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = v4->network();
        out.length = sizeof(sockaddr_in);
        return out;
    }
    const Ipv6& v6 = std::get<Ipv6>(address);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::copy(v6.bytes.begin(), v6.bytes.end(), in6->sin6_addr.s6_addr);
    if (v6.link_local() || v6.multicast()) in6->sin6_scope_id = static_cast<uint32_t>(ifindex);
    out.length = sizeof(sockaddr_in6);
    return out;
}

bool same_endpoint(const sockaddr_storage& from, const IpAddr& address, uint16_t port) {
    if (const auto* v4 = std::get_if<Ipv4>(&address)) {
        if (from.ss_family != AF_INET) return false;
        const auto* in = reinterpret_cast<const sockaddr_in*>(&from);
        return in->sin_addr.s_addr == v4->network() && ntohs(in->sin_port) == port;
    }
    if (from.ss_family != AF_INET6) return false;
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&from);
    const Ipv6& v6 = std::get<Ipv6>(address);
    return std::equal(v6.bytes.begin(), v6.bytes.end(), in6->sin6_addr.s6_addr) && ntohs(in6->sin6_port) == port;
}

namespace {

constexpr size_t kReceiveBufferBytes = 4096;

Usec received_at(msghdr& msg, Usec fallback) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{};
            std::copy_n(CMSG_DATA(c), sizeof ts, reinterpret_cast<unsigned char*>(&ts));
            return realtime_to_monotonic(ts);
        }
    return fallback;
}

}  // namespace

void read_datagrams(int fd, const std::function<void(const Datagram&)>& take) {
    uint8_t buffer[kReceiveBufferBytes];
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(timespec))];
    for (;;) {
        sockaddr_storage from{};
        iovec iov{buffer, sizeof buffer};
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;  // EAGAIN: drained. Probe sockets report nothing else without IP_RECVERR.
        }
        size_t length = std::min(static_cast<size_t>(n), sizeof buffer);
        take(Datagram{std::span<const uint8_t>(buffer, length), from, received_at(msg, monotonic_usec())});
    }
}

}  // namespace wb::probe_detail
