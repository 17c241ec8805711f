#include "base/ipv4.hpp"

#include <arpa/inet.h>
#include <cstring>

namespace wb {

std::optional<Ipv4> Ipv4::parse(std::string_view text) {
    uint32_t result = 0;
    size_t pos = 0;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (pos >= text.size() || text[pos] != '.') return std::nullopt;
            ++pos;
        }
        size_t start = pos;
        uint32_t octet = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 3) {
            octet = octet * 10 + uint32_t(text[pos] - '0');
            ++pos;
        }
        size_t digits = pos - start;
        if (digits == 0 || octet > 255) return std::nullopt;
        if (digits > 1 && text[start] == '0') return std::nullopt;  // "01" is octal to inet_aton
        result = (result << 8) | octet;
    }
    if (pos != text.size()) return std::nullopt;
    return Ipv4{result};
}

Ipv4 Ipv4::from_network(uint32_t be) { return Ipv4{ntohl(be)}; }

uint32_t Ipv4::network() const { return htonl(value); }

std::string Ipv4::str() const {
    return std::to_string(value >> 24) + "." + std::to_string((value >> 16) & 0xff) + "." +
           std::to_string((value >> 8) & 0xff) + "." + std::to_string(value & 0xff);
}

std::string errno_text(int err) {
    char buf[128];
    // GNU strerror_r returns the message pointer (maybe not buf).
    return strerror_r(err < 0 ? -err : err, buf, sizeof buf);
}

}  // namespace wb
