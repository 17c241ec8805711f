// The live check's findings (daemon/live_findings.hpp) from a described system: no kernel, no root.
#include <doctest/doctest.h>

#include "config_fixtures.hpp"
#include "daemon/live_findings.hpp"

using namespace wb;

namespace {

IpAddr ip(const char* text) { return *parse_ip(text); }

Config config_of(const std::string& text) {
    auto r = config_test::parse(text);
    REQUIRE(r.config);
    return *r.config;
}

// The article's router as the lab builds it: ether1 203.0.113.2/24, ether2 198.51.100.2/24.
SystemView article_system() {
    SystemView v;
    v.links["ether1"] = {11, true, false, {{ip("203.0.113.2"), 24, std::nullopt}, {ip("fe80::2"), 64, std::nullopt}}};
    v.links["ether2"] = {12, true, false, {{ip("198.51.100.2"), 24, std::nullopt}}};
    v.links["ether3"] = {13, true, false, {{ip("192.168.88.1"), 24, std::nullopt}}};
    return v;
}

std::vector<std::string> lines(const std::vector<ConfigError>& findings) {
    std::vector<std::string> out;
    for (const auto& f : findings) out.push_back(f.format("/etc/wanbalance.json"));
    return out;
}

}  // namespace

TEST_CASE("in_prefix: the first len bits, either family") {
    CHECK(in_prefix(ip("203.0.113.2"), 24, ip("203.0.113.254")));
    CHECK_FALSE(in_prefix(ip("203.0.113.2"), 24, ip("203.0.114.1")));
    CHECK(in_prefix(ip("10.0.0.0"), 0, ip("192.0.2.1")));
    CHECK(in_prefix(ip("2001:db8:1::2"), 64, ip("2001:db8:1::ffff")));
    CHECK_FALSE(in_prefix(ip("2001:db8:1::2"), 64, ip("2001:db8:2::1")));
    CHECK_FALSE(in_prefix(ip("203.0.113.2"), 24, ip("2001:db8:1::1")));
    CHECK_FALSE(in_prefix(ip("203.0.113.2"), 33, ip("203.0.113.2")));
}

TEST_CASE("the article's router as it should be: no findings") {
    CHECK(live_findings(config_of(config_test::article()), article_system()).empty());
}

TEST_CASE("each finding is one line naming the key and the problem") {
    Config c = config_of(R"({"wans": [
        {"name": "charter", "interface": "ether1", "gateway": "203.0.113.11"},
        {"name": "integra", "interface": "ether2", "gateway": "10.9.9.9"},
        {"name": "dsl", "interface": "ppp9", "gateway": "auto"}],
      "lans": ["ether3"]})");
    SystemView v = article_system();
    v.neighbours[{"ether1", ip("203.0.113.11")}] = NeighbourAnswer::Silent;
    v.neighbours[{"ether2", ip("10.9.9.9")}] = NeighbourAnswer::Silent;  // off-subnet: said once, not twice
    v.main_defaults.push_back({Family::V4, "ether1", ip("203.0.113.1"), "default via 203.0.113.1 dev ether1 proto dhcp metric 100"});
    v.main_defaults.push_back({Family::V4, "mgmt0", ip("10.1.1.1"), "default via 10.1.1.1 dev mgmt0 proto static metric 200"});
    v.config_unreadable = "mode 0600: the service's user cannot read it";
    auto out = lines(live_findings(c, v));
    REQUIRE(out.size() == 6);
    CHECK(out[0] == "/etc/wanbalance.json: /wans/0/gateway: 203.0.113.11 does not answer ARP on ether1");
    CHECK(out[1] == "/etc/wanbalance.json: /wans/1/gateway: 10.9.9.9 is outside ether2's subnets (198.51.100.2/24) and "
                    "is not its point-to-point peer: the kernel refuses a route via it");
    CHECK(out[2] == "/etc/wanbalance.json: /wans/2/interface: there is no interface ppp9 on this system");
    CHECK(out[3] == "/etc/wanbalance.json: /wans/0/gateway: default via 203.0.113.1 dev ether1 proto dhcp metric 100 is "
                    "not wanbalance's and is left alone, but wanbalanced's rules come first while it runs: charter "
                    "leaves by its configured gateway instead");
    CHECK(out[4] == "/etc/wanbalance.json: /wans: default via 10.1.1.1 dev mgmt0 proto static metric 200 is not "
                    "wanbalance's and is left alone, but wanbalanced's rules come first while it runs: mgmt0 is no "
                    "WAN, so nothing leaves by it (it applies again when wanbalanced stops)");
    CHECK(out[5] == "/etc/wanbalance.json: mode 0600: the service's user cannot read it");
}

TEST_CASE("an \"auto\" gateway comes from the default route on its interface, which is then no finding") {
    Config c = config_of(R"({"wans": [{"name": "charter", "interface": "ether1", "gateway": "auto"},
                                      {"name": "integra", "interface": "ether2", "gateway": "auto"}],
                             "lans": ["ether3"]})");
    SystemView v = article_system();
    v.main_defaults.push_back({Family::V4, "ether1", ip("203.0.113.1"), "default via 203.0.113.1 dev ether1 proto dhcp"});
    CHECK(live_gateway(c.wans[0], v, Family::V4) == ip("203.0.113.1"));
    CHECK_FALSE(live_gateway(c.wans[1], v, Family::V4));
    auto out = lines(live_findings(c, v));
    REQUIRE(out.size() == 1);
    CHECK(out[0] == "/etc/wanbalance.json: /wans/1/gateway: \"auto\" but ether2 has no default route to take the "
                    "gateway from (a DHCP client puts one there)");
}

TEST_CASE("a link that is down, without an address; a point-to-point peer is on the link") {
    Config c = config_of(R"({"wans": [{"name": "charter", "interface": "ether1", "gateway": "203.0.113.1"},
                                      {"name": "dsl", "interface": "ppp0", "gateway": "10.64.0.1"}],
                             "lans": ["ether3"]})");
    SystemView v = article_system();
    v.links["ether1"].admin_up = false;
    v.links["ether1"].addresses.clear();
    v.links["ppp0"] = {20, true, true, {{ip("100.64.3.7"), 32, ip("10.64.0.1")}}};
    auto out = lines(live_findings(c, v));
    REQUIRE(out.size() == 2);
    CHECK(out[0] == "/etc/wanbalance.json: /wans/0/interface: ether1 is administratively down");
    CHECK(out[1] == "/etc/wanbalance.json: /wans/0/interface: ether1 has no IPv4 address");
}

TEST_CASE("IPv6: a global gateway6 outside the prefixes, a silent one; IPv6 defaults matter only with IPv6 WANs") {
    Config v4only = config_of(config_test::article());
    SystemView v = article_system();
    v.main_defaults.push_back({Family::V6, "mgmt0", ip("fe80::1"), "default via fe80::1 dev mgmt0 proto ra metric 1024"});
    CHECK(live_findings(v4only, v).empty());

    Config c = config_of(R"({"wans": [{"name": "charter", "interface": "ether1", "gateway": "203.0.113.1",
                                       "gateway6": "2001:db8:9::1"},
                                      {"name": "integra", "interface": "ether2", "gateway": "198.51.100.1",
                                       "gateway6": "fe80::1"}],
                             "lans": ["ether3"]})");
    v.links["ether1"].addresses.push_back({ip("2001:db8:1::2"), 64, std::nullopt});
    v.neighbours[{"ether2", ip("fe80::1")}] = NeighbourAnswer::Silent;
    auto out = lines(live_findings(c, v));
    REQUIRE(out.size() == 3);
    CHECK(out[0] == "/etc/wanbalance.json: /wans/0/gateway6: 2001:db8:9::1 is outside ether1's subnets (2001:db8:1::2/64) "
                    "and is not its point-to-point peer: the kernel refuses a route via it");
    CHECK(out[1] == "/etc/wanbalance.json: /wans/1/gateway6: fe80::1 does not answer neighbour solicitations on ether2");
    CHECK(out[2].starts_with("/etc/wanbalance.json: /wans: default via fe80::1 dev mgmt0 proto ra metric 1024 is not wanbalance's"));
}
