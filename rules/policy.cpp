#include "rules/policy.hpp"

#include <algorithm>
#include <array>
#include <optional>

namespace wb {
namespace {

using nft::FieldRange;
using nft::FieldRanges;
using nft::MatchField;

// Every field's values as one unsigned number: an address (up to 128 bits), a protocol or a port.
__extension__ typedef unsigned __int128 Value;

struct Span {  // inclusive
    Value lo, hi;
};
// Sorted, disjoint and never adjacent (merged). Empty: the rule does not constrain the field.
using Spans = std::vector<Span>;

constexpr size_t kFields = 6;  // one per nft::MatchField, in its order (Iifname's always empty)
using FieldLists = std::array<Spans, kFields>;

constexpr size_t index_of(MatchField f) { return size_t(f); }

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
        case MatchField::Iifname: return 0;  // never a key field: chains per LAN instead
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
                                           MatchField::L4proto, MatchField::SrcPort};
    for (MatchField f : order)
        if (!intersect(a[index_of(f)], b[index_of(f)])) return false;
    return true;
}

bool catch_all(const FieldLists& lists) {
    return std::all_of(lists.begin(), lists.end(), [](const Spans& s) { return s.empty(); });
}

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

FieldLists rule_lists(const RuleConfig& rule, Family family) {
    FieldLists lists;
    lists[index_of(MatchField::SrcAddr)] = address_spans(rule.src, family);
    lists[index_of(MatchField::DstAddr)] = address_spans(rule.dst, family);
    if (rule.proto) lists[index_of(MatchField::L4proto)] = {{*rule.proto, *rule.proto}};
    lists[index_of(MatchField::SrcPort)] = port_spans(rule.src_port);
    lists[index_of(MatchField::DstPort)] = port_spans(rule.dst_port);
    return lists;
}

// Whether the rule takes packets from `lan` (from any LAN when `lan` is empty: unknown).
bool on_lan(const RuleConfig& rule, const std::string& lan) {
    return lan.empty() || rule.iif.empty() || std::find(rule.iif.begin(), rule.iif.end(), lan) != rule.iif.end();
}

// A field's bytes as the kernel compares them: network order.
std::vector<uint8_t> field_bytes(MatchField field, Family family, Value v) {
    size_t width = 2;
    if (field == MatchField::L4proto) width = 1;
    if (field == MatchField::SrcAddr || field == MatchField::DstAddr) width = address_bits(family) / 8;
    std::vector<uint8_t> out(width);
    for (size_t i = width; i-- > 0; v >>= 8) out[i] = uint8_t(v);
    return out;
}

// A field's ranges, one per element.
std::vector<FieldRange> field_ranges(MatchField field, Family family, const Spans& spans) {
    auto range = [&](Value lo, Value hi) { return FieldRange{field_bytes(field, family, lo), field_bytes(field, family, hi)}; };
    if (spans.empty()) return {range(0, max_value(field, family))};
    std::vector<FieldRange> out;
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
    return on_lan(rule, p.iif);
}

// Whether every value of `inner` is in `outer` (empty lists: the whole field).
bool covers(const Spans& outer, const Spans& inner) {
    if (outer.empty()) return true;
    if (inner.empty()) return false;  // a list that is not the whole field cannot hold it (merged() says so)
    size_t j = 0;
    for (const Span& s : inner) {
        while (j < outer.size() && outer[j].hi < s.lo) ++j;
        if (j == outer.size() || outer[j].lo > s.lo || outer[j].hi < s.hi) return false;
    }
    return true;
}

// `a` without the values of `b` (empty `a`: the whole field up to `max`).
Spans minus(const Spans& a, const Spans& b, Value max) {
    Spans from = a.empty() ? Spans{{0, max}} : a, out;
    for (Span s : from) {
        for (const Span& cut : b) {
            if (cut.hi < s.lo || cut.lo > s.hi) continue;
            if (cut.lo > s.lo) out.push_back({s.lo, cut.lo - 1});
            if (cut.hi >= s.hi) {
                s.lo = 1, s.hi = 0;  // used up
                break;
            }
            s.lo = cut.hi + 1;
        }
        if (s.lo <= s.hi) out.push_back(s);
    }
    return out;
}

// What of a later rule an earlier one leaves to it, when that is cheap to say: where the earlier
// rule holds the later one in every field but one, the later rule loses that field's values of
// the earlier one (packets there match the earlier rule first anyway) if that leaves it no more
// ranges than it had, and the two no longer overlap, so they may share a layer. Returns false
// when nothing of `later` is left: it never matches (earlier rules hold all of it).
bool cut_overlap(const FieldLists& earlier, FieldLists& later, Family family) {
    if (!overlap(earlier, later)) return true;
    std::optional<size_t> open;
    for (size_t f = 0; f < kFields; ++f) {
        if (covers(earlier[f], later[f])) continue;
        if (open) return true;  // two fields or more: the layers keep them apart
        open = f;
    }
    if (!open) return false;  // the earlier rule holds all of it
    Spans rest = minus(later[*open], earlier[*open], max_value(MatchField(*open), family));
    if (rest.empty()) return false;
    // Only when the rule gets no more elements: a map's lookup costs more the more elements it
    // holds (measured: splitting 1000 rules around 20 broad ones made 15 000 elements and cost
    // more than the layers it saved). Trimming a range or dropping one is free.
    if (rest.size() <= std::max<size_t>(later[*open].size(), 1)) later[*open] = std::move(rest);
    return true;
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

// Whether a rule of the family that can match names a LAN: one before the first rule that
// matches everything (which, matching everything but its `iif`, may itself name one).
bool iif_reachable(const Config& config, Family family) {
    for (const RuleConfig& rule : config.rules) {
        if (!rule.applies_to(family)) continue;
        if (!rule.iif.empty()) return true;
        if (catch_all(rule_lists(rule, family))) return false;
    }
    return false;
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

CompiledRules compile_rules(const Config& config, Family family, const std::string& lan) {
    CompiledRules out;
    out.lan = lan;
    std::vector<FieldLists> lists;  // of the rules before the catch-all that keep something
    std::vector<size_t> owner;      // the config rule of each
    for (size_t i = 0; i < config.rules.size() && !out.catch_all; ++i) {
        const RuleConfig& rule = config.rules[i];
        if (!rule.applies_to(family) || !on_lan(rule, lan)) continue;
        out.rules.push_back(i);
        FieldLists l = rule_lists(rule, family);
        if (catch_all(l)) {
            out.catch_all = i;
            break;
        }
        bool left = true;
        for (size_t q = 0; q < lists.size() && left; ++q) left = cut_overlap(lists[q], l, family);
        if (!left) continue;  // earlier rules take all its packets: no elements
        lists.push_back(std::move(l));
        owner.push_back(i);
    }
    // The key: both addresses always (two fields at least, so the kernel picks pipapo), and
    // every other field some rule constrains.
    // The most selective field first: the kernel's pipapo lookup goes field by field and stops
    // as soon as no element is left, so a first field most rules constrain (usually the
    // destination) settles a packet that matches nothing after one field, where a first field
    // every element leaves open ("0.0.0.0/0") settles nothing. Measured on this lab with 1000
    // rules: about twice the new connections per second.
    std::array<size_t, kFields> constrained{};
    for (const FieldLists& l : lists)
        for (size_t f = 0; f < kFields; ++f) constrained[f] += !l[f].empty();
    static constexpr MatchField preference[] = {MatchField::DstAddr, MatchField::SrcAddr, MatchField::DstPort,
                                                MatchField::SrcPort, MatchField::L4proto};
    for (MatchField field : preference)
        if (field == MatchField::SrcAddr || field == MatchField::DstAddr || constrained[index_of(field)] > 0)
            out.fields.push_back(field);
    // The protocol tells few packets apart (tcp or udp): last, however many rules name one.
    constrained[index_of(MatchField::L4proto)] = 0;
    std::stable_sort(out.fields.begin(), out.fields.end(), [&](MatchField a, MatchField b) {
        return constrained[index_of(a)] > constrained[index_of(b)];
    });
    std::vector<size_t> layer = assign_layers(lists);
    for (size_t k = 0; k < lists.size(); ++k) {
        if (layer[k] >= out.layers.size()) out.layers.resize(layer[k] + 1);
        std::vector<std::vector<FieldRange>> per_field;
        for (MatchField field : out.fields) per_field.push_back(field_ranges(field, family, lists[k][index_of(field)]));
        add_elements(per_field, rule_chain_name(config.rules[owner[k]]), out.layers[layer[k]]);
    }
    return out;
}

size_t CompiledFamily::elements() const {
    size_t n = 0;
    for (const auto& c : chains) n += c.elements();
    return n;
}

CompiledFamily compile_family(const Config& config, Family family) {
    CompiledFamily out;
    out.by_lan = iif_reachable(config, family);
    if (!out.by_lan) {
        out.chains.push_back(compile_rules(config, family));
        out.rules = out.chains[0].rules;
        return out;
    }
    for (const auto& lan : config.lans) {
        out.chains.push_back(compile_rules(config, family, lan));
        out.rules.insert(out.rules.end(), out.chains.back().rules.begin(), out.chains.back().rules.end());
    }
    std::sort(out.rules.begin(), out.rules.end());
    out.rules.erase(std::unique(out.rules.begin(), out.rules.end()), out.rules.end());
    return out;
}

std::string rule_chain_name(const RuleConfig& rule) { return "rule_" + rule.name; }

std::string rules_chain_name(Family family, const std::string& lan) {
    std::string out = family == Family::V4 ? "rules4" : "rules6";
    if (lan.empty()) return out;
    out += '_';
    // nft's parser takes letters, digits and "_.-/" after the first byte of a name.
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned char c : lan) {
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                     c == '.' || c == '-';
        if (plain) out += char(c);
        else out += {'/', kHex[c >> 4], kHex[c & 15]};
    }
    return out;
}

std::string rules_map_name(Family family, size_t layer, const std::string& lan) {
    return rules_chain_name(family, lan) + "_" + std::to_string(layer + 1);
}

std::string rules_lans_map_name(Family family) { return rules_chain_name(family) + "_lans"; }

std::string policy_map_name(const PolicyConfig& policy, Family family) {
    return (family == Family::V4 ? "policy_" : "policy6_") + policy.name;
}

std::string sticky_set_name(const RuleConfig& rule, const WanConfig& wan, Family family) {
    return (family == Family::V4 ? "sticky_" : "sticky6_") + rule.name + "_" + wan.name;
}

}  // namespace wb
