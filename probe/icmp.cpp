// ICMP and ICMPv6 echo request building, echo reply parsing and the identifier BPFs. Pure byte
// work, so it is unit-tested without a kernel. Identifier and sequence travel big-endian (RFC 792,
// RFC 4443), at the same offsets in both.
#include "probe/icmp.hpp"

#include <netinet/in.h>

#include <algorithm>

namespace wb::icmp {
namespace {

constexpr uint8_t kTypeEchoReply = 0;
constexpr uint8_t kTypeEchoRequest = 8;
constexpr uint8_t kType6EchoRequest = 128;
constexpr uint8_t kType6EchoReply = 129;
constexpr size_t kMinIpHeaderBytes = 20;

uint16_t get16(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v >> 8);
    b[at + 1] = static_cast<uint8_t>(v);
}

std::vector<uint8_t> echo_message(uint8_t type, uint16_t identifier, uint16_t sequence,
                                  std::span<const uint8_t> payload) {
    std::vector<uint8_t> packet(kEchoHeaderBytes + payload.size(), 0);
    packet[0] = type;
    packet[1] = 0;  // code
    put16(packet, 4, identifier);
    put16(packet, 6, sequence);
    std::copy(payload.begin(), payload.end(), packet.begin() + kEchoHeaderBytes);
    return packet;
}

// Accepts packets whose ICMP type byte is `type` and whose identifier (4 bytes on) is
// `identifier`; drops the rest. mode BPF_ABS: the ICMP header is at offset 0; BPF_IND: at X,
// which the caller's first instruction sets.
std::vector<sock_filter> type_and_identifier(uint16_t mode, uint8_t type, uint16_t identifier) {
    return {
        BPF_STMT(static_cast<uint16_t>(BPF_LD | BPF_B | mode), 0),  // type
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, type, 0, 3),
        BPF_STMT(static_cast<uint16_t>(BPF_LD | BPF_H | mode), 4),  // identifier (BPF loads are big-endian)
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, identifier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
}

}  // namespace

uint16_t internet_checksum(std::span<const uint8_t> bytes) {
    uint32_t sum = 0;
    size_t i = 0;
    for (; i + 1 < bytes.size(); i += 2) sum += get16(bytes, i);
    if (i < bytes.size()) sum += static_cast<uint32_t>(bytes[i]) << 8;  // odd length: pad with 0
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

std::vector<uint8_t> build_echo_request(uint16_t identifier, uint16_t sequence,
                                        std::span<const uint8_t> payload) {
    auto packet = echo_message(kTypeEchoRequest, identifier, sequence, payload);
    put16(packet, 2, internet_checksum(packet));
    return packet;
}

std::vector<uint8_t> build_echo_request6(uint16_t identifier, uint16_t sequence,
                                         std::span<const uint8_t> payload) {
    return echo_message(kType6EchoRequest, identifier, sequence, payload);
}

std::optional<EchoReply> parse_echo_reply(std::span<const uint8_t> packet) {
    if (packet.size() < kMinIpHeaderBytes || packet[0] >> 4 != 4) return std::nullopt;
    const size_t header_bytes = (packet[0] & 0x0f) * 4u;
    const size_t total_bytes = get16(packet, 2);
    if (header_bytes < kMinIpHeaderBytes || total_bytes < header_bytes + kEchoHeaderBytes ||
        total_bytes > packet.size())
        return std::nullopt;
    if (packet[9] != IPPROTO_ICMP) return std::nullopt;
    if (get16(packet, 6) & 0x3fff) return std::nullopt;  // MF set or a non-zero offset: a fragment

    auto message = packet.subspan(header_bytes, total_bytes - header_bytes);
    if (message[0] != kTypeEchoReply || message[1] != 0) return std::nullopt;
    if (internet_checksum(message) != 0) return std::nullopt;

    uint32_t source_be = 0;
    std::copy_n(packet.begin() + 12, 4, reinterpret_cast<uint8_t*>(&source_be));
    return EchoReply{Ipv4::from_network(source_be), get16(message, 4), get16(message, 6)};
}

std::optional<EchoReply> parse_echo_reply6(std::span<const uint8_t> message, const Ipv6& source) {
    if (message.size() < kEchoHeaderBytes) return std::nullopt;
    if (message[0] != kType6EchoReply || message[1] != 0) return std::nullopt;
    return EchoReply{source, get16(message, 4), get16(message, 6)};
}

std::vector<sock_filter> echo_reply_filter(uint16_t identifier) {
    // A raw socket's filter sees the packet from the IPv4 header on; X = its length.
    auto program = type_and_identifier(BPF_IND, kTypeEchoReply, identifier);
    program.insert(program.begin(), BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));
    return program;
}

std::vector<sock_filter> echo_reply_filter6(uint16_t identifier) {
    // rawv6_rcv() runs the filter with skb->data at the ICMPv6 header (measured on 6.18 by the
    // prober's kernel tests: a filter reading the IPv6 header would drop every reply).
    return type_and_identifier(BPF_ABS, kType6EchoReply, identifier);
}

}  // namespace wb::icmp
