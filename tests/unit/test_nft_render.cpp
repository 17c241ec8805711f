#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "rules/desired.hpp"
#include "rules/nft.hpp"
#include "tests/unit/nft_keys.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb::nft;
using wb::build_desired;
using NftRule = wb::nft::Rule;

namespace {
std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
}  // namespace

TEST_CASE("the article's table renders exactly as nft lists it (golden, checked against nft 1.0.6)") {
    auto c = wb::test::article_config();
    auto d = build_desired(c, wb::test::healthy(c));
    std::string golden = read_file(std::string(WB_SOURCE_DIR) + "/tests/unit/golden/article-table.nft");
    REQUIRE_FALSE(golden.empty());
    CHECK(render(d.table) == golden);
}

TEST_CASE("set-mark statements print the way nft folds (x & m) ^ v") {
    CHECK(render(NftRule{{SetMarkBits{MarkKind::Ct, 0x3f00, 0x100}}, ""}) ==
          "ct mark set ct mark & 0xffffc1ff | 0x00000100");
    // All bits of the mask set: the & disappears.
    CHECK(render(NftRule{{SetMarkBits{MarkKind::Meta, 0x3f00, 0x3f00}}, ""}) == "meta mark set meta mark | 0x00003f00");
}

TEST_CASE("elements are sorted like nft: ifnames by length then from the end, numbers numerically") {
    Set s{"lans", KeyType::Ifname, 0, false, {}};
    for (const char* n : {"ether3", "x", "lan0", "eth5", "br0", "a-very-long-nam"}) s.elements.push_back({n, ""});
    Table t;
    t.sets = {s};
    std::string text = render(t);
    CHECK(text.find("elements = { \"x\",\n\t\t\t     \"br0\",\n\t\t\t     \"lan0\",\n\t\t\t     \"eth5\",\n"
                    "\t\t\t     \"ether3\",\n\t\t\t     \"a-very-long-nam\" }") != std::string::npos);
    Set m{"by_mark", KeyType::Mark, 0, true, {}};
    for (uint32_t v : {0x700u, 0x100u, 0x300u, 0x200u, 0x600u, 0x500u, 0x400u})
        m.elements.push_back({v, "wan_a"});
    t.sets = {m};
    text = render(t);
    CHECK(text.find("elements = { 0x00000100 : goto wan_a, 0x00000200 : goto wan_a, 0x00000300 : goto wan_a, "
                    "0x00000400 : goto wan_a, 0x00000500 : goto wan_a,\n\t\t\t     0x00000600 : goto wan_a, "
                    "0x00000700 : goto wan_a }") != std::string::npos);
}

TEST_CASE("an empty set has no elements line; chains print hook and priority names") {
    Table t;
    t.sets = {Set{"balance", KeyType::HashBucket, 1021, true, {}}};
    t.chains = {Chain{"p", BaseChain{ChainType::Filter, Hook::Prerouting, -140}, {}},
                Chain{"q", BaseChain{ChainType::Nat, Hook::Postrouting, 100}, {}},
                Chain{"r", BaseChain{ChainType::Route, Hook::Output, -150}, {}}};
    CHECK(render(t) ==
          "table inet wanbalance {\n"
          "\tmap balance {\n\t\ttypeof numgen inc mod 1021 : verdict\n\t}\n\n"
          "\tchain p {\n\t\ttype filter hook prerouting priority mangle + 10; policy accept;\n\t}\n\n"
          "\tchain q {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n\n"
          "\tchain r {\n\t\ttype route hook output priority mangle; policy accept;\n\t}\n"
          "}\n");
}

TEST_CASE("an implied ipv4 check is hidden only when an address field implies it") {
    NftRule with_addr{{CtStateNew{}, NfprotoIpv4{}, HashVmap{{HashField::SrcAddr}, 1021, 0x5eed, "balance"}}, ""};
    CHECK(render(with_addr) == "ct state new jhash ip saddr mod 1021 seed 0x5eed vmap @balance");
    NftRule ports{{NfprotoIpv4{}, HashVmap{{HashField::SrcPort, HashField::DstPort}, 1021, 1, "balance"}}, "c"};
    CHECK(render(ports) == "meta nfproto ipv4 jhash th sport . th dport mod 1021 seed 0x1 vmap @balance comment \"c\"");
}

TEST_CASE("ip6 statements print as nft lists them; an implied ipv6 check is hidden like ipv4's") {
    auto fe80 = *wb::Ipv6::parse("fe80::");
    CHECK(render(NftRule{{Ip6InPrefix{true, fe80, 10}, Return{}}, ""}) == "ip6 saddr fe80::/10 return");
    CHECK(render(NftRule{{Ip6InPrefix{false, *wb::Ipv6::parse("ff00::"), 8}, Return{}}, "m"}) ==
          "ip6 daddr ff00::/8 return comment \"m\"");
    NftRule addr{{CtStateNew{}, NfprotoIpv6{}, HashVmap{{HashField::SrcAddr, HashField::DstPort}, 1021, 1, "balance6",
                                                         wb::Family::V6}},
                 ""};
    CHECK(render(addr) == "ct state new jhash ip6 saddr . th dport mod 1021 seed 0x1 vmap @balance6");
    NftRule ports{{NfprotoIpv6{}, HashVmap{{HashField::SrcPort}, 1021, 1, "balance6", wb::Family::V6}}, ""};
    CHECK(render(ports) == "meta nfproto ipv6 jhash th sport mod 1021 seed 0x1 vmap @balance6");
    // An ip6 match does not hide an ipv4 check (nor the other way round).
    NftRule v4{{NfprotoIpv4{}, HashVmap{{HashField::SrcAddr}, 1021, 1, "balance", wb::Family::V4}}, ""};
    CHECK(render(v4) == "jhash ip saddr mod 1021 seed 0x1 vmap @balance");
    NftRule masq{{NfprotoIpv6{}, OifnameIs{"ether1"}, Masquerade{}}, "charter"};
    CHECK(render(masq) == "meta nfproto ipv6 oifname \"ether1\" masquerade comment \"charter\"");
}

// --- policy rules (every text below was checked against nft 1.0.6: `nft list` of the same kernel objects) ---

TEST_CASE("a table of policy rules renders exactly as nft lists it (golden, the kernel test loads it)") {
    std::string golden = read_file(std::string(WB_SOURCE_DIR) + "/tests/unit/golden/rules-table.nft");
    REQUIRE_FALSE(golden.empty());
    CHECK(render(wb::test::policy_rules_table()) == golden);
}

TEST_CASE("concatenated ranges print as nft aggregates them: a value, a CIDR prefix, else first-last") {
    using namespace wb::test;
    Set s = rule_map("m", {KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService}, {});
    auto key = [&](FieldRanges r) { return render_key(s, Key{r}); };
    CHECK(key({addr("3.3.3.3"), proto(6, 17), port(3)}) == "3.3.3.3 . 6-17 . 3");
    CHECK(key({addr("1.1.1.0/24"), proto(47), port(1)}) == "1.1.1.0/24 . gre . 1");
    CHECK(key({addr("2.2.2.2-2.2.2.9"), proto(0), port(2, 5)}) == "2.2.2.2-2.2.2.9 . ip . 2-5");
    CHECK(key({addr("4.4.4.4"), proto(255), port(0)}) == "4.4.4.4 . 255 . 0");
    CHECK(key({addr("0.0.0.0/1"), proto(0, 6), port(1024, 65535)}) == "0.0.0.0/1 . 0-6 . 1024-65535");
    CHECK(key({addr("128.0.0.0-255.255.255.254"), proto(1), port(1)}) == "128.0.0.0-255.255.255.254 . icmp . 1");
    CHECK(key({addr("0.0.0.0/0"), any_proto(), any_port()}) == "0.0.0.0/0 . 0-255 . 0-65535");
    CHECK(key({addr("10.1.2.3/32"), proto(17), port(53)}) == "10.1.2.3 . udp . 53");
    Set s6 = rule_map("m6", {KeyType::Ifname, KeyType::Ipv6Addr, KeyType::Ipv6Addr}, {});
    CHECK(render_key(s6, Key{FieldRanges{iif("lan1"), addr("2001:db8::1-2001:db8::5"), addr("::/0")}}) ==
          "\"lan1\" . 2001:db8::1-2001:db8::5 . ::/0");
    CHECK(render_key(s6, Key{FieldRanges{iif("eth0"), addr("::/0"), addr("2001:db8::/32")}}) ==
          "\"eth0\" . ::/0 . 2001:db8::/32");
}

TEST_CASE("a rule map lists its elements in the given order (the kernel's), one per line, goto or jump") {
    using namespace wb::test;
    Set m = rule_map("rules4_1", {KeyType::Ipv4Addr, KeyType::InetService},
                     {element({addr("9.9.9.9"), port(9)}, "a"), element({addr("1.1.1.0/24"), port(1)}, "b", true),
                      element({addr("3.3.3.3"), port(3)}, "a")});
    Table t;
    t.sets = {m};
    CHECK(render(t) ==
          "table inet wanbalance {\n"
          "\tmap rules4_1 {\n"
          "\t\ttype ipv4_addr . inet_service : verdict\n"
          "\t\tflags interval\n"
          "\t\telements = { 9.9.9.9 . 9 : goto a,\n"
          "\t\t\t     1.1.1.0/24 . 1 : jump b,\n"
          "\t\t\t     3.3.3.3 . 3 : goto a }\n"
          "\t}\n"
          "}\n");
}

TEST_CASE("a dynamic set prints size, flags and nft's time format, never its elements") {
    using namespace wb::test;
    auto text = [](uint32_t timeout, bool with_dst) {
        Table t;
        t.sets = {sticky_set("s", wb::Family::V4, with_dst, timeout)};
        t.sets[0].elements.push_back(element({addr("1.2.3.4"), addr("5.6.7.8")}, ""));
        return render(t);
    };
    CHECK(text(600, true) ==
          "table inet wanbalance {\n\tset s {\n\t\ttype ipv4_addr . ipv4_addr\n\t\tsize 65535\n"
          "\t\tflags dynamic,timeout\n\t\ttimeout 10m\n\t}\n}\n");
    CHECK(text(90, false).find("\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout 1m30s\n") !=
          std::string::npos);
    CHECK(text(3600, true).find("timeout 1h\n") != std::string::npos);
    CHECK(text(3630, true).find("timeout 1h30s\n") != std::string::npos);
    CHECK(text(86400 + 61, true).find("timeout 1d1m1s\n") != std::string::npos);
}

TEST_CASE("policy rule statements print as nft lists them, the implied meta nfproto hidden") {
    using wb::Family;
    ConcatVmap all{Family::V6,
                   {MatchField::Iifname, MatchField::SrcAddr, MatchField::DstAddr, MatchField::L4proto,
                    MatchField::SrcPort, MatchField::DstPort},
                   "rules6_1"};
    CHECK(render(NftRule{{NfprotoIpv6{}, all}, ""}) ==
          "iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport vmap @rules6_1");
    CHECK(render(NftRule{{AddrInSet{Family::V4, true, "s"}, UpdateSet{Family::V4, true, "s"}, Goto{"wan_a"}}, ""}) ==
          "ip saddr . ip daddr @s update @s { ip saddr . ip daddr } goto wan_a");
    CHECK(render(NftRule{{NfprotoIpv6{}, AddrInSet{Family::V6, false, "s6"}, Goto{"wan_a"}}, ""}) ==
          "ip6 saddr @s6 goto wan_a");
    CHECK(render(NftRule{{MarkIs{MarkKind::Ct, 0x3f00, 0x100}, UpdateSet{Family::V4, false, "s"}}, ""}) ==
          "ct mark & 0x00003f00 == 0x00000100 update @s { ip saddr }");
    CHECK(render(NftRule{{MarkIs{MarkKind::Meta, 0x3f00, 0}}, ""}) == "meta mark & 0x00003f00 == 0x00000000");
    CHECK(render(NftRule{{MarkIs{MarkKind::Ct, 0xffffffff, 0x100}}, ""}) == "ct mark 0x00000100");
    // Without an address field nothing implies the family.
    CHECK(render(NftRule{{NfprotoIpv4{}, ConcatVmap{Family::V4, {MatchField::L4proto, MatchField::DstPort}, "m"}},
                         ""}) == "meta nfproto ipv4 meta l4proto . th dport vmap @m");
}
