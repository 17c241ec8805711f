#include "rules/policy.hpp"

#include <algorithm>
#include <array>

namespace wb {
namespace {

using nft::FieldRange;
using nft::FieldRanges;
using nft::MatchField;

// Every field's values as one unsigned number: an address (up to 128 bits), a protocol, a
// port, or an interface's index in the compile's name table.
__extension__ typedef unsigned __int128 Value;

struct Span {  // inclusive
    Value lo, hi;
};
// Sorted, disjoint and never adjacent (merged). Empty: the rule does not constrain the field.
using Spans = std::vector<Span>;

constexpr size_t kFields = 6;  // one per nft::MatchField, in its order
using FieldLists = std::array<Spans, kFields>;

constexpr size_t index_of(MatchField f) { return size_t(f); }

constexpr size_t kIfnameBytes = 16;  // IFNAMSIZ: the kernel compares the NUL-padded name

Value address_value(const IpAddr& a) {
    if (const auto* v4 = std::get_if<Ipv4>(&a)) return v4->value;
    Value v = 0;
    for (uint8_t b : std::get<Ipv6>(a).bytes) v = (v << 8) | b;
    return v;
}

unsigned address_bits(Family family) { return family == Family::V4 ? 32 : 128; }

Value max_value(MatchField field, Family family) {
    switch (field) {
        case MatchField::SrcAddr:
        case MatchField::DstAddr:
            return family == Family::V4 ? Value(UINT32_MAX) : ~Value(0);
        case MatchField::L4proto: return 255;
        case MatchField::SrcPort:
        case MatchField::DstPort: return 65535;
        case MatchField::Iifname: return ~Value(0);  // bounded by the name table instead
    }
    return 0;
}

Span cidr_span(const Cidr& c) {
    const unsigned host_bits = address_bits(c.family()) - c.len;
    const Value host = host_bits == 0 ? 0 : host_bits >= 128 ? ~Value(0) : (Value(1) << host_bits) - 1;
    const Value lo = address_value(c.addr) & ~host;
    return {lo, lo | host};
}

// Sorts and joins overlapping or adjacent spans; a list covering [0, max] becomes empty
// (unconstrained), so a rule written "0.0.0.0/0" is the same as one without `dst`.
Spans merged(Spans spans, Value max) {
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.lo < b.lo; });
    Spans out;
    for (const Span& s : spans) {
        if (!out.empty() && (out.back().hi == ~Value(0) || s.lo <= out.back().hi + 1))
            out.back().hi = std::max(out.back().hi, s.hi);
        else
            out.push_back(s);
    }
    if (out.size() == 1 && out[0].lo == 0 && out[0].hi >= max) out.clear();
    return out;
}

bool intersect(const Spans& a, const Spans& b) {
    if (a.empty() || b.empty()) return true;
    for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
        if (a[i].hi < b[j].lo) ++i;
        else if (b[j].hi < a[i].lo) ++j;
        else return true;
    }
    return false;
}

// Two rules overlap when some packet matches both. Fields that most often tell rules apart first.
bool overlap(const FieldLists& a, const FieldLists& b) {
    static constexpr MatchField order[] = {MatchField::DstAddr, MatchField::SrcAddr, MatchField::DstPort,
                                           MatchField::L4proto, MatchField::SrcPort, MatchField::Iifname};
    for (MatchField f : order)
        if (!intersect(a[index_of(f)], b[index_of(f)])) return false;
    return true;
}

bool catch_all(const FieldLists& lists) {
    return std::all_of(lists.begin(), lists.end(), [](const Spans& s) { return s.empty(); });
}

// The interfaces rules name, as numbers: the LANs first (0..lans-1), then any other name a
// rule gives (the validator refuses those; they still compile, and match nothing).
struct NameTable {
    std::vector<std::string> names;
    size_t lans = 0;
    Value index(const std::string& name) {
        auto it = std::find(names.begin(), names.end(), name);
        if (it == names.end()) it = names.insert(names.end(), name);
        return Value(it - names.begin());
    }
};

Spans port_spans(const std::vector<PortRange>& ports) {
    Spans out;
    for (const auto& p : ports) out.push_back({p.first, p.last});
    return merged(out, 65535);
}

Spans address_spans(const std::vector<Cidr>& cidrs, Family family) {
    Spans out;
    for (const auto& c : cidrs)
        if (c.family() == family) out.push_back(cidr_span(c));
    return merged(out, max_value(MatchField::SrcAddr, family));
}

FieldLists rule_lists(const RuleConfig& rule, Family family, NameTable& names) {
    FieldLists lists;
    Spans iif;
    for (const auto& name : rule.iif) {
        Value i = names.index(name);
        iif.push_back({i, i});
    }
    iif = merged(iif, ~Value(0));
    // Every LAN named: the same as none (only LAN traffic reaches the rules).
    if (!iif.empty() && iif[0].lo == 0 && names.lans > 0 && iif[0].hi >= Value(names.lans - 1)) iif.clear();
    lists[index_of(MatchField::Iifname)] = iif;
    lists[index_of(MatchField::SrcAddr)] = address_spans(rule.src, family);
    lists[index_of(MatchField::DstAddr)] = address_spans(rule.dst, family);
    if (rule.proto) lists[index_of(MatchField::L4proto)] = {{*rule.proto, *rule.proto}};
    lists[index_of(MatchField::SrcPort)] = port_spans(rule.src_port);
    lists[index_of(MatchField::DstPort)] = port_spans(rule.dst_port);
    return lists;
}

// A field's bytes as the kernel compares them: network order, an ifname NUL padded.
std::vector<uint8_t> field_bytes(MatchField field, Family family, Value v, const NameTable& names) {
    if (field == MatchField::Iifname) {
        std::vector<uint8_t> out(kIfnameBytes, 0);
        const std::string& name = names.names[size_t(v)];
        std::copy_n(name.begin(), std::min(name.size(), kIfnameBytes), out.begin());
        return out;
    }
    size_t width = 2;
    if (field == MatchField::L4proto) width = 1;
    if (field == MatchField::SrcAddr || field == MatchField::DstAddr) width = address_bits(family) / 8;
    std::vector<uint8_t> out(width);
    for (size_t i = width; i-- > 0; v >>= 8) out[i] = uint8_t(v);
    return out;
}

// A field's ranges, one per element: an ifname is exact, so every name is its own range.
std::vector<FieldRange> field_ranges(MatchField field, Family family, const Spans& spans, const NameTable& names) {
    auto range = [&](Value lo, Value hi) {
        return FieldRange{field_bytes(field, family, lo, names), field_bytes(field, family, hi, names)};
    };
    std::vector<FieldRange> out;
    if (field == MatchField::Iifname) {
        if (spans.empty())
            for (size_t i = 0; i < names.lans; ++i) out.push_back(range(i, i));
        for (const Span& s : spans)
            for (Value i = s.lo; i <= s.hi; ++i) out.push_back(range(i, i));
        return out;
    }
    if (spans.empty()) return {range(0, max_value(field, family))};
    for (const Span& s : spans) out.push_back(range(s.lo, s.hi));
    return out;
}

// The rule's lists multiplied out over the key's fields, each element going to its chain.
void add_elements(const std::vector<std::vector<FieldRange>>& per_field, const std::string& chain,
                  std::vector<nft::Element>& out) {
    std::vector<size_t> at(per_field.size(), 0);
    if (std::any_of(per_field.begin(), per_field.end(), [](const auto& v) { return v.empty(); })) return;
    while (true) {
        FieldRanges key;
        for (size_t f = 0; f < per_field.size(); ++f) key.push_back(per_field[f][at[f]]);
        out.push_back({std::move(key), chain, false});
        size_t f = per_field.size();
        while (f-- > 0 && ++at[f] == per_field[f].size()) at[f] = 0;
        if (f == size_t(-1)) return;
    }
}

bool contains(const Cidr& c, const IpAddr& a) {
    if (c.family() != family_of(a)) return false;
    Span s = cidr_span(c);
    Value v = address_value(a);
    return s.lo <= v && v <= s.hi;
}

bool address_matches(const std::vector<Cidr>& list, const IpAddr& a) {
    return list.empty() || std::any_of(list.begin(), list.end(), [&](const Cidr& c) { return contains(c, a); });
}

bool port_matches(const std::vector<PortRange>& list, uint16_t port) {
    return list.empty() ||
           std::any_of(list.begin(), list.end(), [&](const PortRange& r) { return r.first <= port && port <= r.last; });
}

bool rule_matches(const RuleConfig& rule, const PacketKey& p) {
    if (!rule.applies_to(p.family)) return false;
    if (!address_matches(rule.src, p.src) || !address_matches(rule.dst, p.dst)) return false;
    if (rule.proto && *rule.proto != p.proto) return false;
    if (!port_matches(rule.src_port, p.sport) || !port_matches(rule.dst_port, p.dport)) return false;
    return rule.iif.empty() || p.iif.empty() || std::find(rule.iif.begin(), rule.iif.end(), p.iif) != rule.iif.end();
}

// Layer of each rule (by position in `lists`): one above the highest layer of an earlier
// rule it overlaps, so within a layer no two rules overlap.
std::vector<size_t> assign_layers(const std::vector<FieldLists>& lists) {
    std::vector<size_t> layer(lists.size(), 0);
    for (size_t r = 0; r < lists.size(); ++r)
        for (size_t q = 0; q < r; ++q)
            if (layer[q] >= layer[r] && overlap(lists[q], lists[r])) layer[r] = layer[q] + 1;
    return layer;
}

}  // namespace

std::optional<size_t> first_match(const Config& config, const PacketKey& packet) {
    for (size_t i = 0; i < config.rules.size(); ++i)
        if (rule_matches(config.rules[i], packet)) return i;
    return std::nullopt;
}

size_t CompiledRules::elements() const {
    size_t n = 0;
    for (const auto& layer : layers) n += layer.size();
    return n;
}

CompiledRules compile_rules(const Config& config, Family family) {
    CompiledRules out;
    NameTable names{config.lans, config.lans.size()};
    std::vector<FieldLists> lists;  // of out.rules before the catch-all
    for (size_t i = 0; i < config.rules.size() && !out.catch_all; ++i) {
        if (!config.rules[i].applies_to(family)) continue;
        out.rules.push_back(i);
        FieldLists l = rule_lists(config.rules[i], family, names);
        if (catch_all(l)) out.catch_all = i;
        else lists.push_back(std::move(l));
    }
    // The key: both addresses always (two fields at least, so the kernel picks pipapo), and
    // every other field some rule constrains.
    for (size_t f = 0; f < kFields; ++f) {
        auto field = MatchField(f);
        bool used = field == MatchField::SrcAddr || field == MatchField::DstAddr ||
                    std::any_of(lists.begin(), lists.end(), [&](const FieldLists& l) { return !l[f].empty(); });
        if (used) out.fields.push_back(field);
    }
    std::vector<size_t> layer = assign_layers(lists);
    for (size_t k = 0; k < lists.size(); ++k) {
        if (layer[k] >= out.layers.size()) out.layers.resize(layer[k] + 1);
        std::vector<std::vector<FieldRange>> per_field;
        for (MatchField field : out.fields)
            per_field.push_back(field_ranges(field, family, lists[k][index_of(field)], names));
        add_elements(per_field, rule_chain_name(config.rules[out.rules[k]]), out.layers[layer[k]]);
    }
    return out;
}

std::string rule_chain_name(const RuleConfig& rule) { return "rule_" + rule.name; }

std::string rules_chain_name(Family family) { return family == Family::V4 ? "rules4" : "rules6"; }

std::string rules_map_name(Family family, size_t layer) {
    return rules_chain_name(family) + "_" + std::to_string(layer + 1);
}

std::string policy_map_name(const PolicyConfig& policy, Family family) {
    return (family == Family::V4 ? "policy_" : "policy6_") + policy.name;
}

std::string sticky_set_name(const RuleConfig& rule, const WanConfig& wan, Family family) {
    return (family == Family::V4 ? "sticky_" : "sticky6_") + rule.name + "_" + wan.name;
}

}  // namespace wb
