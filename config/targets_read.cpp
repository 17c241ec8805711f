// Pass 1 for "probe.targets": each entry is an address (ICMP echo), {"tcp": "HOST:PORT"} (a
// handshake) or {"dns": "HOST", "name": "NAME"} (a query to port 53); no entry twice; split by
// family, as a WAN's IPv4 and IPv6 rounds are judged apart.
#include <cctype>
#include <map>
#include <tuple>

#include "config/validate.hpp"
#include "config/wording.hpp"

namespace wb::config_detail {
namespace {

constexpr unsigned kMaxPort = 65535;
constexpr std::string_view kTcpExample = "like \"192.0.2.1:443\" or \"[2001:db8::1]:443\"";
constexpr std::string_view kTargetShapes =
    "an address, {\"tcp\": \"HOST:PORT\"} or {\"dns\": \"HOST\", \"name\": \"NAME\"}";
constexpr std::string_view kUnicastRule = ": a probe target must be a unicast address reached through the WAN";

// A port without sign or leading zeros, as the schema's pattern has it; nullopt for anything else.
std::optional<unsigned> parse_port(std::string_view s) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    unsigned n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + unsigned(c - '0');
    }
    return n;
}

// A usable target address as written at `path` (`shown`: how to quote it), or nullopt with the
// problem reported.
std::optional<IpAddr> usable_address(std::string_view text, const std::string& shown, const std::string& path,
                                     Reporter& report) {
    auto address = parse_ip(text);
    if (!address) {
        report.fail(path, shown + " is not an IPv4 or IPv6 address");
        return std::nullopt;
    }
    if (auto unusable = unusable_address_kind(*address)) {
        report.fail(path, shown + " is " + std::string(*unusable) + std::string(kUnicastRule));
        return std::nullopt;
    }
    return address;
}

// "192.0.2.1:443" or "[2001:db8::1]:443".
std::optional<ProbeTarget> read_tcp(const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_string()) {
        report.fail(path, "expected \"HOST:PORT\" " + std::string(kTcpExample) + ", got " + describe(v));
        return std::nullopt;
    }
    const std::string& text = v.get_ref<const std::string&>();
    std::string_view host, port;
    size_t colon = text.rfind(':');
    if (!text.empty() && text[0] == '[') {
        size_t close = text.find(']');
        if (close == std::string::npos || close + 1 != colon) {
            report.fail(path, describe(v) + " is not HOST:PORT " + std::string(kTcpExample));
            return std::nullopt;
        }
        host = std::string_view(text).substr(1, close - 1);
        port = std::string_view(text).substr(colon + 1);
        if (host.find(':') == std::string_view::npos) {
            report.fail(path, describe(v) + ": only an IPv6 address goes in brackets");
            return std::nullopt;
        }
    } else if (colon == std::string::npos) {
        report.fail(path, describe(v) + " has no port: expected HOST:PORT " + std::string(kTcpExample));
        return std::nullopt;
    } else if (text.find(':') != colon) {
        report.fail(path, describe(v) + ": write an IPv6 address in brackets, like \"[2001:db8::1]:443\"");
        return std::nullopt;
    } else {
        host = std::string_view(text).substr(0, colon);
        port = std::string_view(text).substr(colon + 1);
    }
    auto number = parse_port(port);
    if (!number || *number == 0 || *number > kMaxPort) {
        report.fail(path, describe(v) + " has port " + quote(port) + ": expected a port from 1 to 65535");
        return std::nullopt;
    }
    auto address = usable_address(host, quote(host), path, report);
    if (!address) return std::nullopt;
    return ProbeTarget{ProbeKind::Tcp, *address, uint16_t(*number), {}};
}

std::optional<std::string> read_dns_name(const Json& v, const std::string& path, Reporter& report) {
    if (!v.is_string()) {
        report.fail(path, "expected a domain name like \"example.com\", got " + describe(v));
        return std::nullopt;
    }
    const std::string& name = v.get_ref<const std::string&>();
    if (auto problem = dns_name_problem(name)) {
        report.fail(path, describe(v) + " is not a domain name: " + *problem);
        return std::nullopt;
    }
    return name;
}

// {"dns": "HOST", "name": "NAME"}: a query for NAME to HOST, port 53.
std::optional<ProbeTarget> read_dns(const Json& v, const std::string& path, Reporter& report) {
    const std::string at = pointer_append(path, "dns");
    const Json& host = v["dns"];
    std::optional<IpAddr> address;
    if (!host.is_string()) {
        report.fail(at, "expected the address of a DNS server, got " + describe(host));
    } else {
        address = usable_address(host.get_ref<const std::string&>(), describe(host), at, report);
    }
    std::optional<std::string> name;
    if (!v.contains("name")) {
        report.fail_after(path, "missing required key \"name\" (what the dns target asks for)");
    } else {
        name = read_dns_name(v["name"], pointer_append(path, "name"), report);
    }
    if (!address || !name) return std::nullopt;
    return ProbeTarget{ProbeKind::Dns, *address, kDnsPort, *name};
}

std::optional<ProbeTarget> read_target_object(const Json& v, const std::string& path, Reporter& report) {
    check_keys(v, path, kTargetKeys, {}, report);
    bool tcp = v.contains("tcp"), dns = v.contains("dns");
    if (tcp && dns) {
        report.fail(path, "a target has \"tcp\" or \"dns\", not both");
        return std::nullopt;
    }
    if (!tcp && !dns) {
        report.fail_after(path, "missing required key \"tcp\" or \"dns\"");
        return std::nullopt;
    }
    if (dns) return read_dns(v, path, report);
    auto target = read_tcp(v["tcp"], pointer_append(path, "tcp"), report);
    if (v.contains("name")) {
        report.fail(pointer_append(path, "name"), "\"name\" is only for dns targets");
        return std::nullopt;
    }
    return target;
}

std::optional<ProbeTarget> read_target(const Json& v, const std::string& path, Reporter& report) {
    if (v.is_object()) return read_target_object(v, path, report);
    if (!v.is_string()) {
        report.fail(path, "expected " + std::string(kTargetShapes) + ", got " + describe(v));
        return std::nullopt;
    }
    auto address = usable_address(v.get_ref<const std::string&>(), describe(v), path, report);
    if (!address) return std::nullopt;
    return icmp_target(*address);
}

// What makes two targets the same probe; names compare without case, as DNS does.
std::tuple<ProbeKind, IpAddr, uint16_t, std::string> identity(const ProbeTarget& t) {
    std::string name = t.name;
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (!name.empty() && name.back() == '.') name.pop_back();
    return {t.kind, t.address, t.port, name};
}

}  // namespace

void read_targets(Field<ProbeTargets>& field, const Json& v, const std::string& path, Reporter& report) {
    field.path = path;
    if (!v.is_array()) {
        report.fail(path, "expected an array of probe targets (" + std::string(kTargetShapes) + "), got " +
                              describe(v));
        return;
    }
    bool ok = true;
    if (v.size() > kMaxProbeTargets) {
        report.fail(
            path, "expected at most " + std::to_string(kMaxProbeTargets) + " targets, got " + std::to_string(v.size()));
        ok = false;
    }
    ProbeTargets targets;
    std::map<std::tuple<ProbeKind, IpAddr, uint16_t, std::string>, std::string> first_seen;
    for (size_t i = 0; i < v.size(); ++i) {
        std::string at = pointer_append(path, i);
        auto target = read_target(v[i], at, report);
        if (!target) {
            ok = false;
            continue;
        }
        if (auto [it, fresh] = first_seen.emplace(identity(*target), at); !fresh) {
            std::string shown = v[i].is_string() ? describe(v[i]) : quote(describe(*target));
            report.fail(at, shown + " is already listed at " + it->second);
            ok = false;
            continue;
        }
        (family_of(target->address) == Family::V4 ? targets.v4 : targets.v6).push_back(*target);
    }
    if (ok) field.value = std::move(targets);
}

}  // namespace wb::config_detail
