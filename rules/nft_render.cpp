#include <arpa/inet.h>
#include <netdb.h>

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
constexpr std::array<const char*, 4> kHookNames = {"prerouting", "output", "postrouting", "forward"};

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

const char* field_name(MatchField f, Family family) {
    switch (f) {
        case MatchField::Iifname: return "iifname";
        case MatchField::SrcAddr: return family == Family::V6 ? "ip6 saddr" : "ip saddr";
        case MatchField::DstAddr: return family == Family::V6 ? "ip6 daddr" : "ip daddr";
        case MatchField::L4proto: return "meta l4proto";
        case MatchField::SrcPort: return "th sport";
        case MatchField::DstPort: return "th dport";
    }
    return "?";
}

bool has_address_field(const HashVmap& h) {
    return std::any_of(h.fields.begin(), h.fields.end(),
                       [](HashField f) { return f == HashField::SrcAddr || f == HashField::DstAddr; });
}

bool has_address_field(const ConcatVmap& c) {
    return std::any_of(c.fields.begin(), c.fields.end(),
                       [](MatchField f) { return f == MatchField::SrcAddr || f == MatchField::DstAddr; });
}

// The family a statement's ip/ip6 header match implies, if any.
std::optional<Family> implied_family(const Statement& st) {
    if (const auto* h = std::get_if<HashVmap>(&st); h && has_address_field(*h)) return h->family;
    if (const auto* c = std::get_if<ConcatVmap>(&st); c && has_address_field(*c)) return c->family;
    if (const auto* a = std::get_if<AddrInSet>(&st)) return a->family;
    if (const auto* u = std::get_if<UpdateSet>(&st)) return u->family;
    if (std::holds_alternative<Ip6InPrefix>(st)) return Family::V6;
    return std::nullopt;
}

// "ip saddr" / "ip saddr . ip daddr": the key of a sticky set.
std::string sticky_key(Family family, bool with_dst) {
    std::string out = field_name(MatchField::SrcAddr, family);
    if (with_dst) out += std::string(" . ") + field_name(MatchField::DstAddr, family);
    return out;
}

// nft drops a mask of all ones: "ct mark 0x00000100".
std::string render_mark_is(const MarkIs& s) {
    std::string out = mark_name(s.kind);
    if (s.mask != 0xffffffffu) return out + " & " + hex32(s.mask) + " == " + hex32(s.value);
    return out + " " + hex32(s.value);
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
    std::string operator()(const Snat& s) const {
        return std::string(family_of(s.address) == Family::V4 ? "snat ip to " : "snat ip6 to ") + str(s.address);
    }
    std::string operator()(const TcpNotSyn&) const { return "tcp flags != syn / fin,syn,rst,ack"; }
    std::string operator()(const Drop&) const { return "drop"; }
    std::string operator()(const ConcatVmap& s) const {
        std::string out;
        for (size_t i = 0; i < s.fields.size(); ++i) out += (i ? " . " : "") + std::string(field_name(s.fields[i], s.family));
        return out + " vmap @" + s.map;
    }
    std::string operator()(const Goto& s) const { return "goto " + s.chain; }
    std::string operator()(const AddrInSet& s) const { return sticky_key(s.family, s.with_dst) + " @" + s.set; }
    std::string operator()(const UpdateSet& s) const {
        return "update @" + s.set + " { " + sticky_key(s.family, s.with_dst) + " }";
    }
    std::string operator()(const MarkIs& s) const { return render_mark_is(s); }
    std::string operator()(const CtDirectionReply&) const { return "ct direction reply"; }
    // What nft lists for a counter that has counted nothing yet.
    std::string operator()(const Counter&) const { return "counter packets 0 bytes 0"; }
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

// The fields of a set's key: its concatenation, else the one key type.
std::vector<KeyType> key_fields(const Set& set) {
    return set.concat.empty() ? std::vector<KeyType>{set.key_type} : set.concat;
}

const char* type_name(KeyType t) {
    switch (t) {
        case KeyType::Ifname: return "ifname";
        case KeyType::Mark: return "mark";
        case KeyType::HashBucket: return "integer";
        case KeyType::Ipv4Addr: return "ipv4_addr";
        case KeyType::Ipv6Addr: return "ipv6_addr";
        case KeyType::InetProto: return "inet_proto";
        case KeyType::InetService: return "inet_service";
    }
    return "?";
}

std::string key_type_text(const Set& set) {
    if (set.concat.empty() && set.key_type == KeyType::HashBucket)
        return "typeof numgen inc mod " + std::to_string(set.bucket_modulus);
    std::string out = "type ";
    auto fields = key_fields(set);
    for (size_t i = 0; i < fields.size(); ++i) out += (i ? " . " : "") + std::string(type_name(fields[i]));
    return out;
}

// nft's words for the flags it prints, in its order (src/rule.c set_print_declaration()).
std::string flags_text(const Set& set) {
    std::vector<const char*> words;
    if (set.dynamic()) words.push_back("dynamic");
    if (set.interval) words.push_back("interval");
    if (set.dynamic()) words.push_back("timeout");
    std::string out;
    for (const char* w : words) out += (out.empty() ? "" : ",") + std::string(w);
    return out;
}

// nft's time_print(): "1d2h3m4s", units that are zero left out.
std::string duration_text(uint32_t seconds) {
    std::string out;
    for (auto [unit, size] : {std::pair{"d", 86400u}, {"h", 3600u}, {"m", 60u}, {"s", 1u}}) {
        if (seconds >= size) out += std::to_string(seconds / size) + unit;
        seconds %= size;
    }
    return out;
}

// nft sorts elements by key value as it holds them: integers numerically; an ifname is a
// NUL-padded string stored in host order, i.e. compared as a little-endian number — by
// length first, then from the last character backwards.
bool key_less(const Key& a, const Key& b) {
    if (a.index() != b.index()) return a.index() < b.index();
    if (const auto* ia = std::get_if<uint32_t>(&a)) return *ia < std::get<uint32_t>(b);
    if (const auto* ra = std::get_if<FieldRanges>(&a)) return *ra < std::get<FieldRanges>(b);
    const auto& sa = std::get<std::string>(a);
    const auto& sb = std::get<std::string>(b);
    if (sa.size() != sb.size()) return sa.size() < sb.size();
    return std::lexicographical_compare(sa.rbegin(), sa.rend(), sb.rbegin(), sb.rend(),
                                        [](char x, char y) { return (unsigned char)x < (unsigned char)y; });
}

// How many elements nft prints on a line, by the key's datatype (src/expression.c
// calculate_delim()): integers 5, IPv4 addresses 2, anything else (strings, IPv6 addresses,
// concatenations) 1.
size_t elements_per_line(const Set& set) {
    auto fields = key_fields(set);
    if (fields.size() > 1) return 1;
    switch (fields[0]) {
        case KeyType::Mark:
        case KeyType::HashBucket:
        case KeyType::InetProto:
        case KeyType::InetService: return 5;
        case KeyType::Ipv4Addr: return 2;
        default: return 1;
    }
}

std::string render_elements(const Set& set) {
    std::vector<const Element*> sorted;
    for (const auto& e : set.elements) sorted.push_back(&e);
    // A concatenation of ranges (pipapo) is listed in the kernel's order: the order the
    // elements were added in (src/netlink.c lists it unsorted).
    if (!set.interval)
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const Element* a, const Element* b) { return key_less(a->key, b->key); });
    const size_t per_line = elements_per_line(set);
    std::string out = "\t\telements = { ";
    for (size_t i = 0; i < sorted.size(); ++i) {
        if (i > 0) out += (i % per_line == 0) ? ",\n\t\t\t     " : ", ";
        out += render_key(set, sorted[i]->key);
        if (set.verdict_map) out += (sorted[i]->jump ? " : jump " : " : goto ") + sorted[i]->goto_chain;
    }
    return out + " }\n";
}

std::string render_set(const Set& set) {
    std::string out = std::string("\t") + (set.verdict_map ? "map " : "set ") + set.name + " {\n";
    out += "\t\t" + key_type_text(set) + (set.verdict_map ? " : verdict" : "") + "\n";
    if (set.dynamic()) out += "\t\tsize " + std::to_string(kDynamicSetSize) + "\n";
    if (std::string flags = flags_text(set); !flags.empty()) out += "\t\tflags " + flags + "\n";
    if (set.dynamic()) out += "\t\ttimeout " + duration_text(set.timeout_s) + "\n";
    // A dynamic set's elements are the packet path's; the table never lists them.
    if (!set.elements.empty() && !set.dynamic()) out += render_elements(set);
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

// One value of a key field as nft prints it; `numeric` as in a range, where nft prints even
// protocols as numbers (src/expression.c range_expr_print()).
std::string render_value(KeyType type, const std::vector<uint8_t>& v, bool numeric) {
    auto number = [&] {
        uint64_t n = 0;
        for (uint8_t b : v) n = n << 8 | b;
        return n;
    };
    switch (type) {
        case KeyType::Ifname: return quoted(std::string(v.begin(), std::find(v.begin(), v.end(), 0)));
        case KeyType::Ipv4Addr:
        case KeyType::Ipv6Addr: {
            char buf[INET6_ADDRSTRLEN] = "?";
            if (v.size() == 4 || v.size() == 16) inet_ntop(v.size() == 4 ? AF_INET : AF_INET6, v.data(), buf, sizeof buf);
            return buf;
        }
        case KeyType::InetProto:
            if (!numeric && v.size() == 1) {
                // nft names protocols from /etc/protocols, as getprotobynumber() reads it.
                protoent entry, *found = nullptr;
                char buf[1024];
                if (getprotobynumber_r(v[0], &entry, buf, sizeof buf, &found) == 0 && found) return found->p_name;
            }
            return std::to_string(number());
        default: return std::to_string(number());
    }
}

// The prefix length when [first, last] is exactly one CIDR block, else -1 (nft's
// range_mask_len(): trailing bits 0 in first and 1 in last, the leading ones equal).
int prefix_length(const FieldRange& r) {
    if (r.first.size() != r.last.size()) return -1;
    const int bits = int(r.first.size() * 8);
    auto bit = [](const std::vector<uint8_t>& v, int i) { return (v[size_t(i / 8)] >> (7 - i % 8)) & 1; };
    int len = bits;
    while (len > 0 && bit(r.first, len - 1) == 0 && bit(r.last, len - 1) == 1) --len;
    for (int i = 0; i < len; ++i)
        if (bit(r.first, i) != bit(r.last, i)) return -1;
    return len;
}

// nft's concat_range_aggregate(): a single value plainly, an address range that is one CIDR
// block as a prefix ("10.0.0.0/8", "0.0.0.0/0"), any other range as "first-last".
std::string render_range(KeyType type, const FieldRange& r) {
    if (r.first == r.last) return render_value(type, r.first, false);
    bool address = type == KeyType::Ipv4Addr || type == KeyType::Ipv6Addr;
    if (int len = prefix_length(r); address && len >= 0) return render_value(type, r.first, true) + "/" + std::to_string(len);
    return render_value(type, r.first, true) + "-" + render_value(type, r.last, true);
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
    if (const auto* ranges = std::get_if<FieldRanges>(&key)) {
        auto fields = key_fields(set);
        std::string out;
        for (size_t i = 0; i < ranges->size(); ++i)
            out += (i ? " . " : "") + render_range(i < fields.size() ? fields[i] : KeyType::Mark, (*ranges)[i]);
        return out;
    }
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
