#include "base/ip.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace wb {

std::string_view family_name(Family f) { return f == Family::V4 ? "ipv4" : "ipv6"; }
std::string_view family_label(Family f) { return f == Family::V4 ? "IPv4" : "IPv6"; }
int family_af(Family f) { return f == Family::V4 ? AF_INET : AF_INET6; }

std::optional<Ipv6> Ipv6::parse(std::string_view text) {
    // inet_pton wants a NUL-terminated string; the longest IPv6 text is 45 characters.
    if (text.empty() || text.size() > 45) return std::nullopt;
    char buf[46];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    Ipv6 out;
    if (inet_pton(AF_INET6, buf, out.bytes.data()) != 1) return std::nullopt;
    return out;
}

std::string Ipv6::str() const {
    char buf[INET6_ADDRSTRLEN];
    return inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
}

bool Ipv6::link_local() const { return bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80; }
bool Ipv6::multicast() const { return bytes[0] == 0xff; }
bool Ipv6::unspecified() const { return *this == Ipv6{}; }
bool Ipv6::loopback() const {
    Ipv6 one;
    one.bytes[15] = 1;
    return *this == one;
}

Family family_of(const IpAddr& a) { return std::holds_alternative<Ipv4>(a) ? Family::V4 : Family::V6; }

std::string str(const IpAddr& a) {
    return std::visit([](const auto& x) { return x.str(); }, a);
}

namespace {
std::array<uint8_t, 16> bytes_of(const IpAddr& a) {
    std::array<uint8_t, 16> out{};
    if (auto* v4 = std::get_if<Ipv4>(&a)) {
        uint32_t n = v4->network();
        std::memcpy(out.data(), &n, 4);
    } else {
        out = std::get<Ipv6>(a).bytes;
    }
    return out;
}
}  // namespace

bool in_prefix(const IpAddr& net, unsigned len, const IpAddr& a) {
    if (family_of(net) != family_of(a) || len > (family_of(a) == Family::V4 ? 32u : 128u)) return false;
    auto x = bytes_of(net), y = bytes_of(a);
    for (unsigned bit = 0; bit < len; ++bit) {
        uint8_t m = uint8_t(0x80u >> (bit % 8));
        if ((x[bit / 8] & m) != (y[bit / 8] & m)) return false;
    }
    return true;
}

std::optional<IpAddr> parse_ip(std::string_view text) {
    if (auto v4 = Ipv4::parse(text)) return IpAddr{*v4};
    if (text.find(':') == std::string_view::npos) return std::nullopt;
    if (auto v6 = Ipv6::parse(text)) return IpAddr{*v6};
    return std::nullopt;
}

}  // namespace wb
