// Sets, maps and their elements as nft 1.0.6 sends them: key types (concatenations too), flags,
// descriptions, user data and element keys, attribute for attribute (see nft_encode.hpp).
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>

#include <functional>
#include <vector>

#include "netlink/handles.hpp"
#include "netlink/nft_encode.hpp"
#include "netlink/nft_encode_detail.hpp"

namespace wb::nft {
namespace {

using namespace detail;

// Constants of nft 1.0.6 itself (not the kernel's) that end up in set user data, read back from
// `nft --debug=mnl`, grouped by the nft enum they come from.
enum : uint32_t {  // datatypes (src/datatype.h)
    kNftTypeInteger = 4,
    kNftTypeIpv4Addr = 7,
    kNftTypeIpv6Addr = 8,
    kNftTypeInetProto = 12,
    kNftTypeInetService = 13,
    kNftTypeMark = 19,
    kNftTypeIfname = 41,
};
constexpr uint32_t kNftTypeBits = 6;  // a concatenation's type: each field's shifted in (concat_type_alloc())
enum : uint32_t { kNftByteorderInvalid = 0, kNftByteorderHost = 1, kNftByteorderBig = 2 };  // byteorder
enum : uint32_t { kNftExprVerdict = 1, kNftExprConcat = 13, kNftExprNumgen = 0x17 };      // expr_types
// Attributes of the numgen typeof nest (nft src/numgen.c).
enum : uint8_t { kNumgenUdataMode, kNumgenUdataModulus, kNumgenUdataOffset };

// The fields of a set's key: its concatenation, else the one key type.
std::vector<KeyType> key_fields(const Set& set) {
    return set.concat.empty() ? std::vector<KeyType>{set.key_type} : set.concat;
}
bool is_concat(const Set& set) { return set.concat.size() > 1; }

uint32_t datatype(KeyType t) {
    switch (t) {
        case KeyType::Ifname: return kNftTypeIfname;
        case KeyType::Mark: return kNftTypeMark;
        case KeyType::HashBucket: return kNftTypeInteger;
        case KeyType::Ipv4Addr: return kNftTypeIpv4Addr;
        case KeyType::Ipv6Addr: return kNftTypeIpv6Addr;
        case KeyType::InetProto: return kNftTypeInetProto;
        case KeyType::InetService: return kNftTypeInetService;
    }
    return kNftTypeInteger;
}

// A concatenation's datatype holds its fields' 6 bits each, the first field highest: nft
// lists a key of more than 5 fields wrongly (the first one's bits fall off the u32).
uint32_t key_datatype(const Set& set) {
    uint32_t type = 0;
    for (KeyType t : key_fields(set)) type = type << kNftTypeBits | datatype(t);
    return type;
}

// A field's bytes: in a concatenation each takes whole 32-bit words on the wire.
uint32_t field_size(KeyType t) {
    switch (t) {
        case KeyType::Ifname: return IFNAMSIZ;
        case KeyType::Ipv6Addr: return 16;
        case KeyType::InetProto: return 1;
        case KeyType::InetService: return 2;
        default: return 4;
    }
}

uint32_t key_length(const Set& set) {
    if (!is_concat(set)) return field_size(key_fields(set)[0]);
    uint32_t len = 0;
    for (KeyType t : set.concat) len += uint32_t(align4(field_size(t)));
    return len;
}

// nft's byte order of the key as a whole: none for a concatenation.
uint32_t key_byteorder(const Set& set) {
    if (is_concat(set)) return kNftByteorderInvalid;
    switch (key_fields(set)[0]) {
        case KeyType::Ipv4Addr:
        case KeyType::Ipv6Addr:
        case KeyType::InetService: return kNftByteorderBig;
        case KeyType::InetProto: return kNftByteorderInvalid;
        default: return kNftByteorderHost;
    }
}

uint32_t set_flags(const Set& set) {
    uint32_t flags = set.verdict_map ? NFT_SET_MAP : 0;
    if (set.interval) flags |= NFT_SET_INTERVAL;
    if (set.interval && is_concat(set)) flags |= NFT_SET_CONCAT;
    if (set.dynamic()) flags |= NFT_SET_TIMEOUT | NFT_SET_EVAL;
    return flags;
}

// Opens nft's "typeof" nest (set_key_expression()): the expression type, then its data.
void typeof_nest(nftnl_udata_buf* buf, uint8_t type, uint32_t expr, const std::function<void()>& data) {
    nftnl_udata* nest = nftnl_udata_nest_start(buf, type);
    nftnl_udata_put_u32(buf, NFTNL_UDATA_SET_TYPEOF_EXPR, expr);
    nftnl_udata* inner = nftnl_udata_nest_start(buf, NFTNL_UDATA_SET_TYPEOF_DATA);
    data();
    nftnl_udata_nest_end(buf, inner);
    nftnl_udata_nest_end(buf, nest);
}

// The TLVs nft writes into NFTA_SET_USERDATA; without KEY_TYPEOF, `nft list` cannot print
// "typeof numgen inc mod N" and falls back to "type integer", which nft cannot load back. A
// "type a . b" key is a concatenation expression to nft, with no data of its own.
UdataPtr set_userdata(const Set& set) {
    UdataPtr buf(must(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)));
    nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_KEYBYTEORDER, key_byteorder(set));
    if (set.verdict_map) nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_DATABYTEORDER, kNftByteorderInvalid);
    if (is_concat(set)) typeof_nest(buf.get(), NFTNL_UDATA_SET_KEY_TYPEOF, kNftExprConcat, [] {});
    if (key_fields(set) == std::vector<KeyType>{KeyType::HashBucket}) {
        typeof_nest(buf.get(), NFTNL_UDATA_SET_KEY_TYPEOF, kNftExprNumgen, [&] {
            nftnl_udata_put_u32(buf.get(), kNumgenUdataMode, NFT_NG_INCREMENTAL);
            nftnl_udata_put_u32(buf.get(), kNumgenUdataModulus, set.bucket_modulus);
            nftnl_udata_put_u32(buf.get(), kNumgenUdataOffset, 0);
        });
        if (set.verdict_map) typeof_nest(buf.get(), NFTNL_UDATA_SET_DATA_TYPEOF, kNftExprVerdict, [] {});
    }
    if (set.verdict_map) nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 0);
    return buf;
}

// The first (`last` false) or last values of each field, each padded to a word in a
// concatenation; a single field as it is.
Expected<KeyBytes> range_bytes(const Set& set, const FieldRanges& ranges, bool last, const std::string& where) {
    auto fields = key_fields(set);
    if (ranges.size() != fields.size())
        return Status::fail(EINVAL, where + ": a key of " + std::to_string(ranges.size()) + " fields where " +
                                        std::to_string(fields.size()) + " belong");
    KeyBytes k;
    for (size_t i = 0; i < fields.size(); ++i) {
        const FieldRange& r = ranges[i];
        if (r.first.size() != field_size(fields[i]) || r.last.size() != field_size(fields[i]))
            return Status::fail(EINVAL, where + ": field " + std::to_string(i + 1) + " is not " +
                                            std::to_string(field_size(fields[i])) + " bytes long");
        if (!set.interval && r.first != r.last)
            return Status::fail(EINVAL, where + ": a range in a set without \"flags interval\"");
        const auto& bytes = last ? r.last : r.first;
        std::memcpy(k.data.data() + k.len, bytes.data(), bytes.size());
        k.len += uint32_t(is_concat(set) ? align4(bytes.size()) : bytes.size());
    }
    return k;
}

Expected<KeyBytes> key_bytes(const Set& set, const Key& key, bool last = false) {
    std::string where = (set.verdict_map ? "map " : "set ") + set.name;
    if (const auto* ranges = std::get_if<FieldRanges>(&key)) return range_bytes(set, *ranges, last, where);
    const KeyType type = key_fields(set)[0];
    if (is_concat(set) || (type != KeyType::Ifname && type != KeyType::Mark && type != KeyType::HashBucket))
        return Status::fail(EINVAL, where + ": a key without its fields' values");
    if (type == KeyType::Ifname) {
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

// An element's key (an interval's first values), its last values (KEY_END: a pipapo set's
// every element is a range), and its verdict.
Status element_payload(nftnl_set_elem* e, const Set& set, const Element& element, bool with_data) {
    auto key = key_bytes(set, element.key);
    if (!key) return key.error();
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key->data.data(), key->len);
    if (set.interval) {
        if (!is_concat(set))
            return Status::fail(EINVAL, "set " + set.name + ": intervals of a single field are not supported");
        auto end = key_bytes(set, element.key, true);
        if (!end) return end.error();
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY_END, end->data.data(), end->len);
    }
    if (with_data && set.verdict_map) {
        if (element.goto_chain.empty())
            return Status::fail(EINVAL, "map " + set.name + ": an element without a chain to go to");
        nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, uint32_t(element.jump ? NFT_JUMP : NFT_GOTO));
        nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, element.goto_chain.c_str());
    }
    return Status::ok();
}

}  // namespace

void put_set(nlmsghdr* nlh, const std::string& table, const Set& set, uint32_t id) {
    SetPtr s(must(nftnl_set_alloc()));
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.name.c_str());
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, set_flags(set));
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, key_datatype(set));
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, key_length(set));
    if (set.verdict_map) {
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, 0);
    }
    if (id) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
    if (set.dynamic()) {
        nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, kDynamicSetSize);
        nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT, uint64_t(set.timeout_s) * 1000);
    }
    // pipapo needs each field's length; nft sends them for interval concatenations only.
    if (set.interval && is_concat(set)) {
        std::vector<uint8_t> lengths;
        for (KeyType t : set.concat) lengths.push_back(uint8_t(field_size(t)));
        nftnl_set_set_data(s.get(), NFTNL_SET_DESC_CONCAT, lengths.data(), uint32_t(lengths.size()));
    }
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

void put_set_flush(nlmsghdr* nlh, const std::string& table, const std::string& name) {
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, name.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table.c_str());
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
        ElemPtr e(must(nftnl_set_elem_alloc()));
        if (Status st = element_payload(e.get(), set, element, with_data); !st) return st;
        // Like libnftnl, each element's nest is numbered; the kernel ignores the number.
        nlattr* nest = mnl_attr_nest_start(nlh, ++index);
        nftnl_set_elem_nlmsg_build_payload(nlh, e.get());
        mnl_attr_nest_end(nlh, nest);
    }
    mnl_attr_nest_end(nlh, list);
    return Status::ok();
}

size_t element_wire_size(const Set& set, const Element& element, bool with_data) {
    size_t key = 4 + 4 + align4(key_length(set));  // key nest, value
    size_t size = 4 + key * (set.interval ? 2 : 1);   // element nest, key (and key end)
    if (with_data && set.verdict_map) size += 4 + 4 + 8 + 4 + align4(element.goto_chain.size() + 1);
    return size;
}

}  // namespace wb::nft
