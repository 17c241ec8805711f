// Internal to the config module: the two validation passes. read_draft checks every key on its
// own; resolve checks what spans keys (uniqueness, marks vs mask, probe targets, what rules and
// policies name) and allocates.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/json_reader.hpp"

namespace wb::config_detail {

// Collects errors, each placed in document order by the JSON pointer it names.
class Reporter {
public:
    explicit Reporter(const JsonDocument& doc) : doc_(doc), errors_(doc.errors) {}

    // A problem with the value at `path`.
    void fail(const std::string& path, std::string message);
    // A problem noticed at the end of the value at `path` (a missing key of an object).
    void fail_after(const std::string& path, std::string message);

    // Something that loads but deserves a look (it does not make the config invalid).
    void warn(const std::string& path, std::string message);

    bool ok() const { return errors_.empty(); }
    // Document order of the value at `path` (unknown paths sort last).
    uint32_t order_of(const std::string& path) const { return doc_.order_of(path); }
    std::vector<ConfigError> take_in_document_order();
    std::vector<ConfigError> take_warnings_in_document_order();

private:
    const JsonDocument& doc_;
    std::vector<OrderedError> errors_;
    std::vector<OrderedError> warnings_;
};

// A key as read: `path` is set when the key is present, `value` only when it is also valid.
template <class T>
struct Field {
    std::optional<T> value;
    std::string path;

    bool present() const { return !path.empty(); }
};

// probe.targets as read, split by family.
struct ProbeTargets {
    std::vector<ProbeTarget> v4;  // each with an IPv4 address
    std::vector<ProbeTarget> v6;
    size_t count(Family f) const { return f == Family::V4 ? v4.size() : v6.size(); }
};

// At most this many probe targets per list; min_targets_up is at most this too.
inline constexpr size_t kMaxProbeTargets = 16;
// The keys of a probe target written as an object: {"tcp": "192.0.2.1:443"} or
// {"dns": "192.0.2.53", "name": "example.com"}.
inline constexpr std::string_view kTargetKeys[] = {"tcp", "dns", "name"};

struct ProbeDraft {
    Field<ProbeTargets> targets;
    Field<unsigned> interval_ms;
    Field<unsigned> timeout_ms;
    Field<unsigned> down_after;
    Field<unsigned> up_after;
    Field<unsigned> min_targets_up;
};

struct WanDraft {
    std::string path;  // "/wans/0"
    Field<std::string> name;
    Field<std::string> interface;
    Field<std::optional<Ipv4>> gateway;  // nullopt inside: "auto"
    Field<std::optional<Ipv6>> gateway6;  // nullopt inside: "auto"; absent: no IPv6
    Field<unsigned> weight;
    Field<unsigned> tier;
    Field<uint32_t> table;
    Field<uint32_t> mark;
    std::string mark_as_written;  // for messages: "0x100" or 256, as in the file
    ProbeDraft probe;
    Field<Ipv4> snat;
    Field<Ipv6> snat6;
};

// ---- policies and rules (config/rules_read.cpp, config/rules_resolve.cpp) ----

inline constexpr std::string_view kPolicyKeys[] = {"members", "last_resort"};
inline constexpr std::string_view kPolicyRequired[] = {"members"};
inline constexpr std::string_view kMemberKeys[] = {"wan", "weight", "tier"};
inline constexpr std::string_view kMemberRequired[] = {"wan"};
inline constexpr std::string_view kRuleKeys[] = {"name",     "src", "dst",    "proto",  "src_port",
                                                 "dst_port", "iif", "policy", "sticky", "sticky_timeout_s"};
inline constexpr std::string_view kRuleRequired[] = {"name", "policy"};

struct MemberDraft {
    std::string path;  // "/policies/voip/members/0"
    Field<std::string> wan;
    Field<unsigned> weight;
    Field<unsigned> tier;
};

struct PolicyDraft {
    std::string path;     // "/policies/voip"
    std::string written;  // the key as written, valid or not
    Field<std::string> name;
    Field<size_t> member_count;
    std::vector<MemberDraft> members;
    Field<LastResort> last_resort;
};

// A list of a rule: `path` when present; `items` are its valid entries with their paths, and
// `valid` says the list is an array, not empty, and every entry is valid.
template <class T>
struct ListDraft {
    std::string path;
    std::vector<std::pair<T, std::string>> items;
    bool valid = false;

    bool present() const { return !path.empty(); }
    std::vector<T> values() const {
        std::vector<T> out;
        for (const auto& item : items) out.push_back(item.first);
        return out;
    }
};

struct RuleDraft {
    std::string path;  // "/rules/0"
    Field<std::string> name;
    ListDraft<Cidr> src, dst;
    Field<uint8_t> proto;
    ListDraft<PortRange> src_port, dst_port;
    ListDraft<std::string> iif;
    Field<std::string> policy;  // as written: a policy's name, "balanced" or "main"
    Field<Sticky> sticky;
    Field<uint32_t> sticky_timeout_s;

    // No match key at all: the rule takes every connection that reaches it.
    bool catch_all() const {
        return !src.present() && !dst.present() && !proto.present() && !src_port.present() && !dst_port.present() &&
               !iif.present();
    }
};

struct ConfigDraft {
    Field<size_t> wan_count;  // entries of "wans", valid or not
    std::vector<WanDraft> wans;
    std::vector<Field<std::string>> lans;
    Field<Classifier> classifier;
    ProbeDraft probe;
    Field<bool> masquerade;
    Field<bool> flush_conntrack;
    Field<bool> ha_pair;
    Field<uint32_t> mark_mask;
    Field<uint32_t> rule_priority;
    Field<std::string> hooks_dir;
    std::vector<PolicyDraft> policies;
    Field<size_t> rule_count;  // entries of "rules", valid or not
    std::vector<RuleDraft> rules;
};

// Shared by the readers of both passes.
void check_keys(const Json& object, const std::string& path, std::span<const std::string_view> allowed,
                std::span<const std::string_view> required, Reporter& report);
std::optional<uint64_t> read_integer(const Json& v, const std::string& path, uint64_t low, uint64_t high,
                                     Reporter& report);
void read_unsigned(Field<unsigned>& field, const Json& v, const std::string& path, unsigned low, unsigned high,
                   Reporter& report);
// Why an address cannot be a gateway or a probe target ("a loopback address"), or nullopt.
std::optional<std::string_view> unusable_address_kind(const IpAddr& address);

// Pass 1 for "probe.targets" (config/targets_read.cpp): each entry on its own (an address, or a
// tcp or dns object), no entry twice, split by family.
void read_targets(Field<ProbeTargets>& field, const Json& v, const std::string& path, Reporter& report);

// Pass 1 for "policies" and "rules": each on its own, and the keys of one rule together (ports
// need a protocol with ports, a rule must be able to match some family, no sticky to "main").
void read_policies(ConfigDraft& draft, const Json& v, const std::string& path, Reporter& report);
void read_rules(ConfigDraft& draft, const Json& v, const std::string& path, Reporter& report);

// The marks rules need besides the WANs', each with the key that first needs it.
struct ExtraMarks {
    std::string main_path;         // a rule's "policy": "main" or a policy's "last_resort": "main"
    std::string unreachable_path;  // a policy's "last_resort": "unreachable"
    size_t count() const { return size_t(!main_path.empty()) + size_t(!unreachable_path.empty()); }
};
ExtraMarks extra_marks_needed(const ConfigDraft& draft, const Reporter& report);

// Pass 2 for them: what they name (WANs, LANs, policies), unique rule names, room for the
// marks they need and for the rule maps' elements.
void check_policies_and_rules(const ConfigDraft& draft, std::optional<uint32_t> mask, Reporter& report);

// Config::policies and Config::rules from a draft that passed, with the warnings about them.
void build_policies_and_rules(Config& config, const ConfigDraft& draft, Reporter& report);

// Pass 1: every key on its own (types, ranges, formats, unknown and missing keys).
ConfigDraft read_draft(const JsonDocument& doc, Reporter& report);

// Pass 2: the checks that need several keys, then (when nothing failed) the Config with
// tables, marks and per-WAN probe settings resolved.
std::optional<Config> resolve(const ConfigDraft& draft, Reporter& report);

// The k-th value inside `mask` (k = 1, 2, ...): k's bits deposited into the mask's set bits.
uint32_t deposit_bits(uint32_t k, uint32_t mask);

// How many distinct nonzero marks fit in `mask`.
uint64_t mark_capacity(uint32_t mask);

// A mark that other software puts on packets or connections, so a WAN must not own its value
// under mark_mask (config/known_marks.cpp holds the table, with where each value comes from).
struct KnownMark {
    uint32_t mark;              // 0xca6c
    std::string_view software;  // "WireGuard"
    std::string_view use;       // "wg-quick": which of its marks
    std::string_view marked;    // "packets", or "connections" for a conntrack mark
};

// Every mark in the table, in its order.
std::span<const KnownMark> known_marks();

// The first known mark that `value` would match under `mask` ((mark & mask) == value): the
// fwmark rule and the by_mark map of the WAN with that value would take its traffic.
const KnownMark* known_mark_matching(uint32_t value, uint32_t mask);

// "the mark WireGuard (wg-quick, 0xca6c) puts on its packets under mark_mask \"0x3f00\"".
std::string known_mark_phrase(const KnownMark& known, uint32_t mask);

}  // namespace wb::config_detail
