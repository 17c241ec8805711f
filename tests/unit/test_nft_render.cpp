#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "rules/desired.hpp"
#include "rules/nft.hpp"
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
