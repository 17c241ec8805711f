// The daemon's answers to people and scripts: the control socket's commands (status, reload,
// set, handover, role) as typed requests and replies, and systemd's STATUS= line.
#include <netinet/in.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <set>

#include "base/format.hpp"
#include "base/overloaded.hpp"
#include "config/hooks_trust.hpp"
#include "daemon/daemon.hpp"
#include "daemon/degraded.hpp"
#include "daemon/log.hpp"
#include "daemon/status_json.hpp"

namespace wb {
void Daemon::on_control(const Request& request, Respond respond) {
    auto status = [&] {
        ProbeFlows probe_ids = probe_flows();
        // Counting a big conntrack table takes long: the worker does it while the loop runs on,
        // and the status is made when the count is back, with the counters of that moment.
        counter_->count(state_.config.mark_mask, std::move(probe_ids), rule_classifier(),
                        [this, respond = std::move(respond)](const Expected<ConntrackCounter::Counts>& conns) {
                            try {
                                respond(StatusReply{status_json(conns ? *conns : ConntrackCounter::Counts{})});
                            } catch (const std::exception& e) {
                                respond(error_reply(std::string("internal error: ") + e.what()));
                            }
                        });
    };
    std::visit(Overloaded{
                   [&](const StatusRequest&) { status(); },
                   [&](const ReloadRequest&) { respond(reload()); },
                   [&](const SetRequest& set) { respond(set_override(set)); },
                   [&](const HandoverRequest&) { respond(handover()); },
                   [&](const RoleRequest& role) { respond(set_role(role)); },
                   [&](const ConnectionsRequest& r) { respond(connections(r)); },
               },
               request);
}

Reply Daemon::reload() {
    sd_notify(0, "RELOADING=1\nSTATUS=Reloading configuration");
    ConfigResult loaded = load_config(options_.config_path);
    require_trusted_hooks(loaded, geteuid());
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
    for (const auto& w : loaded.warnings) log(Level::Warning, w.format(options_.config_path));
    changes_ = {};
    config_text_ = loaded.text;
    config_error_.clear();
    Effects fx = dispatch(Reloaded{*loaded.config});
    fx.reconcile = false;  // now, not on the next loop turn: the summary counts what it changed
    perform(fx);
    check_live();
    reconcile();
    std::string summary = changes_.total() == 0 ? "no kernel change"
                                                : counted(changes_.nft_ops, "nftables change") + ", " +
                                                      counted(changes_.routes, "route change") + ", " +
                                                      counted(changes_.rules, "rule change");
    for (const auto& n : fx.notes) summary += "; " + n;
    remember_applied_config();
    report("state directory", store_.save_overrides(overrides_of(state_)));
    LogEvent e{kMessageConfigReloaded, "config-reloaded", "", "", "", summary, {}, {}};
    log_event(Level::Notice, e, "configuration reloaded from " + state_.config.path + ": " + summary);
    hooks_->run(state_.config.hooks_dir, {"config-reloaded", "", "", ""});
    sd_notify(0, "READY=1");
    notify_status();
    if (!degraded_.empty())
        return error_reply("reloaded, but the kernel refused part of the configuration: " +
                           degraded_summary(degraded_) + " (`wanbalancectl status` shows it until the kernel holds it)");
    ReloadReply reply{summary, {}};
    for (const auto& f : live_warnings_) reply.warnings.push_back(f.format(options_.config_path));
    return reply;
}

Reply Daemon::set_override(const SetRequest& request) {
    auto mode = parse_override(request.mode);
    if (!mode) return error_reply("mode must be up, down, drain or auto, not " + quoted(request.mode));
    if (request.timeout_s && *mode != Override::Drain) return error_reply("--timeout goes with drain only");
    Reply reply = set_override_now(request.wan, *mode, "");
    if (std::holds_alternative<ErrorReply>(reply)) return reply;
    drain_timers_.erase(request.wan);  // any set ends the last drain's timeout
    if (request.timeout_s) arm_drain_timer(request.wan, request.timeout_s);
    return reply;
}

Reply Daemon::handover() {
    handover_until_ = std::chrono::steady_clock::now() + kHandoverWindow;
    log(Level::Notice, "handover requested: a stop within " + std::to_string(kHandoverWindow.count()) +
                           " s leaves the data plane in place for the next wanbalanced");
    return HandoverReply{int(kHandoverWindow.count())};
}

// keepalived's notify script tells the role on every VRRP transition; a repeat is no change.
Reply Daemon::set_role(const RoleRequest& request) {
    if (!is_ha_role(request.role))
        return error_reply("role must be primary, backup or fault, not " + quoted(request.role));
    // Without the pair's guard a takeover resets the flows: say so rather than play along.
    if (!state_.config.ha_pair)
        return error_reply("not one of an HA pair: " + state_.config.path + " does not set \"ha_pair\": true");
    if (request.role == role_) return RoleReply{role_};
    std::string was = role_.empty() ? "none" : role_;
    role_ = request.role;
    report("state directory", store_.save_role(role_));
    LogEvent e{kMessageRoleChanged, "role-changed", "", "", role_, "was " + was, {}, {}};
    log_event(Level::Notice, e, "HA role is now " + role_ + " (was " + was + ")");
    notify_status();
    return RoleReply{role_};
}

// Outside a pair (a reload may leave one) there is no role to show, whatever was told before.
std::string Daemon::shown_role() const { return state_.config.ha_pair ? role_ : std::string(); }

void Daemon::remember_applied_config() {
    if (sync_->table_applied() && !config_text_.empty())
        report("state directory", store_.save_last_config(config_text_));
}

// Which policy rule each marked connection matches, for status: the conntrack worker calls it
// with the connection's original direction. Connections that came in on a WAN (to one of the
// WANs' own addresses) are no rule's. Conntrack does not keep the input interface: a rule's
// `iif` is taken as matching.
ConnClassifier Daemon::rule_classifier() const {
    if (state_.config.rules.empty()) return {};
    auto config = std::make_shared<const Config>(state_.config);
    auto own = std::make_shared<std::set<IpAddr>>();
    for (const auto& wan : state_.config.wans)
        if (const LinkState* link = watch_->snapshot().link(wan.interface)) {
            own->insert(link->addresses.begin(), link->addresses.end());
            own->insert(link->addresses6.begin(), link->addresses6.end());
        }
    return [config, own](const PacketKey& original) -> std::optional<size_t> {
        if (own->count(original.dst)) return std::nullopt;
        return first_match(*config, original);
    };
}

nlohmann::json Daemon::status_json(const ConntrackCounter::Counts& connections) {
    watch_->refresh_counters();
    std::vector<WanCounters> counters;
    for (const auto& wan : state_.config.wans) {
        auto n = connections.by_mark.find(wan.mark);
        WanCounters c{prober_->stats({wan.name, Family::V4}), prober_->stats({wan.name, Family::V6}), {},
                      n == connections.by_mark.end() ? 0 : n->second, 0, 0};
        if (auto w = ra_warnings_.find(wan.name); w != ra_warnings_.end()) c.ipv6_warning = w->second;
        if (auto d = degraded_.find(wan.name); d != degraded_.end()) c.degraded = d->second;
        if (const LinkState* link = watch_->snapshot().link(wan.interface)) {
            c.rx_bytes = link->rx_bytes;
            c.tx_bytes = link->tx_bytes;
        }
        counters.push_back(c);
    }
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
    nlohmann::json status =
        wb::status_json(state_, counters, uptime, int(getpid()), RuleCounters{rule_sends_, connections.by_group});
    status["config_error"] = config_error_.empty() ? nlohmann::json(nullptr) : nlohmann::json(config_error_);
    status["role"] = shown_role().empty() ? nlohmann::json(nullptr) : nlohmann::json(shown_role());
    nlohmann::json warnings = nlohmann::json::array();
    for (const auto& f : live_warnings_) warnings.push_back({{"path", f.path}, {"message", f.message}});
    status["warnings"] = std::move(warnings);
    return status;
}

void Daemon::notify_status() {
    // "2/2 WANs up" is not said of WANs the kernel does not hold as asked.
    std::string degraded;
    for (const auto& [wan, reason] : degraded_) degraded += (degraded.empty() ? "" : ", ") + wan;
    std::string status = "STATUS=" + (degraded.empty() ? "" : "DEGRADED (the kernel refused part of the "
                                                              "configuration): " + degraded + "; ") +
                         status_line(state_);
    if (!shown_role().empty()) status += "; HA role " + shown_role();
    if (!config_error_.empty()) status += "; CONFIG FILE INVALID, running the last applied configuration";
    sd_notify(0, status.c_str());
}

}  // namespace wb
