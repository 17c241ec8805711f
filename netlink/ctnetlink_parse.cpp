#include "netlink/ctnetlink_parse.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <endian.h>

#include <cstring>
#include <iterator>

#include "base/ipv4.hpp"

namespace wb {
namespace {

// mnl_attr_for_each() and mnl_attr_for_each_nested() assign from void*, which C++ refuses;
// the same walk by hand over [first, tail).
template <typename Visit>
void each_attr(const void* first, const void* tail, Visit visit) {
    for (auto* attr = static_cast<const nlattr*>(first);
         mnl_attr_ok(attr, int(static_cast<const char*>(tail) - reinterpret_cast<const char*>(attr)));
         attr = mnl_attr_next(attr))
        visit(attr);
}

template <typename Visit>
void each_nested(const nlattr* nest, Visit visit) {
    each_attr(mnl_attr_get_payload(nest), reinterpret_cast<const char*>(nest) + mnl_attr_get_len(nest), visit);
}

void read_addresses(const nlattr* nest, PacketKey& key) {
    each_nested(nest, [&](const nlattr* ip) {
        const uint16_t type = mnl_attr_get_type(ip);
        if ((type == CTA_IP_V4_SRC || type == CTA_IP_V4_DST) && mnl_attr_get_payload_len(ip) == 4) {
            Ipv4 v4{ntohl(mnl_attr_get_u32(ip))};
            (type == CTA_IP_V4_SRC ? key.src : key.dst) = v4;
        } else if ((type == CTA_IP_V6_SRC || type == CTA_IP_V6_DST) && mnl_attr_get_payload_len(ip) == 16) {
            Ipv6 v6;
            std::memcpy(v6.bytes.data(), mnl_attr_get_payload(ip), 16);
            (type == CTA_IP_V6_SRC ? key.src : key.dst) = v6;
        }
    });
}

// CTA_TUPLE_PROTO: the protocol, the ports, and an echo's identifier (each ICMP version has its
// own attribute: CTA_PROTO_ICMP_ID, CTA_PROTO_ICMPV6_ID).
void read_protocol(const nlattr* nest, CtEntry& entry) {
    std::optional<uint16_t> icmp_id, icmpv6_id;
    PacketKey& key = entry.original;
    each_nested(nest, [&](const nlattr* p) {
        const uint16_t type = mnl_attr_get_type(p);
        const bool u16 = mnl_attr_validate(p, MNL_TYPE_U16) == 0;
        if (type == CTA_PROTO_NUM && mnl_attr_validate(p, MNL_TYPE_U8) == 0) key.proto = mnl_attr_get_u8(p);
        else if (type == CTA_PROTO_SRC_PORT && u16) key.sport = ntohs(mnl_attr_get_u16(p));
        else if (type == CTA_PROTO_DST_PORT && u16) key.dport = ntohs(mnl_attr_get_u16(p));
        else if (type == CTA_PROTO_ICMP_ID && u16) icmp_id = ntohs(mnl_attr_get_u16(p));
        else if (type == CTA_PROTO_ICMPV6_ID && u16) icmpv6_id = ntohs(mnl_attr_get_u16(p));
    });
    if (key.proto == IPPROTO_ICMP) entry.icmp_id = icmp_id;
    if (key.proto == IPPROTO_ICMPV6) entry.icmp_id = icmpv6_id;
}

// CTA_TUPLE_ORIG: the addresses (CTA_TUPLE_IP) and protocol and ports (CTA_TUPLE_PROTO).
void read_original(const nlattr* tuple, CtEntry& entry) {
    each_nested(tuple, [&](const nlattr* a) {
        if (mnl_attr_validate(a, MNL_TYPE_NESTED) != 0) return;
        if (mnl_attr_get_type(a) == CTA_TUPLE_IP) read_addresses(a, entry.original);
        else if (mnl_attr_get_type(a) == CTA_TUPLE_PROTO) read_protocol(a, entry);
    });
    entry.original.family = family_of(entry.original.src);
}

// CTA_PROTOINFO > CTA_PROTOINFO_TCP > CTA_PROTOINFO_TCP_STATE.
void read_protoinfo(const nlattr* nest, CtEntry& entry) {
    each_nested(nest, [&](const nlattr* tcp) {
        if (mnl_attr_get_type(tcp) != CTA_PROTOINFO_TCP || mnl_attr_validate(tcp, MNL_TYPE_NESTED) != 0) return;
        each_nested(tcp, [&](const nlattr* a) {
            if (mnl_attr_get_type(a) == CTA_PROTOINFO_TCP_STATE && mnl_attr_validate(a, MNL_TYPE_U8) == 0)
                entry.tcp_state = mnl_attr_get_u8(a);
        });
    });
}

// CTA_COUNTERS_ORIG or _REPLY > CTA_COUNTERS_BYTES, added to the entry's bytes.
void read_counters(const nlattr* nest, CtEntry& entry) {
    each_nested(nest, [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == CTA_COUNTERS_BYTES && mnl_attr_validate(a, MNL_TYPE_U64) == 0)
            entry.bytes = entry.bytes.value_or(0) + be64toh(mnl_attr_get_u64(a));
    });
}

}  // namespace

std::string tcp_state_name(std::optional<uint8_t> state) {
    static constexpr const char* kNames[] = {"NONE",      "SYN_SENT",  "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                                             "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",      "SYN_SENT2"};
    if (!state) return "";
    return *state < std::size(kNames) ? kNames[*state] : "UNKNOWN";
}

bool CtEntry::closed() const {
    return tcp_state && (*tcp_state == TCP_CONNTRACK_TIME_WAIT || *tcp_state == TCP_CONNTRACK_CLOSE);
}

CtEntry read_ct_entry(const nlmsghdr* nlh) {
    CtEntry entry;
    each_attr(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)), mnl_nlmsg_get_payload_tail(nlh),
              [&](const nlattr* attr) {
                  const uint16_t type = mnl_attr_get_type(attr);
                  const bool u32 = mnl_attr_validate(attr, MNL_TYPE_U32) == 0;
                  if (type == CTA_MARK && u32) entry.mark = ntohl(mnl_attr_get_u32(attr));
                  else if (type == CTA_ID && u32) entry.id = ntohl(mnl_attr_get_u32(attr));
                  else if (type == CTA_STATUS && u32) entry.status = ntohl(mnl_attr_get_u32(attr));
                  else if (type == CTA_TUPLE_ORIG && mnl_attr_validate(attr, MNL_TYPE_NESTED) == 0)
                      read_original(attr, entry);
                  else if (type == CTA_PROTOINFO && mnl_attr_validate(attr, MNL_TYPE_NESTED) == 0)
                      read_protoinfo(attr, entry);
                  else if ((type == CTA_COUNTERS_ORIG || type == CTA_COUNTERS_REPLY) &&
                           mnl_attr_validate(attr, MNL_TYPE_NESTED) == 0)
                      read_counters(attr, entry);
              });
    return entry;
}

}  // namespace wb
