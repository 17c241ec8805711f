// Internal to the config module: the two validation passes. read_draft checks every key on its
// own; resolve checks what spans keys (uniqueness, marks vs mask, probe targets) and allocates.
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
    std::vector<Ipv4> v4;
    std::vector<Ipv6> v6;
    size_t count(Family f) const { return f == Family::V4 ? v4.size() : v6.size(); }
};

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
};

struct ConfigDraft {
    Field<size_t> wan_count;  // entries of "wans", valid or not
    std::vector<WanDraft> wans;
    std::vector<Field<std::string>> lans;
    Field<Classifier> classifier;
    ProbeDraft probe;
    Field<bool> masquerade;
    Field<bool> flush_conntrack;
    Field<uint32_t> mark_mask;
    Field<uint32_t> rule_priority;
    Field<std::string> hooks_dir;
};

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
