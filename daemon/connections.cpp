// `wanbalancectl connections`: the connections wanbalance marked, by WAN name, with the policy
// rule that chose the WAN (of those that match one), their state and bytes. It answers "which
// WAN is this host using" in one command (docs/design.md, Connections).
#include <netinet/in.h>

#include "base/format.hpp"
#include "daemon/daemon.hpp"
#include "netlink/conntrack.hpp"

namespace wb {

// The probes carry the WAN's mark too; they are not the operator's traffic. Echo flows to an
// ICMP target are left out whatever their identifier: a previous run's probes linger in
// conntrack for half a minute with the identifiers of that run.
ProbeFlows Daemon::probe_flows() const {
    ProbeFlows flows;
    for (const auto& wan : state_.config.wans)
        for (Family f : kFamilies) {
            if (auto id = prober_->identifier({wan.name, f})) flows.icmp_ids.insert(*id);
            for (const ProbeTarget& t : prober_->targets({wan.name, f})) {
                if (t.kind == ProbeKind::Icmp) flows.icmp_targets.insert(t.address);
                else flows.sockets.insert({t.kind == ProbeKind::Tcp ? IPPROTO_TCP : IPPROTO_UDP, t.address, t.port});
            }
        }
    return flows;
}

namespace {

std::string proto_name(uint8_t proto) {
    switch (proto) {
        case IPPROTO_TCP: return "tcp";
        case IPPROTO_UDP: return "udp";
        case IPPROTO_ICMP: return "icmp";
        case IPPROTO_ICMPV6: return "icmpv6";
        case IPPROTO_SCTP: return "sctp";
        default: return std::to_string(proto);
    }
}

}  // namespace

Reply Daemon::connections(const ConnectionsRequest& request) const {
    std::optional<IpAddr> src;
    if (!request.src.empty()) {
        src = parse_ip(request.src);
        if (!src) return error_reply(quoted(request.src) + " is not an IPv4 or IPv6 address");
    }
    const WanConfig* only = nullptr;
    if (!request.wan.empty()) {
        for (const auto& wan : state_.config.wans)
            if (wan.name == request.wan) only = &wan;
        if (!only) return error_reply("no WAN named " + quoted(request.wan));
    }
    auto ct = Conntrack::open();
    if (!ct) return error_reply(ct.error().message);
    auto entries = (*ct)->marked(state_.config.mark_mask, probe_flows());
    if (!entries) return error_reply(entries.error().message);
    ConnClassifier rule_of = rule_classifier();
    nlohmann::json out = nlohmann::json::array();
    for (const CtEntry& e : *entries) {
        const PacketKey& k = e.original;
        if (src && k.src != *src) continue;
        const uint32_t mark = e.mark & state_.config.mark_mask;
        const WanConfig* wan = nullptr;
        for (const auto& w : state_.config.wans)
            if (w.mark == mark) wan = &w;
        if (only && wan != only) continue;
        nlohmann::json rule = nullptr;
        if (rule_of)
            if (auto i = rule_of(k)) rule = state_.config.rules[*i].name;
        out.push_back({{"family", k.family == Family::V4 ? "ipv4" : "ipv6"},
                       {"proto", proto_name(k.proto)},
                       {"src", str(k.src)},
                       {"sport", k.sport},
                       {"dst", str(k.dst)},
                       {"dport", k.dport},
                       {"wan", wan ? nlohmann::json(wan->name) : nlohmann::json(nullptr)},
                       {"mark", hex(mark)},
                       {"rule", rule},
                       {"state", tcp_state_name(e.tcp_state)},
                       {"bytes", e.bytes ? nlohmann::json(*e.bytes) : nlohmann::json(nullptr)}});
    }
    return ConnectionsReply{out};
}

}  // namespace wb
