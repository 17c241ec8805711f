// "policies" and "rules" (issue 12): parsed values and defaults, every error with its path,
// the marks of "main" and "unreachable" allocated after the WANs', the element limit, and the
// warnings for what loads but does nothing.
#include <netinet/in.h>

#include <algorithm>
#include <functional>

#include "tests/unit/config_fixtures.hpp"

using namespace config_test;
using wb::Cidr;
using wb::LastResort;
using wb::PortRange;
using wb::RuleTarget;
using wb::Sticky;

namespace {

// The article (charter, integra; LAN ether3) with these "policies" and "rules" (JSON text;
// empty: the key is left out), and more top-level keys and LANs when given.
std::string config(std::string_view policies, std::string_view rules, std::string_view top = "",
                   std::string_view lans = R"(["ether3"])", std::string_view wan0 = "") {
    std::string extra;
    if (!policies.empty()) extra += ", \"policies\": " + std::string(policies);
    if (!rules.empty()) extra += ", \"rules\": " + std::string(rules);
    return article(wan0, "", extra + std::string(top), lans);
}

// One rule (the object's keys after its name) with policy "voip" defined.
constexpr std::string_view kVoip = R"({"voip": {"members": [{"wan": "integra"}]}})";
std::string one_rule(std::string_view keys, std::string_view policies = kVoip) {
    return config(policies, R"([{"name": "r")" + std::string(keys) + "}]");
}

Cidr cidr(const char* address, uint8_t len) { return Cidr{*wb::parse_ip(address), len}; }

// The config (a copy: the result may be a temporary).
wb::Config loaded(const ConfigResult& r) {
    INFO(doctest::toString(r.errors));
    REQUIRE(r.config);
    return *r.config;
}

constexpr std::string_view kThreeCases = R"({
  "wans": [
    { "name": "charter", "interface": "ether1", "gateway": "203.0.113.1", "gateway6": "auto", "weight": 3 },
    { "name": "integra", "interface": "ether2", "gateway": "198.51.100.1", "tier": 2 }
  ],
  "lans": ["ether3", "ether4"],
  "policies": {
    "voip": { "members": [ { "wan": "integra", "tier": 0 }, { "wan": "charter", "tier": 1, "weight": 5 } ],
              "last_resort": "unreachable" },
    "isp1": { "members": [ { "wan": "charter" } ] }
  },
  "rules": [
    { "name": "sip", "proto": "udp", "dst_port": ["5060", "10000-20000", 5061], "policy": "voip" },
    { "name": "bank", "dst": ["192.0.2.0/24", "2001:db8:b::/48"], "proto": "tcp", "dst_port": [443],
      "policy": "balanced", "sticky": "src-dst", "sticky_timeout_s": 3600 },
    { "name": "office", "src": ["10.8.0.0/16", "10.9.0.1"], "dst": ["172.16.0.0/12"], "iif": ["ether4"],
      "policy": "main" },
    { "name": "ping", "proto": "icmp", "policy": "isp1", "sticky": "src" }
  ]
})";

}  // namespace

TEST_CASE("policies and rules: a full example parses to exactly these values") {
    const std::string text(kThreeCases);
    const wb::Config c = loaded(parse(text));
    REQUIRE(c.policies.size() == 2);
    CHECK(c.policies[0].name == "voip");
    CHECK(c.policies[0].members == std::vector<wb::PolicyMember>{{1, 1, 0}, {0, 5, 1}});
    CHECK(c.policies[0].last_resort == LastResort::Unreachable);
    CHECK(c.policies[1].name == "isp1");
    CHECK(c.policies[1].members == std::vector<wb::PolicyMember>{{0, 3, 0}});  // the WAN's weight and tier
    CHECK(c.policies[1].last_resort == LastResort::Balanced);

    REQUIRE(c.rules.size() == 4);
    const wb::RuleConfig& sip = c.rules[0];
    CHECK(sip.name == "sip");
    CHECK(sip.proto == IPPROTO_UDP);
    CHECK(sip.dst_port == std::vector<PortRange>{{5060, 5060}, {10000, 20000}, {5061, 5061}});
    CHECK(sip.src_port.empty());
    CHECK(sip.src.empty());
    CHECK(sip.target == RuleTarget::Policy);
    CHECK(sip.policy == 0);
    CHECK(sip.target_name(c.policies) == "voip");
    CHECK(sip.sticky == Sticky::None);
    CHECK(sip.sticky_timeout_s == 600);

    const wb::RuleConfig& bank = c.rules[1];
    CHECK(bank.dst == std::vector<Cidr>{cidr("192.0.2.0", 24), cidr("2001:db8:b::", 48)});
    CHECK(bank.proto == IPPROTO_TCP);
    CHECK(bank.dst_port == std::vector<PortRange>{{443, 443}});
    CHECK(bank.target == RuleTarget::Balanced);
    CHECK(bank.target_name(c.policies) == "balanced");
    CHECK(bank.sticky == Sticky::SrcDst);
    CHECK(bank.sticky_timeout_s == 3600);
    CHECK(bank.applies_to(wb::Family::V4));
    CHECK(bank.applies_to(wb::Family::V6));

    const wb::RuleConfig& office = c.rules[2];
    CHECK(office.src == std::vector<Cidr>{cidr("10.8.0.0", 16), cidr("10.9.0.1", 32)});
    CHECK(office.src[1].str() == "10.9.0.1/32");
    CHECK(office.dst == std::vector<Cidr>{cidr("172.16.0.0", 12)});
    CHECK(office.iif == std::vector<std::string>{"ether4"});
    CHECK(office.target == RuleTarget::Main);
    CHECK(office.target_name(c.policies) == "main");
    CHECK_FALSE(office.proto);
    CHECK_FALSE(office.applies_to(wb::Family::V6));

    const wb::RuleConfig& ping = c.rules[3];
    CHECK(ping.proto == IPPROTO_ICMP);
    CHECK(ping.policy == 1);
    CHECK(ping.sticky == Sticky::Src);

    // Marks after the WANs' (0x100, 0x200): "main" first, then "unreachable".
    CHECK(c.wans[0].mark == 0x100);
    CHECK(c.wans[1].mark == 0x200);
    CHECK(c.main_mark == 0x300u);
    CHECK(c.unreachable_mark == 0x400u);
    CHECK(parse(text).warnings == Errors{});
}

TEST_CASE("policies and rules: defaults, and nothing allocated without them") {
    const wb::Config plain = loaded(parse(article()));
    CHECK(plain.policies.empty());
    CHECK(plain.rules.empty());
    CHECK_FALSE(plain.main_mark);
    CHECK_FALSE(plain.unreachable_mark);

    ConfigResult r = parse(config(R"({"p": {"members": [{"wan": "charter"}, {"wan": "integra", "weight": 7}]}})",
                                  R"([{"name": "all", "policy": "p"}])", "", R"(["ether3"])", R"(, "weight": 4, "tier": 3)"));
    const wb::Config c = loaded(r);
    CHECK(c.policies[0].members == std::vector<wb::PolicyMember>{{0, 4, 3}, {1, 7, 0}});
    CHECK(c.policies[0].last_resort == LastResort::Balanced);
    const wb::RuleConfig& all = c.rules[0];
    CHECK(all == wb::RuleConfig{"all", {}, {}, std::nullopt, {}, {}, {}, RuleTarget::Policy, 0, Sticky::None, 600});
    CHECK(all.applies_to(wb::Family::V4));
    CHECK(all.applies_to(wb::Family::V6));
    CHECK_FALSE(c.main_mark);
    CHECK_FALSE(c.unreachable_mark);
    CHECK(r.warnings == Errors{});

    // Empty objects and arrays are fine: no policies, no rules.
    const wb::Config empty = loaded(parse(config("{}", "[]")));
    CHECK(empty.policies.empty());
    CHECK(empty.rules.empty());
}

TEST_CASE("policies: errors name the policy, the member and the problem") {
    check_error(config("[]", ""), "/policies",
                "expected an object of named policies like {\"voip\": {\"members\": [...]}}, got []");
    check_error(config(R"({"Voip": {"members": [{"wan": "integra"}]}})", ""), "/policies/Voip",
                "\"Voip\" must be 1-32 characters of a-z, 0-9, _ and -");
    check_error(config(R"({"": {"members": [{"wan": "integra"}]}})", ""), "/policies/",
                "\"\" must be 1-32 characters of a-z, 0-9, _ and -");
    check_error(config(R"({"a23456789012345678901234567890123": {"members": [{"wan": "integra"}]}})", ""),
                "/policies/a23456789012345678901234567890123", "\"a23456789012345678901234567890123\" must be 1-32 "
                                                               "characters of a-z, 0-9, _ and -");
    check_valid(config(R"({"a2345678901234567890123456789012": {"members": [{"wan": "integra"}]}})",
                       R"([{"name": "r", "policy": "a2345678901234567890123456789012"}])"));
    check_error(config(R"({"main": {"members": [{"wan": "integra"}]}})", ""), "/policies/main",
                "\"main\" is reserved: a rule's \"policy\": \"main\" sends to the main table; choose another name");
    check_error(config(R"({"balanced": {"members": [{"wan": "integra"}]}})", ""), "/policies/balanced",
                "\"balanced\" is reserved: a rule's \"policy\": \"balanced\" balances over every WAN; choose another "
                "name");
    check_error(config(R"({"voip": []})", ""), "/policies/voip",
                "expected an object like {\"members\": [{\"wan\": \"charter\"}]}, got []");
    check_error(config(R"({"voip": {}})", ""), "/policies/voip", "missing required key \"members\"");
    check_error(config(R"({"voip": {"members": []}})", ""), "/policies/voip/members",
                "expected at least one member, got []");
    check_error(config(R"({"voip": {"members": {"wan": "integra"}}})", ""), "/policies/voip/members",
                "expected an array of members like {\"wan\": \"charter\"}, got an object");
    check_error(config(R"({"voip": {"members": ["integra"]}})", ""), "/policies/voip/members/0",
                "expected an object like {\"wan\": \"charter\"}, got \"integra\"");
    check_error(config(R"({"voip": {"members": [{"weight": 2}]}})", ""), "/policies/voip/members/0",
                "missing required key \"wan\"");
    check_error(config(R"({"voip": {"members": [{"wan": 1}]}})", ""), "/policies/voip/members/0/wan",
                "expected the name of a WAN, got 1");
    check_error(config(R"({"voip": {"members": [{"wan": "integr"}]}})", ""), "/policies/voip/members/0/wan",
                "\"integr\" is not a WAN (did you mean \"integra\"?)");
    check_error(config(R"({"voip": {"members": [{"wan": "lte"}]}})", ""), "/policies/voip/members/0/wan",
                "\"lte\" is not a WAN (WANs: \"charter\" and \"integra\")");
    check_error(config(R"({"voip": {"members": [{"wan": "integra"}, {"wan": "integra", "tier": 1}]}})", ""),
                "/policies/voip/members/1/wan", "\"integra\" is already a member at /policies/voip/members/0");
    check_error(config(R"({"voip": {"members": [{"wan": "integra", "weight": 0}]}})", ""),
                "/policies/voip/members/0/weight", "expected an integer from 1 to 1000, got 0");
    check_error(config(R"({"voip": {"members": [{"wan": "integra", "tier": 256}]}})", ""),
                "/policies/voip/members/0/tier", "expected an integer from 0 to 255, got 256");
    check_error(config(R"({"voip": {"members": [{"wan": "integra", "wieght": 2}]}})", ""),
                "/policies/voip/members/0/wieght", "unknown key \"wieght\" (did you mean \"weight\"?)");
    check_error(config(R"({"voip": {"members": [{"wan": "integra"}], "last_resort": "unreachble"}})", ""),
                "/policies/voip/last_resort", "\"unreachble\" is not a last resort (did you mean \"unreachable\"?)");
    check_error(config(R"({"voip": {"members": [{"wan": "integra"}], "last_resort": "drop"}})", ""),
                "/policies/voip/last_resort",
                "\"drop\" is not a last resort (one of \"balanced\", \"main\" and \"unreachable\")");
    check_error(config(R"({"voip": {"members": [{"wan": "integra"}], "fallback": "main"}})", ""),
                "/policies/voip/fallback", "unknown key \"fallback\" (allowed: \"members\" and \"last_resort\")");
    // A key of another object says where it belongs; "weight" belongs in two places.
    check_error(config(R"({"voip": {"members": [{"wan": "integra"}], "weight": 2}})", ""), "/policies/voip/weight",
                "unknown key \"weight\" (it belongs inside an entry of \"wans\" or inside an entry of a policy's "
                "\"members\")");
    check_error(config("", "", R"(, "members": [])"), "/members",
                "unknown key \"members\" (it belongs inside a policy of \"policies\")");
    check_error(config("", "", R"(, "sticky": "src")"), "/sticky",
                "unknown key \"sticky\" (it belongs inside an entry of \"rules\")");
    check_error(article(R"(, "policy": "voip")"), "/wans/0/policy",
                "unknown key \"policy\" (it belongs inside an entry of \"rules\")");
}

TEST_CASE("rules: errors name the rule, the key and the problem") {
    check_error(config("", "{}"), "/rules", "expected an array of rules, got {}");
    check_error(config("", "[1]"), "/rules/0", "expected an object, got 1");
    check_error(config("", R"([{"policy": "balanced"}])"), "/rules/0", "missing required key \"name\"");
    check_error(config("", R"([{"name": "r"}])"), "/rules/0", "missing required key \"policy\"");
    check_error(config("", R"([{"name": "Web", "policy": "balanced"}])"), "/rules/0/name",
                "\"Web\" must be 1-32 characters of a-z, 0-9, _ and -");
    check_error(config("", R"([{"name": "", "policy": "balanced"}])"), "/rules/0/name",
                "\"\" must be 1-32 characters of a-z, 0-9, _ and -");
    check_error(config("", R"([{"name": "a", "policy": "main"}, {"name": "a", "policy": "balanced"}])"),
                "/rules/1/name", "\"a\" is already used by /rules/0");
    check_error(one_rule(R"(, "policy": "voiip")"), "/rules/0/policy",
                "\"voiip\" is not a policy, \"balanced\" or \"main\" (did you mean \"voip\"?)");
    check_error(one_rule(R"(, "policy": "mian")"), "/rules/0/policy",
                "\"mian\" is not a policy, \"balanced\" or \"main\" (did you mean \"main\"?)");
    check_error(one_rule(R"(, "policy": "office")"), "/rules/0/policy",
                "\"office\" is not a policy, \"balanced\" or \"main\" (policies: \"voip\")");
    check_error(config("", R"([{"name": "r", "policy": "office"}])"), "/rules/0/policy",
                "\"office\" is not a policy, \"balanced\" or \"main\" (\"policies\" defines none)");
    check_error(one_rule(R"(, "policy": 1)"), "/rules/0/policy",
                "expected the name of a policy, \"balanced\" or \"main\", got 1");
    check_error(one_rule(R"(, "policy": "voip", "dts": ["10.0.0.0/8"])"), "/rules/0/dts",
                "unknown key \"dts\" (did you mean \"dst\"?)");
    check_error(one_rule(R"(, "policy": "voip", "dst_prot": [443])"), "/rules/0/dst_prot",
                "unknown key \"dst_prot\" (did you mean \"dst_port\"?)");

    // Addresses and prefixes.
    check_error(one_rule(R"(, "policy": "voip", "dst": "10.0.0.0/8")"), "/rules/0/dst",
                "expected an array of IPv4 or IPv6 prefixes like [\"10.0.0.0/8\"], got \"10.0.0.0/8\"");
    check_error(one_rule(R"(, "policy": "voip", "src": [])"), "/rules/0/src",
                "[] matches nothing; leave \"src\" out to match any source address");
    check_error(one_rule(R"(, "policy": "voip", "dst": [])"), "/rules/0/dst",
                "[] matches nothing; leave \"dst\" out to match any destination address");
    check_error(one_rule(R"(, "policy": "voip", "dst": ["10.1.2.3/8"])"), "/rules/0/dst/0",
                "\"10.1.2.3/8\" has host bits set; did you mean \"10.0.0.0/8\"?");
    check_error(one_rule(R"(, "policy": "voip", "dst": ["2001:db8::1/32"])"), "/rules/0/dst/0",
                "\"2001:db8::1/32\" has host bits set; did you mean \"2001:db8::/32\"?");
    check_error(one_rule(R"(, "policy": "voip", "dst": ["10.0.0.0/33"])"), "/rules/0/dst/0",
                "\"10.0.0.0/33\" has a bad prefix length: expected /0 to /32");
    check_error(one_rule(R"(, "policy": "voip", "dst": ["2001:db8::/129"])"), "/rules/0/dst/0",
                "\"2001:db8::/129\" has a bad prefix length: expected /0 to /128");
    for (const char* bad_length : {"10.0.0.0/", "10.0.0.0/08", "10.0.0.0/x", "10.0.0.0/-1", "10.0.0.0/8/8"}) {
        check_error(one_rule(R"(, "policy": "voip", "dst": [")" + std::string(bad_length) + "\"]"), "/rules/0/dst/0",
                    "\"" + std::string(bad_length) + "\" has a bad prefix length: expected /0 to /32");
    }
    for (const char* not_address : {"10.0.0/8", "10.0.0.256", "example.com", "", "fe80::1%eth0", " 10.0.0.0/8"}) {
        check_error(one_rule(R"(, "policy": "voip", "src": [")" + std::string(not_address) + "\"]"), "/rules/0/src/0",
                    "\"" + std::string(not_address) + "\" is not an IPv4 or IPv6 address or prefix");
    }
    check_error(one_rule(R"(, "policy": "voip", "src": [10])"), "/rules/0/src/0",
                "expected an address or prefix like \"10.0.0.0/8\", got 10");
    check_error(one_rule(R"(, "policy": "voip", "src": ["192.0.2.1", "192.0.2.1/32"])"), "/rules/0/src/1",
                "\"192.0.2.1/32\" is already listed at /rules/0/src/0");
    check_valid(one_rule(R"(, "policy": "voip", "src": ["0.0.0.0/0", "::/0", "192.0.2.1", "2001:db8::1"])"));

    // Protocols and ports.
    check_error(one_rule(R"(, "policy": "voip", "proto": "tpc")"), "/rules/0/proto",
                "\"tpc\" is not a protocol (did you mean \"tcp\"?)");
    check_error(one_rule(R"(, "policy": "voip", "proto": "icmp6")"), "/rules/0/proto",
                "\"icmp6\" is not a protocol (did you mean \"icmpv6\"?)");
    check_error(one_rule(R"(, "policy": "voip", "proto": 6)"), "/rules/0/proto",
                "6 is not a protocol (one of \"tcp\", \"udp\", \"sctp\", \"icmpv6\" and \"icmp\")");
    check_error(one_rule(R"(, "policy": "voip", "dst_port": [443])"), "/rules/0/dst_port",
                "ports need proto tcp, udp or sctp; this rule has no \"proto\"");
    check_error(one_rule(R"(, "policy": "voip", "proto": "icmp", "src_port": ["1-2"])"), "/rules/0/src_port",
                "ports need proto tcp, udp or sctp; \"icmp\" has none");
    check_valid(one_rule(R"(, "policy": "voip", "proto": "sctp", "src_port": ["1-65535"], "dst_port": [1, 65535])"));
    check_error(one_rule(R"(, "policy": "voip", "proto": "tcp", "dst_port": ["20000-10000"])"), "/rules/0/dst_port/0",
                "\"20000-10000\" runs backwards; did you mean \"10000-20000\"?");
    for (const char* out_of_range : {"0", "65536", "0-10", "1-65536", "999999"}) {
        check_error(one_rule(R"(, "policy": "voip", "proto": "tcp", "dst_port": [")" + std::string(out_of_range) + "\"]"),
                    "/rules/0/dst_port/0", "\"" + std::string(out_of_range) + "\" is out of range: ports are 1 to 65535");
    }
    for (const char* number : {"0", "65536", "-1", "99999999999"}) {
        check_error(one_rule(R"(, "policy": "voip", "proto": "tcp", "dst_port": [)" + std::string(number) + "]"),
                    "/rules/0/dst_port/0", std::string(number) + " is out of range: ports are 1 to 65535");
    }
    for (const char* shape : {R"("")", R"("443 ")", R"("0443")", R"("1-2-3")", R"("-5")", R"("http")", "443.0",
                              "true", R"(["443"])", R"("1234567")"}) {
        check_error(one_rule(R"(, "policy": "voip", "proto": "tcp", "dst_port": [)" + std::string(shape) + "]"),
                    "/rules/0/dst_port/0",
                    "expected a port like 443 or \"443\", or a range like \"10000-20000\", got " +
                        (std::string(shape) == R"(["443"])" ? std::string("an array") : std::string(shape)));
    }
    check_error(one_rule(R"(, "policy": "voip", "proto": "tcp", "dst_port": [443, "443"])"), "/rules/0/dst_port/1",
                "\"443\" is already listed at /rules/0/dst_port/0");
    check_error(one_rule(R"(, "policy": "voip", "proto": "tcp", "dst_port": [])"), "/rules/0/dst_port",
                "[] matches nothing; leave \"dst_port\" out to match any destination port");
    check_error(one_rule(R"(, "policy": "voip", "proto": "tcp", "src_port": 443)"), "/rules/0/src_port",
                "expected an array of ports like [443, \"10000-20000\"], got 443");

    // LANs.
    check_error(one_rule(R"(, "policy": "voip", "iif": ["ether33"])"), "/rules/0/iif/0",
                "\"ether33\" is not one of \"lans\" (did you mean \"ether3\"?)");
    check_error(one_rule(R"(, "policy": "voip", "iif": ["br-lan"])"), "/rules/0/iif/0",
                "\"br-lan\" is not one of \"lans\" (LANs: \"ether3\")");
    check_error(one_rule(R"(, "policy": "voip", "iif": ["ether1"])"), "/rules/0/iif/0",
                "\"ether1\" is the interface of WAN \"charter\", not one of \"lans\": rules see only new "
                "connections from the LANs");
    check_error(one_rule(R"(, "policy": "voip", "iif": [])"), "/rules/0/iif",
                "[] matches nothing; leave \"iif\" out to match every LAN");
    check_error(one_rule(R"(, "policy": "voip", "iif": [3])"), "/rules/0/iif/0",
                "expected the name of a LAN interface, got 3");
    check_error(one_rule(R"(, "policy": "voip", "iif": ["ether3", "ether3"])"), "/rules/0/iif/1",
                "\"ether3\" is already listed at /rules/0/iif/0");

    // Sticky.
    check_error(one_rule(R"(, "policy": "voip", "sticky": "source")"), "/rules/0/sticky",
                "\"source\" is not a kind of stickiness (one of \"none\", \"src\" and \"src-dst\")");
    check_error(one_rule(R"(, "policy": "voip", "sticky": "src_dst")"), "/rules/0/sticky",
                "\"src_dst\" is not a kind of stickiness (did you mean \"src-dst\"?)");
    check_error(one_rule(R"(, "policy": "voip", "sticky": true)"), "/rules/0/sticky",
                "true is not a kind of stickiness (one of \"none\", \"src\" and \"src-dst\")");
    check_error(one_rule(R"(, "policy": "main", "sticky": "src")"), "/rules/0/sticky",
                "\"src\" has nothing to stick to: \"policy\": \"main\" leaves the route to the main table; leave "
                "\"sticky\" out");
    check_valid(one_rule(R"(, "policy": "main", "sticky": "none")", "{}"));
    check_error(one_rule(R"(, "policy": "voip", "sticky": "src", "sticky_timeout_s": 0)"), "/rules/0/sticky_timeout_s",
                "expected an integer from 1 to 604800, got 0");
    check_error(one_rule(R"(, "policy": "voip", "sticky": "src", "sticky_timeout_s": 604801)"),
                "/rules/0/sticky_timeout_s", "expected an integer from 1 to 604800, got 604801");
    check_valid(one_rule(R"(, "policy": "voip", "sticky": "src", "sticky_timeout_s": 604800)"));
}

TEST_CASE("rules that can never match are errors") {
    check_error(one_rule(R"(, "policy": "voip", "src": ["10.0.0.0/8"], "dst": ["2001:db8::/32"])"), "/rules/0/dst",
                "holds only IPv6 addresses and \"src\" only IPv4 ones: the rule can never match");
    check_error(one_rule(R"(, "policy": "voip", "src": ["2001:db8::/32"], "dst": ["10.0.0.0/8"])"), "/rules/0/dst",
                "holds only IPv4 addresses and \"src\" only IPv6 ones: the rule can never match");
    check_error(one_rule(R"(, "policy": "voip", "proto": "icmp", "dst": ["2001:db8::/32"])"), "/rules/0/proto",
                "\"icmp\" is IPv4 only and the rule's addresses are IPv6: it can never match (did you mean \"icmpv6\"?)");
    check_error(one_rule(R"(, "policy": "voip", "proto": "icmpv6", "src": ["10.0.0.0/8", "192.0.2.0/24"])"),
                "/rules/0/proto",
                "\"icmpv6\" is IPv6 only and the rule's addresses are IPv4: it can never match (did you mean \"icmp\"?)");
    // A family in common is enough.
    check_valid(one_rule(R"(, "policy": "voip", "src": ["10.0.0.0/8", "2001:db8::/32"], "dst": ["2001:db8:1::/48"])"));
    check_valid(one_rule(R"(, "policy": "voip", "proto": "icmp", "src": ["10.0.0.0/8", "2001:db8::/32"])"));
}

TEST_CASE("errors come in document order, all in one run") {
    ConfigResult r = parse(config(R"({"voip": {"members": [{"wan": "nope"}], "last_resort": "x"}})",
                                  R"([{"name": "r", "policy": "nope", "proto": "tcp", "dst_port": [0]},
                                      {"name": "r", "policy": "balanced", "iif": ["lan9"]}])"));
    CHECK(r.errors == Errors{
                          {"/policies/voip/members/0/wan", "\"nope\" is not a WAN (WANs: \"charter\" and \"integra\")"},
                          {"/policies/voip/last_resort",
                           "\"x\" is not a last resort (one of \"balanced\", \"main\" and \"unreachable\")"},
                          {"/rules/0/policy", "\"nope\" is not a policy, \"balanced\" or \"main\" (policies: \"voip\")"},
                          {"/rules/0/dst_port/0", "0 is out of range: ports are 1 to 65535"},
                          {"/rules/1/name", "\"r\" is already used by /rules/0"},
                          {"/rules/1/iif/0", "\"lan9\" is not one of \"lans\" (LANs: \"ether3\")"},
                      });
    // A rule naming a policy whose own name is invalid gets no second error.
    ConfigResult bad_name = parse(one_rule(R"(, "policy": "VoIP")", R"({"VoIP": {"members": [{"wan": "integra"}]}})"));
    CHECK(bad_name.errors == Errors{{"/policies/VoIP", "\"VoIP\" must be 1-32 characters of a-z, 0-9, _ and -"}});
}

TEST_CASE("at most kMaxRules rules") {
    auto rules = [](size_t n) {
        std::string out = "[";
        for (size_t i = 0; i < n; ++i) {
            out += (i ? ", " : "") + std::string(R"({"name": "r)") + std::to_string(i) + R"(", "dst": ["10.0.)" +
                   std::to_string(i / 256) + "." + std::to_string(i % 256) + R"("], "policy": "balanced"})";
        }
        return out + "]";
    };
    ConfigResult ok = parse(config("", rules(wb::kMaxRules)));
    CHECK(ok.errors == Errors{});
    CHECK(loaded(ok).rules.size() == wb::kMaxRules);
    check_error(config("", rules(wb::kMaxRules + 1)), "/rules", "expected at most 4096 rules, got 4097");
}

TEST_CASE("the element limit: per family, each rule's merged lists multiplied out, the crossing rule named") {
    // Addresses two apart never merge: 256 sources x 256 destinations is exactly the limit.
    std::string src, dst;
    for (int i = 0; i < 256; ++i) {
        src += (i ? ", \"10." : "\"10.") + std::to_string(i) + ".0.1\"";
        dst += (i ? ", \"172.16." : "\"172.16.") + std::to_string(i) + ".1\"";
    }
    const std::string full = R"({"name": "full", "src": [)" + src + R"(], "dst": [)" + dst + R"(], "policy": "balanced")";
    check_valid(config("", "[" + full + "}]"));
    const std::string more = R"({"name": "more", "dst": ["198.51.100.0/24"], "policy": "main"})";
    check_error(config("", "[" + full + "}, " + more + "]"), "/rules/1",
                "rule \"more\" takes the IPv4 rule maps past 65536 elements (it adds 1: src x dst x src_port x "
                "dst_port, each list merged); use wider prefixes or port ranges");
    // IPv6 has a budget of its own; a catch-all and the rules after it are not in the maps.
    check_valid(config("", "[" + full + R"(}, {"name": "v6", "dst": ["2001:db8::/32"], "policy": "main"}])"));
    check_valid(config("", "[" + full + R"(}, {"name": "all", "policy": "main"}, )" + more + "]"));
    // Adjacent and overlapping ranges merge: these lists count 1 x 1 x 1 x 1.
    const std::string merged = R"({"name": "m", "dst": ["10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24", "10.0.0.5"],
                                   "proto": "tcp", "src_port": ["1-100", "101-200", "50"],
                                   "dst_port": ["1-65535", 443], "policy": "balanced"})";
    check_error(config("", "[" + full + "}, " + merged + "]"), "/rules/1",
                "rule \"m\" takes the IPv4 rule maps past 65536 elements (it adds 1: src x dst x src_port x "
                "dst_port, each list merged); use wider prefixes or port ranges");
    // A rule that does not apply to IPv4 costs IPv4 nothing.
    check_valid(config("", "[" + full + R"(}, {"name": "p6", "proto": "icmpv6", "policy": "main"}])"));

    // With iif in some rule of the family, rules without it count every LAN: two LANs double
    // "full" past the limit.
    const std::string two_lans = R"(["ether3", "ether4"])";
    check_valid(config("", "[" + full + R"(, "iif": ["ether4"]}])", "", two_lans));
    check_error(config("", "[" + full + R"(}, {"name": "lan", "iif": ["ether3"], "policy": "main"}])", "", two_lans),
                "/rules/0",
                "rule \"full\" takes the IPv4 rule maps past 65536 elements (it adds 131072: src x dst x src_port "
                "x dst_port x iif, each list merged); use wider prefixes or port ranges");

    // Products far beyond the limit are counted exactly.
    std::string ports;
    for (int i = 0; i < 300; ++i) ports += (i ? ", " : "") + std::to_string(2 * i + 1);
    const std::string huge = R"({"name": "huge", "src": [)" + src + R"(], "dst": [)" + dst +
                             R"(], "proto": "udp", "src_port": [)" + ports + R"(], "dst_port": [)" + ports +
                             R"(], "policy": "balanced"})";
    check_error(config("", "[" + huge + "]"), "/rules/0",
                "rule \"huge\" takes the IPv4 rule maps past 65536 elements (it adds 5898240000: src x dst x "
                "src_port x dst_port, each list merged); use wider prefixes or port ranges");
}

namespace {

// `count` WANs w0, w1, ... with `top` spliced into the top level.
std::string n_wans(int count, std::string_view top) {
    std::string wans;
    for (int i = 0; i < count; ++i) {
        wans += (i ? ", " : "") + std::string(R"({"name": "w)") + std::to_string(i) + R"(", "interface": "e)" +
                std::to_string(i) + R"(", "gateway": "auto"})";
    }
    return R"({"wans": [)" + wans + R"(], "lans": ["lan"])" + std::string(top) + "}";
}

constexpr std::string_view kMainAndUnreachable =
    R"(, "policies": {"p": {"members": [{"wan": "w0"}], "last_resort": "unreachable"}},
         "rules": [{"name": "p", "policy": "p"}, {"name": "vpn", "dst": ["10.0.0.0/8"], "policy": "main"}])";

}  // namespace

TEST_CASE("marks of main and unreachable: after the WANs', main first, only when needed") {
    // last_resort "main" of a policy no rule uses still needs the mark.
    ConfigResult r = parse(config(R"({"p": {"members": [{"wan": "charter"}], "last_resort": "main"}})", ""));
    CHECK(loaded(r).main_mark == 0x300u);
    CHECK_FALSE(r.config->unreachable_mark);

    r = parse(config(R"({"p": {"members": [{"wan": "charter"}], "last_resort": "unreachable"}})",
                     R"([{"name": "x", "policy": "p"}])"));
    CHECK_FALSE(loaded(r).main_mark);
    CHECK(r.config->unreachable_mark == 0x300u);

    // Main first, even when "unreachable" comes first in the file.
    r = parse(n_wans(2, kMainAndUnreachable));
    CHECK(loaded(r).main_mark == 0x300u);
    CHECK(r.config->unreachable_mark == 0x400u);

    // Explicit WAN marks are skipped, as in the WANs' allocation.
    r = parse(config("", R"([{"name": "vpn", "dst": ["10.0.0.0/8"], "policy": "main"}])", "", R"(["ether3"])",
                     R"(, "mark": "0x300")"));
    CHECK(loaded(r).wans[0].mark == 0x300);
    CHECK(r.config->wans[1].mark == 0x100);
    CHECK(r.config->main_mark == 0x200u);

    // A mask with room for the WANs only: the key that needs the mark says so.
    check_valid(n_wans(2, R"(, "mark_mask": "0x300", "rules": [{"name": "vpn", "policy": "main"}])"));
    check_error(n_wans(3, R"(, "mark_mask": "0x300", "rules": [{"name": "vpn", "policy": "main"}])"),
                "/rules/0/policy",
                "\"main\" needs a mark of its own, and mark_mask \"0x300\" is full: its 3 marks go to the WANs; "
                "widen mark_mask");
    check_error(n_wans(2, std::string(kMainAndUnreachable) + R"(, "mark_mask": "0x300")"),
                "/policies/p/last_resort",
                "\"unreachable\" needs a mark of its own, and mark_mask \"0x300\" is full: its 3 marks go to the "
                "WANs and \"main\"; widen mark_mask");
    ConfigResult both = parse(n_wans(3, std::string(kMainAndUnreachable) + R"(, "mark_mask": "0x300")"));
    CHECK(both.errors ==
          Errors{{"/policies/p/last_resort", "\"unreachable\" needs a mark of its own, and mark_mask \"0x300\" is full: "
                                             "its 3 marks go to the WANs; widen mark_mask"},
                 {"/rules/1/policy", "\"main\" needs a mark of its own, and mark_mask \"0x300\" is full: its 3 marks "
                                     "go to the WANs; widen mark_mask"}});
    // The key named is the first one in the file that needs it.
    check_error(n_wans(3, R"(, "mark_mask": "0x300", "rules": [{"name": "a", "policy": "main"}, {"name": "b", "policy": "main"}])"),
                "/rules/0/policy",
                "\"main\" needs a mark of its own, and mark_mask \"0x300\" is full: its 3 marks go to the WANs; "
                "widen mark_mask");

    // Another program's mark is handed out last, with a warning, as for WANs.
    r = parse(n_wans(60, R"(, "rules": [{"name": "vpn", "policy": "main"}])"));
    CHECK(loaded(r).main_mark == 0xa00u);
    CHECK(r.warnings ==
          Errors{{"/rules/0/policy", "allocated mark 0xa00 for \"main\" is the mark WireGuard (wg-quick, 0xca6c) puts on "
                                     "its packets under mark_mask \"0x3f00\": its packets would follow it (no other "
                                     "mark is free)"}});
    check_error(n_wans(63, R"(, "rules": [{"name": "vpn", "policy": "main"}])"), "/rules/0/policy",
                "\"main\" needs a mark of its own, and mark_mask \"0x3f00\" is full: its 63 marks go to the WANs; "
                "widen mark_mask");
}

TEST_CASE("rule_priority leaves room for the rules of main and unreachable too") {
    // 2 WANs: suppress, 2 WAN rules, main, unreachable, balanced: 6 rules.
    check_valid(n_wans(2, std::string(kMainAndUnreachable) + R"(, "rule_priority": 32760)"));
    check_error(n_wans(2, std::string(kMainAndUnreachable) + R"(, "rule_priority": 32761)"), "/rule_priority",
                "expected an integer from 1 to 32760 (6 rules must fit below the main table's rule at 32766), got 32761");
    check_valid(n_wans(2, R"(, "rule_priority": 32762)"));
}

TEST_CASE("warnings: rules that never match, IPv6 that nothing carries, policies no rule uses") {
    ConfigResult r = parse(one_rule(R"(, "policy": "voip"}, {"name": "late", "dst": ["10.0.0.0/8"], "policy": "main"},
                                    {"name": "later", "policy": "balanced")"));
    CHECK(r.errors == Errors{});
    CHECK(r.warnings == Errors{{"/rules/1", "never matches: rule \"r\" (/rules/0) before it has no match keys, so it "
                                            "takes every connection"},
                               {"/rules/2", "never matches: rule \"r\" (/rules/0) before it has no match keys, so it "
                                            "takes every connection"}});

    // No WAN has gateway6 here.
    r = parse(one_rule(R"(, "policy": "voip", "dst": ["192.0.2.0/24", "2001:db8::/32"]},
                       {"name": "only6", "src": ["2001:db8:1::/48"], "policy": "main"},
                       {"name": "icmp6", "proto": "icmpv6", "policy": "main")"));
    CHECK(r.errors == Errors{});
    CHECK(r.warnings == Errors{
                            {"/rules/0/dst/1", "the IPv6 addresses are unused: no WAN has \"gateway6\""},
                            {"/rules/1/src/0", "the rule is unused: its addresses are IPv6 and no WAN has \"gateway6\""},
                            {"/rules/2/proto", "the rule is unused: \"icmpv6\" is IPv6 and no WAN has \"gateway6\""},
                        });
    // With a WAN that carries IPv6, no warning.
    r = parse(config(kVoip, R"([{"name": "r", "dst": ["2001:db8::/32"], "policy": "voip"}])", "", R"(["ether3"])",
                     R"(, "gateway6": "auto")"));
    CHECK(r.errors == Errors{});
    CHECK(r.warnings == Errors{});

    r = parse(config(R"({"used": {"members": [{"wan": "charter"}]}, "idle": {"members": [{"wan": "integra"}]}})",
                     R"([{"name": "r", "dst": ["10.0.0.0/8"], "policy": "used"}])"));
    CHECK(r.warnings == Errors{{"/policies/idle", "no rule uses policy \"idle\""}});
    r = parse(config(R"({"idle": {"members": [{"wan": "integra"}]}})", ""));
    CHECK(r.warnings == Errors{{"/policies/idle", "no rule uses policy \"idle\""}});

    // A timeout without sticky does nothing.
    r = parse(one_rule(R"(, "policy": "voip", "sticky_timeout_s": 60)"));
    CHECK(r.warnings == Errors{{"/rules/0/sticky_timeout_s", "has no effect without \"sticky\""}});
    r = parse(one_rule(R"(, "policy": "voip", "sticky": "none", "sticky_timeout_s": 60)"));
    CHECK(r.warnings == Errors{{"/rules/0/sticky_timeout_s", "has no effect without \"sticky\""}});
}

TEST_CASE("mutations: any value of policies and rules replaced by one of another kind is reported at its path") {
    using OJson = nlohmann::ordered_json;
    const OJson base = OJson::parse(kThreeCases);
    REQUIRE(parse(base.dump()).config);
    std::vector<std::string> pointers;
    std::function<void(const OJson&, const std::string&)> walk = [&](const OJson& v, const std::string& at) {
        if (at.rfind("/policies", 0) == 0 || at.rfind("/rules", 0) == 0) pointers.push_back(at);
        if (v.is_object()) {
            for (const auto& item : v.items()) walk(item.value(), at + "/" + item.key());
        } else if (v.is_array()) {
            for (size_t i = 0; i < v.size(); ++i) walk(v[i], at + "/" + std::to_string(i));
        }
    };
    walk(base, "");
    CHECK(pointers.size() > 40);
    const std::vector<OJson> wrong = {nullptr, true, -1, 2.5, "", OJson::array(), OJson::object()};
    for (const std::string& path : pointers) {
        OJson::json_pointer p(path);
        for (const OJson& value : wrong) {
            if (value.type() == base[p].type()) continue;
            OJson mutated = base;
            mutated[p] = value;
            INFO(path, " = ", value.dump());
            ConfigResult r = parse(mutated.dump());
            CHECK_FALSE(r.config);
            bool named = std::any_of(r.errors.begin(), r.errors.end(), [&](const ConfigError& e) { return e.path == path; });
            CHECK(named);
        }
    }
}

TEST_CASE("the shipped configs with rules load without warnings") {
    ConfigResult r = wb::load_config((fs::path(WB_CONFIG_CORPUS) / "good" / "rules-dual-stack.json").string());
    const wb::Config c = loaded(r);
    CHECK(r.warnings == Errors{});
    REQUIRE(c.policies.size() == 3);
    CHECK(c.policies[0].members == std::vector<wb::PolicyMember>{{0, 3, 0}, {1, 1, 0}, {2, 1, 2}});
    CHECK(c.policies[1].last_resort == LastResort::Unreachable);
    CHECK(c.policies[2].last_resort == LastResort::Main);
    CHECK(c.rules.size() == 5);
    CHECK(c.rules[2].src_port == std::vector<PortRange>{{1024, 65535}});
    CHECK(c.rules[4].proto == IPPROTO_SCTP);
    // Three WANs: 0x100-0x300; then main, then unreachable.
    CHECK(c.main_mark == 0x400u);
    CHECK(c.unreachable_mark == 0x500u);

    r = wb::load_config(WB_SOURCE_DIR "/docs/examples/wanbalance.json");
    const wb::Config example = loaded(r);
    CHECK(r.warnings == Errors{});
    std::vector<std::string> names;
    for (const auto& rule : example.rules) names.push_back(rule.target_name(example.policies) + ":" + rule.name);
    CHECK(names == std::vector<std::string>{"main:office", "voip:sip", "voip:rtp", "balanced:bank"});
    CHECK(example.main_mark == 0x300u);
}
