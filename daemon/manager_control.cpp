// The daemon's answers to people and scripts: the control socket's commands (status, reload,
// set), the status JSON of DESIGN.md §5, and systemd's STATUS= line.
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <set>

#include "daemon/log.hpp"
#include "daemon/manager.hpp"

namespace wb {
namespace {

std::string iso8601(std::chrono::system_clock::time_point t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm;
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string hex_mark(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%x", v);
    return buf;
}

nlohmann::json error_reply(const std::string& message, int exit_code = 1) {
    return {{"ok", false}, {"error", message}, {"exit_code", exit_code}};
}

}  // namespace

nlohmann::json Manager::on_control(const nlohmann::json& request) {
    std::string command = request.value("command", "");
    if (command == "status") return {{"ok", true}, {"status", status_json()}};
    if (command == "reload") return reload();
    if (command == "set") {
        if (!request.contains("wan") || !request["wan"].is_string() || !request.contains("mode") ||
            !request["mode"].is_string())
            return error_reply("set needs \"wan\" and \"mode\" strings");
        return set_override(request["wan"].get<std::string>(), request["mode"].get<std::string>());
    }
    return error_reply("unknown command \"" + command + "\" (expected status, reload or set)");
}

nlohmann::json Manager::reload() {
    sd_notify(0, "RELOADING=1\nSTATUS=Reloading configuration");
    ConfigResult loaded = load_config(options_.config_path);
    if (!loaded.config) {
        std::string lines;
        for (const auto& e : loaded.errors) {
            log(Level::Error, "reload refused: " + e.format(options_.config_path));
            lines += (lines.empty() ? "" : "\n") + e.format(options_.config_path);
        }
        log(Level::Warning, "the previous configuration keeps running");
        sd_notify(0, "READY=1");
        notify_status();
        return error_reply(lines, 78);
    }
    Config old_config = config_;
    std::vector<WanRuntime> old_wans = wans_;
    config_ = *loaded.config;
    wans_.assign(config_.wans.size(), WanRuntime{});
    std::vector<std::string> notes;
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        wans_[i].since = std::chrono::system_clock::now();
        for (size_t j = 0; j < old_config.wans.size(); ++j) {
            if (old_config.wans[j].name != config_.wans[i].name) continue;
            // Health, override and history survive a reload: a reload never causes a flap.
            wans_[i] = old_wans[j];
            if (old_config.wans[j].interface != config_.wans[i].interface) wans_[i].src_valid_mark_ifindex = 0;
        }
    }
    // Connections marked for a WAN that is gone, or whose mark changed, can no longer be routed
    // the way they started: delete them so they re-establish.
    for (size_t j = 0; j < old_config.wans.size(); ++j) {
        const WanConfig& old = old_config.wans[j];
        bool kept = false;
        for (const auto& w : config_.wans) kept |= w.name == old.name && w.mark == old.mark && w.interface == old.interface;
        if (kept) continue;
        notes.push_back(old.name + " removed or renumbered");
        if (old_config.flush_conntrack) pending_flush_.push_back(old.mark);
    }
    if (old_config.mark_mask != config_.mark_mask) applied_table_.reset();
    last_changes_ = {};
    reconcile();
    std::string summary = last_changes_.nft_ops + last_changes_.routes + last_changes_.rules == 0
                              ? "no kernel change"
                              : std::to_string(last_changes_.nft_ops) + " nftables changes, " +
                                    std::to_string(last_changes_.routes) + " route changes, " +
                                    std::to_string(last_changes_.rules) + " rule changes";
    for (const auto& n : notes) summary += "; " + n;
    LogEvent e{kMessageConfigReloaded, "config-reloaded", "", "", "", summary, {}, {}};
    log_event(Level::Notice, e, "configuration reloaded from " + config_.path + ": " + summary);
    if (hooks_) hooks_->run(config_.hooks_dir, {"config-reloaded", "", "", ""});
    sd_notify(0, "READY=1");
    notify_status();
    return {{"ok", true}, {"summary", summary}};
}

nlohmann::json Manager::set_override(const std::string& wan, const std::string& mode) {
    Override o;
    if (mode == "up")
        o = Override::Up;
    else if (mode == "down")
        o = Override::Down;
    else if (mode == "auto")
        o = Override::Auto;
    else
        return error_reply("mode must be up, down or auto, not \"" + mode + "\"");
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        if (config_.wans[i].name != wan) continue;
        wans_[i].override_mode = o;
        log(Level::Notice, "operator set " + wan + " to " + mode);
        reconcile();
        return {{"ok", true}, {"wan", wan}, {"state", std::string(health_name(wans_[i].health))}};
    }
    std::string names;
    for (const auto& w : config_.wans) names += (names.empty() ? "" : ", ") + w.name;
    return error_reply("no WAN named \"" + wan + "\" (configured: " + names + ")");
}

nlohmann::json Manager::status_json() {
    watch_->refresh_counters();
    // The probes' own ICMP echoes carry the WAN's mark too; they are not the operator's traffic.
    std::set<uint16_t> probe_ids;
    for (const auto& wan : config_.wans)
        if (auto id = prober_->identifier(wan.name)) probe_ids.insert(*id);
    std::map<uint32_t, unsigned> conns;
    if (auto c = conntrack_->count_by_mark(config_.mark_mask, probe_ids)) conns = *c;
    unsigned total = 0;
    for (const auto& wan : config_.wans) total += conns[wan.mark];
    std::vector<WanInputs> inputs;
    for (const auto& w : wans_) inputs.push_back(w.inputs);
    ActiveSet active = active_wans(config_, inputs);
    nlohmann::json wans = nlohmann::json::array();
    for (size_t i = 0; i < config_.wans.size(); ++i) {
        const WanConfig& wan = config_.wans[i];
        const WanRuntime& w = wans_[i];
        const LinkState* link = watch_->snapshot().link(wan.interface);
        ProbeStats st = prober_->stats(wan.name);
        bool is_active = std::find(active.wans.begin(), active.wans.end(), i) != active.wans.end();
        unsigned n = conns[wan.mark];
        nlohmann::json j = {
            {"name", wan.name},
            {"interface", wan.interface},
            {"state", std::string(health_name(w.health))},
            {"since", iso8601(w.since)},
            {"reason", w.reason},
            {"link", link_problem(wan, w.inputs).word},
            {"active", is_active},
            {"override", w.override_mode == Override::Auto ? "auto" : w.override_mode == Override::Up ? "up" : "down"},
            {"gateway", w.inputs.gateway ? nlohmann::json(w.inputs.gateway->str()) : nlohmann::json(nullptr)},
            {"gateway_auto", !wan.gateway.has_value()},
            {"weight", wan.weight},
            {"tier", wan.tier},
            {"table", wan.table},
            {"mark", hex_mark(wan.mark)},
            {"rtt_ms", st.rtt_ms ? nlohmann::json(*st.rtt_ms) : nlohmann::json(nullptr)},
            {"loss_pct", st.loss_pct},
            {"probes_sent", st.sent},
            {"probes_lost", st.lost},
            {"connections", n},
            {"share_pct", total ? double(n) * 100.0 / total : 0.0},
            {"bytes", link ? link->rx_bytes + link->tx_bytes : 0},
            {"rx_bytes", link ? link->rx_bytes : 0},
            {"tx_bytes", link ? link->tx_bytes : 0},
            {"transitions", w.transitions},
        };
        wans.push_back(j);
    }
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
    return {{"version", WANBALANCE_VERSION}, {"config", config_.path}, {"uptime_s", uptime.count()},
            {"pid", int(getpid())},          {"all_down", all_down_},  {"wans", wans}};
}

void Manager::notify_status() {
    unsigned up = 0;
    std::string names;
    for (size_t i = 0; i < wans_.size(); ++i)
        if (wans_[i].health == Health::Up) {
            ++up;
            names += (names.empty() ? ": " : ", ") + config_.wans[i].name;
        }
    std::string status = "STATUS=" + std::to_string(up) + "/" + std::to_string(wans_.size()) + " WANs up" + names;
    sd_notify(0, status.c_str());
}

}  // namespace wb
