// The daemon's answers to people and scripts: the control socket's commands (status, reload,
// set) as typed requests and replies, and systemd's STATUS= line.
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <set>

#include "base/format.hpp"
#include "base/overloaded.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"
#include "daemon/status_json.hpp"

namespace wb {
Reply Daemon::on_control(const Request& request) {
    return std::visit(Overloaded{
                          [&](const StatusRequest&) -> Reply { return StatusReply{status_json()}; },
                          [&](const ReloadRequest&) -> Reply { return reload(); },
                          [&](const SetRequest& set) -> Reply { return set_override(set); },
                      },
                      request);
}

Reply Daemon::reload() {
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
        return error_reply(lines, kExitConfig);
    }
    changes_ = {};
    Effects fx = dispatch(Reloaded{*loaded.config});
    fx.reconcile = false;  // now, not on the next loop turn: the summary counts what it changed
    perform(fx);
    reconcile();
    std::string summary = changes_.total() == 0 ? "no kernel change"
                                                : std::to_string(changes_.nft_ops) + " nftables changes, " +
                                                      std::to_string(changes_.routes) + " route changes, " +
                                                      std::to_string(changes_.rules) + " rule changes";
    for (const auto& n : fx.notes) summary += "; " + n;
    LogEvent e{kMessageConfigReloaded, "config-reloaded", "", "", "", summary, {}, {}};
    log_event(Level::Notice, e, "configuration reloaded from " + state_.config.path + ": " + summary);
    hooks_->run(state_.config.hooks_dir, {"config-reloaded", "", "", ""});
    sd_notify(0, "READY=1");
    notify_status();
    return ReloadReply{summary};
}

Reply Daemon::set_override(const SetRequest& request) {
    auto mode = parse_override(request.mode);
    if (!mode) return error_reply("mode must be up, down or auto, not " + quoted(request.mode));
    Effects fx = dispatch(OverrideRequested{request.wan, *mode});
    if (fx.error) return error_reply(*fx.error);
    fx.reconcile = false;  // now: the reply says what the kernel does
    perform(fx);
    reconcile();
    auto i = find_wan(state_, request.wan);
    return SetReply{request.wan, std::string(health_name(state_.wans[*i].health))};
}

nlohmann::json Daemon::status_json() {
    watch_->refresh_counters();
    // The probes' own ICMP echoes carry the WAN's mark too; they are not the operator's traffic.
    std::set<uint16_t> probe_ids;
    for (const auto& wan : state_.config.wans)
        if (auto id = prober_->identifier(wan.name)) probe_ids.insert(*id);
    std::map<uint32_t, unsigned> conns;
    if (auto c = kernel_->conntrack().count_by_mark(state_.config.mark_mask, probe_ids)) conns = *c;
    std::vector<WanCounters> counters;
    for (const auto& wan : state_.config.wans) {
        WanCounters c{prober_->stats(wan.name), conns[wan.mark], 0, 0};
        if (const LinkState* link = watch_->snapshot().link(wan.interface)) {
            c.rx_bytes = link->rx_bytes;
            c.tx_bytes = link->tx_bytes;
        }
        counters.push_back(c);
    }
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
    return wb::status_json(state_, counters, uptime, int(getpid()));
}

void Daemon::notify_status() {
    std::string status = "STATUS=" + status_line(state_);
    sd_notify(0, status.c_str());
}

}  // namespace wb
