// Helpers shared by the config loader's tests: the article's config as text with keys spliced
// in, and checks that a text gives exactly one given error (or none).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"

namespace doctest {
template <>
struct StringMaker<wb::ConfigError> {
    static String convert(const wb::ConfigError& e) { return ("{\"" + e.path + "\", " + e.message + "}").c_str(); }
};
template <>
struct StringMaker<std::vector<wb::ConfigError>> {
    static String convert(const std::vector<wb::ConfigError>& errors) {
        String out = "[";
        for (const auto& e : errors) out += "\n    " + StringMaker<wb::ConfigError>::convert(e);
        return out + "]";
    }
};
}  // namespace doctest

namespace config_test {

using wb::ConfigError;
using wb::ConfigResult;
using Errors = std::vector<ConfigError>;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

inline ConfigResult parse(std::string_view text) { return wb::parse_config(text, "test.json"); }

inline std::string replace_once(std::string text, std::string_view from, std::string_view to) {
    size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

inline wb::Ipv4 ip(const char* s) { return *wb::Ipv4::parse(s); }
// An ICMP probe target at an IPv4 or IPv6 address.
inline wb::ProbeTarget icmp(const char* s) { return wb::icmp_target(*wb::parse_ip(s)); }

// The article's two WANs and LAN, with extra keys spliced into each WAN and the top level.
inline std::string article(std::string_view wan0 = "", std::string_view wan1 = "", std::string_view top = "",
                           std::string_view lans = R"(["ether3"])") {
    std::string s = R"({"wans": [{"name": "charter", "interface": "ether1", "gateway": "203.0.113.1")";
    s += wan0;
    s += R"(}, {"name": "integra", "interface": "ether2", "gateway": "198.51.100.1")";
    s += wan1;
    s += R"(}], "lans": )";
    s += lans;
    s += top;
    s += "}";
    return s;
}

// Exactly one error, this one, and no Config.
inline void check_error(const std::string& text, const std::string& path, const std::string& message) {
    INFO(text);
    ConfigResult r = parse(text);
    CHECK_FALSE(r.config);
    CHECK(r.errors == Errors{{path, message}});
}

inline void check_valid(const std::string& text) {
    INFO(text);
    ConfigResult r = parse(text);
    CHECK(r.errors == Errors{});
    CHECK(r.config);
}

// JSON for a value, as both the config text and the error messages write it.
inline std::string js(const nlohmann::json& v) { return v.dump(); }

// The article with the first WAN's `key` set to `value` (replacing it when the key is there).
inline std::string with_wan0(const std::string& key, const nlohmann::json& value) {
    std::string base = article();
    std::string prefix = "\"" + key + "\": ";
    size_t at = base.find(prefix);
    if (at == std::string::npos || at > base.find("integra")) return article(", " + prefix + js(value));
    size_t end = base.find_first_of(",}", at);
    return base.replace(at, end - at, prefix + js(value));
}

}  // namespace config_test
