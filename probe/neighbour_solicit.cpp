// ARP over an AF_PACKET socket bound to the interface; neighbour discovery over a raw ICMPv6
// socket bound to it (hop limit 255, as RFC 4861 demands, with our link-layer address so the
// gateway can answer a multicast solicitation at once). Each try waits `interval` for the answer.
#include "probe/neighbour_solicit.hpp"

#include <arpa/inet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include "base/fd.hpp"

namespace wb {
namespace {

using Mac = std::array<uint8_t, 6>;

Status failed(const std::string& what, int err) { return Status::fail(err, what + ": " + errno_text(err)); }

Expected<Mac> hardware_address(int fd, const std::string& interface) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, interface.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) return failed("Could not read the link-layer address of " + interface, errno);
    Mac mac{};
    std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, mac.size());
    return mac;
}

long now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

// Sends with `send` up to `tries` times; after each, reads with `answered` until `interval` has
// passed. true as soon as one read is the answer.
Expected<bool> ask(int fd, const SolicitRequest& r, const std::function<Status()>& send,
                   const std::function<bool(const uint8_t*, size_t)>& answered) {
    std::array<uint8_t, 1500> buf{};
    for (unsigned t = 0; t < std::max(r.tries, 1u); ++t) {
        if (Status st = send(); !st) return st;
        const long until = now_ms() + r.interval.count();
        for (long left = r.interval.count(); left > 0; left = until - now_ms()) {
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, int(left)) <= 0) continue;
            ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
            if (n > 0 && answered(buf.data(), size_t(n))) return true;
        }
    }
    return false;
}

struct ArpPacket {
    arphdr header;
    uint8_t sender_mac[6], sender_ip[4], target_mac[6], target_ip[4];
} __attribute__((packed));

Expected<bool> arp(const SolicitRequest& r) {
    Fd fd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
    if (!fd) return failed("Could not open an ARP socket", errno);
    sockaddr_ll self{};
    self.sll_family = AF_PACKET;
    self.sll_protocol = htons(ETH_P_ARP);
    self.sll_ifindex = r.ifindex;
    if (bind(fd.fd, reinterpret_cast<sockaddr*>(&self), sizeof self) != 0)
        return failed("Could not bind an ARP socket to " + r.interface, errno);
    auto mac = hardware_address(fd.fd, r.interface);
    if (!mac) return mac.error();

    ArpPacket req{};
    req.header.ar_hrd = htons(ARPHRD_ETHER);
    req.header.ar_pro = htons(ETH_P_IP);
    req.header.ar_hln = 6;
    req.header.ar_pln = 4;
    req.header.ar_op = htons(ARPOP_REQUEST);
    std::memcpy(req.sender_mac, mac->data(), 6);
    uint32_t sender = r.source && family_of(*r.source) == Family::V4 ? std::get<Ipv4>(*r.source).network() : 0;
    uint32_t target = std::get<Ipv4>(r.gateway).network();
    std::memcpy(req.sender_ip, &sender, 4);
    std::memcpy(req.target_ip, &target, 4);
    sockaddr_ll to = self;
    to.sll_halen = 6;
    std::memset(to.sll_addr, 0xff, 6);
    auto send = [&]() -> Status {
        if (sendto(fd.fd, &req, sizeof req, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
            return failed("Could not send an ARP request on " + r.interface, errno);
        return Status::ok();
    };
    return ask(fd.fd, r, send, [&](const uint8_t* p, size_t n) {
        if (n < sizeof(ArpPacket)) return false;
        ArpPacket a;
        std::memcpy(&a, p, sizeof a);
        return ntohs(a.header.ar_op) == ARPOP_REPLY && std::memcmp(a.sender_ip, &target, 4) == 0;
    });
}

Expected<bool> neighbour_discovery(const SolicitRequest& r) {
    Fd fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
    if (!fd) return failed("Could not open an ICMPv6 socket", errno);
    int hops = 255;
    icmp6_filter filter{};
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(ND_NEIGHBOR_ADVERT, &filter);
    if (setsockopt(fd.fd, SOL_SOCKET, SO_BINDTODEVICE, r.interface.c_str(), socklen_t(r.interface.size())) != 0 ||
        setsockopt(fd.fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) != 0 ||
        setsockopt(fd.fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops) != 0 ||
        setsockopt(fd.fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &r.ifindex, sizeof r.ifindex) != 0 ||
        setsockopt(fd.fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) != 0)
        return failed("Could not set up an ICMPv6 socket on " + r.interface, errno);
    auto mac = hardware_address(fd.fd, r.interface);
    if (!mac) return mac.error();

    const Ipv6& target = std::get<Ipv6>(r.gateway);
    std::array<uint8_t, sizeof(nd_neighbor_solicit) + 8> ns{};
    nd_neighbor_solicit head{};
    head.nd_ns_type = ND_NEIGHBOR_SOLICIT;
    std::memcpy(&head.nd_ns_target, target.bytes.data(), 16);
    std::memcpy(ns.data(), &head, sizeof head);
    ns[sizeof head] = ND_OPT_SOURCE_LINKADDR;
    ns[sizeof head + 1] = 1;  // in units of 8 bytes
    std::memcpy(ns.data() + sizeof head + 2, mac->data(), 6);
    // The solicited-node multicast address of the target: ff02::1:ffXX:XXXX.
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_scope_id = uint32_t(r.ifindex);
    const uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
    std::memcpy(to.sin6_addr.s6_addr, prefix, 13);
    std::memcpy(to.sin6_addr.s6_addr + 13, target.bytes.data() + 13, 3);
    auto send = [&]() -> Status {
        if (sendto(fd.fd, ns.data(), ns.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
            return failed("Could not send a neighbour solicitation on " + r.interface, errno);
        return Status::ok();
    };
    return ask(fd.fd, r, send, [&](const uint8_t* p, size_t n) {
        if (n < sizeof(nd_neighbor_advert)) return false;
        nd_neighbor_advert na;
        std::memcpy(&na, p, sizeof na);
        return na.nd_na_type == ND_NEIGHBOR_ADVERT && std::memcmp(&na.nd_na_target, target.bytes.data(), 16) == 0;
    });
}

}  // namespace

Expected<bool> solicit_neighbour(const SolicitRequest& request) {
    return family_of(request.gateway) == Family::V4 ? arp(request) : neighbour_discovery(request);
}

}  // namespace wb
