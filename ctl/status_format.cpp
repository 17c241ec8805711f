// The views of `wanbalancectl status`: the human table (header, all-down warning, rows, notes)
// and Prometheus metrics. Both tolerate missing fields and wrong types: an old or new daemon
// must not crash ctl.
#include "ctl/status_format.hpp"

#include <array>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <vector>

namespace wb {
namespace {

using json = nlohmann::json;

constexpr const char* kGreen = "\033[32m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kBoldRed = "\033[1;31m";
constexpr const char* kReset = "\033[0m";

std::optional<std::string> get_string(const json& obj, const char* key) {
    if (!obj.is_object()) return std::nullopt;
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

std::optional<double> get_number(const json& obj, const char* key) {
    if (!obj.is_object()) return std::nullopt;
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
}

bool get_bool(const json& obj, const char* key) {
    if (!obj.is_object()) return false;
    auto it = obj.find(key);
    return it != obj.end() && it->is_boolean() && it->get<bool>();
}

std::string printf_string(const char* fmt, double value) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, value);
    return buf;
}

std::string or_dash(const std::optional<std::string>& s) { return s && !s->empty() ? *s : "-"; }

std::string state_color(const std::string& state) {
    if (state == "up") return kGreen;
    if (state == "down") return kRed;
    if (state == "disabled" || state == "draining") return kYellow;
    return "";
}

struct Cell {
    std::string text;   // what is measured for alignment
    std::string color;  // ANSI prefix, empty for none
};

enum class Align { Left, Right };

struct Column {
    const char* title;
    Align align;
};

constexpr Column kColumns[] = {
    {"WAN", Align::Left},    {"IFACE", Align::Left}, {"STATE", Align::Left},  {"SINCE", Align::Right},
    {"GATEWAY", Align::Left}, {"RTT", Align::Right},  {"LOSS", Align::Right},  {"CONNS", Align::Right},
    {"SHARE", Align::Right}, {"BYTES", Align::Right},
};
constexpr size_t kColumnCount = sizeof kColumns / sizeof kColumns[0];

// A WAN's IPv6 object (status JSON), or nullptr for an IPv4-only WAN.
// The live check's findings ("warnings": [{path, message}]); empty when absent.
const json& live_warnings(const json& status) {
    static const json none = json::array();
    if (!status.is_object()) return none;
    auto it = status.find("warnings");
    return it != status.end() && it->is_array() ? *it : none;
}

const json* ipv6_of(const json& wan) {
    if (!wan.is_object()) return nullptr;
    auto it = wan.find("ipv6");
    return it != wan.end() && it->is_object() ? &*it : nullptr;
}

// `wan` is a WAN's status object, or its "ipv6" object for the IPv6 line under it (`name` then
// reads "  ipv6", and the counters that are the WAN's, not a family's, stay empty).
std::vector<Cell> wan_row(const json& wan, std::chrono::system_clock::time_point now, bool color,
                          const char* ipv6_line = nullptr) {
    std::string state = or_dash(get_string(wan, "state"));

    std::string since = "-";
    if (auto text = get_string(wan, "since")) {
        if (auto t = parse_utc_time(*text)) {
            auto age = std::chrono::duration_cast<std::chrono::seconds>(now - *t);
            since = format_duration(age < std::chrono::seconds(0) ? std::chrono::seconds(0) : age);
        }
    }

    std::string gateway = or_dash(get_string(wan, "gateway"));
    if (get_bool(wan, "gateway_auto")) gateway = gateway == "-" ? "auto" : gateway + " (auto)";

    auto rtt = get_number(wan, "rtt_ms");
    auto loss = get_number(wan, "loss_pct");
    auto conns = get_number(wan, "connections");
    auto share = get_number(wan, "share_pct");
    auto bytes = get_number(wan, "bytes");

    if (ipv6_line)
        return {{ipv6_line, ""},
                {"", ""},
                {state, color ? state_color(state) : ""},
                {since, ""},
                {gateway, ""},
                {rtt ? printf_string("%.1fms", *rtt) : "-", ""},
                {loss ? printf_string("%.1f%%", *loss) : "-", ""},
                {"", ""},
                {"", ""},
                {"", ""}};
    return {
        {or_dash(get_string(wan, "name")), ""},
        {or_dash(get_string(wan, "interface")), ""},
        {state, color ? state_color(state) : ""},
        {since, ""},
        {gateway, ""},
        {rtt ? printf_string("%.1fms", *rtt) : "-", ""},
        {loss ? printf_string("%.1f%%", *loss) : "-", ""},
        {conns ? printf_string("%.0f", *conns) : "-", ""},
        {share ? printf_string("%.1f%%", *share) : "-", ""},
        {bytes && *bytes >= 0 ? format_bytes(static_cast<uint64_t>(*bytes)) : "-", ""},
    };
}

// Why a WAN is not plainly "up": its reason, the link when it is not up, the operator override.
std::optional<std::string> wan_note(const json& wan) {
    std::string state = or_dash(get_string(wan, "state"));
    std::string over = get_string(wan, "override").value_or("auto");
    std::string link = get_string(wan, "link").value_or("up");
    bool active = !wan.contains("active") || get_bool(wan, "active");
    if (state == "up" && over == "auto" && link == "up" && active) return std::nullopt;

    std::string note = or_dash(get_string(wan, "name")) + ": " + state;
    if (auto reason = get_string(wan, "reason"); reason && !reason->empty()) note += " (" + *reason + ")";
    if (link != "up") note += ", link " + link;
    if (over != "auto") note += ", operator override " + over;
    if (state == "up" && !active) note += ", not taking new connections (lower tier in use)";
    if (state == "draining")
        if (auto left = get_number(wan, "connections"))
            note += ", " + std::to_string(static_cast<long long>(*left)) +
                    (*left == 1 ? " connection left" : " connections left");
    return note;
}

// The same for a WAN's IPv6, and the warning that its "auto" gateway cannot be learned.
std::vector<std::string> ipv6_notes(const json& wan) {
    std::vector<std::string> notes;
    const json* v6 = ipv6_of(wan);
    if (!v6) return notes;
    std::string name = or_dash(get_string(wan, "name")) + " ipv6";
    json named = *v6;
    named["name"] = name;
    named["override"] = get_string(wan, "override").value_or("auto");
    if (auto note = wan_note(named)) notes.push_back(*note);
    if (auto warning = get_string(*v6, "warning")) notes.push_back(name + ": warning: " + *warning);
    return notes;
}

std::string render_table(const std::vector<std::vector<Cell>>& rows) {
    size_t width[kColumnCount];
    for (size_t c = 0; c < kColumnCount; ++c) {
        width[c] = std::string_view(kColumns[c].title).size();
        for (const auto& row : rows) width[c] = std::max(width[c], row[c].text.size());
    }
    auto emit = [&](std::string& out, size_t c, const Cell& cell) {
        std::string pad(width[c] - cell.text.size(), ' ');
        std::string body = cell.color.empty() ? cell.text : cell.color + cell.text + kReset;
        if (kColumns[c].align == Align::Right) {
            out += pad + body;
        } else {
            out += body;
            if (c + 1 < kColumnCount) out += pad;
        }
        if (c + 1 < kColumnCount) out += "  ";
    };
    std::string out;
    for (size_t c = 0; c < kColumnCount; ++c) emit(out, c, Cell{kColumns[c].title, ""});
    out += "\n";
    for (const auto& row : rows) {
        for (size_t c = 0; c < kColumnCount; ++c) emit(out, c, row[c]);
        while (!out.empty() && out.back() == ' ') out.pop_back();  // an ipv6 line's empty counters
        out += "\n";
    }
    return out;
}

// Where a rule's new connections go in one family, for a person: "integra", "charter,integra",
// "main table", "unreachable", with " (last resort)" when its policy has no member in service.
std::string rule_target(const json& send) {
    std::string via = get_string(send, "via").value_or("");
    if (via == "main") return "main table";
    if (via == "unreachable") return "unreachable";
    std::string wans;
    if (send.is_object() && send.contains("wans") && send["wans"].is_array())
        for (const auto& w : send["wans"])
            if (w.is_string()) wans += (wans.empty() ? "" : ",") + w.get<std::string>();
    if (wans.empty()) wans = "-";
    return via == "last_resort" ? wans + " (last resort)" : wans;
}

// The policy rules under the WANs: RULE POLICY SENDS TO CONNS STICKY, left aligned.
// Rows as columns two spaces apart, the first row a header; no trailing blanks.
template <size_t N>
std::string aligned(const std::vector<std::array<std::string, N>>& rows) {
    std::array<size_t, N> width{};
    for (const auto& row : rows)
        for (size_t c = 0; c < N; ++c) width[c] = std::max(width[c], row[c].size());
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (size_t c = 0; c < N; ++c) line += row[c] + (c + 1 < N ? std::string(width[c] - row[c].size() + 2, ' ') : "");
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    }
    return out;
}

std::string rules_table(const json& rules) {
    std::vector<std::array<std::string, 5>> rows = {{"RULE", "POLICY", "SENDS TO", "CONNS", "STICKY"}};
    for (const auto& rule : rules) {
        std::string to = rule_target(rule);
        if (rule.contains("ipv6") && rule["ipv6"].is_object()) {
            std::string to6 = rule_target(rule["ipv6"]);
            if (to6 != to) to += "; ipv6 " + to6;
        }
        auto conns = get_number(rule, "connections");
        rows.push_back({or_dash(get_string(rule, "name")), or_dash(get_string(rule, "policy")), to,
                        conns ? std::to_string(static_cast<long long>(*conns)) : "-",
                        get_string(rule, "sticky").value_or("none") == "none" ? "-" : *get_string(rule, "sticky")});
    }
    return aligned(rows);
}

// One row per probe target of every WAN and family: how it answers and what deadline it has.
void add_target_rows(const json& path, const std::string& wan, std::vector<std::array<std::string, 6>>& rows) {
    auto it = path.find("targets");
    if (it == path.end() || !it->is_array()) return;
    for (const auto& t : *it) {
        auto rtt = get_number(t, "rtt_ms");
        auto deadline = get_number(t, "deadline_ms");
        auto loss = get_number(t, "loss_pct");
        auto last = get_number(t, "last_answer_s");
        rows.push_back({wan, or_dash(get_string(t, "target")), rtt ? printf_string("%.1fms", *rtt) : "-",
                        deadline ? printf_string("%.0fms", *deadline) : "-", loss ? printf_string("%.1f%%", *loss) : "-",
                        last ? printf_string("%.1fs ago", *last) : "never"});
    }
}

std::string targets_table(const json& wans) {
    std::vector<std::array<std::string, 6>> rows = {{"PROBES", "TARGET", "RTT", "DEADLINE", "LOSS", "LAST ANSWER"}};
    for (const auto& wan : wans) {
        std::string name = or_dash(get_string(wan, "name"));
        std::string confirming = get_bool(wan, "confirming") ? " (confirming)" : "";
        add_target_rows(wan, name + confirming, rows);
        if (const json* v6 = ipv6_of(wan))
            add_target_rows(*v6, name + " ipv6" + (get_bool(*v6, "confirming") ? " (confirming)" : ""), rows);
    }
    return rows.size() > 1 ? aligned(rows) : "";
}

}  // namespace

std::string format_connections(const json& list) {
    std::vector<std::array<std::string, 7>> rows = {{"PROTO", "SOURCE", "DESTINATION", "WAN", "RULE", "STATE", "BYTES"}};
    auto endpoint = [](const json& c, const char* addr, const char* port) {
        std::string a = or_dash(get_string(c, addr));
        auto p = get_number(c, port);
        if (!p || *p == 0) return a;  // ICMP: no port
        bool v6 = a.find(':') != std::string::npos;
        return (v6 ? "[" + a + "]" : a) + ":" + std::to_string(static_cast<long long>(*p));
    };
    size_t n = 0;
    if (list.is_array())
        for (const auto& c : list) {
            auto bytes = get_number(c, "bytes");
            std::string state = get_string(c, "state").value_or("");
            rows.push_back({or_dash(get_string(c, "proto")), endpoint(c, "src", "sport"), endpoint(c, "dst", "dport"),
                            or_dash(get_string(c, "wan")), or_dash(get_string(c, "rule")), state.empty() ? "-" : state,
                            bytes ? format_bytes(static_cast<uint64_t>(*bytes)) : "-"});
            ++n;
        }
    std::string out = n ? aligned(rows) : "";
    return out + (n == 1 ? "1 connection\n" : std::to_string(n) + " connections\n");
}

std::string format_duration(std::chrono::seconds d) {
    long long s = d.count() < 0 ? 0 : d.count();
    long long days = s / 86400, hours = s / 3600 % 24, minutes = s / 60 % 60, secs = s % 60;
    if (days > 0) return std::to_string(days) + "d" + std::to_string(hours) + "h";
    if (hours > 0) return std::to_string(hours) + "h" + std::to_string(minutes) + "m";
    if (minutes > 0) return std::to_string(minutes) + "m" + std::to_string(secs) + "s";
    return std::to_string(secs) + "s";
}

std::string format_bytes(uint64_t bytes) {
    static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) return std::to_string(bytes) + " B";
    double value = static_cast<double>(bytes) / 1024;
    size_t unit = 0;
    // Round first, so 1023.96 KiB prints as "1.0 MiB" and not "1024.0 KiB".
    while (std::round(value * 10) / 10 >= 1024 && unit + 1 < std::size(kUnits)) {
        value /= 1024;
        ++unit;
    }
    return printf_string("%.1f ", value) + kUnits[unit];
}

std::optional<std::chrono::system_clock::time_point> parse_utc_time(std::string_view text) {
    std::string s(text);
    int year, month, day, hour, minute, second, consumed = 0;
    if (sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second,
               &consumed) != 6 ||
        consumed != 19)
        return std::nullopt;
    size_t pos = 19;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        size_t digits = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        if (pos == digits) return std::nullopt;
    }
    if (pos + 1 != s.size() || s[pos] != 'Z') return std::nullopt;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return std::nullopt;
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    time_t t = timegm(&tm);
    if (t == static_cast<time_t>(-1)) return std::nullopt;
    return std::chrono::system_clock::from_time_t(t);
}

std::string format_status(const json& status, bool color, std::chrono::system_clock::time_point now) {
    std::string out = "wanbalanced " + or_dash(get_string(status, "version")) + ", config " +
                      or_dash(get_string(status, "config"));
    if (auto up = get_number(status, "uptime_s"); up && *up >= 0)
        out += ", up " + format_duration(std::chrono::seconds(static_cast<long long>(*up)));
    if (auto role = get_string(status, "role")) out += ", role " + *role;
    out += "\n";

    for (const char* key : {"all_down", "all_down_ipv6"}) {
        if (!get_bool(status, key)) continue;
        std::string which = std::string_view(key) == "all_down" ? "" : " for IPv6";
        std::string warning = "warning: every WAN is down" + which + "; balancing over all WANs whose link is up";
        out += color ? std::string(kBoldRed) + warning + kReset : warning;
        out += "\n";
    }
    if (auto problem = get_string(status, "config_error")) {
        std::string warning = "critical: the config file is invalid; running the last applied configuration\n  " +
                              *problem + "\n  fix the file, then `wanbalancectl reload`";
        out += color ? std::string(kBoldRed) + warning + kReset : warning;
        out += "\n";
    }

    for (const auto& w : live_warnings(status)) {
        std::string where = get_string(w, "path").value_or("");
        out += "warning: " + (where.empty() ? std::string("the config file") : where) + ": " +
               get_string(w, "message").value_or("?") + "\n";
    }
    if (status.is_object() && status.contains("wans") && status["wans"].is_array())
        for (const auto& wan : status["wans"]) {
            auto reason = get_string(wan, "degraded");
            if (!reason) continue;
            std::string error = "error: WAN " + get_string(wan, "name").value_or("?") +
                                " is degraded: the kernel refused part of what the configuration asks\n  " + *reason;
            out += (color ? std::string(kBoldRed) + error + kReset : error) + "\n";
        }

    std::vector<std::vector<Cell>> rows;
    std::vector<std::string> notes;
    const json* wans = nullptr;
    if (status.is_object()) {
        auto it = status.find("wans");
        if (it != status.end() && it->is_array()) wans = &*it;
    }
    if (wans) {
        for (const auto& wan : *wans) {
            rows.push_back(wan_row(wan, now, color));
            if (const json* v6 = ipv6_of(wan)) rows.push_back(wan_row(*v6, now, color, "  ipv6"));
            if (auto note = wan_note(wan)) notes.push_back(*note);
            for (auto& note : ipv6_notes(wan)) notes.push_back(std::move(note));
        }
    }
    out += render_table(rows);
    for (const auto& note : notes) out += "  " + note + "\n";
    if (wans)
        if (std::string targets = targets_table(*wans); !targets.empty()) out += "\n" + targets;
    if (status.is_object() && status.contains("rules") && status["rules"].is_array() && !status["rules"].empty())
        out += "\n" + rules_table(status["rules"]);
    return out;
}


namespace {

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
std::string prom_label(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string prom_double(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
    return ec == std::errc() ? std::string(buf, end) : "NaN";
}

// Integers stay exact (byte counters pass 2^53 on a busy uplink); `divisor` converts units.
std::optional<std::string> prom_value(const json& obj, const char* key, double divisor = 1) {
    if (!obj.is_object()) return std::nullopt;
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (it->is_boolean()) return it->get<bool>() ? "1" : "0";
    if (!it->is_number()) return std::nullopt;
    if (divisor == 1 && it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
    if (divisor == 1 && it->is_number_integer()) return std::to_string(it->get<int64_t>());
    return prom_double(it->get<double>() / divisor);
}

struct Family {
    const char* name;
    const char* type;
    const char* help;
};

void family_header(std::string& out, const Family& f) {
    out += std::string("# HELP ") + f.name + " " + f.help + "\n";
    out += std::string("# TYPE ") + f.name + " " + f.type + "\n";
}

struct WanMetric {
    Family family;
    const char* key;  // in the WAN's status object (and in its "ipv6" object when per_family)
    double divisor;
    bool per_family = false;  // labelled family="ipv4" / "ipv6"
};

constexpr WanMetric kWanMetrics[] = {
    {{"wanbalance_wan_active", "gauge", "1 when the WAN takes new LAN connections (up, and in the tier in use)."},
     "active", 1, true},
    {{"wanbalance_wan_rtt_seconds", "gauge", "Probe round-trip time (absent until a probe is answered)."},
     "rtt_ms", 1000, true},
    {{"wanbalance_wan_loss_ratio", "gauge", "Share of recent probes that got no answer in time, 0 to 1."},
     "loss_pct", 100, true},
    {{"wanbalance_wan_probes_sent_total", "counter", "Probes sent out of the WAN."}, "probes_sent", 1, true},
    {{"wanbalance_wan_probes_lost_total", "counter", "Probes that got no answer in time."}, "probes_lost", 1, true},
    {{"wanbalance_wan_transitions_total", "counter", "State changes since the daemon started."}, "transitions", 1,
     true},
    {{"wanbalance_wan_receive_bytes_total", "counter", "Bytes received on the WAN's interface."}, "rx_bytes", 1},
    {{"wanbalance_wan_transmit_bytes_total", "counter", "Bytes sent on the WAN's interface."}, "tx_bytes", 1},
    {{"wanbalance_wan_connections", "gauge", "Tracked connections marked for the WAN."}, "connections", 1},
    {{"wanbalance_wan_weight", "gauge", "Configured weight among the WANs of its tier."}, "weight", 1},
    {{"wanbalance_wan_tier", "gauge", "Configured tier (0 is used first)."}, "tier", 1},
};

constexpr const char* kStates[] = {"up", "down", "disabled", "draining"};
constexpr const char* kRoles[] = {"primary", "backup", "fault"};

// A state set: 1 for the role the daemon was told (keepalived's notify script), 0 for the
// others; all 0 outside an HA pair.
void role_metric(std::string& out, const json& status) {
    family_header(out, {"wanbalance_role", "gauge",
                        "1 for the HA role the daemon was last told (wanbalancectl role), else 0; all 0 outside a pair."});
    std::string role = get_string(status, "role").value_or("");
    for (const char* r : kRoles) out += std::string("wanbalance_role{role=\"") + r + "\"} " + (role == r ? "1" : "0") + "\n";
}

// Per policy rule: its connections, labelled rule="NAME",policy="POLICY".
void rule_metrics(std::string& out, const json& status) {
    if (!status.is_object() || !status.contains("rules") || !status["rules"].is_array()) return;
    family_header(out, {"wanbalance_rule_connections", "gauge", "Tracked connections that the policy rule matches."});
    for (const auto& rule : status["rules"]) {
        auto name = get_string(rule, "name");
        if (!name || name->empty()) continue;
        if (auto v = prom_value(rule, "connections"))
            out += "wanbalance_rule_connections{rule=\"" + prom_label(*name) + "\",policy=\"" +
                   prom_label(get_string(rule, "policy").value_or("")) + "\"} " + *v + "\n";
    }
}

}  // namespace

std::string format_prometheus(const json& status) {
    std::string out;
    family_header(out, {"wanbalance_build_info", "gauge", "Version of the running wanbalanced; always 1."});
    out += "wanbalance_build_info{version=\"" + prom_label(get_string(status, "version").value_or("")) + "\"} 1\n";
    family_header(out, {"wanbalance_uptime_seconds", "gauge", "Seconds since wanbalanced started."});
    if (auto v = prom_value(status, "uptime_s")) out += "wanbalance_uptime_seconds " + *v + "\n";
    family_header(out, {"wanbalance_all_down", "gauge",
                        "1 when every WAN is down for the family and traffic is balanced over the WANs whose link is up."});
    out += std::string("wanbalance_all_down{family=\"ipv4\"} ") + (get_bool(status, "all_down") ? "1" : "0") + "\n";
    if (status.is_object() && status.contains("all_down_ipv6") && status["all_down_ipv6"].is_boolean())
        out += std::string("wanbalance_all_down{family=\"ipv6\"} ") + (get_bool(status, "all_down_ipv6") ? "1" : "0") + "\n";
    family_header(out, {"wanbalance_config_invalid", "gauge",
                        "1 when the config file is invalid and the last applied configuration runs."});
    out += std::string("wanbalance_config_invalid ") + (get_string(status, "config_error") ? "1" : "0") + "\n";
    family_header(out, {"wanbalance_live_check_warnings", "gauge",
                        "Findings of the live check at start or the last reload (wanbalancectl status lists them)."});
    out += "wanbalance_live_check_warnings " + std::to_string(live_warnings(status).size()) + "\n";
    role_metric(out, status);

    // WANs without a name cannot be labelled: they are left out.
    std::vector<std::pair<std::string, const json*>> wans;
    if (status.is_object()) {
        auto it = status.find("wans");
        if (it != status.end() && it->is_array()) {
            for (const auto& wan : *it) {
                auto name = get_string(wan, "name");
                if (!name || name->empty()) continue;
                std::string labels = "wan=\"" + prom_label(*name) + "\",interface=\"" +
                                     prom_label(get_string(wan, "interface").value_or("")) + "\"";
                wans.emplace_back(std::move(labels), &wan);
            }
        }
    }

    // Per family: the WAN's own object is IPv4's, its "ipv6" object IPv6's.
    auto each_family = [&](const std::string& labels, const json& wan, auto emit) {
        emit(labels + ",family=\"ipv4\"", wan);
        if (const json* v6 = ipv6_of(wan)) emit(labels + ",family=\"ipv6\"", *v6);
    };
    family_header(out, {"wanbalance_wan_state", "gauge",
                        "1 for the WAN's current state per family (up, down: probes or link, disabled and draining: "
                        "operator), else 0."});
    for (const auto& [labels, wan] : wans) {
        each_family(labels, *wan, [&](const std::string& l, const json& obj) {
            std::string state = get_string(obj, "state").value_or("");
            bool known = false;
            for (const char* s : kStates) {
                known |= state == s;
                out += "wanbalance_wan_state{" + l + ",state=\"" + s + "\"} " + (state == s ? "1" : "0") + "\n";
            }
            if (!known && !state.empty()) out += "wanbalance_wan_state{" + l + ",state=\"" + prom_label(state) + "\"} 1\n";
        });
    }
    family_header(out, {"wanbalance_wan_degraded", "gauge",
                        "1 while the kernel holds less than the configuration asks for the WAN (it refused a route, "
                        "a rule or the ruleset), else 0."});
    for (const auto& [labels, wan] : wans)
        out += "wanbalance_wan_degraded{" + labels + "} " + (get_string(*wan, "degraded") ? "1" : "0") + "\n";
    rule_metrics(out, status);
    for (const auto& metric : kWanMetrics) {
        family_header(out, metric.family);
        for (const auto& [labels, wan] : wans) {
            auto emit = [&](const std::string& l, const json& obj) {
                if (auto v = prom_value(obj, metric.key, metric.divisor))
                    out += std::string(metric.family.name) + "{" + l + "} " + *v + "\n";
            };
            if (metric.per_family)
                each_family(labels, *wan, emit);
            else
                emit(labels, *wan);
        }
    }
    // Per probe target: its smoothed RTT and its current deadline, labelled target and kind.
    const std::pair<const char*, Family> target_metrics[] = {
        {"rtt_ms", {"wanbalance_probe_target_rtt_seconds", "gauge", "A probe target's smoothed RTT (RFC 6298 srtt)."}},
        {"deadline_ms", {"wanbalance_probe_target_deadline_seconds", "gauge",
                         "How long a probe to the target may take before it is lost (srtt + 4 rttvar, floor 50 ms)."}},
    };
    for (const auto& [key, header] : target_metrics) {
        family_header(out, header);
        for (const auto& [labels, wan] : wans)
            each_family(labels, *wan, [&](const std::string& l, const json& obj) {
                auto it = obj.find("targets");
                if (it == obj.end() || !it->is_array()) return;
                for (const auto& t : *it)
                    if (auto v = prom_value(t, key, 1000))
                        out += std::string(header.name) + "{" + l + ",target=\"" +
                               prom_label(get_string(t, "target").value_or("")) + "\",kind=\"" +
                               prom_label(get_string(t, "kind").value_or("")) + "\"} " + *v + "\n";
            });
    }
    return out;
}

}  // namespace wb
