// The loader's front door: reading the file within its size limit, running the JSON reader and
// both validation passes, and the enum <-> name table for classifiers.
#include "config/config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <netinet/in.h>

#include "base/handle.hpp"
#include "config/json_reader.hpp"
#include "config/validate.hpp"

namespace wb {

namespace {

constexpr std::array<std::pair<Classifier, std::string_view>, 8> kClassifierNames{{
    {Classifier::SrcAddress, "src-address"},
    {Classifier::DstAddress, "dst-address"},
    {Classifier::BothAddresses, "both-addresses"},
    {Classifier::BothPorts, "both-ports"},
    {Classifier::BothAddressesAndPorts, "both-addresses-and-ports"},
    {Classifier::SrcAddressAndPort, "src-address-and-port"},
    {Classifier::DstAddressAndPort, "dst-address-and-port"},
    {Classifier::RoundRobin, "round-robin"},
}};

ConfigResult failure(std::string message) { return {std::nullopt, {ConfigError{"", std::move(message)}}}; }

}  // namespace

std::string_view classifier_name(Classifier c) {
    for (const auto& [value, name] : kClassifierNames) {
        if (value == c) return name;
    }
    return "unknown";
}

ProbeTarget icmp_target(const IpAddr& address) { return ProbeTarget{ProbeKind::Icmp, address, 0, {}}; }

std::string_view probe_kind_name(ProbeKind kind) {
    switch (kind) {
        case ProbeKind::Icmp: return "icmp";
        case ProbeKind::Tcp: return "tcp";
        case ProbeKind::Dns: return "dns";
    }
    return "unknown";
}

std::string describe(const ProbeTarget& target) {
    std::string address = str(target.address);
    switch (target.kind) {
        case ProbeKind::Icmp: return address;
        case ProbeKind::Tcp:
            if (family_of(target.address) == Family::V6) address = "[" + address + "]";
            return "tcp " + address + ":" + std::to_string(target.port);
        case ProbeKind::Dns: return "dns " + address + " " + target.name;
    }
    return address;
}

std::optional<std::string> dns_name_problem(std::string_view name) {
    constexpr size_t kMaxName = 253, kMaxLabel = 63;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty()) return "it is empty";
    if (name.size() > kMaxName) {
        return "it is " + std::to_string(name.size()) + " characters long; DNS allows at most " +
               std::to_string(kMaxName);
    }
    size_t start = 0;
    while (start <= name.size()) {
        size_t dot = std::min(name.find('.', start), name.size());
        size_t length = dot - start;
        if (length == 0) return std::string("it has an empty label (two dots in a row, or a leading dot)");
        if (length > kMaxLabel) {
            return "its label " + std::string(name.substr(start, 20)) + "... is " + std::to_string(length) +
                   " characters long; DNS allows at most " + std::to_string(kMaxLabel);
        }
        start = dot + 1;
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.';
        if (!ok) return std::string("it contains a character other than letters, digits, '-', '_' and '.'");
    }
    return std::nullopt;
}

std::optional<Classifier> parse_classifier(std::string_view name) {
    for (const auto& [value, known] : kClassifierNames) {
        if (known == name) return value;
    }
    return std::nullopt;
}

std::string ConfigError::format(std::string_view file) const {
    std::string out(file);
    out += ": ";
    if (!path.empty()) out += path + ": ";
    return out + message;
}

ConfigResult parse_config(std::string_view text, std::string_view file) {
    using namespace config_detail;
    try {
        JsonDocument doc = read_json(text);
        if (!doc.syntax_ok) return {std::nullopt, {doc.errors.front().error}};
        Reporter report(doc);
        ConfigDraft draft = read_draft(doc, report);
        std::optional<Config> config = resolve(draft, report);
        ConfigResult result{std::nullopt, report.take_in_document_order()};
        if (result.errors.empty() && config) {
            config->path = std::string(file);
            result.config = std::move(config);
            result.warnings = report.take_warnings_in_document_order();
        }
        return result;
    } catch (const std::exception& e) {  // bad_alloc, or a bug: still one error, never a crash
        return failure(std::string("cannot be parsed: ") + e.what());
    }
}

constexpr const char* kShippedExample = "/usr/share/doc/wanbalance/examples/wanbalance.json";

ConfigResult load_config(const std::string& file) {
    Handle<std::FILE, std::fclose> f(std::fopen(file.c_str(), "re"));
    if (!f && errno == ENOENT)  // a first install: say where to start
        return failure("cannot read: " + errno_text(ENOENT) + "; start from the example the package ships, " +
                       kShippedExample);
    // The service runs as a dynamic user: a file only root can read is the usual cause.
    if (!f && errno == EACCES)
        return failure("cannot read: " + errno_text(EACCES) +
                       " (wanbalance.service runs as a dynamic user: the file must be readable by others, "
                       "chmod 0644 " + file + ")");
    if (!f) return failure("cannot read: " + errno_text(errno));
    struct stat st {};
    if (fstat(fileno(f.get()), &st) != 0) return failure("cannot read: " + errno_text(errno));
    if (S_ISDIR(st.st_mode)) return failure("is a directory");

    // Read one byte past the limit so an oversized pipe or /dev/zero is caught without
    // trusting st_size (which is 0 for them).
    std::string text(kMaxConfigBytes + 1, '\0');
    size_t got = std::fread(text.data(), 1, text.size(), f.get());
    if (std::ferror(f.get())) return failure("cannot read: " + errno_text(errno));
    if (got > kMaxConfigBytes) {
        if (S_ISREG(st.st_mode)) {
            return failure("is larger than 1 MiB (" + std::to_string(st.st_size) + " bytes)");
        }
        return failure("is larger than 1 MiB");
    }
    text.resize(got);
    ConfigResult result = parse_config(text, file);
    if (result.config) result.text = std::move(text);
    return result;
}

}  // namespace wb

namespace wb {

bool Config::any_ipv6() const {
    for (const auto& wan : wans)
        if (wan.ipv6) return true;
    return false;
}

std::string Cidr::str() const { return wb::str(addr) + "/" + std::to_string(len); }

std::string_view last_resort_name(LastResort r) {
    switch (r) {
        case LastResort::Balanced: return "balanced";
        case LastResort::Main: return "main";
        case LastResort::Unreachable: return "unreachable";
    }
    return "?";
}

std::string_view sticky_name(Sticky s) {
    switch (s) {
        case Sticky::None: return "none";
        case Sticky::Src: return "src";
        case Sticky::SrcDst: return "src-dst";
    }
    return "?";
}

bool RuleConfig::applies_to(Family family) const {
    if (proto == IPPROTO_ICMP && family == Family::V6) return false;
    if (proto == IPPROTO_ICMPV6 && family == Family::V4) return false;
    auto has = [&](const std::vector<Cidr>& list) {
        if (list.empty()) return true;
        for (const auto& c : list)
            if (c.family() == family) return true;
        return false;
    };
    return has(src) && has(dst);
}

std::string RuleConfig::target_name(const std::vector<PolicyConfig>& policies) const {
    switch (target) {
        case RuleTarget::Policy: return policy < policies.size() ? policies[policy].name : "?";
        case RuleTarget::Balanced: return "balanced";
        case RuleTarget::Main: return "main";
    }
    return "?";
}

}  // namespace wb
