#include "daemon/status_json.hpp"

#include <algorithm>
#include <ctime>

#include "base/format.hpp"

namespace wb {
namespace {

nlohmann::json optional_json(const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

nlohmann::json wan_json(const WanConfig& wan, const WanState& w, const WanCounters& c, bool active, unsigned total) {
    return {
        {"name", wan.name},
        {"interface", wan.interface},
        {"state", std::string(health_name(w.health))},
        {"since", iso8601(w.since)},
        {"reason", w.reason},
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
        {"transitions", w.transitions},
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
    ActiveSet active = active_wans(state.config, desired_inputs(state));
    nlohmann::json wans = nlohmann::json::array();
    for (size_t i = 0; i < state.config.wans.size(); ++i) {
        bool is_active = std::find(active.wans.begin(), active.wans.end(), i) != active.wans.end();
        WanCounters c = i < counters.size() ? counters[i] : WanCounters{};
        wans.push_back(wan_json(state.config.wans[i], state.wans[i], c, is_active, total));
    }
    return {{"version", WANBALANCE_VERSION}, {"config", state.config.path}, {"uptime_s", uptime.count()},
            {"pid", pid},                    {"all_down", state.all_down},  {"wans", wans}};
}

}  // namespace wb
