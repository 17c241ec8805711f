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
// The size nft gives a dynamic set ("size 65535"), sent as NFTA_SET_DESC_SIZE.
inline constexpr uint32_t kDynamicSetSize = 65535;

enum class ChainType { Filter, Route, Nat };
enum class Hook { Prerouting, Output, Postrouting, Forward };

// A base chain; the policy is always accept (wanbalance marks, NATs and counts; the one rule that
// drops is an HA pair's guard against mid-stream TCP, see TcpNotSyn).
struct BaseChain {
    ChainType type;
    Hook hook;
    int priority;  // -160 the HA guard, -150 mangle, 100 srcnat
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
// snat ip to 192.0.2.1   /   snat ip6 to 2001:db8::1   (the family is the address's)
struct Snat {
    IpAddr address;
    bool operator==(const Snat&) const = default;
};
// tcp flags != syn / fin,syn,rst,ack   (nft's listing of "tcp flags & (fin | syn | rst | ack) != syn")
struct TcpNotSyn {
    bool operator==(const TcpNotSyn&) const = default;
};
struct Drop {  // drop
    bool operator==(const Drop&) const = default;
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

// The fields of a rule map's key. A key holds a subset, always in this order:
//   iifname . ip saddr . ip daddr . meta l4proto . th sport . th dport   ("ip6" for IPv6)
// (the policy compiler never keys by iifname: nft 1.0.6 cannot print a six-field key, so
// rules with `iif` get chains and maps per LAN instead).
enum class MatchField { Iifname, SrcAddr, DstAddr, L4proto, SrcPort, DstPort };

struct ConcatVmap {  // ip saddr . ip daddr . meta l4proto . th dport vmap @MAP
    Family family = Family::V4;
    std::vector<MatchField> fields;  // ascending, at least two (so the kernel uses pipapo)
    std::string map;
    bool operator==(const ConcatVmap&) const = default;
};
struct Goto {  // goto CHAIN
    std::string chain;
    bool operator==(const Goto&) const = default;
};
// Sticky sets: keyed by the source address, or source . destination.
struct AddrInSet {  // ip saddr @SET   /   ip saddr . ip daddr @SET   ("ip6" for IPv6)
    Family family = Family::V4;
    bool with_dst = false;
    std::string set;
    bool operator==(const AddrInSet&) const = default;
};
struct UpdateSet {  // update @SET { ip saddr }   /   update @SET { ip saddr . ip daddr }
    Family family = Family::V4;
    bool with_dst = false;
    std::string set;
    bool operator==(const UpdateSet&) const = default;
};
struct MarkIs {  // ct mark & MASK == VALUE   /   meta mark & MASK == VALUE
    MarkKind kind;
    uint32_t mask;
    uint32_t value;
    bool operator==(const MarkIs&) const = default;
};
struct CtDirectionReply {  // ct direction reply
    bool operator==(const CtDirectionReply&) const = default;
};
// counter: an anonymous counter, created at 0. Its values are the kernel's and grow until the
// rule is replaced; they are not part of the IR, so two rules with counters compare equal and
// the diff leaves them (and what they counted) alone. render() prints "packets 0 bytes 0".
struct Counter {
    bool operator==(const Counter&) const = default;
};

using Statement = std::variant<CtStateNew, NfprotoIpv4, IifnameInSet, OifnameIs, FibDaddrNotLocal,
                               MarkVmap, IifnameVmap, HashVmap, NumgenVmap, SetMarkBits, Masquerade,
                               NfprotoIpv6, Ip6InPrefix, Return, ConcatVmap, Goto, AddrInSet, UpdateSet,
                               MarkIs, CtDirectionReply, Counter, Snat, TcpNotSyn, Drop>;

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
//  Ifname:      type ifname             (16 bytes, NUL padded)
//  Mark:        type mark               (4 bytes, host order)
//  HashBucket:  typeof numgen inc mod N (4 bytes, host order; N = Set::bucket_modulus)
// and the fields of concatenated keys (Set::concat), each in network order, padded to 4 bytes
// on the wire:
//  Ipv4Addr:    type ipv4_addr          (4 bytes)
//  Ipv6Addr:    type ipv6_addr          (16 bytes)
//  InetProto:   type inet_proto         (1 byte)
//  InetService: type inet_service       (2 bytes)
//  (Ifname may be a concatenated field too.)
enum class KeyType { Ifname, Mark, HashBucket, Ipv4Addr, Ipv6Addr, InetProto, InetService };

// One field of an interval element of a concatenated key: the first and last value, inclusive,
// in the field's bytes (network order; an ifname NUL padded to 16, first == last).
struct FieldRange {
    std::vector<uint8_t> first, last;
    auto operator<=>(const FieldRange&) const = default;
};
using FieldRanges = std::vector<FieldRange>;  // one per field of Set::concat

// A string (Ifname), a number (Mark, HashBucket), or the ranges of a concatenated key.
using Key = std::variant<std::string, uint32_t, FieldRanges>;

struct Element {
    Key key;
    std::string goto_chain;  // for verdict maps: "goto CHAIN" (or "jump CHAIN"); empty for plain sets
    bool jump = false;       // "jump CHAIN": come back after it (the chain that looked up goes on)
    bool operator==(const Element&) const = default;
};

struct Set {
    std::string name;
    KeyType key_type;              // the key, unless `concat` is set
    uint32_t bucket_modulus = 0;   // KeyType::HashBucket only
    bool verdict_map = false;      // map KEY : verdict (elements goto a chain) vs. a plain set
    std::vector<Element> elements;
    // A concatenated key ("type ipv4_addr . inet_service"): its fields in order; key_type is
    // then unused. With `interval` ("flags interval") every element is a FieldRanges.
    std::vector<KeyType> concat;
    bool interval = false;
    // > 0: "flags dynamic,timeout; timeout T" and "size 65535", as nft gives a dynamic set: the
    // packet path adds and refreshes the elements, so `elements` stays empty here and the diff
    // never compares them.
    uint32_t timeout_s = 0;
    // For a dynamic set: whether what the kernel holds may stay. When a set goes from true to
    // false, the diff empties it ("flush set"), in the same transaction as the rest.
    bool keep_entries = true;
    bool operator==(const Set&) const = default;
    bool dynamic() const { return timeout_s > 0; }
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
// hex marks as 0x%08x, elements sorted as nft sorts them; an interval map's in the given order,
// which is the kernel's: the order they were added in). Loadable with `nft -f`.
std::string render(const Table& table);
std::string render(const Rule& rule);           // one rule line, no indentation or newline
std::string render_key(const Set& set, const Key& key);
// "filter", "route" or "nat": the word in the text and on the wire (NFTA_CHAIN_TYPE).
const char* chain_type_name(ChainType type);

}  // namespace wb::nft
