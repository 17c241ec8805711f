// The config loader on files: reading limits, the shared corpus of good and bad configs, and
// property-style mutation and fuzzing that must never crash and always name the problem.
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/unit/config_fixtures.hpp"

using namespace config_test;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "test-config-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() { fs::remove_all(path); }
};

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

TEST_CASE("load_config reads files up to 1 MiB") {
    TempDir dir;
    CHECK(wb::load_config((dir.path / "missing.json").string()).errors ==
          Errors{{"", "cannot read: No such file or directory; start from the example the package ships, "
                      "/usr/share/doc/wanbalance/examples/wanbalance.json"}});
    CHECK(wb::load_config(dir.path.string()).errors == Errors{{"", "is a directory"}});

    std::string text = article();
    fs::path exact = dir.path / "exact.json";
    write_file(exact, text + std::string(wb::kMaxConfigBytes - text.size(), ' '));
    ConfigResult r = wb::load_config(exact.string());
    CHECK(r.errors == Errors{});
    REQUIRE(r.config);
    CHECK(r.config->path == exact.string());

    fs::path big = dir.path / "big.json";
    write_file(big, text + std::string(wb::kMaxConfigBytes + 1 - text.size(), ' '));
    CHECK(wb::load_config(big.string()).errors == Errors{{"", "is larger than 1 MiB (1048577 bytes)"}});
    // Not a regular file: its size is unknown until read.
    CHECK(wb::load_config("/dev/zero").errors == Errors{{"", "is larger than 1 MiB"}});
}

TEST_CASE("the corpus: good configs load, bad ones give exactly their .expect line") {
    const fs::path corpus = WB_CONFIG_CORPUS;
    size_t good = 0;
    for (const auto& entry : fs::directory_iterator(corpus / "good")) {
        if (entry.path().extension() != ".json") continue;
        INFO(entry.path().string());
        ConfigResult r = wb::load_config(entry.path().string());
        CHECK(r.errors == Errors{});
        CHECK(r.warnings == Errors{});
        CHECK(r.config);
        ++good;
    }
    CHECK(good >= 4);
    size_t bad = 0;
    for (const auto& entry : fs::directory_iterator(corpus / "bad")) {
        if (entry.path().extension() != ".json") continue;
        INFO(entry.path().string());
        fs::path expect_path = fs::path(entry.path()).replace_extension(".expect");
        REQUIRE(fs::exists(expect_path));
        std::string expect = read_file(expect_path);
        REQUIRE(!expect.empty());
        CHECK(expect.back() == '\n');
        expect.pop_back();
        expect = replace_once(expect, "{FILE}", entry.path().string());
        ConfigResult r = wb::load_config(entry.path().string());
        CHECK_FALSE(r.config);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].format(entry.path().string()) == expect);
        ++bad;
    }
    CHECK(bad >= 20);
}

TEST_CASE("the corpus: configs in warn/ load and give exactly their .expect lines as warnings") {
    const fs::path corpus = fs::path(WB_CONFIG_CORPUS) / "warn";
    size_t warned = 0;
    for (const auto& entry : fs::directory_iterator(corpus)) {
        if (entry.path().extension() != ".json") continue;
        INFO(entry.path().string());
        fs::path expect_path = fs::path(entry.path()).replace_extension(".expect");
        REQUIRE(fs::exists(expect_path));
        std::string file = entry.path().string();
        std::vector<std::string> expected;
        std::istringstream lines(read_file(expect_path));
        for (std::string line; std::getline(lines, line);) expected.push_back(replace_once(line, "{FILE}", file));
        ConfigResult r = wb::load_config(file);
        CHECK(r.errors == Errors{});
        CHECK(r.config);
        std::vector<std::string> got;
        for (const auto& w : r.warnings) got.push_back(w.format(file));
        CHECK(got == expected);
        CHECK(!got.empty());
        ++warned;
    }
    CHECK(warned >= 1);
}

TEST_CASE("the corpus article config mirrors the article") {
    ConfigResult r = wb::load_config((fs::path(WB_CONFIG_CORPUS) / "good" / "article.json").string());
    REQUIRE(r.config);
    const wb::Config& c = *r.config;
    REQUIRE(c.wans.size() == 2);
    CHECK(c.wans[0].name == "charter");
    CHECK(c.wans[0].interface == "ether1");
    CHECK(c.wans[0].gateway == ip("203.0.113.1"));
    CHECK(c.wans[1].name == "integra");
    CHECK(c.wans[1].interface == "ether2");
    CHECK(c.wans[1].gateway == ip("198.51.100.1"));
    CHECK(c.lans == std::vector<std::string>{"ether3"});

    r = wb::load_config((fs::path(WB_CONFIG_CORPUS) / "good" / "tiers.json").string());
    REQUIRE(r.config);
    CHECK(r.config->wans[2].tier == 1);
    CHECK(r.config->wans[2].probe.interval == 2000ms);
    CHECK(r.config->wans[2].probe.targets == std::vector{icmp("192.0.2.53")});
    CHECK(r.config->wans[0].probe.targets == std::vector{icmp("192.0.2.53"), icmp("192.0.2.54")});

    r = wb::load_config((fs::path(WB_CONFIG_CORPUS) / "good" / "weights.json").string());
    REQUIRE(r.config);
    CHECK(r.config->wans[0].weight == 3);
    CHECK(r.config->wans[1].weight == 1);
    CHECK(r.config->wans[0].mark == 0x10000);
}

// ---- Property-style: mutations of a config that uses every key ----

namespace {

constexpr const char* kEveryKey = R"({
  "wans": [
    { "name": "charter", "interface": "ether1", "gateway": "203.0.113.1", "weight": 2, "tier": 0,
      "table": 150, "mark": "0x100",
      "probe": { "targets": ["192.0.2.53", "192.0.2.54"], "interval_ms": 500, "timeout_ms": 800,
                 "down_after": 2, "up_after": 4, "min_targets_up": 1 } },
    { "name": "integra", "interface": "ether2", "gateway": "auto", "weight": 1, "tier": 1,
      "table": 151, "mark": 512 }
  ],
  "lans": ["ether3", "ether4"],
  "balance": { "classifier": "src-address" },
  "probe": { "targets": ["192.0.2.1", {"tcp": "192.0.2.80:443"}, {"dns": "192.0.2.53", "name": "example.com"}],
             "interval_ms": 300, "timeout_ms": 600, "down_after": 3, "up_after": 5,
             "min_targets_up": 1 },
  "masquerade": false, "flush_conntrack": true, "mark_mask": "0xff00", "rule_priority": 100,
  "hooks_dir": "/etc/wanbalance/hooks.d"
})";

using OJson = nlohmann::ordered_json;

void collect_pointers(const OJson& v, const OJson::json_pointer& at, std::vector<OJson::json_pointer>& out) {
    if (!at.empty()) out.push_back(at);
    if (v.is_object()) {
        for (const auto& item : v.items()) collect_pointers(item.value(), at / item.key(), out);
    } else if (v.is_array()) {
        for (size_t i = 0; i < v.size(); ++i) collect_pointers(v[i], at / i, out);
    }
}

int kind_of(const OJson& v) {  // integers and floats are different kinds to the schema
    if (v.is_number_integer()) return 100;
    return int(v.type());
}

// A key of a probe target object ("/probe/targets/1/tcp").
bool is_target_key(const OJson::json_pointer& p) {
    return p.parent_pointer().parent_pointer().to_string() == "/probe/targets";
}

bool is_required(const OJson::json_pointer& p) {
    std::string s = p.to_string();
    if (s == "/wans" || s == "/lans" || is_target_key(p)) return true;
    std::string key = p.back();
    return p.parent_pointer().parent_pointer().to_string() == "/wans" &&
           (key == "name" || key == "interface" || key == "gateway");
}

// Every message is one line a terminal prints as is.
void check_printable(const ConfigResult& r) {
    for (const auto& e : r.errors) {
        INFO(e.path, ": ", e.message);
        std::string line = e.path + e.message;
        CHECK(!e.message.empty());
        CHECK(std::none_of(line.begin(), line.end(),
                           [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }));
    }
}

}  // namespace

TEST_CASE("mutations: deleting a key or giving it the wrong type never crashes and is reported") {
    const OJson base = OJson::parse(kEveryKey);
    REQUIRE(parse(base.dump()).config);
    std::vector<OJson::json_pointer> pointers;
    collect_pointers(base, OJson::json_pointer(), pointers);
    CHECK(pointers.size() > 40);
    const std::vector<OJson> wrong = {nullptr, true, -1, 2.5, "", OJson::array(), OJson::object()};

    for (const auto& p : pointers) {
        std::string path = p.to_string();
        INFO(path);
        // Delete it: a required key is missing at its parent; anything else leaves a valid config,
        // except emptying the one-element arrays that must not be empty.
        OJson deleted = base;
        OJson& parent = deleted[p.parent_pointer()];
        if (parent.is_object()) {
            parent.erase(p.back());
        } else {
            parent.erase(std::stoul(p.back()));
        }
        ConfigResult r = parse(deleted.dump());
        check_printable(r);
        if (is_target_key(p)) {  // a target without its kind or its name
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0].path == p.parent_pointer().to_string());
            CHECK(r.errors[0].message.starts_with("missing required key "));
        } else if (is_required(p)) {
            CHECK(r.errors == Errors{{p.parent_pointer().to_string(), "missing required key \"" + p.back() + "\""}});
        } else {
            CHECK(r.errors == Errors{});
        }
        // Replace it with each value of another kind: an error names exactly this path.
        for (const OJson& value : wrong) {
            if (kind_of(value) == kind_of(base[p])) continue;
            OJson mutated = base;
            mutated[p] = value;
            INFO(value.dump());
            ConfigResult m = parse(mutated.dump());
            check_printable(m);
            CHECK_FALSE(m.config);
            bool named =
                std::any_of(m.errors.begin(), m.errors.end(), [&](const ConfigError& e) { return e.path == path; });
            CHECK(named);
        }
    }
}

TEST_CASE("fuzz: truncated and corrupted files give errors, never crashes") {
    const std::string text = read_file(fs::path(WB_CONFIG_CORPUS) / "good" / "article.json");
    const size_t last_brace = text.rfind('}');
    for (size_t n = 0; n <= last_brace; ++n) {
        ConfigResult r = parse(text.substr(0, n));
        INFO(n);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].path.empty());
        CHECK(r.errors[0].message.rfind("line ", 0) == 0);
        check_printable(r);
    }
    std::mt19937 rng(20260101);
    const std::string alphabet = "{}[]:,\"\\/*0123456789.-+eE tfnaul\n\r\t\x01\x7f\xff\xc3";
    for (int round = 0; round < 3000; ++round) {
        std::string mutated = std::string(kEveryKey);
        int edits = 1 + int(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            size_t at = rng() % mutated.size();
            char c = alphabet[rng() % alphabet.size()];
            switch (rng() % 3) {
            case 0:
                mutated[at] = c;
                break;
            case 1:
                mutated.erase(at, 1);
                break;
            default:
                mutated.insert(at, 1, c);
                break;
            }
        }
        INFO(mutated);
        ConfigResult r = parse(mutated);
        CHECK(r.config.has_value() == r.errors.empty());
        check_printable(r);
    }
}

TEST_CASE("deep nesting is bounded") {
    std::string deep = R"({"wans": )" + std::string(200000, '[') + std::string(200000, ']') + R"(, "lans": ["e"]})";
    ConfigResult r = parse(deep);
    CHECK(r.errors == Errors{{"/wans/0", "expected an object, got an array"}});
}

TEST_CASE("a huge object is checked in linear time") {
    // ordered_json finds keys by linear search; inserting 60k keys one by one took ~40 s.
    std::string wide = "{";
    for (int i = 0; i < 60000; ++i) wide += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":1";
    wide += ",\"k7\":2}";
    auto start = std::chrono::steady_clock::now();
    ConfigResult r = parse(wide);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < 20s);
    REQUIRE(r.errors.size() == 60000 + 3);  // unknown keys, the duplicate, two missing keys
    CHECK(r.errors[60000] == ConfigError{"", "duplicate key \"k7\""});
}
