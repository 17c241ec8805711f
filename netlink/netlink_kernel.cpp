#include "netlink/netlink_kernel.hpp"

#include <cerrno>

namespace wb {

Status needs_net_admin(Status status) {
    if (status.err == EPERM) status.message += " (wanbalanced needs CAP_NET_ADMIN)";
    return status;
}

Expected<std::unique_ptr<NetlinkKernel>> NetlinkKernel::open() {
    auto nft = nft::NftSocket::open();
    if (!nft) return needs_net_admin(nft.error());
    auto rtnl = RouteNetlink::open();
    if (!rtnl) return needs_net_admin(rtnl.error());
    auto ct = Conntrack::open();
    if (!ct) return needs_net_admin(ct.error());
    std::unique_ptr<NetlinkKernel> kernel(new NetlinkKernel);
    kernel->nft_ = std::move(*nft);
    kernel->rtnl_ = std::move(*rtnl);
    kernel->conntrack_ = std::move(*ct);
    return kernel;
}

NetlinkKernel::~NetlinkKernel() = default;

Expected<std::vector<Route>> NetlinkKernel::dump_own_routes() { return rtnl_->dump_own_routes(); }
Expected<std::vector<Rule>> NetlinkKernel::dump_own_rules() { return rtnl_->dump_own_rules(); }
Expected<std::string> NetlinkKernel::foreign_default_route(Family family, uint32_t table, uint32_t metric) {
    return rtnl_->foreign_default_route(family, table, metric);
}
Status NetlinkKernel::replace_route(const Route& route) { return rtnl_->replace_route(route); }
Status NetlinkKernel::send_delete_route(const Route& route) { return rtnl_->delete_route(route); }
Status NetlinkKernel::send_add_rule(const Rule& rule) { return rtnl_->add_rule(rule); }
Status NetlinkKernel::send_delete_rule(const Rule& rule) { return rtnl_->delete_rule(rule); }

Status NetlinkKernel::apply(const nft::Plan& plan) { return nft_->apply(plan); }
Expected<bool> NetlinkKernel::table_exists() { return nft_->table_exists(); }

Expected<bool> NetlinkKernel::get_src_valid_mark(int ifindex) { return rtnl_->get_src_valid_mark(ifindex); }
Status NetlinkKernel::set_src_valid_mark(int ifindex, bool on) { return rtnl_->set_src_valid_mark(ifindex, on); }

Expected<Ipv6Conf> NetlinkKernel::get_ipv6_conf(int ifindex) { return rtnl_->get_ipv6_conf(ifindex); }

// TODO(detect): reads chain "replies" (helper H2).
Expected<std::vector<ReplyCount>> NetlinkKernel::read_reply_counters() { return std::vector<ReplyCount>{}; }

Expected<unsigned> NetlinkKernel::delete_by_mark(Family family, uint32_t mark, uint32_t mask) {
    return conntrack_->delete_by_mark(family, mark, mask);
}

}  // namespace wb
