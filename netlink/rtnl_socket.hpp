// One NETLINK_ROUTE socket (libnl-3 core) shared by RouteNetlink and KernelWatch: requests that
// wait for the kernel's answer with its errno kept verbatim, and the route parsing both need.
#pragma once

#include <linux/netlink.h>
#include <netlink/msg.h>
#include <netlink/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/handle.hpp"
#include "base/ip.hpp"
#include "base/status.hpp"
#include "rules/routing.hpp"

namespace wb::rtnl {

using MsgPtr = Handle<nl_msg, nlmsg_free>;

// A new message with a fixed header (rtmsg, fib_rule_hdr, ifinfomsg …) already appended.
// NLM_F_REQUEST is added on send; NLM_F_ACK too unless it is a dump.
MsgPtr make_msg(int type, int flags, const void* header, size_t header_len);

// An address attribute of `family`: 4 or 16 bytes in network order (nullopt: absent or another size).
std::optional<IpAddr> get_ip(const nlattr* attr, Family family);
// Appends one as attribute `type`; false when the message is full.
bool put_ip(nl_msg* msg, int type, const IpAddr& addr);

// Called for every message read that is not the end of the request: the replies, and on a
// subscribed socket the notifications that arrived meanwhile, in the kernel's order.
using Handler = std::function<void(const nlmsghdr*)>;

class Socket {
public:
    // groups: RTNLGRP_* to subscribe to (before anything is dumped); rcvbuf 0: kernel default.
    static Expected<Socket> open(const std::vector<int>& groups = {}, int rcvbuf = 0);

    int fd() const;
    // Whether NETLINK_GET_STRICT_CHK is on: dump requests may then carry kernel-side filters.
    bool strict() const { return strict_; }

    // Sends msg and reads until the kernel has answered it (ACK, error, or end of dump).
    // Returns the kernel's errno and words, plus its extended-ack text when it gave one.
    // ENOBUFS means notifications were lost meanwhile; the request itself still completed.
    Status request(nl_msg* msg, const Handler& handler);

    // Reads every pending message without blocking. ENOBUFS: notifications were lost.
    Status drain(const Handler& handler);

    unsigned replies_received() const { return replies_; }
    // Whether the last dump's replies said the kernel filtered them (NLM_F_DUMP_FILTERED).
    bool last_dump_filtered() const { return last_dump_filtered_; }

private:
    Socket() = default;
    // Reads one datagram; 0 on success, else a positive errno (EAGAIN when nothing is pending).
    int read_once();

    Handle<nl_sock, nl_socket_free> sock_;
    std::vector<char> buf_;
    size_t len_ = 0;
    uint32_t port_ = 0;
    bool strict_ = false;
    unsigned replies_ = 0;
    bool last_dump_filtered_ = false;
};

// An IPv4 or IPv6 route as rtnetlink reports it (RTM_NEWROUTE/RTM_DELROUTE).
struct RouteMsg {
    Family family = Family::V4;
    uint8_t dst_len = 0, tos = 0, protocol = 0, type = 0, scope = 0;
    uint32_t table = 0, metric = 0;
    std::optional<IpAddr> dst, prefsrc;
    std::vector<Nexthop> nexthops;  // ifname left empty
    bool multipath = false;
    uint32_t nexthop_id = 0;  // RTA_NH_ID: a nexthop object, nexthops unknown here
};
// nullopt unless a valid AF_INET or AF_INET6 route (callers that want one family check `family`).
std::optional<RouteMsg> parse_route(const nlmsghdr* nlh);

// "default via 203.0.113.1 dev ether1 proto dhcp metric 100", `ip route` style (the same
// for IPv6: "default via fe80::1 dev ether1 proto ra metric 1024").
std::string describe_route(const RouteMsg& route);
std::string protocol_name(uint8_t protocol);
// The interface's name in this network namespace, or "ifindex N".
std::string interface_name(int ifindex);

}  // namespace wb::rtnl
