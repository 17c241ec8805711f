// Small text helpers every module formats with: marks and seeds in hex, names in quotes.
// One copy each, so the daemon, ctl and the golden files agree to the byte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wb {

// "0x3f00": printf's "0x%x".
std::string hex(uint32_t value);

// "0x00003f00" for width 8: printf's "0x%0*x", as nft lists marks.
std::string hex_padded(uint32_t value, int width);

// "\"charter\"": the text between double quotes, nothing escaped (config errors, which quote
// what a user wrote, escape it as JSON with config_detail::quote instead).
std::string quoted(std::string_view text);
// Exact matches for strings and literals: argument-dependent lookup also finds std::quoted
// (<iomanip>) for a std::string, and a template that needs no conversion would beat the
// string_view overload; a non-template exact match beats the template.
inline std::string quoted(const std::string& text) { return quoted(std::string_view(text)); }
inline std::string quoted(const char* text) { return quoted(std::string_view(text)); }

// "1 LAN", "2 LANs", "0 route changes": n and the noun, with "s" unless n is 1 (or `many`).
std::string counted(uint64_t n, std::string_view one, std::string_view many = {});

}  // namespace wb
