// Tests for `wanbalancectl status`: durations, sizes, timestamps, the table's alignment with and
// without colour, nulls, the all-down warning; and the Prometheus exposition, read back strictly.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <cctype>
#include <map>
#include <regex>
#include <set>
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

TEST_CASE("a config file that is invalid while the last applied config runs is said, in red") {
    auto now = at("2026-11-25T19:00:00Z");
    json status = sample_status();
    status["config_error"] = nullptr;
    CHECK(wb::format_status(status, false, now).find("critical") == std::string::npos);
    status["config_error"] = "/etc/wanbalance.json: /lans: missing required key";
    auto lines = lines_of(wb::format_status(status, false, now));
    REQUIRE(lines.size() >= 3);
    CHECK(lines[1] == "critical: the config file is invalid; running the last applied configuration");
    CHECK(lines[2] == "  /etc/wanbalance.json: /lans: missing required key");
    CHECK(wb::format_status(status, true, now).find("\033[1;31mcritical") != std::string::npos);
    CHECK(wb::format_prometheus(status).find("wanbalance_config_invalid 1\n") != std::string::npos);
}

TEST_CASE("the live check's findings: a warning line each under the header, and a count") {
    auto now = at("2026-11-25T19:00:00Z");
    json status = sample_status();
    status["warnings"] = json::array();
    CHECK(wb::format_status(status, false, now).find("warning:") == std::string::npos);
    status["warnings"] = json::parse(R"([
        {"path": "/wans/0/gateway", "message": "203.0.113.11 does not answer ARP on ether1"},
        {"path": "", "message": "mode 0600: the service's user cannot read it"}])");
    auto lines = lines_of(wb::format_status(status, false, now));
    REQUIRE(lines.size() >= 3);
    CHECK(lines[1] == "warning: /wans/0/gateway: 203.0.113.11 does not answer ARP on ether1");
    CHECK(lines[2] == "warning: the config file: mode 0600: the service's user cannot read it");
    CHECK(wb::format_prometheus(status).find("wanbalance_live_check_warnings 2\n") != std::string::npos);
}

TEST_CASE("the HA role: in the header line, and as a Prometheus state set; null outside a pair") {
    auto now = at("2026-11-25T19:00:00Z");
    json status = sample_status();
    status["role"] = nullptr;
    CHECK(lines_of(wb::format_status(status, false, now))[0] == "wanbalanced 0.1.0, config /etc/wanbalance.json, up 2h3m");
    CHECK(wb::format_prometheus(status).find("wanbalance_role{role=\"backup\"} 0\n") != std::string::npos);
    status["role"] = "backup";
    CHECK(lines_of(wb::format_status(status, false, now))[0] ==
          "wanbalanced 0.1.0, config /etc/wanbalance.json, up 2h3m, role backup");
    std::string prom = wb::format_prometheus(status);
    CHECK(prom.find("wanbalance_role{role=\"primary\"} 0\nwanbalance_role{role=\"backup\"} 1\n"
                    "wanbalance_role{role=\"fault\"} 0\n") != std::string::npos);
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

// ---- wanbalancectl status --prometheus ----

namespace {

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    std::string value;
};

// A strict reader of the text exposition format 0.0.4: HELP and TYPE once per family and
// before its samples, a family's samples contiguous, valid names, quoted and escaped labels,
// float values, counters named *_total. Fails the test on the first violation.
std::vector<Sample> parse_exposition(const std::string& text) {
    static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
    static const std::regex kComment("# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)");
    static const std::regex kSample(R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+))");
    static const std::regex kLabel(R"(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)\"(,|$))");
    std::vector<Sample> samples;
    std::map<std::string, std::string> types;
    std::set<std::string> helps, finished;
    std::string current;
    REQUIRE(!text.empty());
    REQUIRE(text.back() == '\n');
    for (const auto& line : lines_of(text)) {
        INFO("line: " << line);
        std::smatch m;
        if (line.rfind("#", 0) == 0) {
            REQUIRE(std::regex_match(line, m, kComment));
            std::string family = m[2];
            if (m[1] == "HELP") {
                CHECK(helps.insert(family).second);
            } else {
                CHECK(types.emplace(family, m[3]).second);
                std::string type = m[3];
                CHECK((type == "gauge" || type == "counter"));
                if (type == "counter") CHECK(family.size() > 6);
                if (type == "counter") CHECK(family.compare(family.size() - 6, 6, "_total") == 0);
            }
            if (family != current) {
                if (!current.empty()) finished.insert(current);
                CHECK(finished.count(family) == 0);
                current = family;
            }
            continue;
        }
        REQUIRE(std::regex_match(line, m, kSample));
        Sample s{m[1], {}, m[4]};
        CHECK(s.name == current);  // contiguous, after its HELP and TYPE
        CHECK(helps.count(s.name) == 1);
        CHECK(types.count(s.name) == 1);
        std::string labels = m[3];
        for (auto it = std::sregex_iterator(labels.begin(), labels.end(), kLabel); it != std::sregex_iterator(); ++it) {
            CHECK(s.labels.emplace((*it)[1], (*it)[2]).second);
        }
        std::string rebuilt;
        for (auto it = std::sregex_iterator(labels.begin(), labels.end(), kLabel); it != std::sregex_iterator(); ++it)
            rebuilt += it->str();
        CHECK(rebuilt == labels);  // nothing unparsed between labels
        if (s.value != "NaN" && s.value != "+Inf" && s.value != "-Inf") {
            size_t used = 0;
            CHECK_NOTHROW((void)std::stod(s.value, &used));
            CHECK(used == s.value.size());
        }
        samples.push_back(std::move(s));
    }
    return samples;
}

const Sample* find_sample(const std::vector<Sample>& samples, const std::string& name, const std::string& wan,
                          const std::string& state = "") {
    for (const auto& s : samples) {
        if (s.name != name) continue;
        auto w = s.labels.find("wan");
        if (!wan.empty() && (w == s.labels.end() || w->second != wan)) continue;
        if (!state.empty() && s.labels.at("state") != state) continue;
        return &s;
    }
    return nullptr;
}

}  // namespace

TEST_CASE("status: a degraded WAN is an error line with the kernel's words, and a metric") {
    json status = json::parse(R"({ "version": "0.1.0", "config": "/etc/wanbalance.json", "uptime_s": 5,
      "wans": [ { "name": "charter", "interface": "ether1", "state": "up",
                  "degraded": "Could not replace default route in table 101 (via 10.9.9.9 dev ether1): Nexthop has invalid gateway" },
                { "name": "integra", "interface": "ether2", "state": "up", "degraded": null } ] })");
    std::string text = wb::format_status(status, false, std::chrono::system_clock::now());
    CHECK(text.find("error: WAN charter is degraded: the kernel refused part of what the configuration asks\n"
                    "  Could not replace default route in table 101 (via 10.9.9.9 dev ether1): Nexthop has invalid gateway\n") !=
          std::string::npos);
    CHECK(text.find("WAN integra is degraded") == std::string::npos);
    std::string prom = wb::format_prometheus(status);
    CHECK(prom.find("wanbalance_wan_degraded{wan=\"charter\",interface=\"ether1\"} 1\n") != std::string::npos);
    CHECK(prom.find("wanbalance_wan_degraded{wan=\"integra\",interface=\"ether2\"} 0\n") != std::string::npos);
}

TEST_CASE("prometheus: one WAN, the whole exposition") {
    json status = json::parse(R"({ "version": "0.1.0", "config": "/etc/wanbalance.json", "uptime_s": 42,
        "all_down": false,
        "wans": [ { "name": "charter", "interface": "ether1", "state": "up", "active": true,
                    "rtt_ms": 1.5, "loss_pct": 2.5, "probes_sent": 120, "probes_lost": 3, "transitions": 2,
                    "rx_bytes": 18446744073709551615, "tx_bytes": 2048, "connections": 17, "weight": 3,
                    "tier": 0, "targets": [{"target": "tcp 192.0.2.80:443", "kind": "tcp", "rtt_ms": 12.5,
                                            "deadline_ms": 50}] } ] })");
    const std::string expected =
        "# HELP wanbalance_build_info Version of the running wanbalanced; always 1.\n"
        "# TYPE wanbalance_build_info gauge\n"
        "wanbalance_build_info{version=\"0.1.0\"} 1\n"
        "# HELP wanbalance_uptime_seconds Seconds since wanbalanced started.\n"
        "# TYPE wanbalance_uptime_seconds gauge\n"
        "wanbalance_uptime_seconds 42\n"
        "# HELP wanbalance_all_down 1 when every WAN is down for the family and traffic is balanced over the WANs whose link is up.\n"
        "# TYPE wanbalance_all_down gauge\n"
        "wanbalance_all_down{family=\"ipv4\"} 0\n"
        "# HELP wanbalance_config_invalid 1 when the config file is invalid and the last applied configuration runs.\n"
        "# TYPE wanbalance_config_invalid gauge\n"
        "wanbalance_config_invalid 0\n"
        "# HELP wanbalance_live_check_warnings Findings of the live check at start or the last reload (wanbalancectl status lists them).\n"
        "# TYPE wanbalance_live_check_warnings gauge\n"
        "wanbalance_live_check_warnings 0\n"
        "# HELP wanbalance_role 1 for the HA role the daemon was last told (wanbalancectl role), else 0; all 0 outside a pair.\n"
        "# TYPE wanbalance_role gauge\n"
        "wanbalance_role{role=\"primary\"} 0\n"
        "wanbalance_role{role=\"backup\"} 0\n"
        "wanbalance_role{role=\"fault\"} 0\n"
        "# HELP wanbalance_wan_state 1 for the WAN's current state per family (up, down: probes or link, disabled and "
        "draining: operator), else 0.\n"
        "# TYPE wanbalance_wan_state gauge\n"
        "wanbalance_wan_state{wan=\"charter\",interface=\"ether1\",family=\"ipv4\",state=\"up\"} 1\n"
        "wanbalance_wan_state{wan=\"charter\",interface=\"ether1\",family=\"ipv4\",state=\"down\"} 0\n"
        "wanbalance_wan_state{wan=\"charter\",interface=\"ether1\",family=\"ipv4\",state=\"disabled\"} 0\n"
        "wanbalance_wan_state{wan=\"charter\",interface=\"ether1\",family=\"ipv4\",state=\"draining\"} 0\n"
        "# HELP wanbalance_wan_degraded 1 while the kernel holds less than the configuration asks for the WAN (it "
        "refused a route, a rule or the ruleset), else 0.\n"
        "# TYPE wanbalance_wan_degraded gauge\n"
        "wanbalance_wan_degraded{wan=\"charter\",interface=\"ether1\"} 0\n"
        "# HELP wanbalance_wan_active 1 when the WAN takes new LAN connections (up, and in the tier in use).\n"
        "# TYPE wanbalance_wan_active gauge\n"
        "wanbalance_wan_active{wan=\"charter\",interface=\"ether1\",family=\"ipv4\"} 1\n"
        "# HELP wanbalance_wan_rtt_seconds Probe round-trip time (absent until a probe is answered).\n"
        "# TYPE wanbalance_wan_rtt_seconds gauge\n"
        "wanbalance_wan_rtt_seconds{wan=\"charter\",interface=\"ether1\",family=\"ipv4\"} 0.0015\n"
        "# HELP wanbalance_wan_loss_ratio Share of recent probes that got no answer in time, 0 to 1.\n"
        "# TYPE wanbalance_wan_loss_ratio gauge\n"
        "wanbalance_wan_loss_ratio{wan=\"charter\",interface=\"ether1\",family=\"ipv4\"} 0.025\n"
        "# HELP wanbalance_wan_probes_sent_total Probes sent out of the WAN.\n"
        "# TYPE wanbalance_wan_probes_sent_total counter\n"
        "wanbalance_wan_probes_sent_total{wan=\"charter\",interface=\"ether1\",family=\"ipv4\"} 120\n"
        "# HELP wanbalance_wan_probes_lost_total Probes that got no answer in time.\n"
        "# TYPE wanbalance_wan_probes_lost_total counter\n"
        "wanbalance_wan_probes_lost_total{wan=\"charter\",interface=\"ether1\",family=\"ipv4\"} 3\n"
        "# HELP wanbalance_wan_transitions_total State changes since the daemon started.\n"
        "# TYPE wanbalance_wan_transitions_total counter\n"
        "wanbalance_wan_transitions_total{wan=\"charter\",interface=\"ether1\",family=\"ipv4\"} 2\n"
        "# HELP wanbalance_wan_receive_bytes_total Bytes received on the WAN's interface.\n"
        "# TYPE wanbalance_wan_receive_bytes_total counter\n"
        "wanbalance_wan_receive_bytes_total{wan=\"charter\",interface=\"ether1\"} 18446744073709551615\n"
        "# HELP wanbalance_wan_transmit_bytes_total Bytes sent on the WAN's interface.\n"
        "# TYPE wanbalance_wan_transmit_bytes_total counter\n"
        "wanbalance_wan_transmit_bytes_total{wan=\"charter\",interface=\"ether1\"} 2048\n"
        "# HELP wanbalance_wan_connections Tracked connections marked for the WAN.\n"
        "# TYPE wanbalance_wan_connections gauge\n"
        "wanbalance_wan_connections{wan=\"charter\",interface=\"ether1\"} 17\n"
        "# HELP wanbalance_wan_weight Configured weight among the WANs of its tier.\n"
        "# TYPE wanbalance_wan_weight gauge\n"
        "wanbalance_wan_weight{wan=\"charter\",interface=\"ether1\"} 3\n"
        "# HELP wanbalance_wan_tier Configured tier (0 is used first).\n"
        "# TYPE wanbalance_wan_tier gauge\n"
        "wanbalance_wan_tier{wan=\"charter\",interface=\"ether1\"} 0\n"
        "# HELP wanbalance_probe_target_rtt_seconds A probe target's smoothed RTT (RFC 6298 srtt).\n"
        "# TYPE wanbalance_probe_target_rtt_seconds gauge\n"
        "wanbalance_probe_target_rtt_seconds{wan=\"charter\",interface=\"ether1\",family=\"ipv4\",target=\"tcp 192.0.2.80:443\",kind=\"tcp\"} 0.0125\n"
        "# HELP wanbalance_probe_target_deadline_seconds How long a probe to the target may take before it is lost (srtt + 4 rttvar, floor 50 ms).\n"
        "# TYPE wanbalance_probe_target_deadline_seconds gauge\n"
        "wanbalance_probe_target_deadline_seconds{wan=\"charter\",interface=\"ether1\",family=\"ipv4\",target=\"tcp 192.0.2.80:443\",kind=\"tcp\"} 0.05\n";
    std::string out = wb::format_prometheus(status);
    CHECK(out == expected);
    parse_exposition(out);
}

TEST_CASE("prometheus: several WANs, states as a state set, families stay contiguous") {
    json status = sample_status();
    status["all_down"] = true;
    auto samples = parse_exposition(wb::format_prometheus(status));
    CHECK(find_sample(samples, "wanbalance_all_down", "")->value == "1");
    CHECK(find_sample(samples, "wanbalance_wan_state", "charter", "up")->value == "1");
    CHECK(find_sample(samples, "wanbalance_wan_state", "integra", "up")->value == "0");
    CHECK(find_sample(samples, "wanbalance_wan_state", "integra", "down")->value == "1");
    CHECK(find_sample(samples, "wanbalance_wan_state", "backup", "disabled")->value == "1");
    CHECK(find_sample(samples, "wanbalance_wan_state", "backup", "up")->value == "0");
    CHECK(find_sample(samples, "wanbalance_wan_active", "integra")->value == "0");
    CHECK(find_sample(samples, "wanbalance_wan_rtt_seconds", "charter")->value == "0.0012");
    CHECK(find_sample(samples, "wanbalance_wan_rtt_seconds", "backup")->value == "0.025");
    CHECK(find_sample(samples, "wanbalance_wan_rtt_seconds", "integra") == nullptr);  // null: no sample
    CHECK(find_sample(samples, "wanbalance_wan_loss_ratio", "integra")->value == "1");
    CHECK(find_sample(samples, "wanbalance_wan_loss_ratio", "backup")->value == "0.005");
    CHECK(find_sample(samples, "wanbalance_wan_connections", "backup")->value == "1234");
    CHECK(find_sample(samples, "wanbalance_wan_receive_bytes_total", "charter")->value == "100000");
    CHECK(find_sample(samples, "wanbalance_wan_receive_bytes_total", "integra") == nullptr);
    CHECK(find_sample(samples, "wanbalance_wan_state", "charter", "up")->labels.at("interface") == "ether1");
    int state_samples = 0;
    for (const auto& s : samples) state_samples += s.name == "wanbalance_wan_state";
    CHECK(state_samples == 12);
}

TEST_CASE("status: a draining WAN counts its connections down") {
    json status = json::parse(R"({ "version": "0.1.0", "config": "/etc/wanbalance.json", "uptime_s": 5,
      "wans": [ { "name": "integra", "interface": "ether2", "state": "draining", "override": "drain",
                  "reason": "drained by operator: no new connections, the open ones run out", "connections": 7 } ] })");
    std::string text = wb::format_status(status, false, std::chrono::system_clock::now());
    CHECK(text.find("integra: draining (drained by operator: no new connections, the open ones run out), operator "
                    "override drain, 7 connections left") != std::string::npos);
    status["wans"][0]["connections"] = 1;
    CHECK(wb::format_status(status, false, std::chrono::system_clock::now()).find(", 1 connection left") !=
          std::string::npos);
}

TEST_CASE("connections: one row per connection, IPv6 in brackets, ICMP without ports, then a count") {
    json list = json::parse(R"([
      {"proto": "tcp", "src": "192.168.88.10", "sport": 40001, "dst": "192.0.2.10", "dport": 443,
       "wan": "charter", "rule": null, "state": "ESTABLISHED", "bytes": 2048},
      {"proto": "udp", "src": "fd00:88::10", "sport": 5060, "dst": "2001:db8:ff::10", "dport": 5060,
       "wan": "integra", "rule": "sip", "state": "", "bytes": null},
      {"proto": "icmp", "src": "192.168.88.11", "sport": 0, "dst": "192.0.2.10", "dport": 0,
       "wan": "integra", "rule": null, "state": "", "bytes": null} ])");
    std::string text = wb::format_connections(list);
    CHECK(text ==
          "PROTO  SOURCE               DESTINATION             WAN      RULE  STATE        BYTES\n"
          "tcp    192.168.88.10:40001  192.0.2.10:443          charter  -     ESTABLISHED  2.0 KiB\n"
          "udp    [fd00:88::10]:5060   [2001:db8:ff::10]:5060  integra  sip   -            -\n"
          "icmp   192.168.88.11        192.0.2.10              integra  -     -            -\n"
          "3 connections\n");
    CHECK(wb::format_connections(json::array()) == "0 connections\n");
}

TEST_CASE("prometheus: label values are escaped, odd input never throws") {
    json status = json::parse(R"({ "version": "1\"2\\3\n",
        "wans": [ { "name": "a\"b", "interface": "x\\y", "state": "weird", "rtt_ms": "fast",
                    "connections": -3, "loss_pct": null },
                  { "interface": "nameless" }, 42, null ] })");
    std::string out;
    REQUIRE_NOTHROW(out = wb::format_prometheus(status));
    auto samples = parse_exposition(out);
    CHECK(out.find("wanbalance_build_info{version=\"1\\\"2\\\\3\\n\"} 1\n") != std::string::npos);
    CHECK(out.find("{wan=\"a\\\"b\",interface=\"x\\\\y\",family=\"ipv4\",state=\"weird\"} 1\n") != std::string::npos);
    CHECK(find_sample(samples, "wanbalance_wan_connections", "")->value == "-3");
    CHECK(out.find("nameless") == std::string::npos);  // no name, no labels: left out
    CHECK(out.find("wanbalance_wan_rtt_seconds{") == std::string::npos);
    CHECK(out.find("\nwanbalance_uptime_seconds ") == std::string::npos);

    for (const json& odd : {json(), json::array(), json("x"), json::object()}) {
        REQUIRE_NOTHROW(out = wb::format_prometheus(odd));
        samples = parse_exposition(out);
        CHECK(find_sample(samples, "wanbalance_all_down", "")->value == "0");
    }
}

namespace {

json dual_stack_status() {
    json status = sample_status();
    status["wans"].erase(2);
    status["all_down_ipv6"] = false;
    status["wans"][0]["ipv6"] = json::parse(R"({ "state": "down", "since": "2026-11-25T18:59:00Z",
        "reason": "3 probe rounds failed in a row", "link": "up", "active": false, "gateway": "2001:db8:1::1",
        "gateway_auto": false, "rtt_ms": null, "loss_pct": 100.0, "probes_sent": 50, "probes_lost": 20,
        "transitions": 1, "warning": null })");
    status["wans"][1]["ipv6"] = json::parse(R"J({ "state": "up", "since": "2026-11-25T18:50:00Z",
        "reason": "probes answered", "link": "up", "active": true, "gateway": "fe80::1", "gateway_auto": true,
        "rtt_ms": 1.4, "loss_pct": 0.0, "probes_sent": 60, "probes_lost": 0, "transitions": 0,
        "warning": "gateway6 is \"auto\" but ether2 ignores router advertisements (net.ipv6.conf.ether2.accept_ra=1 while forwarding; set it to 2)" })J");
    return status;
}

}  // namespace

TEST_CASE("status table: a WAN with IPv6 gets an ipv6 line under it, with its notes and warning") {
    std::string out = wb::format_status(dual_stack_status(), false, at("2026-11-25T19:00:00Z"));
    const std::string expected =
        "wanbalanced 0.1.0, config /etc/wanbalance.json, up 2h3m\n"
        "WAN      IFACE   STATE  SINCE  GATEWAY           RTT    LOSS  CONNS  SHARE      BYTES\n"
        "charter  ether1  up     3m12s  203.0.113.1     1.2ms    0.0%     17  45.9%  120.6 KiB\n"
        "  ipv6           down    1m0s  2001:db8:1::1       -  100.0%\n"
        "integra  ether2  down     12s  auto                -  100.0%      0   0.0%        0 B\n"
        "  ipv6           up     10m0s  fe80::1 (auto)  1.4ms    0.0%\n"
        "  charter ipv6: down (3 probe rounds failed in a row)\n"
        "  integra: down (3 probe rounds lost)\n"
        "  integra ipv6: warning: gateway6 is \"auto\" but ether2 ignores router advertisements "
        "(net.ipv6.conf.ether2.accept_ra=1 while forwarding; set it to 2)\n";
    CHECK(out == expected);
    json all_down = dual_stack_status();
    all_down["all_down_ipv6"] = true;
    CHECK(wb::format_status(all_down, false, at("2026-11-25T19:00:00Z"))
              .find("warning: every WAN is down for IPv6; balancing over all WANs whose link is up\n") != std::string::npos);
}

TEST_CASE("prometheus: per-family metrics carry a family label, IPv6 from the ipv6 object") {
    auto samples = parse_exposition(wb::format_prometheus(dual_stack_status()));
    auto family_sample = [&](const char* name, const char* wan, const char* family, const char* state = "") {
        for (const auto& s : samples) {
            if (s.name != name || s.labels.at("wan") != wan) continue;
            auto f = s.labels.find("family");
            if (f == s.labels.end() || f->second != family) continue;
            if (*state && s.labels.at("state") != state) continue;
            return std::optional<std::string>(s.value);
        }
        return std::optional<std::string>();
    };
    CHECK(family_sample("wanbalance_wan_state", "charter", "ipv4", "up") == "1");
    CHECK(family_sample("wanbalance_wan_state", "charter", "ipv6", "down") == "1");
    CHECK(family_sample("wanbalance_wan_state", "integra", "ipv6", "up") == "1");
    CHECK(family_sample("wanbalance_wan_loss_ratio", "charter", "ipv6") == "1");
    CHECK(family_sample("wanbalance_wan_rtt_seconds", "integra", "ipv6") == "0.0014");
    CHECK(family_sample("wanbalance_wan_probes_lost_total", "charter", "ipv6") == "20");
    std::string out = wb::format_prometheus(dual_stack_status());
    CHECK(out.find("wanbalance_all_down{family=\"ipv6\"} 0\n") != std::string::npos);
    // Counters of the WAN, not of a family, keep their labels.
    CHECK(out.find("wanbalance_wan_connections{wan=\"charter\",interface=\"ether1\"} 17\n") != std::string::npos);
}

TEST_CASE("policy rules: a table under the WANs saying where each rule sends, and a Prometheus gauge") {
    json status = sample_status();
    status["rules"] = json::parse(R"([
      {"name": "sip", "policy": "voip", "wan": "integra", "wans": ["integra"], "via": "policy",
       "family": "ipv4", "sticky": "none", "connections": 3, "ipv6": null},
      {"name": "bank", "policy": "balanced", "wan": null, "wans": ["charter", "integra"], "via": "policy",
       "family": "ipv4", "sticky": "src-dst", "connections": 12,
       "ipv6": {"wan": "charter", "wans": ["charter"], "via": "policy"}},
      {"name": "vpn", "policy": "main", "wan": null, "wans": [], "via": "main", "family": "ipv4",
       "sticky": "none", "connections": 0, "ipv6": null},
      {"name": "lte", "policy": "metered", "wan": "charter", "wans": ["charter"], "via": "last_resort",
       "family": "ipv4", "sticky": "none", "connections": 1, "ipv6": null}
    ])");
    auto lines = lines_of(wb::format_status(status, false, at("2026-11-25T19:00:00Z")));
    auto header = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("RULE", 0) == 0; });
    REQUIRE(header != lines.end());
    REQUIRE(lines.end() - header == 5);
    CHECK(*header == "RULE  POLICY    SENDS TO                       CONNS  STICKY");
    CHECK(header[1] == "sip   voip      integra                        3      -");
    CHECK(header[2] == "bank  balanced  charter,integra; ipv6 charter  12     src-dst");
    CHECK(header[3] == "vpn   main      main table                     0      -");
    CHECK(header[4] == "lte   metered   charter (last resort)          1      -");

    std::string prom = wb::format_prometheus(status);
    CHECK(prom.find("wanbalance_rule_connections{rule=\"sip\",policy=\"voip\"} 3\n") != std::string::npos);
    CHECK(prom.find("wanbalance_rule_connections{rule=\"bank\",policy=\"balanced\"} 12\n") != std::string::npos);

    // Without rules: no section.
    std::string plain = wb::format_status(sample_status(), false, at("2026-11-25T19:00:00Z"));
    CHECK(plain.find("RULE") == std::string::npos);
}

TEST_CASE("probe targets: a table per WAN and family with RTT, deadline, loss and last answer") {
    json status = sample_status();
    status["wans"][0]["confirming"] = true;
    status["wans"][0]["targets"] = json::parse(R"([
      {"target": "192.0.2.53", "kind": "icmp", "address": "192.0.2.53", "rtt_ms": 0.4, "rttvar_ms": 0.1,
       "deadline_ms": 50, "loss_pct": 2.0, "sent": 100, "lost": 2, "last_answer_s": 0.25},
      {"target": "tcp 192.0.2.80:443", "kind": "tcp", "address": "192.0.2.80", "rtt_ms": null, "rttvar_ms": null,
       "deadline_ms": 600, "loss_pct": 100, "sent": 4, "lost": 4, "last_answer_s": null}
    ])");
    status["wans"][0]["ipv6"] = json::parse(R"({"state": "up", "targets": [
      {"target": "dns 2001:db8::53 example.com", "kind": "dns", "rtt_ms": 12.5, "deadline_ms": 62.5,
       "loss_pct": 0, "last_answer_s": 1.0}]})");
    auto lines = lines_of(wb::format_status(status, false, at("2026-11-25T19:00:00Z")));
    auto header = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("PROBES", 0) == 0; });
    REQUIRE(header != lines.end());
    REQUIRE(lines.end() - header >= 4);
    CHECK(*header == "PROBES                TARGET                        RTT     DEADLINE  LOSS    LAST ANSWER");
    CHECK(header[1] == "charter (confirming)  192.0.2.53                    0.4ms   50ms      2.0%    0.2s ago");
    CHECK(header[2] == "charter (confirming)  tcp 192.0.2.80:443            -       600ms     100.0%  never");
    CHECK(header[3] == "charter ipv6          dns 2001:db8::53 example.com  12.5ms  62ms      0.0%    1.0s ago");
    // No targets in the status (an older daemon): no section.
    std::string plain = wb::format_status(sample_status(), false, at("2026-11-25T19:00:00Z"));
    CHECK(plain.find("PROBES") == std::string::npos);
}
