#include "daemon/live_findings.hpp"

#include <algorithm>

namespace wb {
namespace {

std::string path_of(size_t i, const char* key) { return "/wans/" + std::to_string(i) + (*key ? "/" : "") + key; }

const char* gateway_key(Family f) { return f == Family::V4 ? "gateway" : "gateway6"; }

bool has_gateway_of_its_own(const WanConfig& wan, Family f) {
    return f == Family::V4 ? wan.gateway.has_value() : wan.gateway6.has_value();
}

// "203.0.113.2/24, 198.51.100.7 peer 198.51.100.1": the link's addresses of one family.
std::string subnets_text(const LinkView& link, Family f) {
    std::string out;
    for (const AddressView& a : link.addresses) {
        if (family_of(a.address) != f) continue;
        if (f == Family::V6 && std::get<Ipv6>(a.address).link_local()) continue;
        out += (out.empty() ? "" : ", ") + str(a.address) +
               (a.peer ? " peer " + str(*a.peer) : "/" + std::to_string(a.prefix_len));
    }
    return out;
}

bool on_link(const LinkView& link, const IpAddr& gateway) {
    if (family_of(gateway) == Family::V6 && std::get<Ipv6>(gateway).link_local()) return true;
    return address_toward(link, gateway).has_value();
}

bool has_address(const LinkView& link, Family f) {
    return std::any_of(link.addresses.begin(), link.addresses.end(), [&](const AddressView& a) {
        return family_of(a.address) == f && !(f == Family::V6 && std::get<Ipv6>(a.address).link_local());
    });
}

void check_gateway(const WanConfig& wan, size_t i, const LinkView& link, const SystemView& view, Family f,
                   std::vector<ConfigError>& out) {
    const std::string key = path_of(i, gateway_key(f));
    auto gateway = live_gateway(wan, view, f);
    if (!gateway) {
        if (!link.point_to_point)
            out.push_back({key, "\"auto\" but " + wan.interface + " has no " +
                                    (f == Family::V4 ? "default route to take the gateway from (a DHCP client puts one there)"
                                                     : "IPv6 default route to take the gateway from (router advertisements put one there)")});
        return;
    }
    if (has_gateway_of_its_own(wan, f) && has_address(link, f) && !on_link(link, *gateway)) {
        out.push_back({key, str(*gateway) + " is outside " + wan.interface + "'s subnets (" + subnets_text(link, f) +
                                ") and is not its point-to-point peer: the kernel refuses a route via it"});
        return;  // nobody on the link would answer for it: no word about ARP
    }
    auto answer = view.neighbours.find({wan.interface, *gateway});
    if (answer != view.neighbours.end() && answer->second == NeighbourAnswer::Silent)
        out.push_back({key, str(*gateway) + " does not answer " +
                                (f == Family::V4 ? "ARP" : "neighbour solicitations") + " on " + wan.interface});
}

void check_wan(const WanConfig& wan, size_t i, const SystemView& view, std::vector<ConfigError>& out) {
    auto it = view.links.find(wan.interface);
    if (it == view.links.end()) {
        out.push_back({path_of(i, "interface"), "there is no interface " + wan.interface + " on this system"});
        return;
    }
    const LinkView& link = it->second;
    if (!link.admin_up) out.push_back({path_of(i, "interface"), wan.interface + " is administratively down"});
    if (!has_address(link, Family::V4)) out.push_back({path_of(i, "interface"), wan.interface + " has no IPv4 address"});
    check_gateway(wan, i, link, view, Family::V4, out);
    if (wan.ipv6) check_gateway(wan, i, link, view, Family::V6, out);
}

// Default routes in main are shadowed by the rules wanbalanced puts in front of them. One on a
// WAN whose gateway is "auto" is where that gateway comes from, and says nothing new.
void check_shadowed(const Config& config, const SystemView& view, std::vector<ConfigError>& out) {
    for (const ForeignDefault& d : view.main_defaults) {
        if (d.family == Family::V6 && !config.any_ipv6()) continue;  // no IPv6 rules: nothing shadowed
        auto wan = std::find_if(config.wans.begin(), config.wans.end(),
                                [&](const WanConfig& w) { return w.interface == d.interface; });
        const std::string left_alone = " is not wanbalance's and is left alone, but wanbalanced's rules come first "
                                       "while it runs: ";
        if (wan == config.wans.end()) {
            out.push_back({"/wans", d.description + left_alone +
                                        (d.interface.empty() ? std::string("its device") : d.interface) +
                                        " is no WAN, so nothing leaves by it (it applies again when wanbalanced stops)"});
            continue;
        }
        if (d.family == Family::V6 && !wan->ipv6) continue;
        if (!has_gateway_of_its_own(*wan, d.family)) continue;
        size_t i = size_t(wan - config.wans.begin());
        out.push_back({path_of(i, gateway_key(d.family)),
                       d.description + left_alone + wan->name + " leaves by its configured gateway instead"});
    }
}

}  // namespace

std::optional<IpAddr> address_toward(const LinkView& link, const IpAddr& gateway) {
    for (const AddressView& a : link.addresses)
        if (a.peer ? *a.peer == gateway : in_prefix(a.address, a.prefix_len, gateway)) return a.address;
    return std::nullopt;
}

std::optional<IpAddr> live_gateway(const WanConfig& wan, const SystemView& view, Family family) {
    if (family == Family::V4 && wan.gateway) return IpAddr{*wan.gateway};
    if (family == Family::V6 && wan.gateway6) return IpAddr{*wan.gateway6};
    for (const ForeignDefault& d : view.main_defaults)  // lowest metric first
        if (d.family == family && d.interface == wan.interface && d.gateway) return d.gateway;
    return std::nullopt;
}

std::vector<ConfigError> live_findings(const Config& config, const SystemView& view) {
    std::vector<ConfigError> out;
    for (size_t i = 0; i < config.wans.size(); ++i) check_wan(config.wans[i], i, view, out);
    check_shadowed(config, view, out);
    if (view.config_unreadable) out.push_back({"", *view.config_unreadable});
    return out;
}

}  // namespace wb
