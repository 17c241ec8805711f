#include "netlink/nft_encode.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <variant>

#include "netlink/handles.hpp"

namespace wb::nft {
namespace {

// Constants of nft 1.0.6 itself (not the kernel's) that end up in set user data, read back from
// `nft --debug=mnl`, grouped by the nft enum they come from.
enum : uint32_t { kNftTypeInteger = 4, kNftTypeMark = 19, kNftTypeIfname = 41 };  // datatypes (src/datatype.h)
enum : uint32_t { kNftByteorderInvalid = 0, kNftByteorderHost = 1 };              // byteorder
enum : uint32_t { kNftExprVerdict = 1, kNftExprNumgen = 0x17 };                   // expr_types
// Attributes of the numgen typeof nest (nft src/numgen.c).
enum : uint8_t { kNumgenUdataMode, kNumgenUdataModulus, kNumgenUdataOffset };

constexpr uint32_t kRtnLocal = 2;  // RTN_LOCAL, what "fib daddr type local" compares to
constexpr size_t kMarkSize = sizeof(uint32_t);

// Allocation failure is as fatal here as a failed `new`.
template <class T>
T* must(T* p) {
    if (!p) {
        std::fputs("wanbalance: out of memory building nftables objects\n", stderr);
        std::abort();
    }
    return p;
}

size_t align4(size_t n) { return (n + 3) & ~size_t(3); }

uint32_t key_datatype(KeyType t) {
    switch (t) {
        case KeyType::Ifname: return kNftTypeIfname;
        case KeyType::Mark: return kNftTypeMark;
        case KeyType::HashBucket: return kNftTypeInteger;
        default: return kNftTypeInteger;  // STUB (helper B implements)
    }
    return kNftTypeInteger;
}

uint32_t key_length(KeyType t) { return t == KeyType::Ifname ? IFNAMSIZ : kMarkSize; }

// The TLVs nft writes into NFTA_SET_USERDATA; without KEY_TYPEOF, `nft list` cannot print
// "typeof numgen inc mod N" and falls back to "type integer", which nft cannot load back.
UdataPtr set_userdata(const Set& set) {
    UdataPtr buf(must(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)));
    nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kNftByteorderHost);
    if (set.verdict_map) nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_DATABYTEORDER, kNftByteorderInvalid);
    if (set.key_type == KeyType::HashBucket) {
        nftnl_udata* key = nftnl_udata_nest_start(buf.get(), NFTNL_UDATA_SET_KEY_TYPEOF);
        nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_TYPEOF_EXPR, kNftExprNumgen);
        nftnl_udata* data = nftnl_udata_nest_start(buf.get(), NFTNL_UDATA_SET_TYPEOF_DATA);
        nftnl_udata_put_u32(buf.get(), kNumgenUdataMode, NFT_NG_INCREMENTAL);
        nftnl_udata_put_u32(buf.get(), kNumgenUdataModulus, set.bucket_modulus);
        nftnl_udata_put_u32(buf.get(), kNumgenUdataOffset, 0);
        nftnl_udata_nest_end(buf.get(), data);
        nftnl_udata_nest_end(buf.get(), key);
        if (set.verdict_map) {
            nftnl_udata* verdict = nftnl_udata_nest_start(buf.get(), NFTNL_UDATA_SET_DATA_TYPEOF);
            nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_TYPEOF_EXPR, kNftExprVerdict);
            nftnl_udata_nest_end(buf.get(), nftnl_udata_nest_start(buf.get(), NFTNL_UDATA_SET_TYPEOF_DATA));
            nftnl_udata_nest_end(buf.get(), verdict);
        }
    }
    if (set.verdict_map) nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 0);
    return buf;
}

UdataPtr comment_userdata(uint8_t type, const std::string& comment) {
    UdataPtr buf(must(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)));
    nftnl_udata_put_strz(buf.get(), type, comment.c_str());
    return buf;
}

// nft refuses longer comments, so it could not load render()'s text back.
Status comment_too_long(const std::string& comment) {
    return Status::fail(EINVAL, "comment \"" + comment + "\" is longer than " +
                                    std::to_string(NFTNL_UDATA_COMMENT_MAXLEN) + " characters");
}

struct KeyBytes {
    std::array<uint8_t, IFNAMSIZ> data{};
    uint32_t len = 0;
};

// Interface names travel as IFNAMSIZ bytes, NUL padded; marks and buckets as host-order u32.
Expected<KeyBytes> ifname_bytes(const std::string& name, const std::string& where) {
    if (name.empty() || name.size() >= IFNAMSIZ)
        return Status::fail(EINVAL, where + ": \"" + name + "\" is not a valid interface name");
    KeyBytes k;
    std::memcpy(k.data.data(), name.data(), name.size());
    k.len = IFNAMSIZ;
    return k;
}

Expected<KeyBytes> key_bytes(const Set& set, const Key& key) {
    std::string where = (set.verdict_map ? "map " : "set ") + set.name;
    if (set.key_type == KeyType::Ifname) {
        const auto* name = std::get_if<std::string>(&key);
        if (!name) return Status::fail(EINVAL, where + ": a number where an interface name belongs");
        return ifname_bytes(*name, where);
    }
    const auto* value = std::get_if<uint32_t>(&key);
    if (!value) return Status::fail(EINVAL, where + ": a string where a number belongs");
    KeyBytes k;
    std::memcpy(k.data.data(), value, kMarkSize);
    k.len = kMarkSize;
    return k;
}

// The kernel's hook numbers, in the enumerator order of Hook.
constexpr std::array<uint32_t, 3> kHookNumbers = {NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING};

bool is_address(HashField f) { return f == HashField::SrcAddr || f == HashField::DstAddr; }

uint32_t field_length(HashField f, Family family) {
    if (!is_address(f)) return 2;
    return family == Family::V4 ? 4 : 16;
}

// The register of the hash input that starts `word` 32-bit words after NFT_REG_2. Like nft
// (netlink_put_register()), the 128-bit number where a word starts one (reg 3 after an IPv6
// address), else the 32-bit one (NFT_REG32_05 = "reg 13" after an IPv4 address).
uint32_t register_at(uint32_t word) {
    if (word % 4 == 0) return NFT_REG_2 + word / 4;
    return NFT_REG32_04 + word;
}

// Emits each statement as the expressions nft 1.0.6 generates for its text (compare
// `nft --debug=netlink add rule ...`). Everything loads into reg 1 except hash inputs.
class RuleEncoder {
public:
    RuleEncoder(nftnl_rule* rule, const SetIds& ids) : rule_(rule), ids_(ids) {}

    // Most statements cannot fail; the few that can say why.
    Status encode(const Statement& statement) {
        return std::visit(
            [this](const auto& s) {
                if constexpr (std::is_void_v<decltype(emit(s))>) {
                    emit(s);
                    return Status::ok();
                } else {
                    return emit(s);
                }
            },
            statement);
    }

private:
    void emit(const CtStateNew&) {
        ct_load(NFT_CT_STATE);
        bitwise(NF_CT_STATE_BIT(IP_CT_NEW), 0, false);
        cmp_u32(NFT_CMP_NEQ, 0);
    }
    void emit(const NfprotoIpv4&) { nfproto(Family::V4); }
    void emit(const IifnameInSet& s) { iifname_lookup(s.set, false); }
    Status emit(const OifnameIs& s) {
        auto name = ifname_bytes(s.name, "oifname");
        if (!name) return name.error();
        meta_load(NFT_META_OIFNAME);
        cmp(NFT_CMP_EQ, name->data.data(), name->len);
        return Status::ok();
    }
    void emit(const FibDaddrNotLocal&) {
        ExprPtr e = expr("fib");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
        add(std::move(e));
        cmp_u32(NFT_CMP_NEQ, kRtnLocal);
    }
    void emit(const MarkVmap& s) {
        mark_load(s.kind);
        bitwise(s.mask, 0, true);
        lookup(s.map, true);
    }
    void emit(const IifnameVmap& s) { iifname_lookup(s.map, true); }
    Status emit(const HashVmap& s) {
        if (s.fields.empty() || s.fields.size() > 4)
            return Status::fail(EINVAL, "jhash over " + std::to_string(s.fields.size()) + " fields (1 to 4 allowed)");
        // An ip/ip6 header field needs "meta nfproto ipv4/ipv6" first in an inet table; nft
        // inserts it right before the loads unless the rule already checked it (then `nft list`
        // hides the earlier one, as render() does).
        bool needs_family = false;
        for (HashField f : s.fields) needs_family |= is_address(f);
        if (needs_family) check_family(s.family);
        // Concatenated hash inputs, one after another from NFT_REG_2 in 32-bit words, each field
        // rounded up to a word (2-byte ports take one, IPv6 addresses four).
        uint32_t word = 0;
        for (HashField f : s.fields) {
            payload(f, s.family, register_at(word));
            word += (field_length(f, s.family) + 3) / 4;
        }
        ExprPtr e = expr("hash");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_HASH_SREG, NFT_REG_2);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_HASH_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_HASH_LEN, 4 * word);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_HASH_MODULUS, s.modulus);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_HASH_SEED, s.seed);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_HASH_OFFSET, 0);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_HASH_TYPE, NFT_HASH_JENKINS);
        add(std::move(e));
        lookup(s.map, true);
        return Status::ok();
    }
    void emit(const NumgenVmap& s) {
        ExprPtr e = expr("numgen");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_MODULUS, s.modulus);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_TYPE, NFT_NG_INCREMENTAL);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_OFFSET, 0);
        add(std::move(e));
        lookup(s.map, true);
    }
    void emit(const SetMarkBits& s) {
        mark_load(s.kind);
        bitwise(~s.mask, s.value, true);
        if (s.kind == MarkKind::Ct) {
            ExprPtr e = expr("ct");
            nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
            nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_SREG, NFT_REG_1);
            add(std::move(e));
        } else {
            ExprPtr e = expr("meta");
            nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, NFT_META_MARK);
            nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_SREG, NFT_REG_1);
            add(std::move(e));
        }
    }
    void emit(const Masquerade&) { add(expr("masq")); }
    void emit(const NfprotoIpv6&) { nfproto(Family::V6); }
    Status emit(const Ip6InPrefix& s) {
        if (s.length < 1 || s.length > 128)
            return Status::fail(EINVAL, "ip6 prefix length " + std::to_string(s.length) + " (1 to 128 allowed)");
        check_family(Family::V6);
        // nft loads only the prefix's bytes when it ends on a byte; otherwise the whole
        // address, masked.
        const uint32_t offset = s.source ? 8 : 24;  // struct ipv6hdr saddr / daddr
        const bool whole_bytes = s.length % 8 == 0;
        const uint32_t len = whole_bytes ? s.length / 8u : 16u;
        load_network(offset, len, NFT_REG_1);
        if (!whole_bytes) {
            std::array<uint8_t, 16> mask{}, zero{};
            for (unsigned bit = 0; bit < s.length; ++bit) mask[bit / 8] |= uint8_t(0x80 >> (bit % 8));
            bitwise_bytes(mask.data(), zero.data(), len);
        }
        cmp(NFT_CMP_EQ, s.prefix.bytes.data(), len);
        return Status::ok();
    }
    // STUB (helper B implements): the statements of policy rules.
    Status emit(const ConcatVmap&) { return Status::fail(ENOTSUP, "not implemented"); }
    Status emit(const Goto&) { return Status::fail(ENOTSUP, "not implemented"); }
    Status emit(const AddrInSet&) { return Status::fail(ENOTSUP, "not implemented"); }
    Status emit(const UpdateSet&) { return Status::fail(ENOTSUP, "not implemented"); }
    Status emit(const MarkIs&) { return Status::fail(ENOTSUP, "not implemented"); }
    void emit(const Return&) {
        ExprPtr e = expr("immediate");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, uint32_t(NFT_RETURN));
        add(std::move(e));
    }

    static ExprPtr expr(const char* name) { return ExprPtr(must(nftnl_expr_alloc(name))); }
    void add(ExprPtr e) { nftnl_rule_add_expr(rule_, e.release()); }

    void nfproto(Family family) {
        meta_load(NFT_META_NFPROTO);
        uint8_t proto = family == Family::V4 ? NFPROTO_IPV4 : NFPROTO_IPV6;  // nfproto is one byte wide
        cmp(NFT_CMP_EQ, &proto, sizeof proto);
        checked_[size_t(family)] = true;
    }
    // The implied "meta nfproto" of an ip/ip6 header match, unless the rule checked it already.
    void check_family(Family family) {
        if (!checked_[size_t(family)]) nfproto(family);
    }
    void meta_load(uint32_t key) {
        ExprPtr e = expr("meta");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
        add(std::move(e));
    }
    void ct_load(uint32_t key) {
        ExprPtr e = expr("ct");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, key);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
        add(std::move(e));
    }
    void mark_load(MarkKind kind) { kind == MarkKind::Ct ? ct_load(NFT_CT_MARK) : meta_load(NFT_META_MARK); }
    void cmp(uint32_t op, const void* data, uint32_t len) {
        ExprPtr e = expr("cmp");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, len);
        add(std::move(e));
    }
    void cmp_u32(uint32_t op, uint32_t value) { cmp(op, &value, sizeof value); }
    // nft sends NFTA_BITWISE_OP for "x & m" and "x & m | v" but not for a flag test like
    // "ct state new"; the kernel defaults to the same boolean op either way.
    void bitwise(uint32_t mask, uint32_t xor_value, bool with_op) {
        ExprPtr e = expr("bitwise");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        if (with_op) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_OP, NFT_BITWISE_BOOL);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, &mask, sizeof mask);
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, &xor_value, sizeof xor_value);
        add(std::move(e));
    }
    // "x & mask" over `len` bytes, as nft sends a prefix match (with the op).
    void bitwise_bytes(const uint8_t* mask, const uint8_t* xor_value, uint32_t len) {
        ExprPtr e = expr("bitwise");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_OP, NFT_BITWISE_BOOL);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, len);
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, mask, len);
        nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, xor_value, len);
        add(std::move(e));
    }
    void lookup(const std::string& set, bool verdict) {
        ExprPtr e = expr("lookup");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        if (verdict) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
        if (auto it = ids_.find(set); it != ids_.end())
            nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, it->second);
        add(std::move(e));
    }
    // "iifname @SET" and "iifname vmap @MAP".
    void iifname_lookup(const std::string& set, bool verdict) {
        meta_load(NFT_META_IIFNAME);
        lookup(set, verdict);
    }
    void payload(HashField field, Family family, uint32_t reg) {
        if (!is_address(field)) {
            load(NFT_PAYLOAD_TRANSPORT_HEADER, field == HashField::SrcPort ? 0 : 2, 2, reg);  // th: first two u16
            return;
        }
        bool src = field == HashField::SrcAddr;
        if (family == Family::V4) load_network(src ? 12 : 16, 4, reg);  // struct iphdr saddr / daddr
        else load_network(src ? 8 : 24, 16, reg);                        // struct ipv6hdr
    }
    void load_network(uint32_t offset, uint32_t len, uint32_t reg) { load(NFT_PAYLOAD_NETWORK_HEADER, offset, len, reg); }
    void load(uint32_t base, uint32_t offset, uint32_t len, uint32_t reg) {
        ExprPtr e = expr("payload");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, reg);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
        add(std::move(e));
    }

    nftnl_rule* rule_;
    const SetIds& ids_;
    std::array<bool, 2> checked_{};  // "meta nfproto" of each family checked already
};

size_t names_size(const Statement& st) {
    return std::visit(
        [](const auto& s) -> size_t {
            using T = std::decay_t<decltype(s)>;
            if constexpr (requires { s.map; }) return s.map.size();
            else if constexpr (requires { s.set; }) return s.set.size();
            else if constexpr (std::is_same_v<T, OifnameIs>) return s.name.size();
            else return 0;
        },
        st);
}

}  // namespace

Status put_table(nlmsghdr* nlh, const std::string& name, const std::string* comment) {
    if (comment && comment->size() > NFTNL_UDATA_COMMENT_MAXLEN) return comment_too_long(*comment);
    TablePtr t(must(nftnl_table_alloc()));
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
    if (comment) {
        nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, 0);
        if (!comment->empty()) {
            UdataPtr ud = comment_userdata(NFTNL_UDATA_TABLE_COMMENT, *comment);
            nftnl_table_set_data(t.get(), NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(ud.get()),
                                 nftnl_udata_buf_len(ud.get()));
        }
    }
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    return Status::ok();
}

void put_chain(nlmsghdr* nlh, const std::string& table, const Chain& chain, bool with_hook) {
    ChainPtr c(must(nftnl_chain_alloc()));
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.name.c_str());
    nftnl_chain_nlmsg_build_payload(nlh, c.get());
    if (!with_hook || !chain.base) return;
    // nft writes type, policy, hook (libnftnl would write hook, policy, type).
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, chain_type_name(chain.base->type));
    mnl_attr_put_u32(nlh, NFTA_CHAIN_POLICY, htonl(NF_ACCEPT));
    nlattr* hook = mnl_attr_nest_start(nlh, NFTA_CHAIN_HOOK);
    mnl_attr_put_u32(nlh, NFTA_HOOK_HOOKNUM, htonl(kHookNumbers[size_t(chain.base->hook)]));
    mnl_attr_put_u32(nlh, NFTA_HOOK_PRIORITY, htonl(uint32_t(chain.base->priority)));
    mnl_attr_nest_end(nlh, hook);
}

void put_set(nlmsghdr* nlh, const std::string& table, const Set& set, uint32_t id) {
    SetPtr s(must(nftnl_set_alloc()));
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.name.c_str());
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, set.verdict_map ? NFT_SET_MAP : 0);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, key_datatype(set.key_type));
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, key_length(set.key_type));
    if (set.verdict_map) {
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, 0);
    }
    if (id) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
    UdataPtr ud = set_userdata(set);
    nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()), nftnl_udata_buf_len(ud.get()));
    nftnl_set_nlmsg_build_payload(nlh, s.get());
}

void put_set_name(nlmsghdr* nlh, const std::string& table, const std::string& name) {
    SetPtr s(must(nftnl_set_alloc()));
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name.c_str());
    nftnl_set_nlmsg_build_payload(nlh, s.get());
}

Status put_elements(nlmsghdr* nlh, const std::string& table, const Set& set, std::span<const Element> elements,
                    bool with_data, uint32_t id) {
    // The header attributes in nft's order (libnftnl's set-based builder puts the table last).
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set.name.c_str());
    if (id) mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(id));
    nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    uint16_t index = 0;
    for (const Element& element : elements) {
        auto key = key_bytes(set, element.key);
        if (!key) return key.error();
        ElemPtr e(must(nftnl_set_elem_alloc()));
        nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, key->data.data(), key->len);
        if (with_data && set.verdict_map) {
            if (element.goto_chain.empty())
                return Status::fail(EINVAL, "map " + set.name + ": an element without a chain to go to");
            nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_VERDICT, uint32_t(NFT_GOTO));
            nftnl_set_elem_set_str(e.get(), NFTNL_SET_ELEM_CHAIN, element.goto_chain.c_str());
        }
        // Like libnftnl, each element's nest is numbered; the kernel ignores the number.
        nlattr* nest = mnl_attr_nest_start(nlh, ++index);
        nftnl_set_elem_nlmsg_build_payload(nlh, e.get());
        mnl_attr_nest_end(nlh, nest);
    }
    mnl_attr_nest_end(nlh, list);
    return Status::ok();
}

Status put_rule(nlmsghdr* nlh, const std::string& table, const std::string& chain, const Rule& rule,
                const SetIds& ids) {
    RulePtr r(must(nftnl_rule_alloc()));
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
    RuleEncoder encoder(r.get(), ids);
    for (const Statement& st : rule.statements)
        if (Status status = encoder.encode(st); !status) return status;
    if (rule.comment.size() > NFTNL_UDATA_COMMENT_MAXLEN) return comment_too_long(rule.comment);
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
    // nft writes the user data after the expressions (libnftnl would put it before).
    if (!rule.comment.empty()) {
        UdataPtr ud = comment_userdata(NFTNL_UDATA_RULE_COMMENT, rule.comment);
        mnl_attr_put(nlh, NFTA_RULE_USERDATA, nftnl_udata_buf_len(ud.get()), nftnl_udata_buf_data(ud.get()));
    }
    return Status::ok();
}

size_t element_wire_size(const Set& set, const Element& element, bool with_data) {
    size_t size = 4 + 4 + 4 + align4(key_length(set.key_type));  // element nest, key nest, value
    if (with_data && set.verdict_map) size += 4 + 4 + 8 + 4 + align4(element.goto_chain.size() + 1);
    return size;
}

size_t rule_wire_size(const Rule& rule) {
    // Generous per statement: the largest (a 4-field jhash vmap) encodes to about 560 bytes.
    size_t size = 1024 + align4(rule.comment.size() + 1) + 8;
    for (const Statement& st : rule.statements) size += 1024 + align4(names_size(st) + 1);
    return size;
}

}  // namespace wb::nft
