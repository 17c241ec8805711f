// The config loader against docs/design.md, Configuration: defaults and allocation, one failing case per rule
// with its exact path and message, and all problems of a file in document order.
#include "config/validate.hpp"
#include "config/wording.hpp"
#include "tests/unit/config_fixtures.hpp"

using namespace config_test;

namespace {

constexpr const char* kDesignExample = R"({
  "wans": [
    { "name": "charter", "interface": "ether1", "gateway": "203.0.113.1", "weight": 1,
      "probe": { "targets": ["192.0.2.53", "192.0.2.54"] } },
    { "name": "integra", "interface": "ether2", "gateway": "auto" }
  ],
  "lans": ["ether3"],
  "balance": { "classifier": "both-addresses-and-ports" },
  "probe": { "interval_ms": 300, "timeout_ms": 600, "down_after": 3, "up_after": 5, "min_targets_up": 1 },
  "masquerade": true,
  "flush_conntrack": true
})";

}  // namespace

TEST_CASE("the docs/design.md example loads with the documented defaults and allocations") {
    ConfigResult r = wb::parse_config(kDesignExample, "/etc/wanbalance.json");
    REQUIRE(r.errors == Errors{});
    REQUIRE(r.config);
    const wb::Config& c = *r.config;
    CHECK(c.path == "/etc/wanbalance.json");
    REQUIRE(c.wans.size() == 2);
    const wb::WanConfig& charter = c.wans[0];
    CHECK(charter.name == "charter");
    CHECK(charter.interface == "ether1");
    CHECK(charter.gateway == ip("203.0.113.1"));
    CHECK(charter.weight == 1);
    CHECK(charter.tier == 0);
    CHECK(charter.table == 101);
    CHECK(charter.mark == 0x100);
    CHECK(charter.probe.targets == std::vector{icmp("192.0.2.53"), icmp("192.0.2.54")});
    CHECK(charter.probe.interval == 300ms);
    CHECK(charter.probe.timeout == 600ms);
    CHECK(charter.probe.down_after == 3);
    CHECK(charter.probe.up_after == 5);
    CHECK(charter.probe.min_targets_up == 1);
    const wb::WanConfig& integra = c.wans[1];
    CHECK(integra.gateway == std::nullopt);  // "auto"
    CHECK(integra.table == 102);
    CHECK(integra.mark == 0x200);
    CHECK(integra.probe.targets.empty());  // probe the gateway
    CHECK(c.lans == std::vector<std::string>{"ether3"});
    CHECK(c.classifier == wb::Classifier::BothAddressesAndPorts);
    CHECK(c.probe == wb::ProbeConfig{});
    CHECK(c.masquerade);
    CHECK(c.flush_conntrack);
    CHECK(c.mark_mask == 0x3f00);
    CHECK(c.rule_priority == 20000);
    CHECK(c.hooks_dir == "/etc/wanbalance/hooks.d");
}

TEST_CASE("a minimal config equals the hand-built defaults") {
    ConfigResult r = parse(article());
    REQUIRE(r.config);
    wb::Config expected;
    expected.path = "test.json";
    wb::WanConfig charter{"charter", "ether1", ip("203.0.113.1"), 1, 0, 101, 0x100, {}};
    wb::WanConfig integra{"integra", "ether2", ip("198.51.100.1"), 1, 0, 102, 0x200, {}};
    expected.wans = {charter, integra};
    expected.lans = {"ether3"};
    CHECK(*r.config == expected);
}

TEST_CASE("tables and marks are allocated in WAN order around explicit ones") {
    SUBCASE("explicit values are skipped") {
        ConfigResult r = parse(R"({"wans": [
            {"name": "a", "interface": "e1", "gateway": "auto"},
            {"name": "b", "interface": "e2", "gateway": "auto", "table": 101, "mark": "0x100"},
            {"name": "c", "interface": "e3", "gateway": "auto", "table": 103, "mark": 768}],
            "lans": ["e4"]})");
        REQUIRE(r.config);
        CHECK(r.config->wans[0].table == 102);
        CHECK(r.config->wans[0].mark == 0x200);
        CHECK(r.config->wans[1].table == 101);
        CHECK(r.config->wans[1].mark == 0x100);
        CHECK(r.config->wans[2].table == 103);
        CHECK(r.config->wans[2].mark == 0x300);
    }
    SUBCASE("marks are deposited into the mask's bits") {
        CHECK(wb::config_detail::deposit_bits(1, 0x3f00) == 0x100);
        CHECK(wb::config_detail::deposit_bits(3, 0x3f00) == 0x300);
        CHECK(wb::config_detail::deposit_bits(63, 0x3f00) == 0x3f00);
        CHECK(wb::config_detail::deposit_bits(3, 0x5) == 0x5);  // bits 0 and 2
        CHECK(wb::config_detail::deposit_bits(2, 0x80000001) == 0x80000000);
        ConfigResult r = parse(article("", "", R"(, "mark_mask": "0x00ff0000")"));
        REQUIRE(r.config);
        CHECK(r.config->wans[0].mark == 0x10000);
        CHECK(r.config->wans[1].mark == 0x20000);
        r = parse(article("", "", R"(, "mark_mask": "0x5")"));
        REQUIRE(r.config);
        CHECK(r.config->wans[0].mark == 0x1);
        CHECK(r.config->wans[1].mark == 0x4);
    }
    SUBCASE("63 WANs fill the default mask") {
        std::string wans;
        for (int i = 0; i < 63; ++i) {
            if (i) wans += ",";
            wans += R"({"name": "w)" + std::to_string(i) + R"(", "interface": "e)" + std::to_string(i) +
                    R"(", "gateway": "auto"})";
        }
        ConfigResult r = parse(R"({"wans": [)" + wans + R"(], "lans": ["lan"]})");
        REQUIRE(r.config);
        CHECK(r.config->wans[59].mark == 0x3f00);  // the marks other programs use come last
        CHECK(r.config->wans[62].mark == 0x2c00);
        CHECK(r.config->wans[62].table == 163);
        CHECK(r.warnings.size() == 3);
    }
}

TEST_CASE("per-WAN probe settings override the global ones key by key") {
    ConfigResult r = parse(article(R"(, "probe": {"down_after": 2, "targets": ["192.0.2.9"]})", "",
                                   R"(, "probe": {"interval_ms": 1000, "targets": ["192.0.2.1", "192.0.2.2"]})"));
    REQUIRE(r.config);
    CHECK(r.config->probe.interval == 1000ms);
    CHECK(r.config->probe.down_after == 3);
    CHECK(r.config->wans[0].probe.interval == 1000ms);
    CHECK(r.config->wans[0].probe.down_after == 2);
    CHECK(r.config->wans[0].probe.targets == std::vector{icmp("192.0.2.9")});
    CHECK(r.config->wans[1].probe.interval == 1000ms);
    CHECK(r.config->wans[1].probe.down_after == 3);
    CHECK(r.config->wans[1].probe.targets == std::vector{icmp("192.0.2.1"), icmp("192.0.2.2")});
}

TEST_CASE("every key takes its documented values") {
    check_valid(article(R"(, "weight": 1000, "tier": 255, "table": 4294967295, "mark": "0x3F00")",
                        R"(, "weight": 1, "tier": 0, "table": 1, "mark": 512)", "", R"(["eth.3-x_y@z", "a"])"));
    check_valid(article("", "", R"(, "rule_priority": 32762, "mark_mask": "0xffffffff", "hooks_dir": "/")"));
    check_valid(article("", "", R"(, "rule_priority": 1, "masquerade": false, "flush_conntrack": false)"));
    check_valid(article("", "", R"(, "probe": {"interval_ms": 50, "timeout_ms": 60000, "down_after": 100,
        "up_after": 1, "min_targets_up": 16, "targets": ["1.0.0.1","1.0.0.2","1.0.0.3","1.0.0.4","1.0.0.5",
        "1.0.0.6","1.0.0.7","1.0.0.8","1.0.0.9","1.0.0.10","1.0.0.11","1.0.0.12","1.0.0.13","1.0.0.14",
        "1.0.0.15","1.0.0.16"]})"));
    check_valid(with_wan0("interface", "abcdefghijklmno"));  // 15 characters
    check_valid(with_wan0("interface", "abcdefghijklm\xc3\xa9"));  // 15 bytes
    check_valid(with_wan0("name", "a-b_c012345678z"));       // 15 characters
    for (int c = 0; c <= int(wb::Classifier::RoundRobin); ++c) {
        auto classifier = wb::Classifier(c);
        std::string name(wb::classifier_name(classifier));
        CHECK(wb::parse_classifier(name) == classifier);
        ConfigResult r = parse(article("", "", R"(, "balance": {"classifier": ")" + name + R"("})"));
        REQUIRE(r.config);
        CHECK(r.config->classifier == classifier);
    }
    CHECK(wb::parse_classifier("Round-Robin") == std::nullopt);
    CHECK(wb::classifier_name(wb::Classifier::RoundRobin) == "round-robin");
}

TEST_CASE("syntax errors: one error with line and column") {
    std::string trailing = article("", "", "", R"(["ether3",])");
    check_error(trailing, "",
                "line 1, column " + std::to_string(trailing.find(",]") + 2) + ": unexpected ']' (trailing comma?)");
    check_error("{\n  \"wans\": [],\n}", "", "line 3, column 1: unexpected '}' (trailing comma?)");
    check_error("{\"a\": 1 \"b\": 2}", "", "line 1, column 9: unexpected \"b\"; expected ',' or '}'");
    check_error("{\"a\" 1}", "", "line 1, column 6: unexpected '1'; expected ':'");
    check_error("{\"a\": yes}", "", "line 1, column 7: unexpected 'yes'");
    check_error("{\"a\": 'x'}", "", "line 1, column 7: unexpected \"'\" (JSON strings need double quotes)");
    check_error("{\n\"a\": \"abc", "", "line 2, column 6: unterminated string");
    check_error("{\"a\": \"ab\ncd\"}", "", "line 1, column 10: line break inside a string (write \\n)");
    check_error("{\"a\": \"a\\qb\"}", "", "line 1, column 9: invalid escape '\\q' in a string");
    check_error("{\"a\": 1.}", "", "line 1, column 7: invalid number '1.'");
    check_error("{\n  /* never closed\n", "", "line 2, column 3: unterminated /* comment");
    check_error("{ / }", "", "line 1, column 3: unexpected '/' (comments start with // or /*)");
    check_error("", "", "line 1, column 1: unexpected end of file; expected a value");
    check_error("// nothing but a comment\n", "", "line 2, column 1: unexpected end of file; expected a value");
    check_error("{\"wans\": [", "", "line 1, column 11: unexpected end of file; expected a value");
    check_error("{} {}", "", "line 1, column 4: unexpected '{' after the end of the top-level value");
    check_error("{\"a\": \"\xff\"}", "", "line 1, column 8: invalid UTF-8 in a string");
    // JSON strings may hold a raw DEL; the message must not pass it to the terminal.
    check_error("{\"a\": 1 \"b\x7f\": 2}", "", "line 1, column 9: unexpected \"b\\u007f\"; expected ',' or '}'");
    // Columns count characters, not bytes.
    check_error("{\"é\": 1 2}", "", "line 1, column 9: unexpected '2'; expected ',' or '}'");
    // nlohmann stops at NUL as if the input ended: both forms are refused.
    check_error(std::string("{\"a\": \0}", 8), "", "line 1, column 7: unexpected NUL byte");
    check_error(std::string("{}\0junk", 7), "", "line 1, column 3: unexpected NUL byte");
}

TEST_CASE("comments of both kinds are allowed anywhere whitespace is") {
    check_valid(R"(// leading
/* block */ { /* before a key */ "wans": [ // inside an array
      { "name": "charter", /* between */ "interface": "ether1", "gateway": "203.0.113.1" }, /* after */
      // a whole line
      { "name": "integra", "interface": "ether2", "gateway": "auto" /* before } */ }
    ],
    "lans": [ /* a */ "ether3" /* b */ ] // trailing
    /* multi
       line */
} // end)");
}

TEST_CASE("duplicate keys are errors at the object's path") {
    check_error(article("", R"(, "name": "other")"), "/wans/1", "duplicate key \"name\"");
    check_error(article("", "", R"(, "lans": ["ether4"])"), "", "duplicate key \"lans\"");
    check_error(article(R"(, "probe": {"up_after": 2, "up_after": 2})"), "/wans/0/probe", "duplicate key \"up_after\"");
}

TEST_CASE("unknown keys suggest the closest key or list the allowed ones") {
    check_error(article(R"(, "wieght": 2)"), "/wans/0/wieght", "unknown key \"wieght\" (did you mean \"weight\"?)");
    check_error(article("", "", R"(, "Lans": [])"), "/Lans", "unknown key \"Lans\" (did you mean \"lans\"?)");
    check_error(article("", "", R"(, "probe": {"intervall_ms": 100})"), "/probe/intervall_ms",
                "unknown key \"intervall_ms\" (did you mean \"interval_ms\"?)");
    check_error(article(R"(, "colour": "red")"), "/wans/0/colour",
                "unknown key \"colour\" (allowed: \"name\", \"interface\", \"gateway\", \"gateway6\", \"weight\", \"tier\", "
                "\"table\", \"mark\", \"probe\", \"snat\" and \"snat6\")");
    check_error(article("", "", R"(, "balance": {"hash": "x"})"), "/balance/hash",
                "unknown key \"hash\" (allowed: \"classifier\")");
    check_error(article(R"(, "timeout_ms": 100)"), "/wans/0/timeout_ms",
                "unknown key \"timeout_ms\" (it belongs inside \"probe\")");
    check_error(article("", "", R"(, "classifier": "src-address")"), "/classifier",
                "unknown key \"classifier\" (it belongs inside \"balance\")");
    check_error(article("", "", R"(, "a/b~c": 1)"), "/a~1b~0c",
                "unknown key \"a/b~c\" (allowed: \"wans\", \"lans\", \"balance\", \"probe\", \"masquerade\", "
                "\"flush_conntrack\", \"ha_pair\", \"mark_mask\", \"rule_priority\", \"hooks_dir\", \"policies\" and \"rules\")");
}

TEST_CASE("the top level") {
    check_error("[]", "", "expected an object at the top level, got []");
    check_error("\"wans\"", "", "expected an object at the top level, got \"wans\"");
    ConfigResult r = parse("{}");
    CHECK(r.errors == Errors{{"", "missing required key \"wans\""}, {"", "missing required key \"lans\""}});
}

TEST_CASE("wans: an array of 1 to min(63, room in mark_mask) objects") {
    check_error(R"({"wans": {}, "lans": ["e"]})", "/wans", "expected an array of WANs, got {}");
    check_error(R"({"wans": [], "lans": ["e"]})", "/wans", "expected at least one WAN, got []");
    check_error(R"({"wans": ["charter"], "lans": ["e"]})", "/wans/0", "expected an object, got \"charter\"");
    std::string wans;
    for (int i = 0; i < 64; ++i) {
        wans += (i ? "," : "") + std::string(R"({"name": "w)") + std::to_string(i) + R"(", "interface": "e)" +
                std::to_string(i) + R"(", "gateway": "auto"})";
    }
    check_error(R"({"wans": [)" + wans + R"(], "lans": ["lan"]})", "/wans", "expected at most 63 WANs, got 64");
    check_error(article("", "", R"(, "mark_mask": "0x1")"), "/wans",
                "expected at most 1 WAN (mark_mask \"0x1\" has room for 1 mark), got 2");
    check_valid(article("", "", R"(, "mark_mask": "0x3")"));
}

TEST_CASE("wans[].name") {
    check_error(replace_once(article(), R"("name": "charter", )", ""), "/wans/0", "missing required key \"name\"");
    for (nlohmann::json bad : {nlohmann::json("Charter"), nlohmann::json(""), nlohmann::json("abcdefghijklmnop"),
                               nlohmann::json("wan.1"), nlohmann::json("wan 1"), nlohmann::json(5)}) {
        check_error(with_wan0("name", bad), "/wans/0/name", js(bad) + " must be 1-15 characters of a-z, 0-9, _ and -");
    }
    check_error(article("", "").replace(article().find("integra"), 7, "charter"), "/wans/1/name",
                "\"charter\" is already used by /wans/0");
}

TEST_CASE("wans[].interface and lans take kernel interface names") {
    check_error(replace_once(article(), R"("interface": "ether1", )", ""), "/wans/0",
                "missing required key \"interface\"");
    // Each kind of bad name, with what is wrong with it (the kernel's dev_valid_name(), plus '%',
    // quotes and control characters).
    const std::pair<const char*, const char*> bad_names[] = {
        {"", "it is empty"},
        {"abcdefghijklmnop", "it is 16 bytes long; the kernel allows at most 15"},
        {"abcdefghijklmn\xc3\xa9", "it is 16 bytes long; the kernel allows at most 15"},  // 15 characters
        {".", "the kernel reserves \".\" and \"..\""},
        {"..", "the kernel reserves \".\" and \"..\""},
        {"eth/0", "it contains '/'"},
        {"eth:0", "it contains ':'"},
        {"eth%d", "it contains '%'"},
        {"eth\"0", "it contains a double quote"},
        {"eth'0", "it contains a single quote"},
        {"eth 0", "it contains a space"},
        {"eth\t0", "it contains a tab"},
        {"eth\n0", "it contains a control character (0x0a)"},
        {"eth\x1b" "0", "it contains a control character (0x1b)"},
        {"eth\x7f" "0", "it contains a control character (0x7f)"},
    };
    for (const auto& [bad, why] : bad_names) {
        const std::string name = bad, shown = wb::config_detail::quote(name);  // DEL shown as \u007f
        CAPTURE(shown);
        check_error(with_wan0("interface", name), "/wans/0/interface", shown + " is not an interface name: " + why);
        check_error(article("", "", "", "[" + js(name) + "]"), "/lans/0", shown + " is not an interface name: " + why);
    }
    check_error(with_wan0("interface", 1), "/wans/0/interface", "expected an interface name (a string), got 1");
    check_error(article("", "", "", "[null]"), "/lans/0", "expected an interface name (a string), got null");
    check_error(with_wan0("interface", "ether2"), "/wans/1/interface", "\"ether2\" is already used by /wans/0");
    check_error(article("", "", "", R"(["ether3", "ether2"])"), "/lans/1",
                "\"ether2\" is also the interface of WAN \"integra\"");
}

TEST_CASE("wans[].gateway") {
    check_error(replace_once(article(), R"(, "gateway": "203.0.113.1")", ""), "/wans/0",
                "missing required key \"gateway\"");
    for (nlohmann::json bad :
         {nlohmann::json("198.51.100.x"), nlohmann::json("198.51.100.1/24"), nlohmann::json("203.0.113.01"),
          nlohmann::json("AUTO"), nlohmann::json(""), nlohmann::json(3), nlohmann::json(nullptr)}) {
        check_error(with_wan0("gateway", bad), "/wans/0/gateway", js(bad) + " is not an IPv4 address or \"auto\"");
    }
}

TEST_CASE("a gateway must be a unicast address") {
    const std::string rule = ": a gateway must be a unicast address on the WAN's subnet";
    const std::pair<const char*, const char*> unusable[] = {
        {"0.0.0.0", "the unspecified address"},   {"127.0.0.1", "a loopback address"},
        {"127.255.255.254", "a loopback address"}, {"224.0.0.1", "a multicast address"},
        {"239.255.255.255", "a multicast address"}, {"255.255.255.255", "the broadcast address"},
    };
    for (const auto& [address, kind] : unusable) {
        check_error(with_wan0("gateway", address), "/wans/0/gateway", js(address) + " is " + kind + rule);
    }
    check_error(replace_once(article(), "198.51.100.1", "127.0.0.1"), "/wans/1/gateway",
                "\"127.0.0.1\" is a loopback address: a gateway must be a unicast address on the WAN's subnet");
    // Their neighbours are ordinary unicast addresses; so is 240.0.0.0/4, which Linux routes.
    for (const char* fine : {"126.255.255.255", "128.0.0.1", "223.255.255.255", "240.0.0.1",
                             "255.255.255.254", "192.168.1.255"}) {
        check_valid(with_wan0("gateway", fine));
    }
}

TEST_CASE("a probe target must be a unicast address") {
    const std::string rule = ": a probe target must be a unicast address reached through the WAN";
    const std::pair<const char*, const char*> unusable[] = {
        {"0.0.0.0", "the unspecified address"}, {"127.0.0.1", "a loopback address"},
        {"224.0.0.1", "a multicast address"},   {"255.255.255.255", "the broadcast address"},
    };
    for (const auto& [address, kind] : unusable) {
        std::string targets = R"({"targets": ["192.0.2.53", )" + js(address) + "]}";
        check_error(article("", "", R"(, "probe": )" + targets), "/probe/targets/1", js(address) + " is " + kind + rule);
        check_error(article(R"(, "probe": )" + targets), "/wans/0/probe/targets/1", js(address) + " is " + kind + rule);
    }
    check_valid(article("", "", R"(, "probe": {"targets": ["1.1.1.1", "240.0.0.1", "223.255.255.254"]})"));
}

TEST_CASE("integers must be JSON integers in range") {
    for (nlohmann::json bad : {nlohmann::json(0), nlohmann::json(1001), nlohmann::json("3"), nlohmann::json(3.0),
                               nlohmann::json(-1), nlohmann::json(true), nlohmann::json(1e20)}) {
        check_error(with_wan0("weight", bad), "/wans/0/weight", "expected an integer from 1 to 1000, got " + js(bad));
    }
    check_error(with_wan0("weight", "3"), "/wans/0/weight", "expected an integer from 1 to 1000, got \"3\"");
    check_error(with_wan0("tier", 256), "/wans/0/tier", "expected an integer from 0 to 255, got 256");
    check_error(with_wan0("tier", -1), "/wans/0/tier", "expected an integer from 0 to 255, got -1");
}

TEST_CASE("wans[].table") {
    check_error(with_wan0("table", 0), "/wans/0/table", "expected an integer from 1 to 4294967295, got 0");
    check_error(with_wan0("table", 4294967296), "/wans/0/table",
                "expected an integer from 1 to 4294967295, got 4294967296");
    check_error(with_wan0("table", 253), "/wans/0/table", "253 is reserved for the kernel's default table");
    check_error(with_wan0("table", 254), "/wans/0/table", "254 is reserved for the kernel's main table");
    check_error(with_wan0("table", 255), "/wans/0/table", "255 is reserved for the kernel's local table");
    check_error(article(R"(, "table": 7)", R"(, "table": 7)"), "/wans/1/table", "7 is already used by /wans/0");
}

TEST_CASE("wans[].mark") {
    ConfigResult r = parse(article(R"(, "mark": "0x0000000300")", R"(, "mark": 1024)"));
    REQUIRE(r.config);
    CHECK(r.config->wans[0].mark == 0x300);
    CHECK(r.config->wans[1].mark == 0x400);
    const std::string format = "expected a hex string like \"0x100\" or an integer, got ";
    for (nlohmann::json bad :
         {nlohmann::json("0x"), nlohmann::json("100"), nlohmann::json("0xg"), nlohmann::json("0X100"),
          nlohmann::json(true), nlohmann::json(-1), nlohmann::json(256.0)}) {
        check_error(with_wan0("mark", bad), "/wans/0/mark", format + js(bad));
    }
    check_error(with_wan0("mark", "0x100000000"), "/wans/0/mark", "\"0x100000000\" is wider than 32 bits");
    check_error(with_wan0("mark", 4294967296), "/wans/0/mark", "4294967296 is wider than 32 bits");
    check_error(with_wan0("mark", 0), "/wans/0/mark", "0 must be nonzero (0 means unmarked)");
    check_error(with_wan0("mark", "0x0"), "/wans/0/mark", "\"0x0\" must be nonzero (0 means unmarked)");
    check_error(with_wan0("mark", "0x4000"), "/wans/0/mark", "\"0x4000\" has bits outside mark_mask \"0x3f00\"");
    check_error(with_wan0("mark", 0x4100), "/wans/0/mark", "16640 has bits outside mark_mask \"0x3f00\"");
    check_error(article(R"(, "mark": 512)", R"(, "mark": "0x200")"), "/wans/1/mark",
                "\"0x200\" is already used by /wans/0");
    // The mask may come after the WANs in the file; the check still uses it.
    check_error(article(R"(, "mark": "0x100")", "", R"(, "mark_mask": "0xff0000")"), "/wans/0/mark",
                "\"0x100\" has bits outside mark_mask \"0xff0000\"");
}

TEST_CASE("lans") {
    check_error(R"({"wans": [{"name": "a", "interface": "e1", "gateway": "auto"}]})", "",
                "missing required key \"lans\"");
    check_error(article("", "", "", R"("ether3")"), "/lans", "expected an array of interface names, got \"ether3\"");
    check_error(article("", "", "", "[]"), "/lans", "expected at least one LAN interface, got []");
    check_error(article("", "", "", R"(["ether3", "ether4", "ether3"])"), "/lans/2",
                "\"ether3\" is already listed at /lans/0");
    check_error(article("", "", "", R"(["ether1"])"), "/lans/0", "\"ether1\" is also the interface of WAN \"charter\"");
}

TEST_CASE("balance.classifier") {
    check_error(article("", "", R"(, "balance": "pcc")"), "/balance", "expected an object, got \"pcc\"");
    check_error(article("", "", R"(, "balance": {"classifier": "both-address"})"), "/balance/classifier",
                "\"both-address\" is not a classifier (did you mean \"both-addresses\"?)");
    check_error(article("", "", R"(, "balance": {"classifier": "roundrobin"})"), "/balance/classifier",
                "\"roundrobin\" is not a classifier (did you mean \"round-robin\"?)");
    const std::string all =
        " is not a classifier (one of \"src-address\", \"dst-address\", \"both-addresses\", "
        "\"both-ports\", \"both-addresses-and-ports\", \"src-address-and-port\", "
        "\"dst-address-and-port\" and \"round-robin\")";
    check_error(article("", "", R"(, "balance": {"classifier": "random"})"), "/balance/classifier", "\"random\"" + all);
    check_error(article("", "", R"(, "balance": {"classifier": 2})"), "/balance/classifier", "2" + all);
    ConfigResult r = parse(article("", "", R"(, "balance": {})"));
    REQUIRE(r.config);
    CHECK(r.config->classifier == wb::Classifier::BothAddressesAndPorts);
}

TEST_CASE("probe") {
    auto global = [](const std::string& probe) { return article("", "", R"(, "probe": )" + probe); };
    check_error(global("[]"), "/probe", "expected an object, got []");
    check_error(article(R"(, "probe": 3)"), "/wans/0/probe", "expected an object, got 3");
    check_error(global(R"({"targets": "192.0.2.1"})"), "/probe/targets",
                "expected an array of probe targets (an address, {\"tcp\": \"HOST:PORT\"} or {\"dns\": \"HOST\", "
                "\"name\": \"NAME\"}), got \"192.0.2.1\"");
    check_error(global(R"({"targets": ["192.0.2.1", "192.0.2.300"]})"), "/probe/targets/1",
                "\"192.0.2.300\" is not an IPv4 or IPv6 address");
    check_error(global(R"({"targets": ["192.0.2.1", "192.0.2.1"]})"), "/probe/targets/1",
                "\"192.0.2.1\" is already listed at /probe/targets/0");
    std::string seventeen;
    for (int i = 1; i <= 17; ++i) seventeen += (i > 1 ? ", " : "") + js("192.0.2." + std::to_string(i));
    check_error(global(R"({"targets": [)" + seventeen + "]}"), "/probe/targets", "expected at most 16 targets, got 17");
    check_error(global(R"({"interval_ms": 49})"), "/probe/interval_ms", "expected an integer from 50 to 60000, got 49");
    check_error(global(R"({"interval_ms": 60001})"), "/probe/interval_ms",
                "expected an integer from 50 to 60000, got 60001");
    check_error(global(R"({"timeout_ms": 49})"), "/probe/timeout_ms", "expected an integer from 50 to 60000, got 49");
    check_error(global(R"({"down_after": 0})"), "/probe/down_after", "expected an integer from 1 to 100, got 0");
    check_error(global(R"({"up_after": 101})"), "/probe/up_after", "expected an integer from 1 to 100, got 101");
    check_error(global(R"({"min_targets_up": 17})"), "/probe/min_targets_up",
                "expected an integer from 1 to 16, got 17");
    check_error(article(R"(, "probe": {"retries": 3})"), "/wans/0/probe/retries",
                "unknown key \"retries\" (allowed: \"targets\", \"interval_ms\", \"timeout_ms\", \"down_after\", "
                "\"up_after\" and \"min_targets_up\")");
}

TEST_CASE("min_targets_up is checked against the targets it is used with, where it was set") {
    check_error(article("", "", R"(, "probe": {"min_targets_up": 2})"), "/probe/min_targets_up",
                "2 is more than the number of probe targets (1: the gateway, as targets is empty)");
    check_error(article("", "", R"(, "probe": {"min_targets_up": 3, "targets": ["192.0.2.1", "192.0.2.2"]})"),
                "/probe/min_targets_up", "3 is more than the number of probe targets (2)");
    check_error(article(R"(, "probe": {"min_targets_up": 2})"), "/wans/0/probe/min_targets_up",
                "2 is more than the number of probe targets (1: the gateway, as targets is empty)");
    // The global value is fine with the global targets, but the first WAN narrows them.
    check_error(article(R"(, "probe": {"targets": ["192.0.2.9"]})", "",
                        R"(, "probe": {"min_targets_up": 2, "targets": ["192.0.2.1", "192.0.2.2"]})"),
                "/probe/min_targets_up", "2 is more than the number of probe targets of WAN \"charter\" (1)");
    // A WAN that widens the targets may raise min_targets_up; the other WAN keeps the default.
    check_valid(article(R"(, "probe": {"targets": ["192.0.2.1", "192.0.2.2"], "min_targets_up": 2})"));
}

TEST_CASE("booleans, mark_mask, rule_priority and hooks_dir") {
    for (nlohmann::json bad : {nlohmann::json("true"), nlohmann::json(1), nlohmann::json(nullptr)}) {
        check_error(article("", "", R"(, "masquerade": )" + js(bad)), "/masquerade",
                    "expected true or false, got " + js(bad));
    }
    check_error(article("", "", R"(, "flush_conntrack": "yes")"), "/flush_conntrack",
                "expected true or false, got \"yes\"");
    ConfigResult r = parse(article("", "", R"(, "masquerade": false, "flush_conntrack": false)"));
    REQUIRE(r.config);
    CHECK_FALSE(r.config->masquerade);
    CHECK_FALSE(r.config->flush_conntrack);

    for (nlohmann::json bad : {nlohmann::json(16128), nlohmann::json("3f00"), nlohmann::json("0x3f00 "),
                               nlohmann::json("0x"), nlohmann::json("-0x1")}) {
        check_error(article("", "", R"(, "mark_mask": )" + js(bad)), "/mark_mask",
                    "expected a hex string like \"0x3f00\", got " + js(bad));
    }
    check_error(article("", "", R"(, "mark_mask": "0x0")"), "/mark_mask", "\"0x0\" must be nonzero");
    check_error(article("", "", R"(, "mark_mask": "0x1ffffffff")"), "/mark_mask",
                "\"0x1ffffffff\" is wider than 32 bits");

    check_error(article("", "", R"(, "rule_priority": 0)"), "/rule_priority",
                "expected an integer from 1 to 32765, got 0");
    check_error(article("", "", R"(, "rule_priority": 32766)"), "/rule_priority",
                "expected an integer from 1 to 32765, got 32766");
    check_error(article("", "", R"(, "rule_priority": "20000")"), "/rule_priority",
                "expected an integer from 1 to 32765, got \"20000\"");
    check_error(
        article("", "", R"(, "rule_priority": 32764)"), "/rule_priority",
        "expected an integer from 1 to 32762 (4 rules must fit below the main table's rule at 32766), got 32764");

    for (nlohmann::json bad :
         {nlohmann::json("hooks.d"), nlohmann::json(""), nlohmann::json(5), nlohmann::json("/etc/\x01hooks")}) {
        check_error(article("", "", R"(, "hooks_dir": )" + js(bad)), "/hooks_dir",
                    "expected an absolute path, got " + js(bad));
    }
    r = parse(article("", "", R"(, "hooks_dir": "/usr/local/lib/wanbalance/hooks", "rule_priority": 100)"));
    REQUIRE(r.config);
    CHECK(r.config->hooks_dir == "/usr/local/lib/wanbalance/hooks");
    CHECK(r.config->rule_priority == 100);
}

TEST_CASE("every problem is reported in one run, in document order") {
    ConfigResult r = parse(R"({
  "wans": [
    { "name": "charter", "interface": "ether1", "gateway": "203.0.113.1", "weight": "3", "mark": "0x100" },
    { "name": "charter", "interface": "ether2", "gateway": "198.51.100.x", "wieght": 2 },
    { "interface": "ether4", "gateway": "auto", "name": "Third", "table": 254 }
  ],
  "lans": ["ether1", "ether3"],
  "balance": { "classifier": "both-address" },
  "masquerade": "yes",
  "mark_mask": "0xff0000",
  "probe": { "min_targets_up": 2, "min_targets_up": 1 }
})");
    CHECK_FALSE(r.config);
    CHECK(r.errors ==
          Errors{
              {"/wans/0/weight", "expected an integer from 1 to 1000, got \"3\""},
              {"/wans/0/mark", "\"0x100\" has bits outside mark_mask \"0xff0000\""},
              {"/wans/1/name", "\"charter\" is already used by /wans/0"},
              {"/wans/1/gateway", "\"198.51.100.x\" is not an IPv4 address or \"auto\""},
              {"/wans/1/wieght", "unknown key \"wieght\" (did you mean \"weight\"?)"},
              {"/wans/2/name", "\"Third\" must be 1-15 characters of a-z, 0-9, _ and -"},
              {"/wans/2/table", "254 is reserved for the kernel's main table"},
              {"/lans/0", "\"ether1\" is also the interface of WAN \"charter\""},
              {"/balance/classifier", "\"both-address\" is not a classifier (did you mean \"both-addresses\"?)"},
              {"/masquerade", "expected true or false, got \"yes\""},
              {"/probe/min_targets_up",
               "2 is more than the number of probe targets (1: the gateway, as targets is empty)"},
              {"/probe", "duplicate key \"min_targets_up\""},
          });
}

TEST_CASE("ConfigError::format") {
    CHECK(ConfigError{"/wans/1/gateway", "\"198.51.100.x\" is not an IPv4 address or \"auto\""}.format(
              "/etc/wanbalance.json") ==
          "/etc/wanbalance.json: /wans/1/gateway: \"198.51.100.x\" is not an IPv4 address or \"auto\"");
    CHECK(ConfigError{"", "is a directory"}.format("/etc") == "/etc: is a directory");
}

TEST_CASE("wans[].gateway6: an IPv6 address (global or link-local) or \"auto\"; absent means no IPv6") {
    ConfigResult r = parse(article(R"(, "gateway6": "fe80::1")", R"(, "gateway6": "auto")"));
    REQUIRE(r.errors == Errors{});
    CHECK(r.config->wans[0].ipv6);
    CHECK(r.config->wans[0].gateway6 == wb::Ipv6::parse("fe80::1"));
    CHECK(r.config->wans[1].ipv6);
    CHECK(r.config->wans[1].gateway6 == std::nullopt);  // "auto"
    CHECK(r.config->any_ipv6());
    ConfigResult v4 = parse(article());
    CHECK_FALSE(v4.config->wans[0].ipv6);
    CHECK_FALSE(v4.config->any_ipv6());
    check_valid(article(R"(, "gateway6": "2001:db8:1::1")"));
    for (nlohmann::json bad : {nlohmann::json("203.0.113.1"), nlohmann::json("2001:db8::g"), nlohmann::json("fe80::1%ether1"),
                               nlohmann::json("2001:db8::/64"), nlohmann::json("AUTO"), nlohmann::json(""),
                               nlohmann::json(6), nlohmann::json(nullptr)}) {
        check_error(with_wan0("gateway6", bad), "/wans/0/gateway6", js(bad) + " is not an IPv6 address or \"auto\"");
    }
    const std::string rule = ": an IPv6 gateway must be a unicast address on the WAN's link (global or fe80::)";
    check_error(with_wan0("gateway6", "::"), "/wans/0/gateway6", "\"::\" is the unspecified address" + rule);
    check_error(with_wan0("gateway6", "::1"), "/wans/0/gateway6", "\"::1\" is the loopback address" + rule);
    check_error(with_wan0("gateway6", "ff02::2"), "/wans/0/gateway6", "\"ff02::2\" is a multicast address" + rule);
}

TEST_CASE("probe targets of both families are split; IPv6 ones probe the WANs with gateway6") {
    ConfigResult r = parse(article(R"(, "gateway6": "fe80::1")", "",
                                   R"(, "probe": {"targets": ["192.0.2.53", "2001:db8:ff::53", "2001:db8:ff::54"]})"));
    REQUIRE(r.errors == Errors{});
    CHECK(r.warnings == Errors{});
    const wb::ProbeConfig& p = r.config->wans[0].probe;
    CHECK(p.targets == std::vector{icmp("192.0.2.53")});
    CHECK(p.targets6 == std::vector{icmp("2001:db8:ff::53"), icmp("2001:db8:ff::54")});
    check_error(article("", "", R"(, "probe": {"targets": ["2001:db8:ff::53", "2001:db8:ff:0::53"]})"),
                "/probe/targets/1", "\"2001:db8:ff:0::53\" is already listed at /probe/targets/0");
    check_error(article("", "", R"(, "probe": {"targets": ["ff02::1"]})"), "/probe/targets/0",
                "\"ff02::1\" is a multicast address: a probe target must be a unicast address reached through the WAN");
    // Listed for no WAN that carries IPv6: loads, with a warning where they are listed.
    ConfigResult unused = parse(article("", "", R"(, "probe": {"targets": ["2001:db8:ff::53"]})"));
    REQUIRE(unused.errors == Errors{});
    CHECK(unused.warnings == Errors{{"/probe/targets", "the IPv6 targets are not probed: no WAN has \"gateway6\""}});
    ConfigResult own = parse(article(R"(, "probe": {"targets": ["2001:db8:ff::53"]})", R"(, "gateway6": "auto")"));
    REQUIRE(own.errors == Errors{});
    CHECK(own.warnings ==
          Errors{{"/wans/0/probe/targets", "the IPv6 targets are not probed: charter has no \"gateway6\""}});
}

TEST_CASE("min_targets_up is checked per family: IPv6 rounds count only IPv6 targets") {
    // Two IPv4 targets, and IPv6 probes the gateway alone: 2 can never be met for IPv6.
    check_error(article(R"(, "gateway6": "auto")", "",
                        R"(, "probe": {"min_targets_up": 2, "targets": ["192.0.2.1", "192.0.2.2"]})"),
                "/probe/min_targets_up",
                "2 is more than the number of IPv6 probe targets (1: the IPv6 gateway, as targets holds no IPv6 address)");
    check_valid(article(R"(, "gateway6": "auto")", "",
                        R"(, "probe": {"min_targets_up": 2, "targets": ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"]})"));
    // Without gateway6 the IPv6 count does not matter.
    check_valid(article("", "", R"(, "probe": {"min_targets_up": 2, "targets": ["192.0.2.1", "192.0.2.2"]})"));
    check_error(article(R"(, "gateway6": "auto", "probe": {"min_targets_up": 2, "targets": ["192.0.2.1", "192.0.2.2"]})"),
                "/wans/0/probe/min_targets_up",
                "2 is more than the number of IPv6 probe targets (1: the IPv6 gateway, as targets holds no IPv6 address)");
}

TEST_CASE("wans[].snat, snat6 and ha_pair: the addresses an HA pair shares, unicast, IPv6 only with gateway6") {
    ConfigResult r = parse(article(R"(, "snat": "203.0.113.10", "gateway6": "fe80::1", "snat6": "2001:db8:1::10")",
                                   R"(, "snat": "198.51.100.10")", R"(, "ha_pair": true)"));
    REQUIRE(r.config);
    CHECK(r.config->ha_pair);
    CHECK(r.config->wans[0].snat == ip("203.0.113.10"));
    CHECK(r.config->wans[0].snat6 == wb::Ipv6::parse("2001:db8:1::10"));
    CHECK(r.config->wans[1].snat == ip("198.51.100.10"));
    CHECK(r.config->wans[1].snat6 == std::nullopt);
    r = parse(article());
    REQUIRE(r.config);
    CHECK_FALSE(r.config->ha_pair);
    CHECK(r.config->wans[0].snat == std::nullopt);

    check_error(with_wan0("snat", "auto"), "/wans/0/snat", "\"auto\" is not an IPv4 address");
    check_error(with_wan0("snat", 5), "/wans/0/snat", "5 is not an IPv4 address");
    check_error(with_wan0("snat", "127.0.0.1"), "/wans/0/snat",
                "\"127.0.0.1\" is a loopback address: \"snat\" must be a unicast address");
    check_error(article(R"(, "gateway6": "auto", "snat6": "fe80::10")"), "/wans/0/snat6",
                "\"fe80::10\" is a link-local address: \"snat6\" must be a global unicast address");
    check_error(article(R"(, "gateway6": "auto", "snat6": "ff02::12")"), "/wans/0/snat6",
                "\"ff02::12\" is a multicast address: \"snat6\" must be a global unicast address");
    check_error(article(R"(, "gateway6": "auto", "snat6": "192.0.2.1")"), "/wans/0/snat6",
                "\"192.0.2.1\" is not an IPv6 address");
    check_error(article(R"(, "snat6": "2001:db8:1::10")"), "/wans/0/snat6",
                "\"snat6\" needs \"gateway6\": without it the WAN carries no IPv6");
    check_error(article("", "", R"(, "ha_pair": 1)"), "/ha_pair", "expected true or false, got 1");
    check_error(article("", "", R"(, "ha_pairs": true)"), "/ha_pairs", "unknown key \"ha_pairs\" (did you mean \"ha_pair\"?)");
}

TEST_CASE("ha_pair: every WAN needs snat, and snat6 when it has gateway6") {
    const std::string why = " (with \"ha_pair\": true, LAN connections leave with the address the two routers share)";
    check_error(article(R"(, "snat": "203.0.113.10")", "", R"(, "ha_pair": true)"), "/wans/1",
                "missing required key \"snat\"" + why);
    check_error(article(R"(, "snat": "203.0.113.10", "gateway6": "auto")", R"(, "snat": "198.51.100.10")",
                        R"(, "ha_pair": true)"),
                "/wans/0", "missing required key \"snat6\" (it has \"gateway6\")" + why);
    check_valid(article(R"(, "snat": "203.0.113.10")", "", R"(, "ha_pair": false)"));
}
