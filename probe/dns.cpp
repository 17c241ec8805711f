// DNS query building and response recognition for the dns probe (RFC 1035 §4.1).
#include "probe/dns.hpp"

#include <algorithm>

#include "config/config.hpp"

namespace wb::dns {
namespace {

constexpr uint8_t kFlagsRecursionDesired = 0x01;  // high byte of the flags: QR 0, opcode 0, RD 1
constexpr uint8_t kFlagResponse = 0x80;            // QR, in the same byte
constexpr uint16_t kClassIn = 1;

void put16(std::vector<uint8_t>& out, uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}

}  // namespace

QueryType query_type_for(Family server_family) { return server_family == Family::V6 ? QueryType::Aaaa : QueryType::A; }

std::optional<std::string> name_problem(std::string_view name) { return dns_name_problem(name); }

std::optional<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, QueryType type) {
    if (name_problem(name)) return std::nullopt;
    if (name.back() == '.') name.remove_suffix(1);
    std::vector<uint8_t> out;
    out.reserve(kHeaderBytes + name.size() + 6);
    put16(out, id);
    out.push_back(kFlagsRecursionDesired);
    out.push_back(0);
    put16(out, 1);  // QDCOUNT
    put16(out, 0);  // ANCOUNT
    put16(out, 0);  // NSCOUNT
    put16(out, 0);  // ARCOUNT
    size_t start = 0;
    while (start < name.size()) {
        size_t dot = std::min(name.find('.', start), name.size());
        out.push_back(static_cast<uint8_t>(dot - start));
        out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                   name.begin() + static_cast<std::ptrdiff_t>(dot));
        start = dot + 1;
    }
    out.push_back(0);  // the root
    put16(out, static_cast<uint16_t>(type));
    put16(out, kClassIn);
    return out;
}

std::optional<uint16_t> response_id(std::span<const uint8_t> message) {
    if (message.size() < kHeaderBytes || !(message[2] & kFlagResponse)) return std::nullopt;
    return static_cast<uint16_t>(message[0] << 8 | message[1]);
}

}  // namespace wb::dns
