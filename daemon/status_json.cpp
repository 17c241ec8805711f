#include "daemon/status_json.hpp"

#include <algorithm>
#include <ctime>

#include "base/format.hpp"

namespace wb {
namespace {

nlohmann::json optional_json(const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

bool is_active(const ActiveSet& active, size_t i) {
    return std::find(active.wans.begin(), active.wans.end(), i) != active.wans.end();
}

// A WAN's IPv6 beside its IPv4 (docs/design.md, status JSON): null without gateway6.
nlohmann::json ipv6_json(const WanConfig& wan, const WanState& w, const WanCounters& c, bool active) {
    if (!wan.ipv6) return nullptr;
    const FamilyHealth& h = w.of(Family::V6);
    return {
        {"state", std::string(health_name(h.health))},
        {"since", iso8601(h.since)},
        {"reason", h.reason},
        {"link", link_problem(wan, w.inputs, Family::V6).word},
        {"active", active},
        {"gateway", w.inputs.gateway6 ? nlohmann::json(w.inputs.gateway6->str()) : nlohmann::json(nullptr)},
        {"gateway_auto", !wan.gateway6.has_value()},
        {"rtt_ms", optional_json(c.probe6.rtt_ms)},
        {"loss_pct", c.probe6.loss_pct},
        {"probes_sent", c.probe6.sent},
        {"probes_lost", c.probe6.lost},
        {"transitions", h.transitions},
        {"warning", c.ipv6_warning.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.ipv6_warning)},
    };
}

nlohmann::json wan_json(const WanConfig& wan, const WanState& w, const WanCounters& c, bool active, unsigned total) {
    const FamilyHealth& h = w.of(Family::V4);
    return {
        {"name", wan.name},
        {"interface", wan.interface},
        {"state", std::string(health_name(h.health))},
        {"since", iso8601(h.since)},
        {"reason", h.reason},
        {"link", link_problem(wan, w.inputs).word},
        {"active", active},
        {"override", std::string(override_name(w.override_mode))},
        {"gateway", w.inputs.gateway ? nlohmann::json(w.inputs.gateway->str()) : nlohmann::json(nullptr)},
        {"gateway_auto", !wan.gateway.has_value()},
        {"weight", wan.weight},
        {"tier", wan.tier},
        {"table", wan.table},
        {"mark", hex(wan.mark)},
        {"rtt_ms", optional_json(c.probe.rtt_ms)},
        {"loss_pct", c.probe.loss_pct},
        {"probes_sent", c.probe.sent},
        {"probes_lost", c.probe.lost},
        {"connections", c.connections},
        {"share_pct", total ? double(c.connections) * 100.0 / total : 0.0},
        {"bytes", c.rx_bytes + c.tx_bytes},
        {"rx_bytes", c.rx_bytes},
        {"tx_bytes", c.tx_bytes},
        {"transitions", h.transitions},
    };
}

}  // namespace

std::string iso8601(WallTime t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm;
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

nlohmann::json status_json(const State& state, const std::vector<WanCounters>& counters,
                           std::chrono::seconds uptime, int pid) {
    unsigned total = 0;
    for (const auto& c : counters) total += c.connections;
    const std::vector<WanInputs> inputs = desired_inputs(state);
    ActiveSet active = active_wans(state.config, inputs);
    ActiveSet active6 = active_wans(state.config, inputs, Family::V6);
    nlohmann::json wans = nlohmann::json::array();
    for (size_t i = 0; i < state.config.wans.size(); ++i) {
        WanCounters c = i < counters.size() ? counters[i] : WanCounters{};
        nlohmann::json wan = wan_json(state.config.wans[i], state.wans[i], c, is_active(active, i), total);
        wan["ipv6"] = ipv6_json(state.config.wans[i], state.wans[i], c, is_active(active6, i));
        wans.push_back(std::move(wan));
    }
    bool any_ipv6 = state.config.any_ipv6();
    nlohmann::json all_down6 = any_ipv6 ? nlohmann::json(state.all_down[size_t(Family::V6)]) : nlohmann::json(nullptr);
    return {{"version", WANBALANCE_VERSION},
            {"config", state.config.path},
            {"uptime_s", uptime.count()},
            {"pid", pid},
            {"all_down", state.all_down[size_t(Family::V4)]},
            {"all_down_ipv6", all_down6},
            {"wans", wans}};
}

}  // namespace wb
