#include "netlink/route_netlink.hpp"

#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include "netlink/rtnl_socket.hpp"

namespace wb {

using rtnl::MsgPtr;

namespace {

constexpr unsigned kMaxWeight = 256;  // rtnh_hops is a byte holding weight - 1

Status build_failed(const std::string& what) { return Status::fail(EMSGSIZE, what + errno_text(EMSGSIZE)); }

void ignore_reply(const nlmsghdr*) {}

// Tables above 255 only fit RTA_TABLE; rtm_table/frh->table then say RT_TABLE_UNSPEC.
uint8_t header_table(uint32_t table) { return table < 256 ? uint8_t(table) : uint8_t(RT_TABLE_UNSPEC); }

// RTA_GATEWAY/RTA_OIF for one nexthop, or RTA_MULTIPATH with an rtnexthop per nexthop.
bool put_nexthops(nl_msg* msg, const Route& route) {
    if (route.nexthops.size() == 1) {
        const auto& nh = route.nexthops[0];
        if (nh.gateway && !rtnl::put_ip(msg, RTA_GATEWAY, *nh.gateway)) return false;
        return nla_put_u32(msg, RTA_OIF, uint32_t(nh.ifindex)) == 0;
    }
    nlattr* nest = nla_nest_start(msg, RTA_MULTIPATH);
    if (!nest) return false;
    for (const auto& nh : route.nexthops) {
        // libnl messages do not grow: pointers into them stay valid while we fill them.
        auto* rtnh = static_cast<rtnexthop*>(nlmsg_reserve(msg, sizeof(rtnexthop), NLMSG_ALIGNTO));
        if (!rtnh) return false;
        rtnh->rtnh_flags = 0;
        rtnh->rtnh_hops = uint8_t(nh.weight - 1);
        rtnh->rtnh_ifindex = nh.ifindex;
        if (nh.gateway && !rtnl::put_ip(msg, RTA_GATEWAY, *nh.gateway)) return false;
        rtnh->rtnh_len = uint16_t(static_cast<char*>(nlmsg_tail(nlmsg_hdr(msg))) - reinterpret_cast<char*>(rtnh));
    }
    return nla_nest_end(msg, nest) == 0;
}

Status check_route(const Route& route, const std::string& what) {
    if (route.nexthops.empty()) return Status::fail(EINVAL, what + "no nexthop");
    for (const auto& nh : route.nexthops) {
        if (nh.ifindex <= 0) return Status::fail(ENODEV, what + "interface " + nh.ifname + " does not exist");
        if (nh.gateway && family_of(*nh.gateway) != route.family)
            return Status::fail(EINVAL, what + "gateway " + str(*nh.gateway) + " is not an " +
                                            std::string(family_label(route.family)) + " address");
        if (route.nexthops.size() > 1 && (nh.weight < 1 || nh.weight > kMaxWeight))
            return Status::fail(EINVAL, what + "weight " + std::to_string(nh.weight) + " is not in 1-256");
    }
    return Status::ok();
}

// `with_nexthops` false: table, metric and protocol only (an IPv6 delete of every sibling).
MsgPtr route_msg(int type, int flags, const Route& route, uint8_t scope, uint8_t rtn_type, bool with_nexthops = true) {
    rtmsg rtm{};
    rtm.rtm_family = uint8_t(family_af(route.family));
    rtm.rtm_table = header_table(route.table);
    rtm.rtm_protocol = kRouteProtocol;
    rtm.rtm_scope = scope;
    rtm.rtm_type = rtn_type;
    MsgPtr msg = rtnl::make_msg(type, flags, &rtm, sizeof rtm);
    if (!msg) return msg;
    if (nla_put_u32(msg.get(), RTA_TABLE, route.table) < 0 || nla_put_u32(msg.get(), RTA_PRIORITY, route.metric) < 0 ||
        (with_nexthops && !put_nexthops(msg.get(), route)))
        msg.reset();
    return msg;
}

MsgPtr rule_msg(int type, int flags, const Rule& rule) {
    fib_rule_hdr frh{};
    frh.family = uint8_t(family_af(rule.family));
    const bool lookup = rule.action == RuleAction::Lookup;
    // An unreachable rule has no table: the kernel refuses FRA_TABLE with FR_ACT_UNREACHABLE.
    frh.table = lookup ? header_table(rule.table) : 0;
    frh.action = lookup ? FR_ACT_TO_TBL : FR_ACT_UNREACHABLE;
    MsgPtr msg = rtnl::make_msg(type, flags, &frh, sizeof frh);
    if (!msg) return msg;
    nl_msg* m = msg.get();
    bool ok = nla_put_u32(m, FRA_PRIORITY, rule.priority) == 0 && nla_put_u8(m, FRA_PROTOCOL, kRouteProtocol) == 0;
    if (ok && lookup) ok = nla_put_u32(m, FRA_TABLE, rule.table) == 0;
    if (ok && rule.fwmark)
        ok = nla_put_u32(m, FRA_FWMARK, *rule.fwmark) == 0 && nla_put_u32(m, FRA_FWMASK, rule.fwmask) == 0;
    if (ok && rule.suppress_prefixlen) ok = nla_put_u32(m, FRA_SUPPRESS_PREFIXLEN, *rule.suppress_prefixlen) == 0;
    if (!ok) msg.reset();
    return msg;
}

std::optional<Rule> parse_own_rule(const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWRULE || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(fib_rule_hdr))) return std::nullopt;
    auto* frh = static_cast<const fib_rule_hdr*>(NLMSG_DATA(nlh));
    if (frh->family != AF_INET && frh->family != AF_INET6) return std::nullopt;
    nlattr* tb[FRA_MAX + 1] = {};
    if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(fib_rule_hdr), tb, FRA_MAX, nullptr) < 0) return std::nullopt;
    if (!tb[FRA_PROTOCOL] || nla_get_u8(tb[FRA_PROTOCOL]) != kRouteProtocol) return std::nullopt;
    Rule rule;
    rule.family = frh->family == AF_INET ? Family::V4 : Family::V6;
    rule.priority = tb[FRA_PRIORITY] ? nla_get_u32(tb[FRA_PRIORITY]) : 0;
    if (frh->action == FR_ACT_UNREACHABLE) {
        rule.action = RuleAction::Unreachable;
        rule.table = 0;
    } else {
        rule.table = tb[FRA_TABLE] ? nla_get_u32(tb[FRA_TABLE]) : frh->table;
    }
    if (tb[FRA_FWMARK]) {
        rule.fwmark = nla_get_u32(tb[FRA_FWMARK]);
        rule.fwmask = tb[FRA_FWMASK] ? nla_get_u32(tb[FRA_FWMASK]) : 0xffffffff;
    }
    if (tb[FRA_SUPPRESS_PREFIXLEN]) {
        uint32_t len = nla_get_u32(tb[FRA_SUPPRESS_PREFIXLEN]);
        if (len <= 128) rule.suppress_prefixlen = uint8_t(len);  // -1 means unset
    }
    return rule;
}

// Route dump of one family; with strict checking the kernel filters by protocol and table
// (ip_valid_fib_dump_req(), Linux >= 4.20, for both families). Callers filter again: older
// kernels ignore it.
MsgPtr route_dump_msg(Family family, uint8_t protocol, uint32_t table) {
    rtmsg rtm{};
    rtm.rtm_family = uint8_t(family_af(family));
    rtm.rtm_protocol = protocol;
    rtm.rtm_table = header_table(table);
    MsgPtr msg = rtnl::make_msg(RTM_GETROUTE, NLM_F_DUMP, &rtm, sizeof rtm);
    if (msg && table && nla_put_u32(msg.get(), RTA_TABLE, table) < 0) msg.reset();
    return msg;
}

bool is_default(const rtnl::RouteMsg& r) { return r.dst_len == 0 && r.tos == 0; }

// RTM_GETLINK or RTM_SETLINK for one interface.
MsgPtr link_msg(int type, int ifindex) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = ifindex;
    return rtnl::make_msg(type, 0, &ifi, sizeof ifi);
}

// IFLA_AF_SPEC -> af -> conf_attr: the family's devconf array (s32/u32 values), as
// inet_fill_link_af() and inet6_fill_link_af() write it; empty when absent.
std::vector<uint32_t> devconf(const nlmsghdr* nlh, int af, int conf_attr) {
    if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return {};
    nlattr* tb[IFLA_MAX + 1] = {};
    if (nlmsg_parse(const_cast<nlmsghdr*>(nlh), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 || !tb[IFLA_AF_SPEC])
        return {};
    nlattr* spec;
    int rem;
    nla_for_each_nested(spec, tb[IFLA_AF_SPEC], rem) {
        if (nla_type(spec) != af) continue;
        nlattr* conf;
        int crem;
        nla_for_each_nested(conf, spec, crem) {
            if (nla_type(conf) != conf_attr) continue;
            std::vector<uint32_t> values(size_t(nla_len(conf)) / sizeof(uint32_t));
            std::memcpy(values.data(), nla_data(conf), values.size() * sizeof(uint32_t));
            return values;
        }
    }
    return {};
}

// IPV4_DEVCONF_* ids start at 1: index id - 1.
std::optional<uint32_t> inet_conf(const nlmsghdr* nlh, int id) {
    auto values = devconf(nlh, AF_INET, IFLA_INET_CONF);
    if (values.size() < size_t(id)) return std::nullopt;
    return values[size_t(id) - 1];
}

// IFLA_INET6_CONF is indexed by DEVCONF_* itself (ipv6_store_devconf()), values s32.
std::optional<Ipv6Conf> inet6_conf(const nlmsghdr* nlh) {
    auto values = devconf(nlh, AF_INET6, IFLA_INET6_CONF);
    if (values.size() <= DEVCONF_ACCEPT_RA || values.size() <= DEVCONF_FORWARDING) return std::nullopt;
    return Ipv6Conf{int32_t(values[DEVCONF_ACCEPT_RA]), int32_t(values[DEVCONF_FORWARDING])};
}

}  // namespace

struct RouteNetlink::Impl {
    rtnl::Socket sock;
    unsigned messages = 0;

    // Sends msg (null: it could not be built) and waits for the kernel's answer; a failure's
    // text starts with `what` ("Could not delete …: ").
    Status request(const MsgPtr& msg, const std::string& what, const rtnl::Handler& handler = ignore_reply) {
        if (!msg) return build_failed(what);
        ++messages;
        Status st = sock.request(msg.get(), handler);
        if (!st) return Status::fail(st.err, what + st.message);
        return st;
    }
};

Expected<std::unique_ptr<RouteNetlink>> RouteNetlink::open() {
    auto sock = rtnl::Socket::open();
    if (!sock) return sock.error();
    std::unique_ptr<RouteNetlink> nl(new RouteNetlink);
    nl->impl_.reset(new Impl{std::move(*sock)});
    return nl;
}

RouteNetlink::~RouteNetlink() = default;

unsigned RouteNetlink::messages_sent() const { return impl_->messages; }
unsigned RouteNetlink::replies_received() const { return impl_->sock.replies_received(); }

Expected<std::vector<Route>> RouteNetlink::dump_own_routes() {
    std::vector<Route> routes;
    for (Family family : kFamilies) {
        MsgPtr msg = route_dump_msg(family, kRouteProtocol, 0);
        std::string what = "Could not dump " + std::string(family_label(family)) + " routes: ";
        Status st = impl_->request(msg, what, [&](const nlmsghdr* nlh) {
            if (nlh->nlmsg_type != RTM_NEWROUTE) return;
            auto r = rtnl::parse_route(nlh);
            if (!r || r->family != family || r->protocol != kRouteProtocol || !is_default(*r) || r->type != RTN_UNICAST)
                return;
            Route route{family, r->table, r->metric, r->nexthops};
            for (auto& nh : route.nexthops) nh.ifname = rtnl::interface_name(nh.ifindex);
            routes.push_back(std::move(route));
        });
        if (!st) return st;
    }
    return routes;
}

Expected<std::vector<Rule>> RouteNetlink::dump_own_rules() {
    std::vector<Rule> rules;
    for (Family family : kFamilies) {
        // fib_valid_dumprule_req() takes no filter at all: every rule comes back, we keep ours.
        fib_rule_hdr frh{};
        frh.family = uint8_t(family_af(family));
        MsgPtr msg = rtnl::make_msg(RTM_GETRULE, NLM_F_DUMP, &frh, sizeof frh);
        std::string what = "Could not dump " + std::string(family_label(family)) + " rules: ";
        Status st = impl_->request(msg, what, [&](const nlmsghdr* nlh) {
            if (auto rule = parse_own_rule(nlh); rule && rule->family == family) rules.push_back(*rule);
        });
        if (!st) return st;
    }
    return rules;
}

Expected<std::string> RouteNetlink::foreign_default_route(Family family, uint32_t table, uint32_t metric) {
    MsgPtr msg = route_dump_msg(family, 0, table);
    if (!msg) return build_failed("Could not dump routes: ");
    std::string found;
    std::string what = "Could not dump " + std::string(family_label(family)) + " routes of table " + table_name(table) + ": ";
    Status st = impl_->request(msg, what, [&](const nlmsghdr* nlh) {
        if (nlh->nlmsg_type != RTM_NEWROUTE || !found.empty()) return;
        auto r = rtnl::parse_route(nlh);
        if (r && r->family == family && r->table == table && is_default(*r) && r->metric == metric &&
            r->protocol != kRouteProtocol)
            found = rtnl::describe_route(*r);
    });
    // A table that does not exist yet holds nothing (inet_dump_fib() and inet6_dump_fib() say ENOENT).
    if (st.err == ENOENT) return std::string();
    if (!st) return st;
    return found;
}

Status RouteNetlink::replace_route(const Route& route) {
    std::string what = "Could not replace " + describe(route) + ": ";
    if (Status bad = check_route(route, what); !bad) return bad;
    // IPv6 has no route scopes to speak of (rtm_scope is ignored); IPv4 wants link scope for
    // an on-link route.
    bool onlink = route.family == Family::V4 && route.nexthops.size() == 1 && !route.nexthops[0].gateway;
    MsgPtr msg = route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route,
                           onlink ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE, RTN_UNICAST);
    return impl_->request(msg, what);
}

Status RouteNetlink::delete_route(const Route& route) {
    // fib_table_delete() treats metric 0 as "any metric" and starts at the first alias of the
    // prefix, so the nexthops (fib_nh_match()) and our protocol are what pin the right route.
    // ip6_route_del() matches table, metric and protocol; given a gateway it deletes that one
    // sibling only, without it the route with all its siblings: so an IPv6 multipath route
    // goes without its nexthops (ip6_route_multipath_del() would take them one by one).
    std::string what = "Could not delete " + describe(route) + ": ";
    if (route.nexthops.empty()) return Status::fail(EINVAL, what + "no nexthop");
    bool with_nexthops = route.family == Family::V4 || route.nexthops.size() == 1;
    MsgPtr msg = route_msg(RTM_DELROUTE, 0, route, RT_SCOPE_NOWHERE, RTN_UNSPEC, with_nexthops);
    return impl_->request(msg, what);
}

Status RouteNetlink::add_rule(const Rule& rule) {
    std::string what = "Could not add " + describe(rule) + ": ";
    // NLM_F_EXCL: without it the kernel happily adds a second identical rule.
    MsgPtr msg = rule_msg(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, rule);
    return impl_->request(msg, what);
}

Status RouteNetlink::delete_rule(const Rule& rule) {
    std::string what = "Could not delete " + describe(rule) + ": ";
    MsgPtr msg = rule_msg(RTM_DELRULE, 0, rule);
    return impl_->request(msg, what);
}

Expected<bool> RouteNetlink::get_src_valid_mark(int ifindex) {
    std::string what = "Could not read src_valid_mark of " + rtnl::interface_name(ifindex) + ": ";
    MsgPtr msg = link_msg(RTM_GETLINK, ifindex);
    std::optional<uint32_t> value;
    Status st = impl_->request(msg, what, [&](const nlmsghdr* nlh) {
        if (auto v = inet_conf(nlh, IPV4_DEVCONF_SRC_VMARK)) value = v;
    });
    if (!st) return st;
    if (!value) return Status::fail(ENODATA, what + "no IFLA_INET_CONF in the kernel's answer");
    return *value != 0;
}

Expected<Ipv6Conf> RouteNetlink::get_ipv6_conf(int ifindex) {
    std::string what = "Could not read the IPv6 settings of " + rtnl::interface_name(ifindex) + ": ";
    MsgPtr msg = link_msg(RTM_GETLINK, ifindex);
    std::optional<Ipv6Conf> conf;
    Status st = impl_->request(msg, what, [&](const nlmsghdr* nlh) {
        if (auto c = inet6_conf(nlh)) conf = c;
    });
    if (!st) return st;
    if (!conf) return Status::fail(ENODATA, what + "no IFLA_INET6_CONF in the kernel's answer (IPv6 disabled?)");
    return *conf;
}

Expected<NeighbourAnswer> RouteNetlink::neighbour_state(int ifindex, const IpAddr& gateway) {
    ++impl_->messages;
    return wb::neighbour_state(impl_->sock, ifindex, gateway);
}

Status RouteNetlink::set_src_valid_mark(int ifindex, bool on) {
    std::string what = "Could not set src_valid_mark on " + rtnl::interface_name(ifindex) + ": ";
    MsgPtr msg = link_msg(RTM_SETLINK, ifindex);
    if (!msg) return build_failed(what);
    nl_msg* m = msg.get();
    nlattr* spec = nla_nest_start(m, IFLA_AF_SPEC);
    nlattr* inet = spec ? nla_nest_start(m, AF_INET) : nullptr;
    nlattr* conf = inet ? nla_nest_start(m, IFLA_INET_CONF) : nullptr;
    // inet_set_link_af(): each attribute's type is the IPV4_DEVCONF_* id.
    if (!conf || nla_put_u32(m, IPV4_DEVCONF_SRC_VMARK, on ? 1 : 0) < 0 || nla_nest_end(m, conf) < 0 ||
        nla_nest_end(m, inet) < 0 || nla_nest_end(m, spec) < 0)
        return build_failed(what);
    return impl_->request(msg, what);
}

}  // namespace wb
