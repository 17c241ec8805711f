// The watch's model of the kernel: links, addresses of both families, and the main table's
// default routes that are not ours. IPv4 defaults are followed message by message; IPv6 ones are
// re-read from a dump whenever one changes (see refresh_defaults6()).
#include "netlink/kernel_watch.hpp"

#include <linux/fib_rules.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "netlink/rtnl_socket.hpp"

namespace wb {

const LinkState* KernelSnapshot::link(const std::string& name) const {
    auto it = links.find(name);
    return it == links.end() ? nullptr : &it->second;
}

namespace {

// Room for bursts (a link flap brings a few dozen messages; a BGP session reset brings far
// more, and then ENOBUFS + a re-dump is the answer). SO_RCVBUFFORCE needs CAP_NET_ADMIN.
constexpr int kReceiveBufferBytes = 8 << 20;
constexpr int kMaxResyncAttempts = 8;

// A main-table default route that is not ours, single path with a gateway: what "auto" follows.
struct DefaultRoute {
    int oif = 0;
    uint32_t metric = 0;
    Ipv4 gateway;
    auto operator<=>(const DefaultRoute&) const = default;
};

// One gateway of an IPv6 default route in main that is not ours (a multipath route gives one per
// nexthop), in the order the kernel dumps them: for one metric that is the order they were added
// (fib6_add_rt2node() appends after routes of the same metric, and siblings after siblings).
struct DefaultRoute6 {
    int oif = 0;
    uint32_t metric = 0;
    Ipv6 gateway;
};

using AddressKey = std::pair<Ipv4, uint8_t>;  // (local address, prefix length)
using AddressKey6 = std::pair<Ipv6, uint8_t>;

void read_counters(nlattr* const* tb, uint64_t* rx, uint64_t* tx) {
    if (tb[IFLA_STATS64] && nla_len(tb[IFLA_STATS64]) >= int(sizeof(rtnl_link_stats64))) {
        rtnl_link_stats64 s;
        std::memcpy(&s, nla_data(tb[IFLA_STATS64]), sizeof s);
        *rx = s.rx_bytes;
        *tx = s.tx_bytes;
    } else if (tb[IFLA_STATS] && nla_len(tb[IFLA_STATS]) >= int(sizeof(rtnl_link_stats))) {
        rtnl_link_stats s;
        std::memcpy(&s, nla_data(tb[IFLA_STATS]), sizeof s);
        *rx = s.rx_bytes;
        *tx = s.tx_bytes;
    }
}

// The ifinfomsg of a link message we care about, with its attributes parsed.
const ifinfomsg* parse_link(const nlmsghdr* nlh, nlattr** tb) {
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return nullptr;
    auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(nlh));
    // Bridge port events come on RTNLGRP_LINK as AF_BRIDGE; an AF_BRIDGE RTM_DELLINK only means
    // the port left its bridge, not that the interface is gone.
    if (ifi->ifi_family != AF_UNSPEC) return nullptr;
    if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) return nullptr;
    return ifi;
}

rtnl::MsgPtr dump_msg(int type, const void* header, size_t len) {
    return rtnl::make_msg(type, NLM_F_DUMP, header, len);
}

// Main-table routes; with strict checking the kernel filters by table and output device.
rtnl::MsgPtr main_routes_request(int family, int oif) {
    rtmsg rtm{};
    rtm.rtm_family = uint8_t(family);
    rtm.rtm_table = RT_TABLE_MAIN;
    auto msg = dump_msg(RTM_GETROUTE, &rtm, sizeof rtm);
    if (msg && oif && nla_put_u32(msg.get(), RTA_OIF, uint32_t(oif)) < 0) msg.reset();
    return msg;
}

std::optional<Ipv6> get_ipv6(const nlattr* attr) {
    if (!attr || nla_len(attr) != 16) return std::nullopt;
    Ipv6 out;
    std::memcpy(out.bytes.data(), nla_data(attr), 16);
    return out;
}

// The gateways of an IPv6 default route in main that is not ours, one per nexthop with a
// gateway; nothing for any other route.
std::vector<DefaultRoute6> defaults6_of(const nlmsghdr* nlh) {
    auto route = rtnl::parse_route(nlh);
    if (!route || route->family != Family::V6 || route->dst_len != 0 || route->type != RTN_UNICAST ||
        route->protocol == kRouteProtocol || route->table != RT_TABLE_MAIN)
        return {};
    std::vector<DefaultRoute6> out;
    for (const Nexthop& nh : route->nexthops) {
        const Ipv6* gateway = nh.gateway ? std::get_if<Ipv6>(&*nh.gateway) : nullptr;
        if (gateway && nh.ifindex > 0) out.push_back({nh.ifindex, route->metric, *gateway});
    }
    return out;
}

// An IPv6 address that can be a source now: global (not link-local, not host or site scope),
// and past duplicate address detection.
bool usable_address6(const ifaddrmsg& ifa, const nlattr* flags_attr, const Ipv6& address) {
    uint32_t flags = flags_attr && nla_len(flags_attr) == 4 ? nla_get_u32(const_cast<nlattr*>(flags_attr)) : ifa.ifa_flags;
    return ifa.ifa_scope == RT_SCOPE_UNIVERSE && !address.link_local() &&
           !(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED));
}

}  // namespace

struct KernelWatch::Impl {
    rtnl::Socket watch;
    rtnl::Socket counters;  // unsubscribed: reading counters must not consume notifications
    std::map<int, LinkState> links;  // by ifindex; addresses live apart
    std::map<int, std::set<AddressKey>> addresses;
    std::map<int, std::set<AddressKey6>> addresses6;  // usable ones only
    std::set<DefaultRoute> default_routes;
    // IPv6 defaults as of the last dump of main; stale once a notification says one changed.
    std::vector<DefaultRoute6> default_routes6;
    bool defaults6_stale = false;
    // Interfaces whose routes the kernel may have flushed without a notification: IPv4 sends no
    // RTM_DELROUTE when a device goes down or loses its addresses (fib_disable_ip(),
    // fib_sync_down_addr()), so those routes are re-read.
    std::set<int> recheck;
    bool own_routes = false;

    void apply(const nlmsghdr* nlh);
    void apply_link(const nlmsghdr* nlh);
    void apply_address(const nlmsghdr* nlh);
    void apply_address6(const nlmsghdr* nlh);
    void apply_route(const nlmsghdr* nlh);
    void apply_route6(const nlmsghdr* nlh);
    void forget_routes(int oif);
    Status dump(rtnl::Socket& sock, rtnl::MsgPtr msg);
    Status dump_main_routes(int oif);
    Status resync();
    Status recheck_routes();
    Status refresh_defaults6();
    KernelSnapshot build() const;
};

void KernelWatch::Impl::apply(const nlmsghdr* nlh) {
    switch (nlh->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK: apply_link(nlh); break;
        case RTM_NEWADDR:
        case RTM_DELADDR: apply_address(nlh); break;
        case RTM_NEWROUTE:
        case RTM_DELROUTE: apply_route(nlh); break;
        case RTM_NEWRULE:
        case RTM_DELRULE: {
            if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(fib_rule_hdr))) break;
            uint8_t family = static_cast<const fib_rule_hdr*>(NLMSG_DATA(nlh))->family;
            if (family != AF_INET && family != AF_INET6) break;
            nlattr* tb[FRA_MAX + 1] = {};
            if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(fib_rule_hdr), tb, FRA_MAX, nullptr) < 0) break;
            if (tb[FRA_PROTOCOL] && nla_get_u8(tb[FRA_PROTOCOL]) == kRouteProtocol) own_routes = true;
            break;
        }
        default: break;
    }
}

void KernelWatch::Impl::apply_link(const nlmsghdr* nlh) {
    nlattr* tb[IFLA_MAX + 1] = {};
    const ifinfomsg* ifi = parse_link(nlh, tb);
    if (!ifi) return;
    int index = ifi->ifi_index;
    if (nlh->nlmsg_type == RTM_DELLINK) {
        links.erase(index);
        addresses.erase(index);
        addresses6.erase(index);
        forget_routes(index);
        std::erase_if(default_routes6, [&](const DefaultRoute6& d) { return d.oif == index; });
        recheck.erase(index);
        return;
    }
    auto old = links.find(index);
    LinkState link;
    if (old != links.end()) link = old->second;
    link.ifindex = index;
    if (tb[IFLA_IFNAME])
        link.name.assign(static_cast<const char*>(nla_data(tb[IFLA_IFNAME])),
                         strnlen(static_cast<const char*>(nla_data(tb[IFLA_IFNAME])), size_t(nla_len(tb[IFLA_IFNAME]))));
    unsigned flags = ifi->ifi_flags;
    uint8_t operstate = tb[IFLA_OPERSTATE] ? nla_get_u8(tb[IFLA_OPERSTATE]) : uint8_t(IF_OPER_UNKNOWN);
    bool was_up = old != links.end() && old->second.admin_up;
    link.admin_up = flags & IFF_UP;
    link.carrier = (flags & IFF_LOWER_UP) && operstate != IF_OPER_DOWN && operstate != IF_OPER_LOWERLAYERDOWN &&
                   operstate != IF_OPER_NOTPRESENT;
    link.point_to_point = flags & IFF_POINTOPOINT;
    read_counters(tb, &link.rx_bytes, &link.tx_bytes);
    if (was_up && !link.admin_up) recheck.insert(index);
    links[index] = std::move(link);
}

void KernelWatch::Impl::apply_address(const nlmsghdr* nlh) {
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
    auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(nlh));
    if (ifa->ifa_family == AF_INET6) return apply_address6(nlh);
    if (ifa->ifa_family != AF_INET) return;
    nlattr* tb[IFA_MAX + 1] = {};
    if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return;
    // On a point-to-point link IFA_ADDRESS is the peer; IFA_LOCAL is always ours.
    nlattr* attr = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (!attr || nla_len(attr) != 4) return;
    uint32_t be;
    std::memcpy(&be, nla_data(attr), 4);
    int index = int(ifa->ifa_index);
    AddressKey key{Ipv4::from_network(be), ifa->ifa_prefixlen};
    if (nlh->nlmsg_type == RTM_NEWADDR) {
        addresses[index].insert(key);
    } else {
        if (auto it = addresses.find(index); it != addresses.end()) {
            it->second.erase(key);
            if (it->second.empty()) addresses.erase(it);
        }
        recheck.insert(index);
    }
}

// Every RTM_NEWADDR states the address's flags anew: one that finishes DAD arrives again without
// IFA_F_TENTATIVE, one that fails it with IFA_F_DADFAILED, one whose DAD restarts (the link came
// back) tentative again.
void KernelWatch::Impl::apply_address6(const nlmsghdr* nlh) {
    auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(nlh));
    nlattr* tb[IFA_MAX + 1] = {};
    if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return;
    auto address = get_ipv6(tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS]);
    if (!address) return;
    int index = int(ifa->ifa_index);
    AddressKey6 key{*address, ifa->ifa_prefixlen};
    if (nlh->nlmsg_type == RTM_NEWADDR && usable_address6(*ifa, tb[IFA_FLAGS], *address)) {
        addresses6[index].insert(key);
    } else if (auto it = addresses6.find(index); it != addresses6.end()) {
        it->second.erase(key);
        if (it->second.empty()) addresses6.erase(it);
    }
}

void KernelWatch::Impl::apply_route(const nlmsghdr* nlh) {
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return;
    if (static_cast<const rtmsg*>(NLMSG_DATA(nlh))->rtm_family == AF_INET6) return apply_route6(nlh);
    auto route = rtnl::parse_route(nlh);
    if (!route) return;
    if (route->protocol == kRouteProtocol) {
        own_routes = true;
        return;
    }
    if (route->table != RT_TABLE_MAIN || route->dst_len != 0 || route->tos != 0) return;
    // A replace notification is the only word that the old route at this (tos, priority) is
    // gone: fib_table_insert() sends no RTM_DELROUTE for it. It replaces the first route of that
    // priority, whichever interface it was on; but two DHCP clients at one metric each mean
    // their own interface's lease, so only that interface's gateway is replaced here: another
    // interface's lease is still valid, and "auto" keeps following it.
    if (nlh->nlmsg_type == RTM_NEWROUTE && (nlh->nlmsg_flags & NLM_F_REPLACE))
        std::erase_if(default_routes, [&](const DefaultRoute& d) {
            bool same_interface = std::any_of(route->nexthops.begin(), route->nexthops.end(),
                                              [&](const Nexthop& nh) { return nh.ifindex == d.oif; });
            return d.metric == route->metric && (same_interface || route->nexthops.empty());
        });
    if (route->type != RTN_UNICAST || route->multipath || route->nexthops.size() != 1) return;
    const Nexthop& nh = route->nexthops[0];
    const Ipv4* gateway = nh.gateway ? std::get_if<Ipv4>(&*nh.gateway) : nullptr;
    if (!gateway || nh.ifindex <= 0) return;
    DefaultRoute d{nh.ifindex, route->metric, *gateway};
    if (nlh->nlmsg_type == RTM_NEWROUTE) default_routes.insert(d);
    else default_routes.erase(d);
}

// IPv6 notifications do not tell the whole story of a default route: appending a sibling or
// deleting one reports the route in its multipath form or alone depending on the case, a router
// advertisement's preference change comes as a replace of that one route, and routes of one
// metric are told apart by when they were added. A dump of main says all of it, so every change
// of an IPv6 default route there triggers one (coalesced over a batch of notifications).
void KernelWatch::Impl::apply_route6(const nlmsghdr* nlh) {
    auto* rtm = static_cast<const rtmsg*>(NLMSG_DATA(nlh));
    if (rtm->rtm_protocol == kRouteProtocol) {
        own_routes = true;
        return;
    }
    nlattr* tb[RTA_MAX + 1] = {};
    if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return;
    uint32_t table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
    if (table == RT_TABLE_MAIN && rtm->rtm_dst_len == 0) defaults6_stale = true;
}

void KernelWatch::Impl::forget_routes(int oif) {
    std::erase_if(default_routes, [&](const DefaultRoute& d) { return d.oif == oif; });
}

Status KernelWatch::Impl::dump(rtnl::Socket& sock, rtnl::MsgPtr msg) {
    if (!msg) return Status::fail(EMSGSIZE, errno_text(EMSGSIZE));
    return sock.request(msg.get(), [this](const nlmsghdr* nlh) { apply(nlh); });
}

Status KernelWatch::Impl::dump_main_routes(int oif) {
    Status st = dump(watch, main_routes_request(AF_INET, oif));
    // A filtered dump of a table that does not exist answers ENOENT (inet_dump_fib()).
    return st.err == ENOENT ? Status::ok() : st;
}

Status KernelWatch::Impl::resync() {
    for (int attempt = 0; attempt < kMaxResyncAttempts; ++attempt) {
        // Whatever is still queued predates the loss and may describe objects the lost
        // messages deleted: drop it, then rebuild from dumps (notifications arriving meanwhile
        // are newer than what they follow and are applied in order).
        for (Status st = watch.drain([](const nlmsghdr*) {}); st.err == ENOBUFS;) st = watch.drain([](const nlmsghdr*) {});
        links.clear();
        addresses.clear();
        addresses6.clear();
        default_routes.clear();
        default_routes6.clear();
        recheck.clear();
        ifinfomsg ifi{};
        ifi.ifi_family = AF_UNSPEC;
        ifaddrmsg ifa{};
        ifa.ifa_family = AF_INET;
        ifaddrmsg ifa6{};
        ifa6.ifa_family = AF_INET6;
        Status st = dump(watch, dump_msg(RTM_GETLINK, &ifi, sizeof ifi));
        if (st) st = dump(watch, dump_msg(RTM_GETADDR, &ifa, sizeof ifa));
        if (st) st = dump(watch, dump_msg(RTM_GETADDR, &ifa6, sizeof ifa6));
        if (st) st = dump_main_routes(0);
        if (st) st = recheck_routes();  // links that went down while the routes were dumped
        defaults6_stale = true;
        if (st) st = refresh_defaults6();
        if (st) return st;
        if (st.err != ENOBUFS) return st;
    }
    return Status::fail(ENOBUFS, errno_text(ENOBUFS) + " (rtnetlink notifications kept overflowing)");
}

Status KernelWatch::Impl::recheck_routes() {
    // IPv6 announces the routes it drops with a link (unless net.ipv6.conf.*.skip_notify_on_dev_down
    // says otherwise): re-reading them costs one dump and needs no such assumption.
    if (!recheck.empty()) defaults6_stale = true;
    while (!recheck.empty()) {
        int oif = *recheck.begin();
        recheck.erase(recheck.begin());
        forget_routes(oif);
        if (!links.count(oif)) continue;
        if (Status st = dump_main_routes(oif); !st) return st;
    }
    return Status::ok();
}

// Re-reads main's IPv6 default routes while they are stale. Notifications read during the dump
// are applied as they come (one may make them stale again); the dump's own replies carry
// NLM_F_MULTI, notifications never do.
Status KernelWatch::Impl::refresh_defaults6() {
    for (int attempt = 0; defaults6_stale && attempt < kMaxResyncAttempts; ++attempt) {
        defaults6_stale = false;
        std::vector<DefaultRoute6> fresh;
        auto msg = main_routes_request(AF_INET6, 0);
        if (!msg) return Status::fail(EMSGSIZE, errno_text(EMSGSIZE));
        Status st = watch.request(msg.get(), [&](const nlmsghdr* nlh) {
            if (nlh->nlmsg_type != RTM_NEWROUTE || !(nlh->nlmsg_flags & NLM_F_MULTI)) return apply(nlh);
            auto defaults = defaults6_of(nlh);
            fresh.insert(fresh.end(), defaults.begin(), defaults.end());
        });
        if (st.err == ENOENT) st = Status::ok();  // no main table yet (nothing routed)
        if (st || st.err == ENOBUFS) default_routes6 = std::move(fresh);  // the dump itself completed
        if (!st) {
            defaults6_stale = true;
            return st;
        }
    }
    return Status::ok();  // still stale after many attempts: the next process() tries again
}

KernelSnapshot KernelWatch::Impl::build() const {
    KernelSnapshot snap;
    for (const auto& [index, link] : links) {
        LinkState copy = link;
        if (auto it = addresses.find(index); it != addresses.end()) {
            for (const auto& [addr, len] : it->second)
                if (copy.addresses.empty() || copy.addresses.back() != addr) copy.addresses.push_back(addr);
        }
        if (auto it = addresses6.find(index); it != addresses6.end()) {
            for (const auto& [addr, len] : it->second)
                if (copy.addresses6.empty() || copy.addresses6.back() != addr) copy.addresses6.push_back(addr);
        }
        snap.links[copy.name] = std::move(copy);
    }
    // Sorted by (oif, metric, gateway): the first per interface has the lowest metric.
    for (const auto& d : default_routes) snap.auto_gateways.emplace(d.oif, d.gateway);
    // Per interface the lowest metric; on a tie the one added last (later in the dump).
    std::map<int, uint32_t> best_metric;
    for (const auto& d : default_routes6) {
        auto [it, first] = best_metric.emplace(d.oif, d.metric);
        if (!first && d.metric > it->second) continue;
        it->second = d.metric;
        snap.auto_gateways6[d.oif] = d.gateway;
    }
    return snap;
}

Expected<std::unique_ptr<KernelWatch>> KernelWatch::open() {
    // Subscribe before dumping: every change after the dump's snapshot arrives as a notification.
    auto watch = rtnl::Socket::open({RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_RULE,
                                     RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV6_RULE},
                                    kReceiveBufferBytes);
    if (!watch) return watch.error();
    auto counters = rtnl::Socket::open();
    if (!counters) return counters.error();
    std::unique_ptr<KernelWatch> kw(new KernelWatch);
    kw->impl_.reset(new Impl{std::move(*watch), std::move(*counters)});
    if (Status st = kw->impl_->resync(); !st)
        return Status::fail(st.err, "Could not read the kernel's links, addresses and routes: " + st.message);
    kw->impl_->own_routes = false;
    kw->snapshot_ = kw->impl_->build();
    return kw;
}

KernelWatch::~KernelWatch() = default;

int KernelWatch::fd() const { return impl_->watch.fd(); }

Expected<KernelChanges> KernelWatch::process() {
    KernelChanges changes;
    Impl& s = *impl_;
    s.own_routes = false;
    Status st = s.watch.drain([&s](const nlmsghdr* nlh) { s.apply(nlh); });
    if (st) st = s.recheck_routes();
    if (st) st = s.refresh_defaults6();
    if (st.err == ENOBUFS) {
        st = s.resync();
        changes.resynced = true;
        changes.own_routes = true;  // deletions of ours may be among what was lost
    }
    if (!st) return Status::fail(st.err, "Could not follow kernel changes: " + st.message);

    KernelSnapshot next = s.build();
    auto structural = [](LinkState l) {
        l.rx_bytes = l.tx_bytes = 0;
        return l;
    };
    std::set<std::string> names;
    for (const auto& [name, link] : snapshot_.links) names.insert(name);
    for (const auto& [name, link] : next.links) names.insert(name);
    for (const auto& name : names) {
        const LinkState* before = snapshot_.link(name);
        const LinkState* after = next.link(name);
        if (!before || !after || structural(*before) != structural(*after)) changes.links.push_back(name);
    }
    changes.auto_gateways = snapshot_.auto_gateways != next.auto_gateways || snapshot_.auto_gateways6 != next.auto_gateways6;
    changes.own_routes = changes.own_routes || s.own_routes;
    snapshot_ = std::move(next);
    return changes;
}

Status KernelWatch::refresh_counters() {
    ifinfomsg request{};
    request.ifi_family = AF_UNSPEC;
    auto msg = dump_msg(RTM_GETLINK, &request, sizeof request);
    if (!msg) return Status::fail(EMSGSIZE, "Could not read link counters: " + errno_text(EMSGSIZE));
    Status st = impl_->counters.request(msg.get(), [this](const nlmsghdr* nlh) {
        nlattr* tb[IFLA_MAX + 1] = {};
        const ifinfomsg* ifi = nlh->nlmsg_type == RTM_NEWLINK ? parse_link(nlh, tb) : nullptr;
        if (!ifi) return;
        auto it = impl_->links.find(ifi->ifi_index);
        if (it == impl_->links.end()) return;
        read_counters(tb, &it->second.rx_bytes, &it->second.tx_bytes);
        auto snap = snapshot_.links.find(it->second.name);
        if (snap != snapshot_.links.end() && snap->second.ifindex == ifi->ifi_index) {
            snap->second.rx_bytes = it->second.rx_bytes;
            snap->second.tx_bytes = it->second.tx_bytes;
        }
    });
    if (!st) return Status::fail(st.err, "Could not read link counters: " + st.message);
    return st;
}

}  // namespace wb
