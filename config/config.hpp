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
inline constexpr size_t kMaxRules = 4096;
// Rule-map elements per family once each rule's lists are multiplied out (src x dst x ports x
// LANs): beyond this a config is refused, naming the rule that crosses it.
inline constexpr size_t kMaxRuleElements = 65536;
inline constexpr uint32_t kDefaultStickyTimeoutS = 600;
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

// What one probe asks and what counts as an answer.
//  Icmp: an echo request; an echo reply counts.            config: "192.0.2.1"
//  Tcp:  a handshake to address:port; a SYN-ACK or an RST counts.  {"tcp": "192.0.2.1:443"}
//  Dns:  a UDP query for `name` to address:53; any answer with the query's id counts.
//                                                           {"dns": "192.0.2.53", "name": "example.com"}
enum class ProbeKind { Icmp, Tcp, Dns };

struct ProbeTarget {
    ProbeKind kind = ProbeKind::Icmp;
    IpAddr address;
    uint16_t port = 0;  // Tcp: the port; Dns: 53; Icmp: 0
    std::string name;   // Dns: the name asked for (type A, or AAAA for an IPv6 server); else empty
    bool operator==(const ProbeTarget&) const = default;
};
inline constexpr uint16_t kDnsPort = 53;
ProbeTarget icmp_target(const IpAddr& address);
// "icmp", "tcp", "dns": the kind as status and logs spell it.
std::string_view probe_kind_name(ProbeKind kind);
// As an operator reads it: "192.0.2.1", "tcp 192.0.2.1:443", "tcp [2001:db8::1]:443",
// "dns 192.0.2.53 example.com".
std::string describe(const ProbeTarget& target);
// Why `name` cannot be asked for in a DNS query, or nullopt: labels of 1-63 characters from
// [A-Za-z0-9_-] joined by dots, at most 253 characters (a final dot, the root, is allowed and not
// counted).
std::optional<std::string> dns_name_problem(std::string_view name);

struct ProbeConfig {
    std::vector<ProbeTarget> targets;   // IPv4 targets; empty: probe the WAN's IPv4 gateway (ICMP)
    std::vector<ProbeTarget> targets6;  // IPv6 targets (for WANs with gateway6); empty: probe gateway6
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
    // Forwarded LAN connections on this WAN are translated to this address (an HA pair's VRRP
    // address) instead of masqueraded; the router's own packets keep its own address.
    std::optional<Ipv4> snat;
    std::optional<Ipv6> snat6;  // only with ipv6

    bool operator==(const WanConfig&) const = default;
};

// An address prefix of either family, host bits zero ("10.0.0.0/8", "2001:db8::/32"; a plain
// address is /32 or /128).
struct Cidr {
    IpAddr addr;
    uint8_t len = 0;
    Family family() const { return family_of(addr); }
    std::string str() const;  // "10.0.0.0/8", "192.0.2.1/32"
    auto operator<=>(const Cidr&) const = default;
};

struct PortRange {  // inclusive; "443" is {443, 443}
    uint16_t first = 0, last = 0;
    auto operator<=>(const PortRange&) const = default;
};

// What a policy does when none of its members is in service.
enum class LastResort { Balanced, Main, Unreachable };
std::string_view last_resort_name(LastResort r);  // "balanced", "main", "unreachable"

struct PolicyMember {
    size_t wan = 0;       // index into Config::wans
    unsigned weight = 1;  // the member's, else the WAN's
    unsigned tier = 0;    // the member's, else the WAN's
    bool operator==(const PolicyMember&) const = default;
};

struct PolicyConfig {
    std::string name;                   // [a-z0-9_-], 1-32 chars, unique, not "balanced" or "main"
    std::vector<PolicyMember> members;  // at least one, each WAN at most once
    LastResort last_resort = LastResort::Balanced;
    bool operator==(const PolicyConfig&) const = default;
};

enum class RuleTarget { Policy, Balanced, Main };
enum class Sticky { None, Src, SrcDst };
std::string_view sticky_name(Sticky s);  // "none", "src", "src-dst"

// One entry of `rules`, first match wins. An empty list matches anything.
struct RuleConfig {
    std::string name;  // [a-z0-9_-], 1-32 chars, unique
    std::vector<Cidr> src, dst;
    std::optional<uint8_t> proto;  // IPPROTO_TCP/UDP/ICMP/ICMPV6/SCTP; nullopt: any
    std::vector<PortRange> src_port, dst_port;  // only with tcp, udp or sctp
    std::vector<std::string> iif;  // some of Config::lans; empty: every LAN
    RuleTarget target = RuleTarget::Balanced;
    size_t policy = 0;  // index into Config::policies when target == Policy
    Sticky sticky = Sticky::None;
    uint32_t sticky_timeout_s = kDefaultStickyTimeoutS;

    // Whether the rule can match packets of `family`: not when its addresses (or icmp/icmpv6)
    // are all of the other family.
    bool applies_to(Family family) const;
    // The policy's name, "balanced" or "main": the `policy` of the config and of status.
    std::string target_name(const std::vector<PolicyConfig>& policies) const;
    bool operator==(const RuleConfig&) const = default;
};

struct Config {
    std::string path;  // the file it came from (for status and messages)
    std::vector<WanConfig> wans;
    std::vector<std::string> lans;
    Classifier classifier = Classifier::BothAddressesAndPorts;
    ProbeConfig probe;  // the global defaults (before per-WAN overrides)
    bool masquerade = true;
    bool flush_conntrack = true;
    // One of an active/backup pair (keepalived + conntrackd): mid-stream TCP that would open a
    // connection is dropped, not reset; every WAN has snat (and snat6 with gateway6).
    bool ha_pair = false;
    uint32_t mark_mask = kDefaultMarkMask;
    uint32_t rule_priority = kDefaultRulePriority;
    std::string hooks_dir = kDefaultHooksDir;
    std::vector<PolicyConfig> policies;
    std::vector<RuleConfig> rules;
    // Marks inside mark_mask that no WAN has, allocated only when needed: connections a rule
    // (or a policy's last resort) sends to the main table, and those it refuses as unreachable.
    std::optional<uint32_t> main_mark;
    std::optional<uint32_t> unreachable_mark;

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
