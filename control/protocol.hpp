// The control protocol between wanbalancectl and wanbalanced as types: the requests, the replies,
// and the one encoder and decoder of each that both sides use. No I/O here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "base/exit_codes.hpp"
#include "base/status.hpp"

namespace wb {

// On the wire, one JSON object per line (the socket adds the newline):
//   {"command": "status"}
//   {"command": "reload"}
//   {"command": "set", "wan": "charter", "mode": "down"}        mode: up, down or auto
//   {"command": "role", "role": "backup"}                         role: primary, backup or fault
// Unknown keys are ignored, so a newer client can add some without breaking an older daemon.
struct StatusRequest {
    bool operator==(const StatusRequest&) const = default;
};
struct ReloadRequest {
    bool operator==(const ReloadRequest&) const = default;
};
inline constexpr unsigned kMaxDrainTimeout = 7 * 24 * 3600;  // a week: `set WAN drain --timeout`

struct SetRequest {
    std::string wan;
    std::string mode;  // checked by the daemon, which also names the WANs it knows
    // drain only: after this many seconds the WAN is set down (what is left is cut); 0: never
    unsigned timeout_s = 0;
    bool operator==(const SetRequest&) const = default;
};
// {"command": "handover"}: the daemon's next stop (within the reply's seconds) leaves the
// routes, rules and nftables table in place for the next wanbalanced to adopt (package upgrades).
struct HandoverRequest {
    bool operator==(const HandoverRequest&) const = default;
};
// The router's VRRP role in an HA pair, from keepalived's notify script: one of these.
inline constexpr std::string_view kHaRoles[] = {"primary", "backup", "fault"};
inline bool is_ha_role(std::string_view role) {
    for (std::string_view r : kHaRoles)
        if (r == role) return true;
    return false;
}
struct RoleRequest {
    std::string role;  // checked by the daemon
    bool operator==(const RoleRequest&) const = default;
};
// {"command": "connections", "src": "192.168.88.10", "wan": "charter"}: the connections
// wanbalance marked, those of one source address and/or one WAN ("" or absent: all).
struct ConnectionsRequest {
    std::string src;
    std::string wan;
    bool operator==(const ConnectionsRequest&) const = default;
};
using Request = std::variant<StatusRequest, ReloadRequest, SetRequest, HandoverRequest, RoleRequest, ConnectionsRequest>;

// Replies:
//   {"ok": true, "status": {the status object of docs/design.md}}
//   {"ok": true, "summary": "no kernel change"}
//   {"ok": true, "wan": "charter", "state": "disabled"}
//   {"ok": true, "role": "backup"}
//   {"ok": false, "error": "one line (config errors: one line each)", "exit_code": 78}
// exit_code is what wanbalancectl exits with: kExitConfig for configuration errors, else kExitFailure.
struct StatusReply {
    nlohmann::json status;  // an object; its fields are docs/design.md's (Status JSON) and ctl/status_format's business
    bool operator==(const StatusReply&) const = default;
};
struct ReloadReply {
    std::string summary;
    std::vector<std::string> warnings;  // the live check's findings, "FILE: /json/path: problem"
    bool operator==(const ReloadReply&) const = default;
};
struct SetReply {
    std::string wan;
    std::string state;  // the WAN's health after the override: up, down or disabled
    bool operator==(const SetReply&) const = default;
};
struct ErrorReply {
    std::string message;
    int exit_code = kExitFailure;  // 1..255
    bool operator==(const ErrorReply&) const = default;
};
struct HandoverReply {
    int seconds = 0;  // {"ok": true, "handover_s": 60}: how long the promise holds
    bool operator==(const HandoverReply&) const = default;
};
struct RoleReply {
    std::string role;  // the role the daemon now has
    bool operator==(const RoleReply&) const = default;
};
// {"ok": true, "connections": [{family, proto, src, sport, dst, dport, wan, rule, state, bytes}]}
struct ConnectionsReply {
    nlohmann::json connections;  // an array
    bool operator==(const ConnectionsReply&) const = default;
};
using Reply = std::variant<StatusReply, ReloadReply, SetReply, HandoverReply, RoleReply, ConnectionsReply, ErrorReply>;

// The one way to build an error reply, for the server and the daemon's handler alike.
ErrorReply error_reply(std::string message, int exit_code = kExitFailure);

// One line of JSON (no newline). Invalid UTF-8 in strings is replaced, never thrown.
std::string encode(const Request& request);
std::string encode(const Reply& reply);

// Errors, one line each: "request is not valid JSON", "request is not a JSON object",
// "request has no \"command\" string", "unknown command \"x\" (expected status, reload or set)",
// "set needs \"wan\" and \"mode\" strings", "role needs a \"role\" string".
Expected<Request> decode_request(std::string_view text);

// The reply's kind follows from its fields: "ok": false is an error (an exit_code outside
// 1..255 or missing becomes kExitFailure: an error never exits 0), else "status", "summary",
// "handover_s", "role", or "wan" and "state". Anything else is an error ("reply is not valid JSON", ...).
Expected<Reply> decode_reply(std::string_view text);

}  // namespace wb
