// probe.targets of every kind: addresses (ICMP), {"tcp": "HOST:PORT"} and
// {"dns": "HOST", "name": "NAME"}; their errors, duplicates, family split and min_targets_up.
#include "tests/unit/config_fixtures.hpp"

using namespace config_test;

namespace {

std::string targets(const std::string& list) { return article("", "", R"(, "probe": {"targets": [)" + list + "]}"); }
std::string targets6(const std::string& list) {
    return article(R"(, "gateway6": "auto")", "", R"(, "probe": {"targets": [)" + list + "]}");
}

wb::ProbeTarget tcp(const char* host, uint16_t port) { return {wb::ProbeKind::Tcp, *wb::parse_ip(host), port, {}}; }
wb::ProbeTarget dns(const char* host, const char* name) {
    return {wb::ProbeKind::Dns, *wb::parse_ip(host), wb::kDnsPort, name};
}

}  // namespace

TEST_CASE("targets of three kinds mix in one list, split by family") {
    ConfigResult r = parse(targets6(R"("192.0.2.53", {"tcp": "192.0.2.80:443"}, {"dns": "192.0.2.53", "name": "example.com"},
        {"tcp": "[2001:db8::80]:8443"}, {"dns": "2001:db8::53", "name": "a_b-9.Example."}, "2001:db8::54")"));
    REQUIRE(r.errors == Errors{});
    CHECK(r.warnings == Errors{});
    const wb::ProbeConfig& p = r.config->wans[0].probe;
    CHECK(p.targets == std::vector{icmp("192.0.2.53"), tcp("192.0.2.80", 443), dns("192.0.2.53", "example.com")});
    CHECK(p.targets6 == std::vector{tcp("2001:db8::80", 8443), dns("2001:db8::53", "a_b-9.Example."), icmp("2001:db8::54")});
    CHECK(wb::describe(p.targets[1]) == "tcp 192.0.2.80:443");
    CHECK(wb::describe(p.targets6[0]) == "tcp [2001:db8::80]:8443");
    CHECK(wb::describe(p.targets[2]) == "dns 192.0.2.53 example.com");
    // A link-local host is fine, as for an address target; ports 1 and 65535 are the limits.
    check_valid(targets(R"({"tcp": "[fe80::1]:1"}, {"tcp": "192.0.2.80:65535"})"));
}

TEST_CASE("a tcp target is HOST:PORT with a usable address and a port 1-65535") {
    const std::string at = "/probe/targets/0/tcp";
    const std::string like = " like \"192.0.2.1:443\" or \"[2001:db8::1]:443\"";
    check_error(targets(R"({"tcp": 443})"), at, "expected \"HOST:PORT\"" + like + ", got 443");
    check_error(targets(R"({"tcp": "192.0.2.80"})"), at, "\"192.0.2.80\" has no port: expected HOST:PORT" + like);
    check_error(targets(R"({"tcp": "2001:db8::1:443"})"), at,
                "\"2001:db8::1:443\": write an IPv6 address in brackets, like \"[2001:db8::1]:443\"");
    check_error(targets(R"({"tcp": "[2001:db8::1]"})"), at, "\"[2001:db8::1]\" is not HOST:PORT" + like);
    check_error(targets(R"({"tcp": "[2001:db8::1]x:443"})"), at, "\"[2001:db8::1]x:443\" is not HOST:PORT" + like);
    check_error(targets(R"({"tcp": "[192.0.2.1]:443"})"), at, "\"[192.0.2.1]:443\": only an IPv6 address goes in brackets");
    for (const char* port : {"0", "65536", "", "0443", "https", "-1", "+5"}) {
        std::string text = std::string("192.0.2.80:") + port;
        check_error(targets(R"({"tcp": ")" + text + "\"}"), at,
                    js(text) + " has port " + js(port) + ": expected a port from 1 to 65535");
    }
    check_error(targets(R"({"tcp": "example.com:443"})"), at, "\"example.com\" is not an IPv4 or IPv6 address");
    const std::string rule = ": a probe target must be a unicast address reached through the WAN";
    check_error(targets(R"({"tcp": "127.0.0.1:80"})"), at, "\"127.0.0.1\" is a loopback address" + rule);
    check_error(targets(R"({"tcp": "[ff02::1]:80"})"), at, "\"ff02::1\" is a multicast address" + rule);
    check_error(targets(R"({"tcp": "0.0.0.0:80"})"), at, "\"0.0.0.0\" is the unspecified address" + rule);
    check_error(targets(R"({"tcp": "192.0.2.80:443", "name": "example.com"})"), "/probe/targets/0/name",
                "\"name\" is only for dns targets");
}

TEST_CASE("a dns target has a usable server address and a name") {
    const std::string rule = ": a probe target must be a unicast address reached through the WAN";
    check_error(targets(R"({"dns": "192.0.2.53"})"), "/probe/targets/0",
                "missing required key \"name\" (what the dns target asks for)");
    check_error(targets(R"({"dns": "192.0.2.53:53", "name": "x"})"), "/probe/targets/0/dns",
                "\"192.0.2.53:53\" is not an IPv4 or IPv6 address");
    check_error(targets(R"({"dns": 53, "name": "x"})"), "/probe/targets/0/dns",
                "expected the address of a DNS server, got 53");
    check_error(targets(R"({"dns": "::1", "name": "x"})"), "/probe/targets/0/dns", "\"::1\" is the loopback address" + rule);
    const std::string name_at = "/probe/targets/0/name";
    check_error(targets(R"({"dns": "192.0.2.53", "name": 5})"), name_at,
                "expected a domain name like \"example.com\", got 5");
    check_error(targets(R"({"dns": "192.0.2.53", "name": ""})"), name_at, "\"\" is not a domain name: it is empty");
    check_error(targets(R"({"dns": "192.0.2.53", "name": "a b"})"), name_at,
                "\"a b\" is not a domain name: it contains a character other than letters, digits, '-', '_' and '.'");
    check_error(targets(R"({"dns": "192.0.2.53", "name": ".example"})"), name_at,
                "\".example\" is not a domain name: it has an empty label (two dots in a row, or a leading dot)");
    const std::string label64(64, 'a');
    ConfigResult long_label = parse(targets(R"({"dns": "192.0.2.53", "name": ")" + label64 + ".com\"}"));
    REQUIRE(long_label.errors.size() == 1);
    CHECK(long_label.errors[0].path == name_at);
    CHECK(long_label.errors[0].message.ends_with(
        " is not a domain name: its label aaaaaaaaaaaaaaaaaaaa... is 64 characters long; DNS allows at most 63"));
    std::string long_name;  // 3 labels of 63 and one of 61: 253 characters
    for (int i = 0; i < 3; ++i) long_name += std::string(63, 'a') + ".";
    long_name += std::string(61, 'a');
    check_valid(targets(R"({"dns": "192.0.2.53", "name": ")" + long_name + "\"}"));
    check_valid(targets(R"({"dns": "192.0.2.53", "name": ")" + long_name + ".\"}"));
    ConfigResult r = parse(targets(R"({"dns": "192.0.2.53", "name": ")" + long_name + "a\"}"));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message.find("it is 254 characters long; DNS allows at most 253") != std::string::npos);
}

TEST_CASE("a target object: known keys only, one kind") {
    check_error(targets(R"({"dns": "192.0.2.53", "name": "example.com", "dsn": "192.0.2.54"})"), "/probe/targets/0/dsn",
                "unknown key \"dsn\" (did you mean \"dns\"?)");
    check_error(targets(R"({"tcp": "192.0.2.80:443", "nmae": "x"})"), "/probe/targets/0/nmae",
                "unknown key \"nmae\" (did you mean \"name\"?)");
    check_error(targets(R"({"tcp": "192.0.2.80:443", "dns": "192.0.2.53"})"), "/probe/targets/0",
                "a target has \"tcp\" or \"dns\", not both");
    check_error(targets("{}"), "/probe/targets/0", "missing required key \"tcp\" or \"dns\"");
    check_error(targets("7"), "/probe/targets/0",
                "expected an address, {\"tcp\": \"HOST:PORT\"} or {\"dns\": \"HOST\", \"name\": \"NAME\"}, got 7");
    // Every problem of an entry, in one run.
    ConfigResult r = parse(targets(R"({"dns": "127.0.0.1", "name": "a..b", "x": 1})"));
    CHECK(r.errors.size() == 3);
}

TEST_CASE("no target twice: same kind, address, port and name, however written") {
    check_error(targets(R"({"tcp": "192.0.2.80:443"}, {"tcp": "192.0.2.80:443"})"), "/probe/targets/1",
                "\"tcp 192.0.2.80:443\" is already listed at /probe/targets/0");
    check_error(targets(R"({"tcp": "[2001:db8::80]:443"}, {"tcp": "[2001:db8:0::80]:443"})"), "/probe/targets/1",
                "\"tcp [2001:db8::80]:443\" is already listed at /probe/targets/0");
    check_error(targets(R"({"dns": "192.0.2.53", "name": "example.com"}, {"dns": "192.0.2.53", "name": "Example.COM."})"),
                "/probe/targets/1", "\"dns 192.0.2.53 Example.COM.\" is already listed at /probe/targets/0");
    // Another kind, port or name is another probe.
    check_valid(targets(R"("192.0.2.80", {"tcp": "192.0.2.80:443"}, {"tcp": "192.0.2.80:80"},
        {"dns": "192.0.2.80", "name": "a.example"}, {"dns": "192.0.2.80", "name": "b.example"})"));
}

TEST_CASE("min_targets_up counts targets of every kind, per family") {
    check_valid(article("", "",
                        R"(, "probe": {"min_targets_up": 3, "targets": ["192.0.2.1", {"tcp": "192.0.2.1:443"},
                           {"dns": "192.0.2.53", "name": "example.com"}]})"));
    check_error(article(R"(, "gateway6": "auto")", "",
                        R"(, "probe": {"min_targets_up": 2, "targets": [{"tcp": "192.0.2.1:443"}, {"tcp": "192.0.2.2:443"},
                           {"tcp": "[2001:db8::1]:443"}]})"),
                "/probe/min_targets_up",
                "2 is more than the number of IPv6 probe targets (1)");
    // A WAN's own list replaces the global one, objects and all.
    ConfigResult r = parse(article(R"(, "probe": {"targets": [{"tcp": "192.0.2.1:443"}]})", "",
                                   R"(, "probe": {"targets": ["192.0.2.53"]})"));
    REQUIRE(r.config);
    CHECK(r.config->wans[0].probe.targets == std::vector{tcp("192.0.2.1", 443)});
    CHECK(r.config->wans[1].probe.targets == std::vector{icmp("192.0.2.53")});
}
