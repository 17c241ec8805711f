// One dump each of links, addresses and main-table routes over a fresh rtnetlink socket; one
// RTM_GETNEIGH for a gateway's neighbour entry.
#include "netlink/system_view.hpp"

#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>

#include <algorithm>
#include <cstring>

#include "netlink/rtnl_socket.hpp"

namespace wb {
namespace {

Status read_links(rtnl::Socket& sock, std::map<int, std::string>& names, SystemView& view) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    rtnl::MsgPtr msg = rtnl::make_msg(RTM_GETLINK, NLM_F_DUMP, &ifi, sizeof ifi);
    if (!msg) return Status::fail(ENOMEM, "Could not build a link dump request");
    return sock.request(msg.get(), [&](const nlmsghdr* nlh) {
        if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
        auto* m = static_cast<const ifinfomsg*>(NLMSG_DATA(nlh));
        nlattr* tb[IFLA_MAX + 1] = {};
        if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 || !tb[IFLA_IFNAME]) return;
        const char* name = static_cast<const char*>(nla_data(tb[IFLA_IFNAME]));
        std::string n(name, strnlen(name, size_t(nla_len(tb[IFLA_IFNAME]))));
        LinkView& link = view.links[n];
        link.ifindex = m->ifi_index;
        link.admin_up = m->ifi_flags & IFF_UP;
        link.point_to_point = m->ifi_flags & IFF_POINTOPOINT;
        names[m->ifi_index] = n;
    });
}

Status read_addresses(rtnl::Socket& sock, const std::map<int, std::string>& names, SystemView& view) {
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_UNSPEC;
    rtnl::MsgPtr msg = rtnl::make_msg(RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof ifa);
    if (!msg) return Status::fail(ENOMEM, "Could not build an address dump request");
    return sock.request(msg.get(), [&](const nlmsghdr* nlh) {
        if (nlh->nlmsg_type != RTM_NEWADDR || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
        auto* m = static_cast<const ifaddrmsg*>(NLMSG_DATA(nlh));
        nlattr* tb[IFA_MAX + 1] = {};
        if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return;
        auto name = names.find(int(m->ifa_index));
        if (name == names.end() || (m->ifa_family != AF_INET && m->ifa_family != AF_INET6)) return;
        Family family = m->ifa_family == AF_INET ? Family::V4 : Family::V6;
        // IFA_LOCAL is the address itself where there is one; IFA_ADDRESS is then the peer.
        auto local = rtnl::get_ip(tb[IFA_LOCAL], family);
        auto address = rtnl::get_ip(tb[IFA_ADDRESS], family);
        if (!local && !address) return;
        AddressView a{local ? *local : *address, m->ifa_prefixlen, std::nullopt};
        if (local && address && *local != *address) a.peer = address;
        view.links[name->second].addresses.push_back(a);
    });
}

Status read_main_defaults(rtnl::Socket& sock, const std::map<int, std::string>& names, SystemView& view) {
    std::vector<std::pair<uint32_t, ForeignDefault>> found;
    for (Family family : kFamilies) {
        rtmsg rtm{};
        rtm.rtm_family = uint8_t(family_af(family));
        rtm.rtm_table = RT_TABLE_MAIN;
        rtnl::MsgPtr msg = rtnl::make_msg(RTM_GETROUTE, NLM_F_DUMP, &rtm, sizeof rtm);
        if (!msg) return Status::fail(ENOMEM, "Could not build a route dump request");
        Status st = sock.request(msg.get(), [&](const nlmsghdr* nlh) {
            auto r = rtnl::parse_route(nlh);
            if (!r || r->family != family || r->table != RT_TABLE_MAIN || r->dst_len != 0 || r->tos != 0 ||
                r->protocol == kRouteProtocol)
                return;
            ForeignDefault d{family, "", std::nullopt, rtnl::describe_route(*r)};
            if (!r->multipath && r->nexthops.size() == 1) {
                auto name = names.find(r->nexthops[0].ifindex);
                if (name != names.end()) d.interface = name->second;
                if (r->type == RTN_UNICAST) d.gateway = r->nexthops[0].gateway;
            }
            found.emplace_back(r->metric, std::move(d));
        });
        if (!st) return st;
    }
    std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& f : found) view.main_defaults.push_back(std::move(f.second));
    return Status::ok();
}

}  // namespace

Expected<SystemView> read_system_view() {
    auto sock = rtnl::Socket::open();
    if (!sock) return Status::fail(sock.error().err, "Could not open an rtnetlink socket: " + sock.error().message);
    SystemView view;
    std::map<int, std::string> names;
    if (Status st = read_links(*sock, names, view); !st) return Status::fail(st.err, "Could not list links: " + st.message);
    if (Status st = read_addresses(*sock, names, view); !st)
        return Status::fail(st.err, "Could not list addresses: " + st.message);
    if (Status st = read_main_defaults(*sock, names, view); !st)
        return Status::fail(st.err, "Could not list the main table's routes: " + st.message);
    return view;
}

Expected<NeighbourAnswer> neighbour_state(rtnl::Socket& sock, int ifindex, const IpAddr& gateway) {
    ndmsg ndm{};
    ndm.ndm_family = uint8_t(family_af(family_of(gateway)));
    ndm.ndm_ifindex = ifindex;
    rtnl::MsgPtr msg = rtnl::make_msg(RTM_GETNEIGH, 0, &ndm, sizeof ndm);
    if (!msg || !rtnl::put_ip(msg.get(), NDA_DST, gateway))
        return Status::fail(EMSGSIZE, "Could not build a neighbour request");
    std::optional<uint16_t> state;
    Status st = sock.request(msg.get(), [&](const nlmsghdr* nlh) {
        if (nlh->nlmsg_type == RTM_NEWNEIGH && nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(ndmsg)))
            state = static_cast<const ndmsg*>(NLMSG_DATA(nlh))->ndm_state;
    });
    if (st.err == ENOENT) return NeighbourAnswer::Unknown;
    if (!st) return Status::fail(st.err, "Could not read the neighbour entry of " + str(gateway) + ": " + st.message);
    if (!state || *state == NUD_NONE) return NeighbourAnswer::Unknown;
    return (*state & (NUD_INCOMPLETE | NUD_FAILED)) ? NeighbourAnswer::Silent : NeighbourAnswer::Answers;
}

Expected<NeighbourAnswer> neighbour_state(int ifindex, const IpAddr& gateway) {
    auto sock = rtnl::Socket::open();
    if (!sock) return Status::fail(sock.error().err, "Could not open an rtnetlink socket: " + sock.error().message);
    return neighbour_state(*sock, ifindex, gateway);
}

}  // namespace wb
