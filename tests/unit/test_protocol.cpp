// Tests for the control protocol: every request and reply survives encode then decode, the
// documented wire lines decode to the right types, and bad lines give the documented errors.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "control/protocol.hpp"

using nlohmann::json;

namespace {

// encode, then decode with `decode`, gives `value` back; the line is one line.
template <class V>
void check_round_trip(const V& value, wb::Expected<V> (*decode)(std::string_view)) {
    std::string line = wb::encode(value);
    CAPTURE(line);
    CHECK(line.find('\n') == std::string::npos);
    auto decoded = decode(line);
    REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message);
    CHECK(*decoded == value);
}
void check_round_trip(const wb::Request& request) { check_round_trip(request, wb::decode_request); }
void check_round_trip(const wb::Reply& reply) { check_round_trip(reply, wb::decode_reply); }

wb::Request request_from(const std::string& line) {
    auto decoded = wb::decode_request(line);
    REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message);
    return *decoded;
}

wb::Reply reply_from(const std::string& line) {
    auto decoded = wb::decode_reply(line);
    REQUIRE_MESSAGE(decoded.has_value(), decoded.error().message);
    return *decoded;
}

std::string request_error(const std::string& line) {
    auto decoded = wb::decode_request(line);
    REQUIRE_FALSE(decoded.has_value());
    return decoded.error().message;
}

std::string reply_error(const std::string& line) {
    auto decoded = wb::decode_reply(line);
    REQUIRE_FALSE(decoded.has_value());
    return decoded.error().message;
}

json status_object() {
    return json{{"version", "0.1.0"},
                {"config", "/etc/wanbalance.json"},
                {"uptime_s", 12},
                {"all_down", false},
                {"wans", json::array({{{"name", "charter"}, {"state", "up"}, {"rtt_ms", 11.5}, {"gateway", nullptr}}})}};
}

}  // namespace

TEST_CASE("every request survives encode then decode") {
    check_round_trip(wb::StatusRequest{});
    check_round_trip(wb::ReloadRequest{});
    for (const char* mode : {"up", "down", "auto", "sideways", ""}) check_round_trip(wb::SetRequest{"charter", mode});
    check_round_trip(wb::SetRequest{"wan \"quoted\"\n\\ ü", "down"});
    check_round_trip(wb::SetRequest{"charter", "drain", 600});
    check_round_trip(wb::ConnectionsRequest{});
    check_round_trip(wb::ConnectionsRequest{"192.168.88.10", "charter"});
    CHECK(request_error(R"({"command": "connections", "src": 5})") == "connections' \"src\" must be a string");
    CHECK(wb::encode(wb::Request{wb::SetRequest{"charter", "drain", 0}}).find("timeout_s") == std::string::npos);
    check_round_trip(wb::HandoverRequest{});
}

TEST_CASE("every reply survives encode then decode") {
    check_round_trip(wb::StatusReply{status_object()});
    check_round_trip(wb::StatusReply{json::object()});
    check_round_trip(wb::ConnectionsReply{json::array({json{{"src", "192.168.88.10"}, {"wan", "charter"}}})});
    check_round_trip(wb::ConnectionsReply{json::array()});
    check_round_trip(wb::ReloadReply{"no kernel change"});
    check_round_trip(wb::ReloadReply{"3 nftables changes, 1 route change, 0 rule changes; charter removed or renumbered"});
    check_round_trip(wb::ReloadReply{""});
    check_round_trip(wb::SetReply{"charter", "disabled"});
    check_round_trip(wb::HandoverReply{60});
    check_round_trip(wb::error_reply("no WAN named \"nosuch\" (configured: charter, integra)"));
    check_round_trip(wb::error_reply("/etc/wanbalance.json: /wans/0/gateway: \"198.51.100.x\" is not an IPv4 address\n"
                                     "/etc/wanbalance.json: /lans: missing",
                                     wb::kExitConfig));
}

TEST_CASE("the wire format is the documented one") {
    CHECK(wb::encode(wb::Request{wb::StatusRequest{}}) == R"({"command":"status"})");
    CHECK(wb::encode(wb::Request{wb::ReloadRequest{}}) == R"({"command":"reload"})");
    CHECK(wb::encode(wb::Request{wb::SetRequest{"charter", "down"}}) ==
          R"({"command":"set","mode":"down","wan":"charter"})");
    CHECK(wb::encode(wb::Reply{wb::StatusReply{json{{"wans", json::array()}}}}) == R"({"ok":true,"status":{"wans":[]}})");
    CHECK(wb::encode(wb::Reply{wb::ReloadReply{"no kernel change", {}}}) ==
          R"({"ok":true,"summary":"no kernel change","warnings":[]})");
    wb::ReloadReply warned{"no kernel change", {"/etc/wanbalance.json: /wans/0/gateway: 203.0.113.11 does not answer ARP on ether1"}};
    CHECK(wb::encode(wb::Reply{warned}) ==
          R"({"ok":true,"summary":"no kernel change","warnings":["/etc/wanbalance.json: /wans/0/gateway: 203.0.113.11 does not answer ARP on ether1"]})");
    auto back = wb::decode_reply(wb::encode(wb::Reply{warned}));
    REQUIRE(back);
    CHECK(std::get<wb::ReloadReply>(*back) == warned);
    // An older daemon's reply has no warnings.
    auto old = wb::decode_reply(R"({"ok":true,"summary":"no kernel change"})");
    REQUIRE(old);
    CHECK(std::get<wb::ReloadReply>(*old).warnings.empty());
    CHECK(wb::encode(wb::Reply{wb::SetReply{"charter", "disabled"}}) ==
          R"({"ok":true,"state":"disabled","wan":"charter"})");
    CHECK(wb::encode(wb::Reply{wb::error_reply("bad", wb::kExitConfig)}) == R"({"error":"bad","exit_code":78,"ok":false})");
    CHECK(wb::encode(wb::Request{wb::HandoverRequest{}}) == R"({"command":"handover"})");
    CHECK(wb::encode(wb::Reply{wb::HandoverReply{60}}) == R"({"handover_s":60,"ok":true})");
}

TEST_CASE("the documented lines decode, as scripts and older clients write them") {
    CHECK(request_from("{\"command\": \"status\"}\n") == wb::Request{wb::StatusRequest{}});
    CHECK(request_from(R"({"command": "reload"})") == wb::Request{wb::ReloadRequest{}});
    CHECK(request_from(R"({"command": "set", "wan": "charter", "mode": "down"})") ==
          wb::Request{wb::SetRequest{"charter", "down"}});
    // Keys the daemon does not know are ignored.
    CHECK(request_from(R"({"command": "status", "pad": "xxx", "version": 2})") == wb::Request{wb::StatusRequest{}});

    CHECK(reply_from(R"({"ok": true, "status": {"wans": []}})") == wb::Reply{wb::StatusReply{json{{"wans", json::array()}}}});
    CHECK(reply_from("{\"ok\": true, \"summary\": \"no kernel change\"}\n") ==
          wb::Reply{wb::ReloadReply{"no kernel change"}});
    CHECK(reply_from(R"({"ok": true, "wan": "charter", "state": "disabled"})") ==
          wb::Reply{wb::SetReply{"charter", "disabled"}});
    CHECK(reply_from(R"({"ok": false, "error": "one line", "exit_code": 78})") ==
          wb::Reply{wb::error_reply("one line", wb::kExitConfig)});
    CHECK(reply_from(R"({"ok": false, "error": "one line", "exit_code": 1})") == wb::Reply{wb::error_reply("one line")});
}

TEST_CASE("error replies: exit code 1 unless told, and never 0") {
    CHECK(wb::error_reply("x").exit_code == wb::kExitFailure);
    CHECK(wb::error_reply("x", wb::kExitConfig).exit_code == 78);
    for (const char* code : {"0", "-3", "256", "1e9", "\"78\"", "null", "78.5"}) {
        CAPTURE(code);
        CHECK(reply_from(std::string(R"({"ok": false, "error": "x", "exit_code": )") + code + "}") ==
              wb::Reply{wb::error_reply("x")});
    }
    CHECK(reply_from(R"({"ok": false, "error": "x"})") == wb::Reply{wb::error_reply("x")});
    CHECK(reply_from(R"({"ok": false, "exit_code": 78})") ==
          wb::Reply{wb::error_reply("the daemon refused the request", wb::kExitConfig)});
}

TEST_CASE("bad requests: one message each") {
    CHECK(request_error("{not json") == "request is not valid JSON");
    CHECK(request_error("") == "request is not valid JSON");
    CHECK(request_error("[1, 2]") == "request is not a JSON object");
    CHECK(request_error("\"status\"") == "request is not a JSON object");
    CHECK(request_error(R"({"wan": "charter"})") == "request has no \"command\" string");
    CHECK(request_error(R"({"command": 5})") == "request has no \"command\" string");
    CHECK(request_error(R"({"command": "boom"})") == "unknown command \"boom\" (expected status, reload, set, handover, role or connections)");
    CHECK(request_error(R"({"command": "set"})") == "set needs \"wan\" and \"mode\" strings");
    CHECK(request_error(R"({"command": "set", "wan": "charter"})") == "set needs \"wan\" and \"mode\" strings");
    CHECK(request_error(R"({"command": "set", "wan": "charter", "mode": 1})") == "set needs \"wan\" and \"mode\" strings");
    CHECK(request_error(R"({"command": "set", "wan": null, "mode": "down"})") == "set needs \"wan\" and \"mode\" strings");
    for (const char* t : {"-1", "1.5", "\"60\"", "604801"})
        CHECK(request_error(std::string(R"({"command": "set", "wan": "charter", "mode": "drain", "timeout_s": )") + t + "}") ==
              "set's \"timeout_s\" must be seconds, 0 to 604800");
}

TEST_CASE("bad replies: one message each") {
    CHECK(reply_error("{not json") == "reply is not valid JSON");
    CHECK(reply_error("[true]") == "reply is not a JSON object");
    CHECK(reply_error(R"({"status": {}})") == "reply has no \"ok\" boolean");
    CHECK(reply_error(R"({"ok": "yes", "status": {}})") == "reply has no \"ok\" boolean");
    const std::string none = "reply has none of \"status\", \"summary\", \"handover_s\", \"role\" or \"wan\" and \"state\"";
    CHECK(reply_error(R"({"ok": true})") == none);
    CHECK(reply_error(R"({"ok": true, "status": "up"})") == none);
    CHECK(reply_error(R"({"ok": true, "wan": "charter"})") == none);
    CHECK(reply_error(R"({"ok": true, "summary": 3})") == none);
}

TEST_CASE("invalid UTF-8 is replaced when encoding, never thrown") {
    std::string bad = "eth\xff\xfe";
    std::string line;
    CHECK_NOTHROW(line = wb::encode(wb::Reply{wb::error_reply("no WAN named " + bad)}));
    auto decoded = wb::decode_reply(line);
    REQUIRE(decoded.has_value());
    auto* error = std::get_if<wb::ErrorReply>(&*decoded);
    REQUIRE(error != nullptr);
    CHECK(error->message == "no WAN named eth\xef\xbf\xbd\xef\xbf\xbd");
    CHECK_NOTHROW(line = wb::encode(wb::Request{wb::SetRequest{bad, "down"}}));
    CHECK(wb::decode_request(line).has_value());
    CHECK_NOTHROW(line = wb::encode(wb::Reply{wb::StatusReply{json{{"interface", bad}}}}));
    CHECK(wb::decode_reply(line).has_value());
}

TEST_CASE("role: the request and the reply survive a round trip, and a role request needs its role") {
    check_round_trip(wb::Request{wb::RoleRequest{"backup"}});
    check_round_trip(wb::Reply{wb::RoleReply{"primary"}});
    CHECK(request_from(R"({"command": "role", "role": "fault"})") == wb::Request{wb::RoleRequest{"fault"}});
    CHECK(reply_from(R"({"ok": true, "role": "backup"})") == wb::Reply{wb::RoleReply{"backup"}});
    CHECK(request_error(R"({"command": "role"})") == "role needs a \"role\" string");
    CHECK(request_error(R"({"command": "role", "role": 1})") == "role needs a \"role\" string");
}
