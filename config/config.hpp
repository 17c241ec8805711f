// The configuration as one plain value (docs/design.md, Configuration) and the loader that validates it.
// Loading never touches the kernel; every problem is reported with its JSON path, all in one run.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/ip.hpp"

namespace wb {

inline constexpr size_t kMaxConfigBytes = 1 << 20;  // 1 MiB
inline constexpr size_t kMaxWans = 63;
inline constexpr uint32_t kDefaultMarkMask = 0x3f00;
inline constexpr uint32_t kDefaultRulePriority = 20000;
inline constexpr uint32_t kFirstTable = 101;  // allocated tables: 101, 102, ... skipping explicit ones
inline constexpr const char* kDefaultConfigPath = "/etc/wanbalance.json";
inline constexpr const char* kDefaultHooksDir = "/etc/wanbalance/hooks.d";

enum class Classifier {
    SrcAddress,
    DstAddress,
    BothAddresses,
    BothPorts,
    BothAddressesAndPorts,
    SrcAddressAndPort,
    DstAddressAndPort,
    RoundRobin,
};

// PCC spelling ("both-addresses-and-ports"); parse returns nullopt for unknown names.
std::string_view classifier_name(Classifier c);
std::optional<Classifier> parse_classifier(std::string_view name);

struct ProbeConfig {
    std::vector<Ipv4> targets;   // IPv4 targets; empty: probe the WAN's IPv4 gateway
    std::vector<Ipv6> targets6;  // IPv6 targets (for WANs with gateway6); empty: probe gateway6
    std::chrono::milliseconds interval{300};
    std::chrono::milliseconds timeout{600};
    unsigned down_after = 3;
    unsigned up_after = 5;
    unsigned min_targets_up = 1;

    bool operator==(const ProbeConfig&) const = default;
};

struct WanConfig {
    std::string name;
    std::string interface;
    std::optional<Ipv4> gateway;  // nullopt means "auto"
    unsigned weight = 1;          // 1..1000
    unsigned tier = 0;
    uint32_t table = 0;  // always resolved: explicit or allocated
    uint32_t mark = 0;   // always resolved: explicit or allocated, inside mark_mask
    ProbeConfig probe;   // global probe settings with this WAN's overrides applied
    bool ipv6 = false;             // "gateway6" is set: the WAN carries IPv6
    std::optional<Ipv6> gateway6;  // with ipv6: nullopt means "auto" (router advertisements)

    bool operator==(const WanConfig&) const = default;
};

struct Config {
    std::string path;  // the file it came from (for status and messages)
    std::vector<WanConfig> wans;
    std::vector<std::string> lans;
    Classifier classifier = Classifier::BothAddressesAndPorts;
    ProbeConfig probe;  // the global defaults (before per-WAN overrides)
    bool masquerade = true;
    bool flush_conntrack = true;
    uint32_t mark_mask = kDefaultMarkMask;
    uint32_t rule_priority = kDefaultRulePriority;
    std::string hooks_dir = kDefaultHooksDir;

    bool operator==(const Config&) const = default;
    bool any_ipv6() const;  // some WAN has gateway6
};

// One problem: where (JSON pointer, "" for the whole file) and what, e.g.
// {"/wans/1/gateway", "\"198.51.100.x\" is not an IPv4 address or \"auto\""}.
struct ConfigError {
    std::string path;
    std::string message;

    // "FILE: /json/path: message" (or "FILE: message" when path is empty).
    std::string format(std::string_view file) const;
    bool operator==(const ConfigError&) const = default;
};

struct ConfigResult {
    std::optional<Config> config;     // set only when errors is empty
    std::vector<ConfigError> errors;  // every problem found, in document order
    std::string text;                 // load_config: the file's text, when it is valid
    // What loads but deserves a look, in document order; only when config is set. For example
    // {"/wans/9", "allocated mark 0xa00 is the mark WireGuard (wg-quick, 0xca6c) puts on its
    // packets under mark_mask \"0x3f00\": ..."} once every mark no well-known program uses is
    // taken. Printed like errors ("FILE: /json/path: message"); they do not fail a check.
    std::vector<ConfigError> warnings;
};

// Parses and validates JSON text (with // and /* */ comments). `file` is only used to fill
// Config::path. Pure: no I/O.
ConfigResult parse_config(std::string_view text, std::string_view file);

// Reads the file (at most kMaxConfigBytes) and parses it. Unreadable or oversized files
// are reported as a ConfigError with an empty path.
ConfigResult load_config(const std::string& file);

}  // namespace wb
