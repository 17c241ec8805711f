#include "base/format.hpp"

#include <cstdio>

namespace wb {

std::string hex(uint32_t value) { return hex_padded(value, 0); }

std::string hex_padded(uint32_t value, int width) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%0*x", width, value);
    return buf;
}

std::string quoted(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out += '"';
    out += text;
    out += '"';
    return out;
}

std::string counted(uint64_t n, std::string_view one, std::string_view many) {
    std::string out = std::to_string(n) + " ";
    if (n == 1) return out += one;
    if (!many.empty()) return out += many;
    return (out += one) += "s";
}

}  // namespace wb
