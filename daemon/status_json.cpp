#include "daemon/status_json.hpp"

#include <algorithm>
#include <ctime>

#include "base/format.hpp"

namespace wb {
namespace {

nlohmann::json optional_json(const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

// Each probe target of one family: what it is, how it answers, when it last did.
nlohmann::json targets_json(const ProbeStats& stats) {
    nlohmann::json out = nlohmann::json::array();
    auto ms = [](std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1000.0; };
    for (const TargetStats& t : stats.targets) {
        std::optional<double> last;
        if (t.last_answer_age) last = ms(*t.last_answer_age) / 1000.0;
        out.push_back({
            {"target", describe(t.target)},
            {"kind", std::string(probe_kind_name(t.target.kind))},
            {"address", str(t.target.address)},
            {"rtt_ms", optional_json(t.srtt_ms)},
            {"rttvar_ms", optional_json(t.rttvar_ms)},
            {"deadline_ms", ms(t.deadline)},
            {"loss_pct", t.loss_pct},
            {"sent", t.sent},
            {"lost", t.lost},
            {"last_answer_s", optional_json(last)},
        });
    }
    return out;
}

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
        {"confirming", c.probe6.suspect},
        {"targets", targets_json(c.probe6)},
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
        {"confirming", c.probe.suspect},
        {"targets", targets_json(c.probe)},
        {"connections", c.connections},
        {"share_pct", total ? double(c.connections) * 100.0 / total : 0.0},
        {"bytes", c.rx_bytes + c.tx_bytes},
        {"rx_bytes", c.rx_bytes},
        {"tx_bytes", c.tx_bytes},
        {"transitions", h.transitions},
        {"degraded", c.degraded.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.degraded)},
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

namespace {

// Where a rule sends its new connections in one family.
nlohmann::json send_json(const Config& config, const RuleSend& send) {
    nlohmann::json wans = nlohmann::json::array();
    for (size_t i : send.wans)
        if (i < config.wans.size()) wans.push_back(config.wans[i].name);
    std::string via = send.last_resort ? "last_resort" : "policy";
    if (send.kind == RuleSend::Kind::Main) via = "main";
    if (send.kind == RuleSend::Kind::Unreachable) via = "unreachable";
    nlohmann::json wan = wans.size() == 1 ? wans[0] : nlohmann::json(nullptr);
    return {{"wan", wan}, {"wans", wans}, {"via", via}};
}

}  // namespace

nlohmann::json rules_json(const Config& config, const RuleCounters& rules) {
    nlohmann::json out = nlohmann::json::array();
    const auto& v4 = rules.sends[size_t(Family::V4)];
    const auto& v6 = rules.sends[size_t(Family::V6)];
    for (size_t i = 0; i < config.rules.size(); ++i) {
        const RuleConfig& rule = config.rules[i];
        const bool has4 = i < v4.size() && v4[i].kind != RuleSend::Kind::None;
        const bool has6 = i < v6.size() && v6[i].kind != RuleSend::Kind::None;
        // The top level is IPv4's, or IPv6's for a rule that only matches IPv6.
        nlohmann::json entry = {{"name", rule.name}, {"policy", rule.target_name(config.policies)}};
        nlohmann::json main = has4 ? send_json(config, v4[i]) : has6 ? send_json(config, v6[i])
                                                                      : send_json(config, RuleSend{});
        entry.update(main);
        entry["family"] = has4 ? "ipv4" : has6 ? "ipv6" : "none";
        entry["sticky"] = std::string(sticky_name(rule.sticky));
        auto n = rules.connections.find(i);
        entry["connections"] = n == rules.connections.end() ? 0u : n->second;
        entry["ipv6"] = has4 && has6 ? send_json(config, v6[i]) : nlohmann::json(nullptr);
        out.push_back(std::move(entry));
    }
    return out;
}

nlohmann::json status_json(const State& state, const std::vector<WanCounters>& counters,
                           std::chrono::seconds uptime, int pid, const RuleCounters& rules) {
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
            {"wans", wans},
            {"rules", rules_json(state.config, rules)}};
}

}  // namespace wb
