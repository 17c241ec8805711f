// Tests for the human `wanbalancectl status` view: durations, sizes, timestamps, the table's
// alignment with and without colour, nulls, and the all-down warning.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <cctype>
#include <sstream>
#include <vector>

#include "ctl/status_format.hpp"

using nlohmann::json;

namespace {

std::chrono::system_clock::time_point at(const char* text) {
    auto t = wb::parse_utc_time(text);
    REQUIRE(t.has_value());
    return *t;
}

// Drops "ESC [ digits/semicolons m" sequences.
std::string strip_ansi(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\033' && i + 1 < s.size() && s[i + 1] == '[') {
            size_t j = i + 2;
            while (j < s.size() && (isdigit(static_cast<unsigned char>(s[j])) || s[j] == ';')) ++j;
            if (j < s.size() && s[j] == 'm') {
                i = j;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> lines;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

json sample_status() {
    return json::parse(R"({
      "version": "0.1.0", "config": "/etc/wanbalance.json", "uptime_s": 7380, "pid": 123,
      "all_down": false,
      "wans": [
        { "name": "charter", "interface": "ether1", "state": "up", "since": "2026-11-25T18:56:48Z",
          "reason": "probes answered", "link": "up", "active": true, "override": "auto",
          "gateway": "203.0.113.1", "gateway_auto": false, "weight": 1, "tier": 0, "table": 101,
          "mark": "0x100", "rtt_ms": 1.2, "loss_pct": 0.0, "probes_sent": 100, "probes_lost": 0,
          "connections": 17, "share_pct": 45.9, "bytes": 123456, "rx_bytes": 100000,
          "tx_bytes": 23456, "transitions": 3 },
        { "name": "integra", "interface": "ether2", "state": "down", "since": "2026-11-25T18:59:48Z",
          "reason": "3 probe rounds lost", "link": "up", "active": false, "override": "auto",
          "gateway": null, "gateway_auto": true, "rtt_ms": null, "loss_pct": 100.0,
          "connections": 0, "share_pct": 0.0, "bytes": 0 },
        { "name": "backup", "interface": "ppp0", "state": "disabled", "since": "2026-11-23T17:00:00Z",
          "reason": "set down by the operator", "link": "up", "active": false, "override": "down",
          "gateway": "198.51.100.1", "gateway_auto": false, "rtt_ms": 25.0, "loss_pct": 0.5,
          "connections": 1234, "share_pct": 54.1, "bytes": 5368709120 }
      ] })");
}

}  // namespace

TEST_CASE("format_duration keeps the two largest units") {
    using std::chrono::seconds;
    CHECK(wb::format_duration(seconds(0)) == "0s");
    CHECK(wb::format_duration(seconds(12)) == "12s");
    CHECK(wb::format_duration(seconds(60)) == "1m0s");
    CHECK(wb::format_duration(seconds(192)) == "3m12s");
    CHECK(wb::format_duration(seconds(7380)) == "2h3m");
    CHECK(wb::format_duration(seconds(3600 * 50 + 59)) == "2d2h");
    CHECK(wb::format_duration(seconds(-5)) == "0s");
}

TEST_CASE("format_bytes uses binary units with one decimal") {
    CHECK(wb::format_bytes(0) == "0 B");
    CHECK(wb::format_bytes(1023) == "1023 B");
    CHECK(wb::format_bytes(1024) == "1.0 KiB");
    CHECK(wb::format_bytes(123456) == "120.6 KiB");
    CHECK(wb::format_bytes(1024 * 1024 - 1) == "1.0 MiB");  // not "1024.0 KiB"
    CHECK(wb::format_bytes(5368709120ULL) == "5.0 GiB");
    CHECK(wb::format_bytes(UINT64_MAX) == "16.0 EiB");
}

TEST_CASE("parse_utc_time accepts RFC 3339 UTC and nothing else") {
    auto t = wb::parse_utc_time("2026-11-25T18:50:05Z");
    REQUIRE(t);
    CHECK(std::chrono::system_clock::to_time_t(*t) == 1795632605);
    auto frac = wb::parse_utc_time("2026-11-25T18:50:05.250Z");
    REQUIRE(frac);
    CHECK(std::chrono::system_clock::to_time_t(*frac) == 1795632605);
    CHECK_FALSE(wb::parse_utc_time("2026-11-25 18:50:05Z"));
    CHECK_FALSE(wb::parse_utc_time("2026-11-25T18:50:05"));
    CHECK_FALSE(wb::parse_utc_time("2026-11-25T18:50:05+01:00"));
    CHECK_FALSE(wb::parse_utc_time("2026-13-25T18:50:05Z"));
    CHECK_FALSE(wb::parse_utc_time("2026-11-25T18:50:05Zjunk"));
    CHECK_FALSE(wb::parse_utc_time("2026-11-25T18:50:05.Z"));
    CHECK_FALSE(wb::parse_utc_time(""));
}

TEST_CASE("status table: header, aligned rows, notes for WANs that are not plainly up") {
    std::string out = wb::format_status(sample_status(), false, at("2026-11-25T19:00:00Z"));
    // Left-aligned text columns, right-aligned numbers, two spaces between columns.
    const std::string expected =
        "wanbalanced 0.1.0, config /etc/wanbalance.json, up 2h3m\n"
        "WAN      IFACE   STATE     SINCE  GATEWAY          RTT    LOSS  CONNS  SHARE      BYTES\n"
        "charter  ether1  up        3m12s  203.0.113.1    1.2ms    0.0%     17  45.9%  120.6 KiB\n"
        "integra  ether2  down        12s  auto               -  100.0%      0   0.0%        0 B\n"
        "backup   ppp0    disabled   2d2h  198.51.100.1  25.0ms    0.5%   1234  54.1%    5.0 GiB\n"
        "  integra: down (3 probe rounds lost)\n"
        "  backup: disabled (set down by the operator), operator override down\n";
    CHECK(out == expected);
    CHECK(out.find('\033') == std::string::npos);
}

TEST_CASE("colour wraps only STATE and does not change the alignment") {
    auto now = at("2026-11-25T19:00:00Z");
    std::string plain = wb::format_status(sample_status(), false, now);
    std::string colored = wb::format_status(sample_status(), true, now);
    CHECK(colored != plain);
    CHECK(strip_ansi(colored) == plain);
    CHECK(colored.find("\033[32mup\033[0m") != std::string::npos);
    CHECK(colored.find("\033[31mdown\033[0m") != std::string::npos);
    CHECK(colored.find("\033[33mdisabled\033[0m") != std::string::npos);
    // The padding follows the escape, so the next column still starts where the header says.
    auto lines = lines_of(colored);
    REQUIRE(lines.size() >= 3);
    CHECK(lines[2].find("\033[32mup\033[0m        3m12s") != std::string::npos);
}

TEST_CASE("the all-down warning appears only when the daemon says so") {
    auto now = at("2026-11-25T19:00:00Z");
    json status = sample_status();
    CHECK(wb::format_status(status, false, now).find("warning") == std::string::npos);
    status["all_down"] = true;
    auto lines = lines_of(wb::format_status(status, false, now));
    REQUIRE(lines.size() >= 2);
    CHECK(lines[1] == "warning: every WAN is down; balancing over all WANs whose link is up");
    std::string colored = wb::format_status(status, true, now);
    CHECK(colored.find("\033[1;31mwarning: every WAN is down") != std::string::npos);
}

TEST_CASE("nulls, missing fields and wrong types show as '-' and never throw") {
    auto now = at("2026-11-25T19:00:00Z");
    json status = json::parse(R"({ "version": "0.1.0", "config": "/x.json",
        "wans": [ { "name": "a", "interface": "eth9", "state": "down", "since": null,
                    "gateway": null, "rtt_ms": null, "loss_pct": null, "connections": null,
                    "share_pct": null, "bytes": null },
                  { "name": 7, "state": ["up"], "since": "yesterday", "rtt_ms": "fast" },
                  42 ] })");
    std::string out;
    REQUIRE_NOTHROW(out = wb::format_status(status, true, now));
    auto lines = lines_of(strip_ansi(out));
    REQUIRE(lines.size() >= 5);
    CHECK(lines[0] == "wanbalanced 0.1.0, config /x.json");  // no uptime: no ", up"
    CHECK(lines[2] == "a    eth9   down       -  -          -     -      -      -      -");
    CHECK(lines[3] == "-    -      -          -  -          -     -      -      -      -");
    CHECK(lines[4] == "-    -      -          -  -          -     -      -      -      -");

    REQUIRE_NOTHROW(out = wb::format_status(json::array(), false, now));
    CHECK(lines_of(out).size() == 2);  // header and the table's title row
    REQUIRE_NOTHROW(wb::format_status(json(), false, now));
}

TEST_CASE("a timestamp in the future counts as now") {
    json status = sample_status();
    status["wans"][0]["since"] = "2026-11-25T19:00:30Z";
    auto lines = lines_of(wb::format_status(status, false, at("2026-11-25T19:00:00Z")));
    REQUIRE(lines.size() >= 3);
    CHECK(lines[2].find("up           0s") != std::string::npos);
}
