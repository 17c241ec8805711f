// Vocabulary types shared by every module: an IPv4 address value and errno helpers.
// No I/O here; everything is a plain value with == and str().
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wb {

// An IPv4 address in host byte order (so ordering and arithmetic are natural).
struct Ipv4 {
    uint32_t value = 0;

    // Strict dotted quad: four decimal parts 0-255, no leading zeros, nothing else.
    static std::optional<Ipv4> parse(std::string_view text);
    static Ipv4 from_network(uint32_t be);  // from a struct in_addr's s_addr
    uint32_t network() const;               // to a struct in_addr's s_addr
    std::string str() const;

    auto operator<=>(const Ipv4&) const = default;
};

// strerror() for a positive errno, as the kernel's own words ("Network is unreachable").
std::string errno_text(int err);

}  // namespace wb
