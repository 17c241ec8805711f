// The narrow port through which wanbalance changes the kernel: each call is one kernel request
// and answers with the kernel's errno in Status::err and an operator-readable line, e.g.
// "Could not replace default route in table 101 (via 203.0.113.1 dev ether1): Network is unreachable".
// NetlinkKernel (netlink_kernel.hpp) is the real one; the unit tests run on a fake.
#pragma once

#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "rules/nft_diff.hpp"
#include "rules/routing.hpp"

namespace wb {

// An interface's IPv6 settings that decide whether router advertisements are obeyed.
struct Ipv6Conf {
    int accept_ra = 1;   // 0 never, 1 only while not forwarding, 2 even while forwarding
    int forwarding = 0;
    // Whether RAs install their default route on this interface.
    bool accepts_ra() const { return accept_ra == 2 || (accept_ra == 1 && forwarding == 0); }
    bool operator==(const Ipv6Conf&) const = default;
};

struct ReplyCount {
    std::string wan;
    Family family = Family::V4;
    uint64_t packets = 0;
    bool operator==(const ReplyCount&) const = default;
};

class KernelPort {
public:
    virtual ~KernelPort() = default;

    // --- routes and rules: default routes and rules of both families with protocol kRouteProtocol ---
    virtual Expected<std::vector<Route>> dump_own_routes() = 0;  // IPv4 and IPv6 (Route::family)
    virtual Expected<std::vector<Rule>> dump_own_rules() = 0;    // IPv4 and IPv6 (Rule::family)
    // The description of a default route of `family` that is NOT ours in (table, metric), e.g.
    // "default via 203.0.113.1 dev ether1 proto dhcp", or "" when the slot is free: a replace
    // there would take it over.
    virtual Expected<std::string> foreign_default_route(Family family, uint32_t table, uint32_t metric) = 0;
    virtual Status replace_route(const Route& route) = 0;  // create or replace, protocol ours

    // An answer that means "already done" counts as success, for every implementation alike:
    // each of these sends one request through the send_* below and judges the kernel's errno.
    Status delete_route(const Route& route) { return already_done(send_delete_route(route), {ESRCH, ENOENT}); }
    Status add_rule(const Rule& rule) { return already_done(send_add_rule(rule), {EEXIST}); }
    Status delete_rule(const Rule& rule) { return already_done(send_delete_rule(rule), {ENOENT, ESRCH}); }

    // --- nftables: table inet wanbalance ---
    virtual Status apply(const nft::Plan& plan) = 0;  // one transaction, all or nothing
    virtual Expected<bool> table_exists() = 0;

    // --- net.ipv4.conf.IFACE.src_valid_mark ---
    virtual Expected<bool> get_src_valid_mark(int ifindex) = 0;
    virtual Status set_src_valid_mark(int ifindex, bool on) = 0;

    // --- net.ipv6.conf.IFACE.{accept_ra,forwarding}: read only, to warn about RAs ignored ---
    virtual Expected<Ipv6Conf> get_ipv6_conf(int ifindex) = 0;

    // --- nftables: the counters of replies to the WANs' own connections (chain "replies"): per
    // WAN and family, packets of LAN connections that came back in on that WAN. Counters only
    // grow while the chain is not rewritten; a rewrite starts them again at 0. ---
    virtual Expected<std::vector<ReplyCount>> read_reply_counters() = 0;
    // --- conntrack: deletes the entries of `family` whose (ctmark & mask) == mark; how many ---
    virtual Expected<unsigned> delete_by_mark(Family family, uint32_t mark, uint32_t mask) = 0;

protected:
    // The kernel's answer verbatim: ESRCH for a route that is not there, EEXIST for a rule that
    // is (NLM_F_EXCL), ENOENT for a rule that is not.
    // Delete matches table, metric, protocol and nexthops: pass what dump_own_routes() returned.
    virtual Status send_delete_route(const Route& route) = 0;
    virtual Status send_add_rule(const Rule& rule) = 0;
    virtual Status send_delete_rule(const Rule& rule) = 0;

private:
    static Status already_done(Status s, std::initializer_list<int> done) {
        for (int err : done)
            if (s.err == err) return Status::ok();
        return s;
    }
};

}  // namespace wb
