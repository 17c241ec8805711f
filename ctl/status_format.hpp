// The views of `wanbalancectl status`: the daemon's status object (docs/design.md, Status JSON) as an aligned
// table for people or as Prometheus metrics. Pure functions of the JSON (and the time): unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace wb {

// "12s", "3m12s", "2h3m", "4d2h": the two largest units, for SINCE and the uptime.
std::string format_duration(std::chrono::seconds d);

// "512 B", "1.2 KiB", "3.4 MiB", "5.0 GiB", "1.1 TiB".
std::string format_bytes(uint64_t bytes);

// "2026-11-25T18:50:05Z" (also with fractional seconds); nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_utc_time(std::string_view text);

// The header line, a warning when every WAN is down, then one row per WAN:
//   WAN IFACE STATE SINCE GATEWAY RTT LOSS CONNS SHARE BYTES
// followed by one line per WAN that is not simply up under the prober (its reason, override).
// `color` wraps STATE in ANSI colours (up green, down red, disabled yellow); alignment is
// computed on the visible text. Missing or null fields show as "-"; never throws on odd input.
std::string format_status(const nlohmann::json& status, bool color, std::chrono::system_clock::time_point now);

// The Prometheus text exposition format (version 0.0.4), for node_exporter's textfile collector
// or a scrape wrapper: every family has HELP and TYPE lines, WAN samples carry the labels
// wan="NAME",interface="IFACE". States are a state set (wanbalance_wan_state{state="up"} 1 and
// 0 for the others); RTT in seconds, loss as a ratio; counters end in _total. A field the daemon
// left out or set to null produces no sample; never throws on odd input.
std::string format_prometheus(const nlohmann::json& status);

// `wanbalancectl connections`: one row per connection (PROTO, SOURCE, DESTINATION, WAN, RULE,
// STATE, BYTES; "-" for what is unknown, bytes only with conntrack accounting), then a count.
std::string format_connections(const nlohmann::json& list);

}  // namespace wb
