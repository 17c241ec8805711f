// The two address families side by side: the Family enum, an IPv6 address value and an address
// of either family. Plain values with == and str(); no I/O.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/ipv4.hpp"

namespace wb {

// IPv4 first: indices into per-family arrays (std::array<T, 2>) are size_t(family).
enum class Family : uint8_t { V4 = 0, V6 = 1 };
inline constexpr std::array<Family, 2> kFamilies{Family::V4, Family::V6};

// "ipv4" / "ipv6": the word in status JSON, journal fields (WANBALANCE_FAMILY) and hooks.
std::string_view family_name(Family f);
// "IPv4" / "IPv6": the word in log lines.
std::string_view family_label(Family f);
int family_af(Family f);  // AF_INET / AF_INET6

// An IPv6 address, 16 bytes in network order (as in struct in6_addr).
struct Ipv6 {
    std::array<uint8_t, 16> bytes{};

    // RFC 4291 text (any of its forms, "::ffff:1.2.3.4" too); no zone ("%eth0"), no prefix.
    static std::optional<Ipv6> parse(std::string_view text);
    std::string str() const;  // RFC 5952 canonical form, as `ip -6` prints it
    bool link_local() const;  // fe80::/10
    bool multicast() const;   // ff00::/8
    bool unspecified() const;  // ::
    bool loopback() const;     // ::1

    auto operator<=>(const Ipv6&) const = default;
};

// An address of either family.
using IpAddr = std::variant<Ipv4, Ipv6>;
Family family_of(const IpAddr& a);
std::string str(const IpAddr& a);
// Parses either family: a dotted quad, else IPv6 text.
std::optional<IpAddr> parse_ip(std::string_view text);
// Whether `a` lies in the prefix `net`/`len` (same family, the first `len` bits equal).
bool in_prefix(const IpAddr& net, unsigned len, const IpAddr& a);

}  // namespace wb
