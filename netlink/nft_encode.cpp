// Tables, chains and rules as nft 1.0.6 sends them (sets and elements: nft_encode_set.cpp).
#include "netlink/nft_encode.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <type_traits>
#include <variant>

#include "netlink/handles.hpp"
#include "netlink/nft_encode_detail.hpp"

namespace wb::nft {
namespace {

using namespace detail;

constexpr uint32_t kRtnLocal = 2;  // RTN_LOCAL, what "fib daddr type local" compares to

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

// The kernel's hook numbers, in the enumerator order of Hook.
constexpr std::array<uint32_t, 4> kHookNumbers = {NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING,
                                                  NF_INET_FORWARD};

bool is_address(HashField f) { return f == HashField::SrcAddr || f == HashField::DstAddr; }
bool is_address(MatchField f) { return f == MatchField::SrcAddr || f == MatchField::DstAddr; }

uint32_t field_length(HashField f, Family family) {
    if (!is_address(f)) return 2;
    return family == Family::V4 ? 4 : 16;
}

uint32_t field_length(MatchField f, Family family) {
    switch (f) {
        case MatchField::Iifname: return IFNAMSIZ;
        case MatchField::SrcAddr:
        case MatchField::DstAddr: return family == Family::V4 ? 4 : 16;
        case MatchField::L4proto: return 1;
        default: return 2;
    }
}

uint32_t words(uint32_t bytes) { return (bytes + 3) / 4; }

// The register where the data that starts `word` 32-bit words after NFT_REG_1 goes. Like nft
// (netlink_put_register()), the 128-bit number where a word starts one (reg 2 after an
// iifname), else the 32-bit one (NFT_REG32_01 = "reg 9" after an IPv4 address).
uint32_t register_at(uint32_t word) {
    if (word % 4 == 0) return NFT_REG_1 + word / 4;
    return NFT_REG32_00 + word;
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
        constexpr uint32_t kReg2Word = 4;
        uint32_t word = 0;
        for (HashField f : s.fields) {
            payload(f, s.family, register_at(kReg2Word + word));
            word += words(field_length(f, s.family));
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
    // The address as an immediate, then a nat expression that reads it (no flags: nft sends
    // none for "snat ip to ADDR"; the kernel maps the address all the same).
    void emit(const Snat& s) {
        const bool v4 = family_of(s.address) == Family::V4;
        ExprPtr imm = expr("immediate");
        nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_1);
        if (v4) {
            uint32_t be = std::get<Ipv4>(s.address).network();
            nftnl_expr_set(imm.get(), NFTNL_EXPR_IMM_DATA, &be, sizeof be);
        } else {
            const auto& bytes = std::get<Ipv6>(s.address).bytes;
            nftnl_expr_set(imm.get(), NFTNL_EXPR_IMM_DATA, bytes.data(), bytes.size());
        }
        add(std::move(imm));
        ExprPtr e = expr("nat");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_TYPE, NFT_NAT_SNAT);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_FAMILY, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
        add(std::move(e));
    }
    // "tcp flags & (fin | syn | rst | ack) != syn": nft's implied "meta l4proto tcp", then the
    // flags byte (offset 13 of struct tcphdr) masked and compared, one byte wide.
    void emit(const TcpNotSyn&) {
        meta_load(NFT_META_L4PROTO);
        uint8_t tcp = IPPROTO_TCP;
        cmp(NFT_CMP_EQ, &tcp, sizeof tcp);
        load(NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1, NFT_REG_1);
        const uint8_t mask = 0x17, zero = 0, syn = 0x02;  // fin | syn | rst | ack; syn
        bitwise_bytes(&mask, &zero, 1);
        cmp(NFT_CMP_NEQ, &syn, sizeof syn);
    }
    void emit(const Drop&) {
        ExprPtr e = expr("immediate");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, uint32_t(NF_DROP));
        add(std::move(e));
    }
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
    // Each field into the registers from NFT_REG_1 on, a word or more each, as nft loads a
    // concatenation; "meta l4proto" gets the byteorder nft 1.0.6 puts after it (a no-op on
    // one byte: len 1, size 2).
    Status emit(const ConcatVmap& s) {
        uint32_t total = 0;
        for (MatchField f : s.fields) total += words(field_length(f, s.family));
        if (s.fields.empty() || total * 4 > kMaxKeySize)
            return Status::fail(EINVAL, "a key of " + std::to_string(total * 4) + " bytes (1 to 64 allowed)");
        if (std::any_of(s.fields.begin(), s.fields.end(), [](MatchField f) { return is_address(f); }))
            check_family(s.family);
        uint32_t word = 0;
        for (MatchField f : s.fields) {
            const uint32_t reg = register_at(word);
            if (f == MatchField::Iifname) {
                meta_load(NFT_META_IIFNAME, reg);
            } else if (f == MatchField::L4proto) {
                meta_load(NFT_META_L4PROTO, reg);
                ExprPtr e = expr("byteorder");
                nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_SREG, reg);
                nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_DREG, reg);
                nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
                nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_LEN, 1);
                nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BYTEORDER_SIZE, 2);
                add(std::move(e));
            } else {
                payload(f, s.family, reg);
            }
            word += words(field_length(f, s.family));
        }
        lookup(s.map, true);
        return Status::ok();
    }
    Status emit(const Goto& s) {
        if (s.chain.empty()) return Status::fail(EINVAL, "goto without a chain");
        ExprPtr e = expr("immediate");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, uint32_t(NFT_GOTO));
        nftnl_expr_set_str(e.get(), NFTNL_EXPR_IMM_CHAIN, s.chain.c_str());
        add(std::move(e));
        return Status::ok();
    }
    void emit(const AddrInSet& s) {
        sticky_key(s.family, s.with_dst);
        lookup(s.set, false);
    }
    // "update @SET { KEY }": the key reloaded (nft does, even right after a lookup of it), then
    // a dynset that adds it or refreshes its timeout (the set's own: no NFTA_DYNSET_TIMEOUT).
    void emit(const UpdateSet& s) {
        sticky_key(s.family, s.with_dst);
        ExprPtr e = expr("dynset");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
        nftnl_expr_set_str(e.get(), NFTNL_EXPR_DYNSET_SET_NAME, s.set.c_str());
        if (auto it = ids_.find(s.set); it != ids_.end()) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_SET_ID, it->second);
        add(std::move(e));
    }
    // nft leaves out a mask of all ones ("ct mark 0x100").
    void emit(const MarkIs& s) {
        mark_load(s.kind);
        if (s.mask != 0xffffffffu) bitwise(s.mask, 0, true);
        cmp_u32(NFT_CMP_EQ, s.value);
    }
    void emit(const CtDirectionReply&) {
        ct_load(NFT_CT_DIRECTION);
        uint8_t direction = IP_CT_DIR_REPLY;  // one byte wide
        cmp(NFT_CMP_EQ, &direction, sizeof direction);
    }
    // No NFTA_COUNTER_* values: the kernel starts it at 0 (nft sends the same for
    // "counter packets 0 bytes 0": an empty NFTA_EXPR_DATA).
    void emit(const Counter&) { add(expr("counter")); }
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
    void meta_load(uint32_t key, uint32_t reg = NFT_REG_1) {
        ExprPtr e = expr("meta");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, reg);
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
    void payload(MatchField field, Family family, uint32_t reg) {
        switch (field) {
            case MatchField::SrcAddr: return payload(HashField::SrcAddr, family, reg);
            case MatchField::DstAddr: return payload(HashField::DstAddr, family, reg);
            case MatchField::SrcPort: return payload(HashField::SrcPort, family, reg);
            default: return payload(HashField::DstPort, family, reg);
        }
    }
    // The key of a sticky set into NFT_REG_1 on: "ip saddr" or "ip saddr . ip daddr".
    void sticky_key(Family family, bool with_dst) {
        check_family(family);
        payload(HashField::SrcAddr, family, NFT_REG_1);
        if (with_dst) payload(HashField::DstAddr, family, register_at(words(field_length(HashField::SrcAddr, family))));
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
            else if constexpr (std::is_same_v<T, Goto>) return s.chain.size();
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

size_t rule_wire_size(const Rule& rule) {
    // Generous per statement: the largest (a 4-field jhash vmap) encodes to about 560 bytes.
    size_t size = 1024 + align4(rule.comment.size() + 1) + 8;
    for (const Statement& st : rule.statements) size += 1024 + align4(names_size(st) + 1);
    return size;
}

}  // namespace wb::nft
