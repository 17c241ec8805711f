#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <string>

#include "base/format.hpp"
#include "rules/nft.hpp"

namespace wb::nft {
namespace {

std::string hex32(uint32_t v) { return hex_padded(v, 8); }

// nft's words for the enums of rules/nft.hpp, in enumerator order.
constexpr std::array<const char*, 3> kChainTypeNames = {"filter", "route", "nat"};
constexpr std::array<const char*, 3> kHookNames = {"prerouting", "output", "postrouting"};

const char* mark_name(MarkKind kind) { return kind == MarkKind::Ct ? "ct mark" : "meta mark"; }

const char* field_name(HashField f, Family family) {
    bool v6 = family == Family::V6;
    switch (f) {
        case HashField::SrcAddr: return v6 ? "ip6 saddr" : "ip saddr";
        case HashField::DstAddr: return v6 ? "ip6 daddr" : "ip daddr";
        case HashField::SrcPort: return "th sport";
        case HashField::DstPort: return "th dport";
    }
    return "?";
}

bool has_address_field(const HashVmap& h) {
    return std::any_of(h.fields.begin(), h.fields.end(),
                       [](HashField f) { return f == HashField::SrcAddr || f == HashField::DstAddr; });
}

// The family a statement's ip/ip6 header match implies, if any.
std::optional<Family> implied_family(const Statement& st) {
    if (const auto* h = std::get_if<HashVmap>(&st); h && has_address_field(*h)) return h->family;
    if (std::holds_alternative<Ip6InPrefix>(st)) return Family::V6;
    return std::nullopt;
}

// nft prints (x & m) ^ v with v inside ~m as "x & (m | v) | v", and drops "& 0xffffffff".
std::string render_set_mark(const SetMarkBits& s) {
    std::string name = mark_name(s.kind);
    uint32_t and_mask = ~s.mask | s.value;
    std::string out = name + " set " + name;
    if (and_mask != 0xffffffffu) out += " & " + hex32(and_mask);
    return out + " | " + hex32(s.value);
}

struct StatementText {
    std::string operator()(const CtStateNew&) const { return "ct state new"; }
    std::string operator()(const NfprotoIpv4&) const { return "meta nfproto ipv4"; }
    std::string operator()(const NfprotoIpv6&) const { return "meta nfproto ipv6"; }
    std::string operator()(const Ip6InPrefix& s) const {
        return std::string(s.source ? "ip6 saddr " : "ip6 daddr ") + s.prefix.str() + "/" + std::to_string(s.length);
    }
    std::string operator()(const Return&) const { return "return"; }
    std::string operator()(const IifnameInSet& s) const { return "iifname @" + s.set; }
    std::string operator()(const OifnameIs& s) const { return "oifname " + quoted(s.name); }
    std::string operator()(const FibDaddrNotLocal&) const { return "fib daddr type != local"; }
    std::string operator()(const MarkVmap& s) const {
        return std::string(mark_name(s.kind)) + " & " + hex32(s.mask) + " vmap @" + s.map;
    }
    std::string operator()(const IifnameVmap& s) const { return "iifname vmap @" + s.map; }
    std::string operator()(const HashVmap& s) const {
        std::string out = "jhash ";
        for (size_t i = 0; i < s.fields.size(); ++i) out += (i ? " . " : "") + std::string(field_name(s.fields[i], s.family));
        return out + " mod " + std::to_string(s.modulus) + " seed " + hex(s.seed) + " vmap @" + s.map;
    }
    std::string operator()(const NumgenVmap& s) const {
        return "numgen inc mod " + std::to_string(s.modulus) + " vmap @" + s.map;
    }
    std::string operator()(const SetMarkBits& s) const { return render_set_mark(s); }
    std::string operator()(const Masquerade&) const { return "masquerade"; }
    // STUB (helper B replaces): the statements of policy rules.
    std::string operator()(const ConcatVmap&) const { return "STUB"; }
    std::string operator()(const Goto& s) const { return "goto " + s.chain; }
    std::string operator()(const AddrInSet&) const { return "STUB"; }
    std::string operator()(const UpdateSet&) const { return "STUB"; }
    std::string operator()(const MarkIs&) const { return "STUB"; }
};

std::string priority_text(ChainType type, int priority) {
    struct Named {
        const char* name;
        int value;
    };
    // Names nft uses for the inet family (src/rule.c std_prios); nat chains use dstnat/srcnat.
    static const Named filter_names[] = {{"raw", -300}, {"mangle", -150}, {"filter", 0}, {"security", 50}};
    static const Named nat_names[] = {{"dstnat", -100}, {"srcnat", 100}};
    const Named* best = nullptr;
    auto consider = [&](const Named* begin, const Named* end) {
        for (const Named* n = begin; n != end; ++n)
            if (!best || std::abs(priority - n->value) < std::abs(priority - best->value)) best = n;
    };
    if (type == ChainType::Nat)
        consider(std::begin(nat_names), std::end(nat_names));
    else
        consider(std::begin(filter_names), std::end(filter_names));
    int offset = priority - best->value;
    if (std::abs(offset) > 10) return std::to_string(priority);
    std::string out = best->name;
    if (offset > 0) out += " + " + std::to_string(offset);
    if (offset < 0) out += " - " + std::to_string(-offset);
    return out;
}

std::string key_type_text(const Set& set) {
    switch (set.key_type) {
        case KeyType::Ifname: return "type ifname";
        case KeyType::Mark: return "type mark";
        case KeyType::HashBucket: return "typeof numgen inc mod " + std::to_string(set.bucket_modulus);
        default: return "STUB";
    }
    return "?";
}

// nft sorts elements by key value as it holds them: integers numerically; an ifname is a
// NUL-padded string stored in host order, i.e. compared as a little-endian number — by
// length first, then from the last character backwards.
bool key_less(const Key& a, const Key& b) {
    if (a.index() != b.index()) return a.index() < b.index();
    if (const auto* ia = std::get_if<uint32_t>(&a)) return *ia < std::get<uint32_t>(b);
    const auto& sa = std::get<std::string>(a);
    const auto& sb = std::get<std::string>(b);
    if (sa.size() != sb.size()) return sa.size() < sb.size();
    return std::lexicographical_compare(sa.rbegin(), sa.rend(), sb.rbegin(), sb.rend(),
                                        [](char x, char y) { return (unsigned char)x < (unsigned char)y; });
}

std::string render_set(const Set& set) {
    std::string out = std::string("\t") + (set.verdict_map ? "map " : "set ") + set.name + " {\n";
    out += "\t\t" + key_type_text(set) + (set.verdict_map ? " : verdict" : "") + "\n";
    if (!set.elements.empty()) {
        std::vector<const Element*> sorted;
        for (const auto& e : set.elements) sorted.push_back(&e);
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const Element* a, const Element* b) { return key_less(a->key, b->key); });
        // nft breaks the list after every string element and after every 5th integer one.
        const size_t per_line = set.key_type == KeyType::Ifname ? 1 : 5;
        out += "\t\telements = { ";
        for (size_t i = 0; i < sorted.size(); ++i) {
            if (i > 0) out += (i % per_line == 0) ? ",\n\t\t\t     " : ", ";
            out += render_key(set, sorted[i]->key);
            if (set.verdict_map) out += " : goto " + sorted[i]->goto_chain;
        }
        out += " }\n";
    }
    return out + "\t}\n";
}

std::string render_chain(const Chain& chain) {
    std::string out = "\tchain " + chain.name + " {\n";
    if (const auto& base = chain.base) {
        out += std::string("\t\ttype ") + chain_type_name(base->type) + " hook " + kHookNames[size_t(base->hook)] +
               " priority " + priority_text(base->type, base->priority) + "; policy accept;\n";
    }
    for (const auto& rule : chain.rules) out += "\t\t" + render(rule) + "\n";
    return out + "\t}\n";
}

}  // namespace

const char* chain_type_name(ChainType type) { return kChainTypeNames[size_t(type)]; }

const Set* Table::find_set(const std::string& set_name) const {
    for (const auto& s : sets)
        if (s.name == set_name) return &s;
    return nullptr;
}

const Chain* Table::find_chain(const std::string& chain_name) const {
    for (const auto& c : chains)
        if (c.name == chain_name) return &c;
    return nullptr;
}

std::string render_key(const Set& set, const Key& key) {
    if (const auto* s = std::get_if<std::string>(&key)) return quoted(*s);
    if (std::holds_alternative<FieldRanges>(key)) return "STUB";
    uint32_t v = std::get<uint32_t>(key);
    return set.key_type == KeyType::Mark ? hex32(v) : std::to_string(v);
}

std::string render(const Rule& rule) {
    // nft hides "meta nfproto ipv4" ("ipv6") when a later ip (ip6) address match implies it.
    bool implied_ipv4 = false, implied_ipv6 = false;
    for (const auto& st : rule.statements) {
        auto family = implied_family(st);
        implied_ipv4 |= family == Family::V4;
        implied_ipv6 |= family == Family::V6;
    }
    std::string out;
    for (const auto& st : rule.statements) {
        if (implied_ipv4 && std::holds_alternative<NfprotoIpv4>(st)) continue;
        if (implied_ipv6 && std::holds_alternative<NfprotoIpv6>(st)) continue;
        if (!out.empty()) out += ' ';
        out += std::visit(StatementText{}, st);
    }
    if (!rule.comment.empty()) out += " comment " + quoted(rule.comment);
    return out;
}

std::string render(const Table& table) {
    std::string out = "table inet " + table.name + " {\n";
    if (!table.comment.empty()) out += "\tcomment " + quoted(table.comment) + "\n";
    bool first = true;
    auto separate = [&] {
        if (!first) out += "\n";
        first = false;
    };
    for (const auto& set : table.sets) {
        separate();
        out += render_set(set);
    }
    for (const auto& chain : table.chains) {
        separate();
        out += render_chain(chain);
    }
    return out + "}\n";
}

}  // namespace wb::nft
