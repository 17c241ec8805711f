// What the daemon tells the journal: severity levels and the structured state-change events
// (one MESSAGE_ID per kind). Plain values, so the pure core can decide them and the daemon log them.
#pragma once

#include <optional>
#include <string>

namespace wb {

enum class Level { Debug = 7, Info = 6, Notice = 5, Warning = 4, Error = 3, Critical = 2 };

// Fixed MESSAGE_IDs, one per event kind (documented in packaging/wanbalance.catalog).
inline constexpr const char* kMessageWanDown = "976e0ffc393c45698b9af8c052268c2f";
inline constexpr const char* kMessageWanUp = "1d2830d3e4234f42a205b7f8ff615320";
inline constexpr const char* kMessageAllDown = "8bc3598b8cb94892ad18a6cd9e115bed";
inline constexpr const char* kMessageConfigReloaded = "7e2df26e8d03422f98281bc9be4fed28";
inline constexpr const char* kMessageRoleChanged = "f2452d3f36164b209a4b5a9b6d8e3fa0";
inline constexpr const char* kMessageOperatorSet = "09fcc0be8d294e7ca749f5a029f3a447";

// A state change: becomes one journal entry with MESSAGE_ID and WANBALANCE_* fields.
struct LogEvent {
    const char* message_id = nullptr;
    std::string kind;  // "wan-down", "wan-up", "all-down", "config-reloaded", "role-changed", "operator-set"
    std::string wan, interface, state, reason;
    std::optional<long> rtt_us;
    std::optional<double> loss_pct;
    std::string family;  // "ipv4" / "ipv6" (WANBALANCE_FAMILY); empty: not about one family
    bool operator==(const LogEvent&) const = default;
};

}  // namespace wb
