#include "netlink/rtnl_socket.hpp"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "netlink/answer.hpp"

namespace wb::rtnl {
namespace {

// Dump replies are at most 32 KiB per datagram (netlink_dump); a link with many VFs can send a
// bigger single message, hence the margin.
constexpr size_t kReceiveBufferBytes = 256 * 1024;

void set_flag_option(int fd, int option, bool* result) {
    int one = 1;
    bool ok = setsockopt(fd, SOL_NETLINK, option, &one, sizeof one) == 0;
    if (result) *result = ok;
}

// The text of NLMSGERR_ATTR_MSG in an NLMSG_ERROR or NLMSG_DONE carrying extended-ack TLVs.
std::string extack_text(const nlmsghdr* nlh) {
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
    size_t offset;
    if (nlh->nlmsg_type == NLMSG_ERROR) {
        auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
        offset = sizeof(nlmsgerr);
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - NLMSG_HDRLEN;
    } else {
        offset = sizeof(int);
    }
    offset = NLMSG_ALIGN(offset);
    size_t payload = nlh->nlmsg_len - NLMSG_HDRLEN;
    if (offset >= payload) return "";
    auto* head = reinterpret_cast<nlattr*>(const_cast<char*>(static_cast<const char*>(NLMSG_DATA(nlh))) + offset);
    nlattr* tb[NLMSGERR_ATTR_MAX + 1] = {};
    if (nla_parse(tb, NLMSGERR_ATTR_MAX, head, int(payload - offset), nullptr) < 0) return "";
    if (!tb[NLMSGERR_ATTR_MSG]) return "";
    std::string text(static_cast<const char*>(nla_data(tb[NLMSGERR_ATTR_MSG])), size_t(nla_len(tb[NLMSGERR_ATTR_MSG])));
    while (!text.empty() && text.back() == '\0') text.pop_back();
    return text;
}

Status kernel_error(int err, const nlmsghdr* nlh) {
    std::string text = errno_text(err);
    std::string extra = extack_text(nlh);
    if (!extra.empty()) text += " (" + extra + ")";
    return Status::fail(err, text);
}

}  // namespace

std::optional<IpAddr> get_ip(const nlattr* attr, Family family) {
    if (!attr) return std::nullopt;
    if (family == Family::V4) {
        if (nla_len(attr) != 4) return std::nullopt;
        uint32_t be;
        std::memcpy(&be, nla_data(attr), 4);
        return Ipv4::from_network(be);
    }
    if (nla_len(attr) != 16) return std::nullopt;
    Ipv6 a;
    std::memcpy(a.bytes.data(), nla_data(attr), 16);
    return a;
}

bool put_ip(nl_msg* msg, int type, const IpAddr& addr) {
    if (const auto* v4 = std::get_if<Ipv4>(&addr)) {
        uint32_t be = v4->network();
        return nla_put(msg, type, sizeof be, &be) == 0;
    }
    const auto& v6 = std::get<Ipv6>(addr);
    return nla_put(msg, type, int(v6.bytes.size()), v6.bytes.data()) == 0;
}

MsgPtr make_msg(int type, int flags, const void* header, size_t header_len) {
    MsgPtr msg(nlmsg_alloc_simple(type, flags));
    if (msg && nlmsg_append(msg.get(), const_cast<void*>(header), header_len, NLMSG_ALIGNTO) < 0) msg.reset();
    return msg;
}

Expected<Socket> Socket::open(const std::vector<int>& groups, int rcvbuf) {
    Socket s;
    s.sock_.reset(nl_socket_alloc());
    if (!s.sock_) return Status::fail(ENOMEM, "Could not allocate a netlink socket");
    // Replies are matched by hand (port and sequence), so libnl's own checks stay out of the way.
    nl_socket_disable_seq_check(s.sock_.get());
    nl_socket_disable_auto_ack(s.sock_.get());
    if (nl_connect(s.sock_.get(), NETLINK_ROUTE) < 0)
        return Status::fail(errno ? errno : EINVAL, "Could not open a NETLINK_ROUTE socket: " + errno_text(errno ? errno : EINVAL));
    int fd = s.fd();
    for (int group : groups)
        if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
            return Status::fail(errno, "Could not subscribe to rtnetlink group " + std::to_string(group) + ": " + errno_text(errno));
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);  // capped by rmem_max
    set_flag_option(fd, NETLINK_EXT_ACK, nullptr);
    set_flag_option(fd, NETLINK_CAP_ACK, nullptr);
    // Linux >= 4.20: dump requests are checked strictly and may filter (table, protocol, oif).
    set_flag_option(fd, NETLINK_GET_STRICT_CHK, &s.strict_);
    if (nl_socket_set_nonblocking(s.sock_.get()) < 0)
        return Status::fail(EINVAL, "Could not make the netlink socket non-blocking");
    s.port_ = nl_socket_get_local_port(s.sock_.get());
    s.buf_.resize(kReceiveBufferBytes);
    return s;
}

int Socket::fd() const { return nl_socket_get_fd(sock_.get()); }

int Socket::read_once() {
    ssize_t n = recv(fd(), buf_.data(), buf_.size(), MSG_TRUNC);
    if (n < 0) return errno;
    if (size_t(n) > buf_.size()) return EMSGSIZE;
    len_ = size_t(n);
    return 0;
}

Status Socket::drain(const Handler& handler) {
    for (;;) {
        int err = read_once();
        if (err == EINTR) continue;
        if (err == EAGAIN) return Status::ok();
        if (err) return Status::fail(err, "Could not read rtnetlink notifications: " + errno_text(err));
        int left = int(len_);
        // Anything addressed to our port here answers a request that timed out: stale.
        for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf_.data()); NLMSG_OK(nlh, left); nlh = NLMSG_NEXT(nlh, left))
            if (nlh->nlmsg_type >= NLMSG_MIN_TYPE && nlh->nlmsg_pid != port_) handler(nlh);
    }
}

Status Socket::request(nl_msg* msg, const Handler& handler) {
    nl_complete_msg(sock_.get(), msg);
    nlmsghdr* req = nlmsg_hdr(msg);
    bool dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    if (!dump) req->nlmsg_flags |= NLM_F_ACK;
    const uint32_t seq = req->nlmsg_seq;
    if (send(fd(), req, req->nlmsg_len, 0) < 0) return Status::fail(errno, errno_text(errno));
    if (dump) last_dump_filtered_ = false;

    bool overflowed = false;
    const Deadline deadline = answer_deadline();
    for (;;) {
        int err = read_once();
        if (err == EINTR) continue;
        if (err == ENOBUFS) {  // lost notifications; our answer is still coming
            overflowed = true;
            continue;
        }
        if (err == EAGAIN) {
            if (int w = wait_readable(fd(), deadline))
                return Status::fail(w, errno_text(w) + (w == ETIMEDOUT ? " (no answer from the kernel)" : ""));
            continue;
        }
        if (err) return Status::fail(err, errno_text(err));
        int left = int(len_);
        for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf_.data()); NLMSG_OK(nlh, left); nlh = NLMSG_NEXT(nlh, left)) {
            bool ours = nlh->nlmsg_pid == port_ && nlh->nlmsg_seq == seq;
            if (ours && nlh->nlmsg_type == NLMSG_ERROR) {
                int code = -static_cast<const nlmsgerr*>(NLMSG_DATA(nlh))->error;
                if (code) return kernel_error(code, nlh);
                return overflowed ? Status::fail(ENOBUFS, errno_text(ENOBUFS)) : Status::ok();
            }
            if (ours && nlh->nlmsg_type == NLMSG_DONE) {
                int code = 0;
                if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) code = -*static_cast<const int*>(NLMSG_DATA(nlh));
                if (code) return kernel_error(code, nlh);
                return overflowed ? Status::fail(ENOBUFS, errno_text(ENOBUFS)) : Status::ok();
            }
            if (nlh->nlmsg_type < NLMSG_MIN_TYPE) continue;
            if (nlh->nlmsg_pid == port_ && !ours) continue;  // the answer to a request that timed out
            if (ours) {
                ++replies_;
                if (nlh->nlmsg_flags & NLM_F_DUMP_FILTERED) last_dump_filtered_ = true;
            }
            handler(nlh);
        }
    }
}

std::optional<RouteMsg> parse_route(const nlmsghdr* nlh) {
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return std::nullopt;
    auto* rtm = static_cast<const rtmsg*>(NLMSG_DATA(nlh));
    if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) return std::nullopt;
    const Family family = rtm->rtm_family == AF_INET ? Family::V4 : Family::V6;
    nlattr* tb[RTA_MAX + 1] = {};
    if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return std::nullopt;

    RouteMsg r;
    r.family = family;
    r.dst_len = rtm->rtm_dst_len;
    r.tos = rtm->rtm_tos;
    r.protocol = rtm->rtm_protocol;
    r.type = rtm->rtm_type;
    r.scope = rtm->rtm_scope;
    r.table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
    r.metric = tb[RTA_PRIORITY] ? nla_get_u32(tb[RTA_PRIORITY]) : 0;
    r.dst = get_ip(tb[RTA_DST], family);
    r.prefsrc = get_ip(tb[RTA_PREFSRC], family);
    if (tb[RTA_NH_ID]) r.nexthop_id = nla_get_u32(tb[RTA_NH_ID]);

    if (tb[RTA_MULTIPATH]) {
        r.multipath = true;
        auto* rtnh = static_cast<rtnexthop*>(nla_data(tb[RTA_MULTIPATH]));
        int left = nla_len(tb[RTA_MULTIPATH]);
        while (RTNH_OK(rtnh, left)) {
            Nexthop nh;
            nh.ifindex = rtnh->rtnh_ifindex;
            nh.weight = unsigned(rtnh->rtnh_hops) + 1;
            nlattr* ntb[RTA_MAX + 1] = {};
            int attrs_len = int(rtnh->rtnh_len) - int(RTNH_LENGTH(0));
            if (attrs_len > 0 && nla_parse(ntb, RTA_MAX, reinterpret_cast<nlattr*>(RTNH_DATA(rtnh)), attrs_len, nullptr) >= 0)
                nh.gateway = get_ip(ntb[RTA_GATEWAY], family);
            r.nexthops.push_back(nh);
            left -= int(RTNH_ALIGN(rtnh->rtnh_len));
            rtnh = RTNH_NEXT(rtnh);
        }
    } else if (tb[RTA_OIF] || tb[RTA_GATEWAY]) {
        Nexthop nh;
        if (tb[RTA_OIF]) nh.ifindex = int(nla_get_u32(tb[RTA_OIF]));
        nh.gateway = get_ip(tb[RTA_GATEWAY], family);
        r.nexthops.push_back(nh);
    }
    return r;
}

std::string protocol_name(uint8_t protocol) {
    switch (protocol) {
        case RTPROT_UNSPEC: return "unspec";
        case RTPROT_REDIRECT: return "redirect";
        case RTPROT_KERNEL: return "kernel";
        case RTPROT_BOOT: return "boot";
        case RTPROT_STATIC: return "static";
        case RTPROT_RA: return "ra";
        case RTPROT_ZEBRA: return "zebra";
        case RTPROT_BIRD: return "bird";
        case RTPROT_DHCP: return "dhcp";
        case RTPROT_KEEPALIVED: return "keepalived";
        case RTPROT_BABEL: return "babel";
        case RTPROT_OPENR: return "openr";
        case RTPROT_BGP: return "bgp";
        case RTPROT_ISIS: return "isis";
        case RTPROT_OSPF: return "ospf";
        case RTPROT_RIP: return "rip";
        case kRouteProtocol: return "wanbalance";
        default: return std::to_string(protocol);
    }
}

std::string interface_name(int ifindex) {
    char name[IF_NAMESIZE] = {};
    if (ifindex > 0 && if_indextoname(unsigned(ifindex), name)) return name;
    return "ifindex " + std::to_string(ifindex);
}

std::string describe_route(const RouteMsg& route) {
    std::string out;
    switch (route.type) {
        case RTN_UNICAST: break;
        case RTN_BLACKHOLE: out = "blackhole "; break;
        case RTN_UNREACHABLE: out = "unreachable "; break;
        case RTN_PROHIBIT: out = "prohibit "; break;
        default: out = "type " + std::to_string(route.type) + " "; break;
    }
    const char* any = route.family == Family::V4 ? "0.0.0.0" : "::";
    out += route.dst_len == 0 ? "default" : (route.dst ? str(*route.dst) : any) + "/" + std::to_string(route.dst_len);
    auto hop = [](const Nexthop& nh) {
        std::string s;
        if (nh.gateway) s += " via " + str(*nh.gateway);
        if (nh.ifindex) s += " dev " + interface_name(nh.ifindex);
        return s;
    };
    if (route.nexthop_id) out += " nhid " + std::to_string(route.nexthop_id);
    if (!route.multipath && !route.nexthops.empty()) out += hop(route.nexthops[0]);
    out += " proto " + protocol_name(route.protocol);
    if (route.metric) out += " metric " + std::to_string(route.metric);
    if (route.multipath)
        for (const auto& nh : route.nexthops) out += " nexthop" + hop(nh) + " weight " + std::to_string(nh.weight);
    return out;
}

}  // namespace wb::rtnl
