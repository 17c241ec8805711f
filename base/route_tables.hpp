// The kernel's reserved routing table ids (rt_tables(5)): wanbalance never allocates them, and a
// config may not name them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace wb {

inline constexpr uint32_t kDefaultTable = 253;  // RT_TABLE_DEFAULT
inline constexpr uint32_t kMainTable = 254;     // RT_TABLE_MAIN
inline constexpr uint32_t kLocalTable = 255;    // RT_TABLE_LOCAL

// "default", "main" or "local" for a reserved id, else nullopt.
inline std::optional<std::string> reserved_table_name(uint32_t table) {
    switch (table) {
        case kDefaultTable: return "default";
        case kMainTable: return "main";
        case kLocalTable: return "local";
        default: return std::nullopt;
    }
}

}  // namespace wb
