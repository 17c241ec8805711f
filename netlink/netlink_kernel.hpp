// The real KernelPort: nftables over NftSocket, routes, rules and sysctls over RouteNetlink,
// conntrack over Conntrack, each opened in the current network namespace.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "base/status.hpp"
#include "netlink/conntrack.hpp"
#include "netlink/kernel_port.hpp"
#include "netlink/nft_apply.hpp"
#include "netlink/route_netlink.hpp"

namespace wb {

// The status with, when the kernel said EPERM, the hint "(wanbalanced needs CAP_NET_ADMIN)".
Status needs_net_admin(Status status);

class NetlinkKernel final : public KernelPort {
public:
    // Opens the three sockets; the first failure, as the daemon prints it, e.g. "Could not open
    // a netfilter netlink socket: Operation not permitted (wanbalanced needs CAP_NET_ADMIN)".
    static Expected<std::unique_ptr<NetlinkKernel>> open();
    ~NetlinkKernel() override;
    NetlinkKernel(const NetlinkKernel&) = delete;
    NetlinkKernel& operator=(const NetlinkKernel&) = delete;

    // The sockets themselves, for what is not a port call: the nftables port id (the monitor
    // tells our own changes by it), conntrack counts for status, request counters for tests.
    nft::NftSocket& nft() { return *nft_; }
    RouteNetlink& route_netlink() { return *rtnl_; }
    Conntrack& conntrack() { return *conntrack_; }

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
    NetlinkKernel() = default;
    Status send_delete_route(const Route& route) override;
    Status send_add_rule(const Rule& rule) override;
    Status send_delete_rule(const Rule& rule) override;

    // The replies_<WAN> chains the table holds, as far as the plans this port committed tell
    // (nullopt: none committed yet). Each is dumped alone: a dump of the whole table costs
    // ~20 ms with 1000 sticky policy rules in it, the two WANs' chains 0.02-0.3 ms.
    void note_reply_chains(const nft::Plan& plan);
    std::optional<std::set<std::string>> reply_chains_;

    std::unique_ptr<nft::NftSocket> nft_;
    std::unique_ptr<RouteNetlink> rtnl_;
    std::unique_ptr<Conntrack> conntrack_;
};

}  // namespace wb
