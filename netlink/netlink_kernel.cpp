#include "netlink/netlink_kernel.hpp"

#include <cerrno>

#include "netlink/nft_counters.hpp"
#include "rules/desired.hpp"

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

Status NetlinkKernel::apply(const nft::Plan& plan) {
    Status s = nft_->apply(plan);
    if (s) note_reply_chains(plan);
    return s;
}
Expected<bool> NetlinkKernel::table_exists() { return nft_->table_exists(); }

Expected<bool> NetlinkKernel::get_src_valid_mark(int ifindex) { return rtnl_->get_src_valid_mark(ifindex); }
Status NetlinkKernel::set_src_valid_mark(int ifindex, bool on) { return rtnl_->set_src_valid_mark(ifindex, on); }

Expected<Ipv6Conf> NetlinkKernel::get_ipv6_conf(int ifindex) { return rtnl_->get_ipv6_conf(ifindex); }

// Per WAN: its chain's dump; before this port committed any plan (nothing known), the whole
// table's, skipping other chains' rules unparsed. Measured in tests/kernel/test_reply_counters.cpp.
Expected<std::vector<ReplyCount>> NetlinkKernel::read_reply_counters() {
    const std::string prefix(kReplyChainPrefix);
    std::vector<nft::RuleCounter> counters;
    auto read = [&](const std::string& chain) {
        auto got = nft::read_rule_counters(*nft_, nft::kTableName, chain, prefix);
        if (got) counters.insert(counters.end(), got->begin(), got->end());
        return got ? Status::ok() : got.error();
    };
    if (!reply_chains_) {
        if (Status s = read(""); !s) return s;
    } else {
        for (const auto& chain : *reply_chains_)
            if (Status s = read(chain); !s) return s;
    }
    std::vector<ReplyCount> out;
    for (const auto& c : counters) {
        std::optional<Family> family;
        for (Family f : kFamilies)
            if (c.comment == reply_counter_comment(f)) family = f;
        if (family && c.chain.size() > prefix.size())
            out.push_back(ReplyCount{c.chain.substr(prefix.size()), *family, c.packets});
    }
    return out;
}

void NetlinkKernel::note_reply_chains(const nft::Plan& plan) {
    auto& chains = reply_chains_;
    auto is_reply_chain = [](const std::string& name) { return name.starts_with(kReplyChainPrefix); };
    for (const auto& op : plan.ops) {
        if (const auto* whole = std::get_if<nft::OpReplaceTable>(&op)) {
            chains.emplace();
            for (const auto& chain : whole->table.chains)
                if (is_reply_chain(chain.name)) chains->insert(chain.name);
        } else if (std::holds_alternative<nft::OpDeleteTable>(op)) {
            chains.emplace();
        } else if (const auto* add = std::get_if<nft::OpAddChain>(&op); add && chains && is_reply_chain(add->chain.name)) {
            chains->insert(add->chain.name);
        } else if (const auto* del = std::get_if<nft::OpDeleteChain>(&op); del && chains) {
            chains->erase(del->name);
        }
    }
}

Expected<unsigned> NetlinkKernel::delete_by_mark(Family family, uint32_t mark, uint32_t mask) {
    return conntrack_->delete_by_mark(family, mark, mask);
}

}  // namespace wb
