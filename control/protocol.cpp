// Requests and replies to and from their JSON lines. Decoding never throws: every lookup is
// checked first, and parsing runs without exceptions.
#include "control/protocol.hpp"

#include <cerrno>

#include "base/format.hpp"
#include "base/overloaded.hpp"

namespace wb {
namespace {

using json = nlohmann::json;

std::string dump(const json& j) {
    // Interface names or file contents may reach a message: invalid UTF-8 must not throw.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Status malformed(std::string message) { return Status::fail(EPROTO, std::move(message)); }

// The string at `key`, or nullptr when it is missing or not a string.
const std::string* string_at(const json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

}  // namespace

ErrorReply error_reply(std::string message, int exit_code) { return ErrorReply{std::move(message), exit_code}; }

std::string encode(const Request& request) {
    return dump(std::visit(Overloaded{
                               [](const StatusRequest&) { return json{{"command", "status"}}; },
                               [](const ReloadRequest&) { return json{{"command", "reload"}}; },
                               [](const SetRequest& r) {
                                   json j{{"command", "set"}, {"wan", r.wan}, {"mode", r.mode}};
                                   if (r.timeout_s) j["timeout_s"] = r.timeout_s;
                                   return j;
                               },
                               [](const HandoverRequest&) { return json{{"command", "handover"}}; },
                               [](const RoleRequest& r) { return json{{"command", "role"}, {"role", r.role}}; },
                               [](const ConnectionsRequest& r) {
                                   json j{{"command", "connections"}};
                                   if (!r.src.empty()) j["src"] = r.src;
                                   if (!r.wan.empty()) j["wan"] = r.wan;
                                   return j;
                               },
                           },
                           request));
}

std::string encode(const Reply& reply) {
    return dump(std::visit(Overloaded{
                               [](const StatusReply& r) { return json{{"ok", true}, {"status", r.status}}; },
                               [](const ReloadReply& r) {
                                   return json{{"ok", true}, {"summary", r.summary}, {"warnings", r.warnings}};
                               },
                               [](const SetReply& r) {
                                   return json{{"ok", true}, {"wan", r.wan}, {"state", r.state}};
                               },
                               [](const HandoverReply& r) { return json{{"ok", true}, {"handover_s", r.seconds}}; },
                               [](const RoleReply& r) { return json{{"ok", true}, {"role", r.role}}; },
                               [](const ConnectionsReply& r) { return json{{"ok", true}, {"connections", r.connections}}; },
                               [](const ErrorReply& r) {
                                   return json{{"ok", false}, {"error", r.message}, {"exit_code", r.exit_code}};
                               },
                           },
                           reply));
}

Expected<Request> decode_request(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return malformed("request is not valid JSON");
    if (!j.is_object()) return malformed("request is not a JSON object");
    const std::string* command = string_at(j, "command");
    if (!command) return malformed("request has no \"command\" string");
    if (*command == "status") return Request{StatusRequest{}};
    if (*command == "reload") return Request{ReloadRequest{}};
    if (*command == "handover") return Request{HandoverRequest{}};
    if (*command == "set") {
        const std::string* wan = string_at(j, "wan");
        const std::string* mode = string_at(j, "mode");
        if (!wan || !mode) return malformed("set needs \"wan\" and \"mode\" strings");
        unsigned timeout = 0;
        if (auto t = j.find("timeout_s"); t != j.end()) {
            if (!t->is_number_unsigned() || t->get<uint64_t>() > kMaxDrainTimeout)
                return malformed("set's \"timeout_s\" must be seconds, 0 to " + std::to_string(kMaxDrainTimeout));
            timeout = t->get<unsigned>();
        }
        return Request{SetRequest{*wan, *mode, timeout}};
    }
    if (*command == "connections") {
        ConnectionsRequest r;
        for (auto [key, field] : {std::pair{"src", &r.src}, std::pair{"wan", &r.wan}}) {
            if (!j.contains(key)) continue;
            const std::string* v = string_at(j, key);
            if (!v) return malformed(std::string("connections' \"") + key + "\" must be a string");
            *field = *v;
        }
        return Request{r};
    }
    if (*command == "role") {
        const std::string* role = string_at(j, "role");
        if (!role) return malformed("role needs a \"role\" string");
        return Request{RoleRequest{*role}};
    }
    return malformed("unknown command " + quoted(*command) +
                     " (expected status, reload, set, handover, role or connections)");
}

Expected<Reply> decode_reply(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return malformed("reply is not valid JSON");
    if (!j.is_object()) return malformed("reply is not a JSON object");
    auto ok = j.find("ok");
    if (ok == j.end() || !ok->is_boolean()) return malformed("reply has no \"ok\" boolean");
    if (!ok->get<bool>()) {
        const std::string* message = string_at(j, "error");
        int exit_code = kExitFailure;
        if (auto code = j.find("exit_code"); code != j.end() && code->is_number_integer()) {
            auto value = code->get<int64_t>();
            if (value > 0 && value < 256) exit_code = static_cast<int>(value);
        }
        return Reply{error_reply(message ? *message : "the daemon refused the request", exit_code)};
    }
    if (auto status = j.find("status"); status != j.end() && status->is_object()) return Reply{StatusReply{*status}};
    if (auto conns = j.find("connections"); conns != j.end() && conns->is_array())
        return Reply{ConnectionsReply{*conns}};
    if (const std::string* summary = string_at(j, "summary")) {
        ReloadReply reload{*summary, {}};
        if (auto w = j.find("warnings"); w != j.end() && w->is_array())
            for (const auto& line : *w)
                if (line.is_string()) reload.warnings.push_back(line.get<std::string>());
        return Reply{reload};
    }
    if (auto handover = j.find("handover_s"); handover != j.end() && handover->is_number_integer())
        return Reply{HandoverReply{handover->get<int>()}};
    if (const std::string* role = string_at(j, "role")) return Reply{RoleReply{*role}};
    const std::string* wan = string_at(j, "wan");
    const std::string* state = string_at(j, "state");
    if (wan && state) return Reply{SetReply{*wan, *state}};
    return malformed("reply has none of \"status\", \"summary\", \"handover_s\", \"role\" or \"wan\" and \"state\"");
}

}  // namespace wb
