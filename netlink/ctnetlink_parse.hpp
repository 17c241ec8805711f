// What a ctnetlink message says of one conntrack entry, read the same way for dump replies
// (Conntrack) and events (ConntrackEvents): its id, mark, status and original direction.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <optional>

#include "base/ip.hpp"
#include "rules/policy.hpp"

namespace wb {

// An attribute the message lacks reads as 0 (or nullopt). A dump carries them all; an event
// carries CTA_ID and CTA_STATUS too (ctnetlink_conntrack_event()) but leaves out a mark that is 0
// and did not change (ctnetlink_dump_mark()), so 0 is also what an absent mark means.
struct CtEntry {
    uint32_t id = 0;      // CTA_ID
    uint32_t mark = 0;    // CTA_MARK
    uint32_t status = 0;  // CTA_STATUS: IPS_* bits
    std::optional<uint16_t> icmp_id;  // an ICMP or ICMPv6 echo's identifier
    PacketKey original;   // CTA_TUPLE_ORIG: addresses, protocol and ports (family from the addresses)
    std::optional<uint8_t> tcp_state;  // CTA_PROTOINFO_TCP_STATE (TCP_CONNTRACK_*), TCP only
    std::optional<uint64_t> bytes;     // CTA_COUNTERS_ORIG + _REPLY bytes (nf_conntrack_acct=1 only)
    // A TCP connection that has ended (TIME_WAIT, CLOSE): its entry lingers, it carries nothing.
    bool closed() const;
};

// "ESTABLISHED", "TIME_WAIT", ... as conntrack -L prints a TCP state; "" for none.
std::string tcp_state_name(std::optional<uint8_t> state);

// The attributes after the nfgenmsg header of a ctnetlink entry message (IPCTNL_MSG_CT_NEW or
// _DELETE). The caller checks the message is at least NLMSG_LENGTH(sizeof(nfgenmsg)) long.
CtEntry read_ct_entry(const nlmsghdr* nlh);

}  // namespace wb
