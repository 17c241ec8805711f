// ICMP and ICMPv6 echo packets as bytes: building requests, checking and parsing replies as a raw
// socket hands them over, and the classic BPFs that keep only one identifier.
#pragma once

#include <linux/filter.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/ip.hpp"

namespace wb::icmp {

inline constexpr size_t kEchoHeaderBytes = 8;
// Recognisable in a packet capture; the matching itself uses identifier and sequence.
inline constexpr std::array<uint8_t, 16> kProbePayload{'w', 'a', 'n', 'b', 'a', 'l', 'a', 'n',
                                                      'c', 'e', ' ', 'p', 'r', 'o', 'b', 'e'};

// RFC 1071 one's-complement sum, folded and inverted. Over a packet whose checksum field is
// filled in correctly, it is 0.
uint16_t internet_checksum(std::span<const uint8_t> bytes);

// An ICMP echo request (type 8, code 0) with the checksum filled in; no IP header (the kernel
// adds it on a raw IPPROTO_ICMP socket without IP_HDRINCL).
std::vector<uint8_t> build_echo_request(uint16_t identifier, uint16_t sequence,
                                        std::span<const uint8_t> payload = kProbePayload);

struct EchoReply {
    IpAddr source;
    uint16_t identifier = 0;
    uint16_t sequence = 0;
    bool operator==(const EchoReply&) const = default;
};

// Parses what recv() on a raw ICMP socket returns: an IPv4 header, then ICMP. Returns the reply
// only for a whole, unfragmented echo reply (type 0, code 0) with a valid ICMP checksum.
std::optional<EchoReply> parse_echo_reply(std::span<const uint8_t> packet);

// Classic BPF for SO_ATTACH_FILTER on a raw ICMP socket: accept echo replies whose identifier is
// `identifier`, drop everything else. Raw sockets see every ICMP packet of the interface, and
// without this each one would wake the daemon.
std::vector<sock_filter> echo_reply_filter(uint16_t identifier);

// --- ICMPv6 (RFC 4443) ---

// An ICMPv6 echo request (type 128, code 0) with the checksum left 0: the kernel computes it on a
// raw IPPROTO_ICMPV6 socket (RFC 3542 3.1), since it covers the IPv6 pseudo-header and only the
// kernel knows the source address it picks.
std::vector<uint8_t> build_echo_request6(uint16_t identifier, uint16_t sequence,
                                         std::span<const uint8_t> payload = kProbePayload);

// Parses what recv() on a raw ICMPv6 socket returns: the ICMPv6 message alone (no IPv6 header);
// the source comes from recvfrom()'s sockaddr_in6. Returns the reply only for an echo reply (type
// 129, code 0) of at least the echo header. The checksum is not checked here: the kernel checks
// it before a raw ICMPv6 socket gets the packet (rawv6_rcv()), and it needs the destination.
std::optional<EchoReply> parse_echo_reply6(std::span<const uint8_t> message, const Ipv6& source);

// Classic BPF for SO_ATTACH_FILTER on a raw ICMPv6 socket: accept echo replies with `identifier`.
// The filter sees the packet from the ICMPv6 header on (the IPv6 header and its extension
// headers are already pulled, unlike IPv4's), so the offsets are fixed.
std::vector<sock_filter> echo_reply_filter6(uint16_t identifier);

}  // namespace wb::icmp
