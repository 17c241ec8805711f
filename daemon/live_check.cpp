#include "daemon/live_check.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "base/exit_codes.hpp"
#include "base/format.hpp"
#include "daemon/live_findings.hpp"
#include "netlink/system_view.hpp"
#include "probe/neighbour_solicit.hpp"

namespace wb {
namespace {

std::string mode_text(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", unsigned(mode & 07777));
    return buf;
}

// The address of `link` to send an ARP request from: one in the gateway's subnet, else any.
std::optional<IpAddr> source_for(const LinkView& link, const IpAddr& gateway) {
    if (auto toward = address_toward(link, gateway)) return toward;
    for (const AddressView& a : link.addresses)
        if (family_of(a.address) == family_of(gateway)) return a.address;
    return std::nullopt;
}

// Each gateway of a link that is up, asked on the wire (solicit) or looked up in the kernel's
// neighbour table. A solicitation that could not be sent leaves the answer unknown, and says why.
void ask_gateways(const Config& config, bool solicit, SystemView& view, std::vector<ConfigError>& notes) {
    for (size_t i = 0; i < config.wans.size(); ++i) {
        const WanConfig& wan = config.wans[i];
        auto link = view.links.find(wan.interface);
        if (link == view.links.end() || !link->second.admin_up || link->second.point_to_point) continue;
        for (Family f : kFamilies) {
            if (f == Family::V6 && !wan.ipv6) continue;
            auto gateway = live_gateway(wan, view, f);
            if (!gateway) continue;
            Expected<NeighbourAnswer> answer = NeighbourAnswer::Unknown;
            if (solicit) {
                auto answered = solicit_neighbour({wan.interface, link->second.ifindex, *gateway,
                                                   source_for(link->second, *gateway)});
                if (answered) answer = *answered ? NeighbourAnswer::Answers : NeighbourAnswer::Silent;
                else notes.push_back({"/wans/" + std::to_string(i) + (f == Family::V4 ? "/gateway" : "/gateway6"),
                                      "not asked whether " + str(*gateway) + " answers: " + answered.error().message +
                                          (answered.error().err == EPERM ? " (run it as root)" : "")});
            } else {
                answer = neighbour_state(link->second.ifindex, *gateway);
            }
            if (answer) view.neighbours[{wan.interface, *gateway}] = *answer;
        }
    }
}

}  // namespace

std::optional<std::string> unreadable_by_service(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path file = fs::absolute(path, ec);
    if (ec) return std::nullopt;
    struct stat st {};
    if (stat(file.c_str(), &st) != 0) return std::nullopt;
    if (!(st.st_mode & S_IROTH))
        return "mode " + mode_text(st.st_mode) + ": the service's user (wanbalance.service runs as a dynamic user, "
               "neither root nor the owner) cannot read it; chmod 0644 " + file.string();
    for (fs::path dir = file.parent_path(); !dir.empty(); dir = dir.parent_path()) {
        if (stat(dir.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH))
            return "directory " + dir.string() + " has mode " + mode_text(st.st_mode) +
                   ": the service's user (a dynamic user) cannot reach the file; chmod o+x " + dir.string();
        if (dir == dir.root_path()) break;
    }
    return std::nullopt;
}

Expected<std::vector<ConfigError>> live_check(const Config& config, const std::string& path, bool solicit) {
    auto view = read_system_view();
    if (!view) return view.error();
    std::vector<ConfigError> notes;
    ask_gateways(config, solicit, *view, notes);
    view->config_unreadable = unreadable_by_service(path);
    std::vector<ConfigError> findings = live_findings(config, *view);
    findings.insert(findings.end(), notes.begin(), notes.end());
    return findings;
}

int run_live_check(const std::string& path) {
    ConfigResult loaded = load_config(path);  // its own warnings are `check`'s to print
    if (!loaded.config) {
        for (const auto& e : loaded.errors) std::cerr << e.format(path) << "\n";
        return kExitConfig;
    }
    auto findings = live_check(*loaded.config, path, true);
    if (!findings) {
        std::cerr << "wanbalanced: " << findings.error().message << "\n";
        return kExitFailure;
    }
    for (const auto& f : *findings) std::cerr << "warning: " << f.format(path) << "\n";
    std::cout << path << ": live check: "
              << (findings->empty() ? std::string("no findings") : counted(findings->size(), "warning"))
              << " (interfaces, subnets, gateways, default routes, file access)\n";
    return kExitOk;
}

}  // namespace wb
