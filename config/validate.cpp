// Pass 1 of validation: every key of the document checked on its own, against docs/design.md, Configuration.
// Each problem is one message that quotes the input; reading goes on after a problem so one
// run reports everything.
#include <algorithm>
#include <cctype>
#include <map>

#include "base/format.hpp"
#include "base/route_tables.hpp"
#include "config/validate.hpp"
#include "config/wording.hpp"

namespace wb::config_detail {

void Reporter::fail(const std::string& path, std::string message) {
    errors_.push_back({doc_.order_of(path), {path, std::move(message)}});
}

void Reporter::fail_after(const std::string& path, std::string message) {
    errors_.push_back({doc_.order_of(path, /*at_end=*/true), {path, std::move(message)}});
}

void Reporter::warn(const std::string& path, std::string message) {
    warnings_.push_back({doc_.order_of(path), {path, std::move(message)}});
}

namespace {

std::vector<ConfigError> take_sorted(std::vector<OrderedError>& list) {
    std::stable_sort(list.begin(), list.end(),
                     [](const OrderedError& a, const OrderedError& b) { return a.order < b.order; });
    std::vector<ConfigError> out;
    for (auto& e : list) {
        if (out.empty() || !(out.back() == e.error)) out.push_back(std::move(e.error));
    }
    list.clear();
    return out;
}

}  // namespace

std::vector<ConfigError> Reporter::take_in_document_order() { return take_sorted(errors_); }

std::vector<ConfigError> Reporter::take_warnings_in_document_order() { return take_sorted(warnings_); }

namespace {

constexpr std::string_view kTopKeys[] = {
    "wans",      "lans",      "balance",       "probe",     "masquerade", "flush_conntrack",
    "ha_pair",   "mark_mask", "rule_priority", "hooks_dir", "policies",   "rules"};
constexpr std::string_view kTopRequired[] = {"wans", "lans"};
constexpr std::string_view kWanKeys[] = {"name", "interface", "gateway", "gateway6", "weight",
                                         "tier", "table", "mark", "probe",     "snat",   "snat6"};
constexpr std::string_view kWanRequired[] = {"name", "interface", "gateway"};
constexpr std::string_view kProbeKeys[] = {"targets",    "interval_ms", "timeout_ms",
                                           "down_after", "up_after",    "min_targets_up"};
constexpr std::string_view kBalanceKeys[] = {"classifier"};

constexpr uint64_t kMaxU32 = UINT32_MAX;
constexpr uint32_t kMaxRulePriority = 32765;  // 32766 is the kernel's rule for the main table
constexpr size_t kMaxInterfaceName = 15;      // IFNAMSIZ - 1
constexpr size_t kMaxWanName = 15;

bool contains(std::span<const std::string_view> list, std::string_view word) {
    return std::find(list.begin(), list.end(), word) != list.end();
}

// Where a key that is unknown here would be right, for "(it belongs inside "probe")"; every
// place, for a key several objects have ("weight": a WAN's or a policy member's).
std::string home_of(std::string_view key) {
    const std::pair<std::span<const std::string_view>, std::string_view> homes[] = {
        {kProbeKeys, "inside \"probe\""},
        {kWanKeys, "inside an entry of \"wans\""},
        {kBalanceKeys, "inside \"balance\""},
        {kTopKeys, "at the top level"},
        {kRuleKeys, "inside an entry of \"rules\""},
        {kPolicyKeys, "inside a policy of \"policies\""},
        {kMemberKeys, "inside an entry of a policy's \"members\""},
    };
    std::string out;
    for (const auto& [keys, where] : homes) {
        if (!contains(keys, key)) continue;
        if (!out.empty()) out += " or ";
        out += where;
    }
    return out;
}

}  // namespace

void check_keys(const Json& object, const std::string& path, std::span<const std::string_view> allowed,
                std::span<const std::string_view> required, Reporter& report) {
    for (const auto& item : object.items()) {
        const std::string& key = item.key();
        if (contains(allowed, key)) continue;
        std::string message = "unknown key " + describe(Json(key));
        if (std::string home = home_of(key); !home.empty()) {
            message += " (it belongs " + home + ")";
        } else if (auto match = closest_match(key, allowed)) {
            message += " (did you mean " + quote(*match) + "?)";
        } else {
            message += " (allowed: " + quote_list(allowed) + ")";
        }
        report.fail(pointer_append(path, key), message);
    }
    for (std::string_view key : required) {
        if (!object.contains(key)) report.fail_after(path, "missing required key " + quote(key));
    }
}

std::optional<uint64_t> read_integer(const Json& v, const std::string& path, uint64_t low, uint64_t high,
                                     Reporter& report) {
    if (v.is_number_unsigned()) {
        uint64_t n = v.get<uint64_t>();
        if (n >= low && n <= high) return n;
    }
    report.fail(path, "expected an integer from " + std::to_string(low) + " to " + std::to_string(high) + ", got " +
                          describe(v));
    return std::nullopt;
}

void read_unsigned(Field<unsigned>& field, const Json& v, const std::string& path, unsigned low, unsigned high,
                   Reporter& report) {
    field.path = path;
    if (auto n = read_integer(v, path, low, high, report)) field.value = unsigned(*n);
}

namespace {

// ---- Scalars ----

void read_bool(Field<bool>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    if (v.is_boolean()) {
        field.value = v.get<bool>();
    } else {
        report.fail(path, "expected true or false, got " + describe(v));
    }
}

// "0x" and hex digits; values wider than 32 bits come back as 2^32 (not wrapped).
std::optional<uint64_t> parse_hex(const std::string& s) {
    if (s.size() < 3 || s[0] != '0' || s[1] != 'x') return std::nullopt;
    uint64_t value = 0;
    for (size_t i = 2; i < s.size(); ++i) {
        char c = char(std::tolower(static_cast<unsigned char>(s[i])));
        int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (digit < 0) return std::nullopt;
        value = std::min<uint64_t>(value * 16 + uint64_t(digit), kMaxU32 + 1);
    }
    return value;
}

bool is_wan_name(const std::string& s) {
    if (s.empty() || s.size() > kMaxWanName) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

// A character an interface name may not hold, in words; nullopt when it may.
std::optional<std::string> bad_interface_char(char c) {
    auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || c == '%') return std::string("'") + c + "'";
    if (c == '"') return "a double quote";
    if (c == '\'') return "a single quote";
    if (c == ' ') return "a space";
    if (c == '\t') return "a tab";
    if (std::isspace(u) || u < 0x20 || u == 0x7f) return "a control character (" + hex_padded(u, 2) + ")";
    return std::nullopt;
}

// Why `s` is not a usable interface name, or nullopt: the kernel's dev_valid_name() (1-15 bytes,
// not "." or "..", no '/', ':' or whitespace), plus '%' (a pattern to the kernel), quotes and
// control characters, which nft rules, ip(8) commands and hooks' environment cannot carry.
std::optional<std::string> interface_name_problem(const std::string& s) {
    if (s.empty()) return "it is empty";
    if (s.size() > kMaxInterfaceName) {
        return "it is " + std::to_string(s.size()) + " bytes long; the kernel allows at most " +
               std::to_string(kMaxInterfaceName);
    }
    if (s == "." || s == "..") return std::string("the kernel reserves \".\" and \"..\"");
    for (char c : s) {
        if (auto what = bad_interface_char(c)) return "it contains " + *what;
    }
    return std::nullopt;
}

std::optional<std::string> read_interface(const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_string()) {
        report.fail(path, "expected an interface name (a string), got " + describe(v));
        return std::nullopt;
    }
    const std::string& name = v.get_ref<const std::string&>();
    if (auto problem = interface_name_problem(name)) {
        report.fail(path, describe(v) + " is not an interface name: " + *problem);
        return std::nullopt;
    }
    return name;
}

std::optional<Ipv4> read_ipv4(const Json& v) {
    if (!v.is_string()) return std::nullopt;
    return Ipv4::parse(v.get_ref<const std::string&>());
}

// Why an address cannot be a gateway or a probe target, or nullopt. 240.0.0.0/4 is left alone:
// Linux routes it as unicast, and some networks use it.
std::optional<std::string_view> unusable_address_kind(Ipv4 address) {
    uint32_t a = address.value;
    if (a == 0) return "the unspecified address";
    if (a >> 24 == 127) return "a loopback address";
    if (a >> 28 == 0xe) return "a multicast address";
    if (a == UINT32_MAX) return "the broadcast address";
    return std::nullopt;
}

std::optional<std::string_view> unusable_address_kind(Ipv6 address) {
    if (address.unspecified()) return "the unspecified address";
    if (address.loopback()) return "the loopback address";
    if (address.multicast()) return "a multicast address";
    return std::nullopt;
}

}  // namespace

std::optional<std::string_view> unusable_address_kind(const IpAddr& address) {
    return std::visit([](const auto& a) { return unusable_address_kind(a); }, address);
}

namespace {

// ---- Objects ----

ProbeDraft read_probe(const Json& v, const std::string& path, Reporter& report) {
    ProbeDraft probe;
    if (!v.is_object()) {
        report.fail(path, "expected an object, got " + describe(v));
        return probe;
    }
    check_keys(v, path, kProbeKeys, {}, report);
    for (const auto& item : v.items()) {
        const std::string& key = item.key();
        std::string at = pointer_append(path, key);
        if (key == "targets") read_targets(probe.targets, item.value(), at, report);
        if (key == "interval_ms") read_unsigned(probe.interval_ms, item.value(), at, 50, 60000, report);
        if (key == "timeout_ms") read_unsigned(probe.timeout_ms, item.value(), at, 50, 60000, report);
        if (key == "down_after") read_unsigned(probe.down_after, item.value(), at, 1, 100, report);
        if (key == "up_after") read_unsigned(probe.up_after, item.value(), at, 1, 100, report);
        if (key == "min_targets_up") read_unsigned(probe.min_targets_up, item.value(), at, 1, kMaxProbeTargets, report);
    }
    return probe;
}

void read_table(Field<uint32_t>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    auto n = read_integer(v, path, 1, kMaxU32, report);
    if (!n) return;
    if (auto name = reserved_table_name(uint32_t(*n))) {
        report.fail(path, std::to_string(*n) + " is reserved for the kernel's " + *name + " table");
        return;
    }
    field.value = uint32_t(*n);
}

// The keys that hold bits of the packet mark, a WAN's "mark" and "mark_mask": nonzero, 32 bits,
// written as a hex string; a mark may also be a plain integer.
struct MarkBitsKey {
    bool integer_ok;
    const char* expected;   // in "expected …, got X"
    const char* zero_note;  // after "X must be nonzero"
};
constexpr MarkBitsKey kMarkKey{true, "a hex string like \"0x100\" or an integer", " (0 means unmarked)"};
constexpr MarkBitsKey kMarkMaskKey{false, "a hex string like \"0x3f00\"", ""};

void read_mark_bits(Field<uint32_t>& field, const Json& v, const std::string& path, const MarkBitsKey& key,
                    Reporter& report) {
    field.path = path;
    std::optional<uint64_t> value;
    if (v.is_string()) value = parse_hex(v.get_ref<const std::string&>());
    if (key.integer_ok && v.is_number_unsigned()) value = std::min<uint64_t>(v.get<uint64_t>(), kMaxU32 + 1);
    if (!value) {
        report.fail(path, std::string("expected ") + key.expected + ", got " + describe(v));
    } else if (*value > kMaxU32) {
        report.fail(path, describe(v) + " is wider than 32 bits");
    } else if (*value == 0) {
        report.fail(path, describe(v) + " must be nonzero" + key.zero_note);
    } else {
        field.value = uint32_t(*value);
    }
}

void read_gateway(Field<std::optional<Ipv4>>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    if (v == "auto") {
        field.value.emplace(std::nullopt);
    } else if (auto address = read_ipv4(v)) {
        if (auto unusable = unusable_address_kind(*address)) {
            report.fail(path, describe(v) + " is " + std::string(*unusable) +
                                  ": a gateway must be a unicast address on the WAN's subnet");
        } else {
            field.value.emplace(*address);
        }
    } else {
        report.fail(path, describe(v) + " is not an IPv4 address or \"auto\"");
    }
}

// A link-local gateway (fe80::1) is the usual IPv6 one: routes name the interface with it.
void read_gateway6(Field<std::optional<Ipv6>>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    std::optional<Ipv6> address;
    if (v.is_string()) address = Ipv6::parse(v.get_ref<const std::string&>());
    if (v == "auto") {
        field.value.emplace(std::nullopt);
    } else if (!address || v.get_ref<const std::string&>().find(':') == std::string::npos) {
        report.fail(path, describe(v) + " is not an IPv6 address or \"auto\"");
    } else if (auto unusable = unusable_address_kind(*address)) {
        report.fail(path, describe(v) + " is " + std::string(*unusable) +
                              ": an IPv6 gateway must be a unicast address on the WAN's link (global or fe80::)");
    } else {
        field.value.emplace(*address);
    }
}

// The shared address an HA pair translates LAN connections to: a unicast address, like a gateway.
void read_snat(Field<Ipv4>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    auto address = read_ipv4(v);
    if (!address) {
        report.fail(path, describe(v) + " is not an IPv4 address");
    } else if (auto unusable = unusable_address_kind(*address)) {
        report.fail(path, describe(v) + " is " + std::string(*unusable) + ": \"snat\" must be a unicast address");
    } else {
        field.value = *address;
    }
}

void read_snat6(Field<Ipv6>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    std::optional<Ipv6> address;
    if (v.is_string() && v.get_ref<const std::string&>().find(':') != std::string::npos)
        address = Ipv6::parse(v.get_ref<const std::string&>());
    if (!address) {
        report.fail(path, describe(v) + " is not an IPv6 address");
    } else if (auto unusable = unusable_address_kind(*address); unusable || address->link_local()) {
        report.fail(path, describe(v) + " is " + std::string(unusable ? *unusable : "a link-local address") +
                              ": \"snat6\" must be a global unicast address");
    } else {
        field.value = *address;
    }
}

WanDraft read_wan(const Json& v, const std::string& path, Reporter& report) {
    WanDraft wan;
    wan.path = path;
    if (!v.is_object()) {
        report.fail(path, "expected an object, got " + describe(v));
        return wan;
    }
    check_keys(v, path, kWanKeys, kWanRequired, report);
    for (const auto& item : v.items()) {
        const std::string& key = item.key();
        const Json& value = item.value();
        std::string at = pointer_append(path, key);
        if (key == "name") {
            wan.name.path = at;
            if (value.is_string() && is_wan_name(value.get_ref<const std::string&>())) {
                wan.name.value = value.get<std::string>();
            } else {
                report.fail(at, describe(value) + " must be 1-15 characters of a-z, 0-9, _ and -");
            }
        } else if (key == "interface") {
            wan.interface.path = at;
            wan.interface.value = read_interface(value, at, report);
        } else if (key == "gateway") {
            read_gateway(wan.gateway, value, at, report);
        } else if (key == "gateway6") {
            read_gateway6(wan.gateway6, value, at, report);
        } else if (key == "weight") {
            read_unsigned(wan.weight, value, at, 1, 1000, report);
        } else if (key == "tier") {
            read_unsigned(wan.tier, value, at, 0, 255, report);
        } else if (key == "table") {
            read_table(wan.table, value, at, report);
        } else if (key == "mark") {
            wan.mark_as_written = describe(value);
            read_mark_bits(wan.mark, value, at, kMarkKey, report);
        } else if (key == "probe") {
            wan.probe = read_probe(value, at, report);
        } else if (key == "snat") {
            read_snat(wan.snat, value, at, report);
        } else if (key == "snat6") {
            read_snat6(wan.snat6, value, at, report);
        }
    }
    return wan;
}

void read_wans(ConfigDraft& draft, const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_array()) {
        report.fail(path, "expected an array of WANs, got " + describe(v));
        return;
    }
    draft.wan_count = {v.size(), path};
    if (v.empty()) report.fail(path, "expected at least one WAN, got []");
    for (size_t i = 0; i < v.size(); ++i) draft.wans.push_back(read_wan(v[i], pointer_append(path, i), report));
}

void read_lans(ConfigDraft& draft, const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_array()) {
        report.fail(path, "expected an array of interface names, got " + describe(v));
        return;
    }
    if (v.empty()) report.fail(path, "expected at least one LAN interface, got []");
    std::map<std::string, std::string> first_seen;
    for (size_t i = 0; i < v.size(); ++i) {
        Field<std::string> lan{std::nullopt, pointer_append(path, i)};
        lan.value = read_interface(v[i], lan.path, report);
        if (lan.value) {
            if (auto [it, fresh] = first_seen.emplace(*lan.value, lan.path); !fresh) {
                report.fail(lan.path, quote(*lan.value) + " is already listed at " + it->second);
                lan.value.reset();
            }
        }
        draft.lans.push_back(std::move(lan));
    }
}

void read_balance(ConfigDraft& draft, const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_object()) {
        report.fail(path, "expected an object, got " + describe(v));
        return;
    }
    check_keys(v, path, kBalanceKeys, {}, report);
    if (!v.contains("classifier")) return;
    const Json& value = v["classifier"];
    draft.classifier.path = pointer_append(path, "classifier");
    if (value.is_string()) draft.classifier.value = parse_classifier(value.get_ref<const std::string&>());
    if (draft.classifier.value) return;

    std::vector<std::string_view> names;
    for (int c = 0; c <= int(Classifier::RoundRobin); ++c) names.push_back(classifier_name(Classifier(c)));
    std::string message = describe(value) + " is not a classifier";
    std::optional<std::string_view> match;
    if (value.is_string()) match = closest_match(value.get_ref<const std::string&>(), names);
    if (match) {
        message += " (did you mean " + quote(*match) + "?)";
    } else {
        message += " (one of " + quote_list(names) + ")";
    }
    report.fail(draft.classifier.path, message);
}

void read_hooks_dir(Field<std::string>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        bool clean = std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
        if (!s.empty() && s[0] == '/' && clean) {
            field.value = s;
            return;
        }
    }
    report.fail(path, "expected an absolute path, got " + describe(v));
}

}  // namespace

ConfigDraft read_draft(const JsonDocument& doc, Reporter& report) {
    ConfigDraft draft;
    const Json& root = doc.root;
    if (!root.is_object()) {
        report.fail("", "expected an object at the top level, got " + describe(root));
        return draft;
    }
    check_keys(root, "", kTopKeys, kTopRequired, report);
    for (const auto& item : root.items()) {
        const std::string& key = item.key();
        const Json& value = item.value();
        std::string at = pointer_append("", key);
        if (key == "wans") read_wans(draft, value, at, report);
        if (key == "lans") read_lans(draft, value, at, report);
        if (key == "balance") read_balance(draft, value, at, report);
        if (key == "probe") draft.probe = read_probe(value, at, report);
        if (key == "masquerade") read_bool(draft.masquerade, value, at, report);
        if (key == "flush_conntrack") read_bool(draft.flush_conntrack, value, at, report);
        if (key == "ha_pair") read_bool(draft.ha_pair, value, at, report);
        if (key == "mark_mask") read_mark_bits(draft.mark_mask, value, at, kMarkMaskKey, report);
        if (key == "rule_priority") {
            draft.rule_priority.path = at;
            if (auto n = read_integer(value, at, 1, kMaxRulePriority, report)) draft.rule_priority.value = uint32_t(*n);
        }
        if (key == "hooks_dir") read_hooks_dir(draft.hooks_dir, value, at, report);
        if (key == "policies") read_policies(draft, value, at, report);
        if (key == "rules") read_rules(draft, value, at, report);
    }
    return draft;
}

}  // namespace wb::config_detail
