// Marks that other software uses (issue 10): a WAN whose value equals another program's mark
// under mark_mask would route that program's traffic and flush it on failover. Explicit marks
// may not collide; allocation hands out the colliding values last, with a warning.
#include <fstream>
#include <set>
#include <sstream>

#include "base/format.hpp"
#include "config/validate.hpp"
#include "tests/unit/config_fixtures.hpp"

using namespace config_test;
using wb::config_detail::known_mark_matching;
using wb::config_detail::known_marks;

namespace {

// `count` WANs w0, w1, ... on e0, e1, ..., with `extra` spliced into the top level.
std::string n_wans(int count, const std::string& extra = "") {
    std::string wans;
    for (int i = 0; i < count; ++i) {
        if (i) wans += ",";
        wans += R"({"name": "w)" + std::to_string(i) + R"(", "interface": "e)" + std::to_string(i) +
                R"(", "gateway": "auto"})";
    }
    return R"({"wans": [)" + wans + R"(], "lans": ["lan"])" + extra + "}";
}

std::vector<uint32_t> marks_of(const ConfigResult& r) {
    std::vector<uint32_t> out;
    if (r.config)
        for (const auto& wan : r.config->wans) out.push_back(wan.mark);
    return out;
}

const std::string kWireGuard = "the mark WireGuard (wg-quick, 0xca6c) puts on its packets";
const std::string kMullvadBypass = "the mark Mullvad (tunnel bypass, 0x6d6f6c65) puts on its packets";
const std::string kMullvadSplit = "the mark Mullvad (split tunnelling, 0xf41) puts on its connections";

}  // namespace

TEST_CASE("the table of marks other software uses") {
    std::set<uint32_t> marks;
    for (const auto& known : known_marks()) {
        CAPTURE(wb::hex(known.mark));
        CHECK(!known.software.empty());
        CHECK(!known.use.empty());
        CHECK((known.marked == "packets" || known.marked == "connections"));
        CHECK(marks.insert(known.mark).second);
    }
    // WireGuard (wg-quick), Tailscale's subnet-route and bypass marks, kube-proxy's masquerade and
    // drop marks, Mullvad's bypass mark and its split-tunnelling conntrack mark.
    CHECK(marks == std::set<uint32_t>{0xca6c, 0x40000, 0x80000, 0x4000, 0x8000, 0x6d6f6c65, 0xf41});

    // Under the default mask: WireGuard is the 10th WAN's value, Mullvad's the 15th and 44th;
    // Tailscale's and kube-proxy's marks have no bit inside it.
    CHECK(known_mark_matching(0xa00, 0x3f00)->software == "WireGuard");
    CHECK(known_mark_matching(0xf00, 0x3f00)->use == "split tunnelling");
    CHECK(known_mark_matching(0x2c00, 0x3f00)->use == "tunnel bypass");
    std::set<uint32_t> colliding;
    for (uint32_t k = 1; k <= 63; ++k) {
        uint32_t value = wb::config_detail::deposit_bits(k, 0x3f00);
        if (known_mark_matching(value, 0x3f00)) colliding.insert(value);
    }
    CHECK(colliding == std::set<uint32_t>{0xa00, 0xf00, 0x2c00});
    CHECK(known_mark_matching(0x40000, 0xff0000)->software == "Tailscale");
    CHECK(known_mark_matching(0x80000, 0xff0000)->use == "bypass");
    CHECK(known_mark_matching(0x4000, 0xff00)->use == "masquerade");
    CHECK(known_mark_matching(0x8000, 0xff00)->use == "drop");
    CHECK(known_mark_matching(0, 0x3f00) == nullptr);  // 0 is unmarked, never a WAN's value
    CHECK(known_mark_matching(0x100, 0x3f00) == nullptr);
}

TEST_CASE("an explicit mark that another program uses under mark_mask is an error") {
    const std::string under_default = " under mark_mask \"0x3f00\"; choose another";
    check_error(with_wan0("mark", "0xa00"), "/wans/0/mark", "\"0xa00\" is " + kWireGuard + under_default);
    check_error(with_wan0("mark", 0xa00), "/wans/0/mark", "2560 is " + kWireGuard + under_default);
    check_error(article("", R"(, "mark": "0x0a00")"), "/wans/1/mark", "\"0x0a00\" is " + kWireGuard + under_default);
    check_error(with_wan0("mark", "0xf00"), "/wans/0/mark", "\"0xf00\" is " + kMullvadSplit + under_default);
    check_error(with_wan0("mark", "0x2c00"), "/wans/0/mark", "\"0x2c00\" is " + kMullvadBypass + under_default);

    // The mask decides: each of these is fine under the default mask and collides under another.
    struct Case {
        const char* mark;
        const char* mask;
        std::string what;
    };
    const Case cases[] = {
        {"0xca00", "0xff00", kWireGuard},
        {"0xca6c", "0xffff", kWireGuard},
        {"0xc00", "0xf00", kMullvadBypass},
        {"0x141", "0x1ff", kMullvadSplit},
        {"0x4000", "0xff00", "the mark kube-proxy (masquerade, 0x4000) puts on its packets"},
        {"0x8000", "0xff00", "the mark kube-proxy (drop, 0x8000) puts on its packets"},
        {"0x40000", "0xff0000", "the mark Tailscale (subnet routes, 0x40000) puts on its packets"},
        {"0x80000", "0xff0000", "the mark Tailscale (bypass, 0x80000) puts on its packets"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.mark);
        std::string mask = R"(, "mark_mask": ")" + std::string(c.mask) + "\"";
        check_error(article(R"(, "mark": ")" + std::string(c.mark) + "\"", "", mask), "/wans/0/mark",
                    js(c.mark) + " is " + c.what + " under mark_mask " + js(c.mask) + "; choose another");
    }
    check_valid(with_wan0("mark", "0xc00"));
    check_valid(with_wan0("mark", "0xb00"));
    check_valid(article(R"(, "mark": "0x100")", "", R"(, "mark_mask": "0xffffffff")"));
}

TEST_CASE("allocation skips the marks other programs use while it can") {
    SUBCASE("the 10th WAN does not get WireGuard's 0xa00") {
        ConfigResult r = parse(n_wans(10));
        REQUIRE(r.config);
        CHECK(marks_of(r) == std::vector<uint32_t>{0x100, 0x200, 0x300, 0x400, 0x500, 0x600, 0x700, 0x800, 0x900, 0xb00});
        CHECK(r.warnings == Errors{});
        r = parse(n_wans(16));
        REQUIRE(r.config);
        CHECK(r.config->wans[13].mark == 0x1000);  // 0xf00 is Mullvad's split-tunnelling mark
        CHECK(r.config->wans[15].mark == 0x1200);
        CHECK(r.warnings == Errors{});
    }
    SUBCASE("explicit marks are skipped too") {
        ConfigResult r = parse(replace_once(n_wans(10), R"("interface": "e0", )", R"("interface": "e0", "mark": "0xb00", )"));
        REQUIRE(r.config);
        CHECK(marks_of(r) == std::vector<uint32_t>{0xb00, 0x100, 0x200, 0x300, 0x400, 0x500, 0x600, 0x700, 0x800, 0x900});
        r = parse(replace_once(n_wans(11), R"("interface": "e0", )", R"("interface": "e0", "mark": "0xb00", )"));
        REQUIRE(r.config);
        CHECK(r.config->wans[10].mark == 0xc00);
    }
    SUBCASE("under another mask") {
        ConfigResult r = parse(n_wans(8, R"(, "mark_mask": "0xff0000")"));
        REQUIRE(r.config);
        CHECK(marks_of(r) ==
              std::vector<uint32_t>{0x10000, 0x20000, 0x30000, 0x50000, 0x60000, 0x70000, 0x90000, 0xa0000});
        CHECK(r.warnings == Errors{});
    }
    SUBCASE("adding a WAN at the end never renumbers the others") {
        std::vector<uint32_t> before;
        for (int n = 1; n <= 63; ++n) {
            CAPTURE(n);
            std::vector<uint32_t> marks = marks_of(parse(n_wans(n)));
            REQUIRE(marks.size() == size_t(n));
            CHECK(std::equal(before.begin(), before.end(), marks.begin()));
            CHECK(std::set<uint32_t>(marks.begin(), marks.end()).size() == marks.size());
            before = marks;
        }
    }
}

TEST_CASE("63 WANs still load under the default mask; the colliding marks come last, with warnings") {
    ConfigResult r = parse(n_wans(60));
    REQUIRE(r.config);
    CHECK(r.warnings == Errors{});
    for (const auto& wan : r.config->wans) CHECK(known_mark_matching(wan.mark, 0x3f00) == nullptr);

    r = parse(n_wans(63));
    CHECK(r.errors == Errors{});
    REQUIRE(r.config);
    std::vector<uint32_t> marks = marks_of(r);
    std::set<uint32_t> all(marks.begin(), marks.end());
    CHECK(all.size() == 63);
    CHECK(*all.begin() == 0x100);
    CHECK(*all.rbegin() == 0x3f00);
    CHECK(marks[60] == 0xa00);
    CHECK(marks[61] == 0xf00);
    CHECK(marks[62] == 0x2c00);
    const std::string under = " under mark_mask \"0x3f00\": ";
    const std::string tail = " would follow this WAN (no other mark is free)";
    CHECK(r.warnings == Errors{{"/wans/60", "allocated mark 0xa00 is " + kWireGuard + under + "its packets" + tail},
                               {"/wans/61", "allocated mark 0xf00 is " + kMullvadSplit + under + "its connections" + tail},
                               {"/wans/62", "allocated mark 0x2c00 is " + kMullvadBypass + under + "its packets" + tail}});
    CHECK(ConfigError{r.warnings[0]}.format("/etc/wanbalance.json") ==
          "/etc/wanbalance.json: /wans/60: allocated mark 0xa00 is the mark WireGuard (wg-quick, 0xca6c) puts on its "
          "packets under mark_mask \"0x3f00\": its packets would follow this WAN (no other mark is free)");

    // A mask with no clean value at all: the WAN loads, warned about.
    r = parse(R"({"wans": [{"name": "a", "interface": "e1", "gateway": "auto"}], "lans": ["e2"], "mark_mask": "0x1"})");
    REQUIRE(r.config);
    CHECK(r.config->wans[0].mark == 1);
    CHECK(r.warnings ==
          Errors{{"/wans/0", "allocated mark 0x1 is " + kMullvadBypass + " under mark_mask \"0x1\": its packets" + tail}});
}

TEST_CASE("no warnings come with errors or from the usual configs") {
    ConfigResult r = parse(replace_once(n_wans(63), R"("name": "w0")", R"("name": "W0")"));
    CHECK_FALSE(r.config);
    CHECK(r.errors.size() == 1);
    CHECK(r.warnings == Errors{});
    r = parse(article());
    REQUIRE(r.config);
    CHECK(r.warnings == Errors{});
}

TEST_CASE("wanbalance.json(5) lists every mark that is checked") {
    std::ifstream in(std::string(WB_SOURCE_DIR) + "/docs/man/wanbalance.json.5.scd");
    REQUIRE(in);
    std::stringstream page;
    page << in.rdbuf();
    for (const auto& known : known_marks()) {
        CAPTURE(wb::hex(known.mark));
        CHECK(page.str().find(std::string(known.software) + " (" + std::string(known.use) + ", " +
                              wb::hex(known.mark) + ")") != std::string::npos);
    }
}
