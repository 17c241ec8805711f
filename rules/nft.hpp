// The nftables ruleset as data: the small vocabulary of statements wanbalance uses, and its text.
// render() prints exactly what `nft list table inet wanbalance` prints for the same kernel objects,
// so the text users read from `wanbalancectl ruleset` is the text they will see in the kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/ip.hpp"

namespace wb::nft {

inline constexpr const char* kTableName = "wanbalance";  // family inet

enum class ChainType { Filter, Route, Nat };
enum class Hook { Prerouting, Output, Postrouting };

// A base chain; the policy is always accept (wanbalance only marks and NATs, never drops).
struct BaseChain {
    ChainType type;
    Hook hook;
    int priority;  // -150 mangle, 100 srcnat
    bool operator==(const BaseChain&) const = default;
};

enum class MarkKind { Ct, Meta };  // conntrack mark / packet mark
enum class HashField { SrcAddr, DstAddr, SrcPort, DstPort };

// --- statements (each rule is a sequence of these, in order) ---

struct CtStateNew {  // ct state new
    bool operator==(const CtStateNew&) const = default;
};
struct NfprotoIpv4 {  // meta nfproto ipv4
    bool operator==(const NfprotoIpv4&) const = default;
};
struct NfprotoIpv6 {  // meta nfproto ipv6
    bool operator==(const NfprotoIpv6&) const = default;
};
struct IifnameInSet {  // iifname @SET
    std::string set;
    bool operator==(const IifnameInSet&) const = default;
};
struct OifnameIs {  // oifname "NAME"
    std::string name;
    bool operator==(const OifnameIs&) const = default;
};
struct FibDaddrNotLocal {  // fib daddr type != local
    bool operator==(const FibDaddrNotLocal&) const = default;
};
struct MarkVmap {  // ct mark & MASK vmap @MAP   /  meta mark & MASK vmap @MAP
    MarkKind kind;
    uint32_t mask;
    std::string map;
    bool operator==(const MarkVmap&) const = default;
};
struct IifnameVmap {  // iifname vmap @MAP
    std::string map;
    bool operator==(const IifnameVmap&) const = default;
};
struct HashVmap {  // jhash ip saddr . th sport mod N seed 0xS vmap @MAP  ("ip6 saddr" for V6)
    std::vector<HashField> fields;
    uint32_t modulus;
    uint32_t seed;
    std::string map;
    Family family = Family::V4;  // of the address fields
    bool operator==(const HashVmap&) const = default;
};
struct NumgenVmap {  // numgen inc mod N vmap @MAP
    uint32_t modulus;
    std::string map;
    bool operator==(const NumgenVmap&) const = default;
};
struct SetMarkBits {  // ct mark set ct mark & ~MASK | VALUE  (only the bits in MASK change)
    MarkKind kind;
    uint32_t mask;
    uint32_t value;  // inside mask
    bool operator==(const SetMarkBits&) const = default;
};
struct Masquerade {  // masquerade
    bool operator==(const Masquerade&) const = default;
};
struct Ip6InPrefix {  // ip6 saddr fe80::/10  /  ip6 daddr ff00::/8
    bool source;      // saddr, else daddr
    Ipv6 prefix;      // host bits zero
    uint8_t length;   // 1..128
    bool operator==(const Ip6InPrefix&) const = default;
};
struct Return {  // return
    bool operator==(const Return&) const = default;
};

using Statement = std::variant<CtStateNew, NfprotoIpv4, IifnameInSet, OifnameIs, FibDaddrNotLocal,
                               MarkVmap, IifnameVmap, HashVmap, NumgenVmap, SetMarkBits, Masquerade,
                               NfprotoIpv6, Ip6InPrefix, Return>;

struct Rule {
    std::vector<Statement> statements;
    std::string comment;  // empty: none
    bool operator==(const Rule&) const = default;
};

struct Chain {
    std::string name;
    std::optional<BaseChain> base;  // nullopt: a regular chain (jump/goto target)
    std::vector<Rule> rules;
    bool operator==(const Chain&) const = default;
};

// Key types of the sets and maps wanbalance uses.
//  Ifname:     type ifname             (16 bytes, NUL padded)
//  Mark:       type mark               (4 bytes, host order)
//  HashBucket: typeof numgen inc mod N (4 bytes, host order; N = Set::bucket_modulus)
enum class KeyType { Ifname, Mark, HashBucket };

using Key = std::variant<std::string, uint32_t>;

struct Element {
    Key key;
    std::string goto_chain;  // for verdict maps: "goto CHAIN"; empty for plain sets
    bool operator==(const Element&) const = default;
};

struct Set {
    std::string name;
    KeyType key_type;
    uint32_t bucket_modulus = 0;  // KeyType::HashBucket only
    bool verdict_map = false;     // map KEY : verdict (elements goto a chain) vs. a plain set
    std::vector<Element> elements;
    bool operator==(const Set&) const = default;
};

struct Table {
    std::string name = kTableName;
    std::string comment;
    std::vector<Set> sets;      // printed before chains, in this order
    std::vector<Chain> chains;  // in this order (regular chains first: verdict maps refer to them)
    bool operator==(const Table&) const = default;

    const Set* find_set(const std::string& name) const;
    const Chain* find_chain(const std::string& name) const;
};

// Text exactly as `nft list table inet NAME` prints it (tabs, blank line between objects,
// hex marks as 0x%08x, elements in the given order). Loadable with `nft -f`.
std::string render(const Table& table);
std::string render(const Rule& rule);           // one rule line, no indentation or newline
std::string render_key(const Set& set, const Key& key);
// "filter", "route" or "nat": the word in the text and on the wire (NFTA_CHAIN_TYPE).
const char* chain_type_name(ChainType type);

}  // namespace wb::nft
