// A kernel in memory behind the KernelPort, for unit tests without root: the kernel's own
// answers (EEXIST, ENOENT, ESRCH …) with the real port's messages, a way to make any call fail
// with a chosen errno, and a count of the calls made.
//  - routes: one per (family, table, metric), as fib_table_insert() and fib6_add_rt2node() key a
//    default route; a replace takes the slot whoever held it, a multipath one whole (measured
//    for IPv6 on 6.18); a route of another protocol may hold one (add_foreign_route); a nexthop
//    via an interface that is down is refused with ENETDOWN ("Nexthop device is not up");
//  - links: every ifindex > 0 exists and is up unless set_link_up(ifindex, false);
//  - rules: an identical rule is refused (EEXIST, NLM_F_EXCL); kept in priority order, a new
//    rule after the others of its priority; each family has its own list;
//  - nftables: a plan applies as one transaction (all or nothing) to a model of the table,
//    with the kernel's ENOENT/EEXIST/EBUSY for objects that are missing, clash or are still
//    referred to (by map elements, rules' lookups and gotos), EEXIST for overlapping interval
//    elements, EINVAL for a verdict lookup in a plain set, EOPNOTSUPP for "update" on a set
//    that is not dynamic; elements are kept in the order they were added (as pipapo lists them);
//  - dumps return only what has protocol wanbalance, in (table, metric) or priority order;
//  - reply counters: one per rule of a chain replies_<WAN> holding a counter (the family from
//    its comment), at the packets a test set, 0 until then, then any other a test set; a
//    transaction that writes the chain's rules starts them again at 0, as the kernel's do.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "netlink/kernel_port.hpp"
#include "rules/nft.hpp"

namespace wb::test {

class FakeKernel final : public KernelPort {
public:
    // Every kind of request, to inject failures and count calls.
    enum class Op {
        DumpRoutes, DumpRules, ForeignRoute, ReplaceRoute, DeleteRoute, AddRule, DeleteRule,
        NftApply, TableExists, GetSrcValidMark, SetSrcValidMark, GetIpv6Conf, DeleteConntrack, ReadReplyCounters
    };

    // --- error injection and counters ---
    // The next call of `op` does nothing and answers `err` (queued: two calls fail two calls).
    void fail_next(Op op, int err) { failures_[op].push_back(err); }
    unsigned calls(Op op) const;
    unsigned total_calls() const;
    // Calls that change something (replace, delete, add, nft apply, set, conntrack delete).
    unsigned writes() const;
    void reset_counters() { calls_.clear(); }
    // The errno of the last answer this kernel gave (0: success), before KernelPort judged it.
    int last_errno() const { return last_errno_; }

    // --- the kernel's state, to set up and to check ---
    void add_foreign_route(const Route& route, const std::string& protocol = "dhcp");
    void add_foreign_rule(const Rule& rule);
    std::vector<Route> own_routes() const;   // as dump_own_routes() would give them
    std::vector<Rule> own_rules() const;
    size_t route_count() const { return routes_.size(); }  // foreign ones included
    size_t rule_count() const { return rules_.size(); }
    const std::optional<nft::Table>& table() const { return table_; }
    size_t element_count() const;  // over every set of the table
    // The packet path adding entries to a (dynamic) set; false when there is no such set.
    bool add_set_entries(const std::string& set, const std::vector<nft::Element>& entries);
    unsigned nft_ops_applied() const { return nft_ops_; }  // ops of every committed plan
    bool src_valid_mark(int ifindex) const;
    void set_link_up(int ifindex, bool up) { link_down_[ifindex] = !up; }
    void set_ipv6_conf(int ifindex, Ipv6Conf conf) { ipv6_conf_[ifindex] = conf; }
    // Connections of `family` with this ctmark, for delete_by_mark().
    void add_connections(uint32_t mark, unsigned count, Family family = Family::V4) {
        connections_[{family, mark}] += count;
    }
    // The packet path counting replies of `wan` (its name), for read_reply_counters().
    void set_reply_count(const std::string& wan, Family family, uint64_t packets) {
        reply_counts_[{wan, family}] = packets;
    }
    unsigned connections() const;  // of both families
    unsigned connections(Family family) const;

    // --- KernelPort ---
    Expected<std::vector<Route>> dump_own_routes() override;
    Expected<std::vector<Rule>> dump_own_rules() override;
    Expected<std::string> foreign_default_route(Family family, uint32_t table, uint32_t metric) override;
    Status replace_route(const Route& route) override;
    Status apply(const nft::Plan& plan) override;
    Expected<bool> table_exists() override;
    Expected<bool> get_src_valid_mark(int ifindex) override;
    Status set_src_valid_mark(int ifindex, bool on) override;
    Expected<Ipv6Conf> get_ipv6_conf(int ifindex) override;
    Expected<std::vector<ReplyCount>> read_reply_counters() override;
    Expected<unsigned> delete_by_mark(Family family, uint32_t mark, uint32_t mask) override;

private:
    Status send_delete_route(const Route& route) override;
    Status send_add_rule(const Rule& rule) override;
    Status send_delete_rule(const Rule& rule) override;

    struct StoredRoute {
        Route route;
        std::string protocol;  // "wanbalance" for ours
    };
    struct StoredRule {
        Rule rule;
        bool ours = true;
    };
    // Counts the call; the injected errno for it, or 0.
    int begin(Op op);
    Status answer(int err, const std::string& what);

    using Slot = std::tuple<Family, uint32_t, uint32_t>;  // (family, table, metric)
    static Slot slot_of(const Route& r) { return {r.family, r.table, r.metric}; }
    std::map<Slot, StoredRoute> routes_;
    std::vector<StoredRule> rules_;                                // in the kernel's order
    std::optional<nft::Table> table_;
    unsigned nft_ops_ = 0;
    std::map<int, bool> src_valid_mark_;
    std::map<int, bool> link_down_;
    std::map<int, Ipv6Conf> ipv6_conf_;
    std::map<std::pair<Family, uint32_t>, unsigned> connections_;  // by (family, ctmark)
    std::map<std::pair<std::string, Family>, uint64_t> reply_counts_;  // by (WAN, family)
    void restart_reply_counts(const nft::Plan& plan);

    std::map<Op, std::deque<int>> failures_;
    std::map<Op, unsigned> calls_;
    int last_errno_ = 0;
};

}  // namespace wb::test
