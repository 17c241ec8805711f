// The reply counters (docs/design.md, Reply counters): the chains and the map build_desired
// makes for them, their text, a diff that never rewrites them for an unrelated change (which
// would start them again at 0), and the fake kernel's reading of them.
#include <doctest/doctest.h>

#include <algorithm>

#include "netlink/kernel_sync.hpp"
#include "rules/desired.hpp"
#include "rules/nft_diff.hpp"
#include "tests/unit/fake_kernel.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb;
using wb::test::FakeKernel;
using wb::test::healthy;

namespace {

// The text of one chain, as render() prints it inside the table.
std::string chain_text(const nft::Table& table, const std::string& name) {
    std::string text = nft::render(table);
    size_t at = text.find("\tchain " + name + " {\n");
    REQUIRE(at != std::string::npos);
    return text.substr(at, text.find("\t}\n", at) + 3 - at);
}

// The chains an op writes rules into (or adds, or deletes); "*" for the whole table.
std::vector<std::string> chains_written(const nft::Plan& plan) {
    std::vector<std::string> out;
    for (const auto& op : plan.ops) {
        if (std::holds_alternative<nft::OpReplaceTable>(op)) out.push_back("*");
        if (const auto* a = std::get_if<nft::OpAddChain>(&op)) out.push_back(a->chain.name);
        if (const auto* d = std::get_if<nft::OpDeleteChain>(&op)) out.push_back(d->name);
        if (const auto* r = std::get_if<nft::OpReplaceRules>(&op)) out.push_back(r->chain);
    }
    return out;
}

bool writes_replies(const nft::Plan& plan) {
    auto chains = chains_written(plan);
    return std::any_of(chains.begin(), chains.end(),
                       [](const std::string& c) { return c == "*" || c.starts_with("replies"); });
}

}  // namespace

TEST_CASE("desired: a forward chain sends a WAN's replies to its counters, IPv6 only with gateway6") {
    Config c = test::dual_stack_config();  // charter and integra dual-stack, lte IPv4 only
    nft::Table t = build_desired(c, healthy(c)).table;

    const nft::Chain* replies = t.find_chain("replies");
    REQUIRE(replies);
    CHECK(replies->base == nft::BaseChain{nft::ChainType::Filter, nft::Hook::Forward, -150});
    CHECK(chain_text(t, "replies") ==
          "\tchain replies {\n"
          "\t\ttype filter hook forward priority mangle; policy accept;\n"
          "\t\tct direction reply iifname vmap @reply_wans comment \"replies to LAN connections, counted per WAN\"\n"
          "\t}\n");
    const nft::Set* map = t.find_set("reply_wans");
    REQUIRE(map);
    CHECK(map->verdict_map);
    CHECK(map->key_type == nft::KeyType::Ifname);
    CHECK(map->elements == std::vector<nft::Element>{{std::string("ether1"), "replies_charter"},
                                                     {std::string("ether2"), "replies_integra"},
                                                     {std::string("wwan0"), "replies_lte"}});
    // nft sorts ifnames by length first.
    CHECK(nft::render(t).find("\tmap reply_wans {\n\t\ttype ifname : verdict\n\t\telements = { \"wwan0\" : goto "
                              "replies_lte,\n\t\t\t     \"ether1\" : goto replies_charter,\n\t\t\t     \"ether2\" : "
                              "goto replies_integra }\n\t}\n") != std::string::npos);

    CHECK(chain_text(t, "replies_charter") ==
          "\tchain replies_charter {\n"
          "\t\tmeta nfproto ipv4 counter packets 0 bytes 0 comment \"ipv4\"\n"
          "\t\tmeta nfproto ipv6 counter packets 0 bytes 0 comment \"ipv6\"\n"
          "\t}\n");
    CHECK(chain_text(t, "replies_lte") ==
          "\tchain replies_lte {\n"
          "\t\tmeta nfproto ipv4 counter packets 0 bytes 0 comment \"ipv4\"\n"
          "\t}\n");
    CHECK(reply_chain_name(c.wans[2]) == "replies_lte");

    // Regular chains come before the base chains (a map's goto needs its chain first).
    auto position = [&](const std::string& name) {
        return std::find_if(t.chains.begin(), t.chains.end(), [&](const nft::Chain& ch) { return ch.name == name; }) -
               t.chains.begin();
    };
    CHECK(position("replies_lte") < position("prerouting"));
    CHECK(position("replies") == long(t.chains.size()) - 1);
}

TEST_CASE("desired: an IPv4-only config counts IPv4 replies only, and its table says nothing of IPv6") {
    Config c = test::article_config();
    nft::Table t = build_desired(c, healthy(c)).table;
    for (const char* name : {"replies_charter", "replies_integra"}) {
        REQUIRE(t.find_chain(name));
        REQUIRE(t.find_chain(name)->rules.size() == 1);
        CHECK(t.find_chain(name)->rules[0] ==
              nft::Rule{{nft::NfprotoIpv4{}, nft::Counter{}}, reply_counter_comment(Family::V4)});
    }
    CHECK(nft::render(t).find("ipv6") == std::string::npos);
}

TEST_CASE("diff: health changes, a new rule or classifier, a new WAN never rewrite the counters of the others") {
    Config c = test::dual_stack_config();
    auto in = healthy(c);
    nft::Table before = build_desired(c, in).table;
    CHECK(diff(before, before).empty());

    SUBCASE("a WAN goes down, in both families") {
        in[1].health = in[1].health6 = Health::Down;
        nft::Plan plan = diff(before, build_desired(c, in).table);
        CHECK_FALSE(plan.empty());
        CHECK_FALSE(writes_replies(plan));
    }
    SUBCASE("another classifier, a policy rule") {
        c.classifier = Classifier::SrcAddress;
        c.rules.push_back(RuleConfig{"dns", {}, {}, uint8_t(17), {}, {{53, 53}}, {}, RuleTarget::Balanced, 0, Sticky::None, 600});
        nft::Plan plan = diff(before, build_desired(c, in).table);
        CHECK_FALSE(plan.empty());
        CHECK_FALSE(writes_replies(plan));
    }
    SUBCASE("a fourth WAN: its chain and element added, the others' left alone") {
        WanConfig sat = c.wans[2];
        sat.name = "sat";
        sat.interface = "sat0";
        sat.table = 104;
        sat.mark = 0x400;
        c.wans.push_back(sat);
        in = healthy(c);
        nft::Plan plan = diff(before, build_desired(c, in).table);
        auto chains = chains_written(plan);
        CHECK(std::count(chains.begin(), chains.end(), "replies_sat") == 2);  // added empty, then filled
        CHECK(std::none_of(chains.begin(), chains.end(), [](const std::string& ch) {
            return ch == "*" || ch == "replies" || ch == "replies_charter" || ch == "replies_lte";
        }));
    }
    SUBCASE("gateway6 for a WAN: only its own chain gets the IPv6 counter") {
        c.wans[2].ipv6 = true;
        c.wans[2].gateway6 = Ipv6::parse("fe80::3");
        in = healthy(c);
        nft::Plan plan = diff(before, build_desired(c, in).table);
        auto chains = chains_written(plan);
        CHECK(std::count(chains.begin(), chains.end(), "replies_lte") == 1);
        CHECK(std::none_of(chains.begin(), chains.end(), [](const std::string& ch) {
            return ch == "*" || ch == "replies" || ch == "replies_charter" || ch == "replies_integra";
        }));
    }
}

TEST_CASE("fake kernel: counters of the chains it holds, what a test set, 0 again once rewritten") {
    FakeKernel kernel;
    KernelSync sync(kernel);
    Config c = test::dual_stack_config();
    auto in = healthy(c);
    CHECK(kernel.read_reply_counters()->empty());  // no table yet
    REQUIRE(sync.apply(build_desired(c, in)).ok());

    kernel.set_reply_count("charter", Family::V6, 7);
    kernel.set_reply_count("integra", Family::V4, 40);
    auto counts = kernel.read_reply_counters();
    REQUIRE(counts);
    CHECK(*counts == std::vector<ReplyCount>{{"charter", Family::V4, 0},
                                             {"charter", Family::V6, 7},
                                             {"integra", Family::V4, 40},
                                             {"integra", Family::V6, 0},
                                             {"lte", Family::V4, 0}});
    CHECK(kernel.calls(FakeKernel::Op::ReadReplyCounters) == 2);

    // A reload that leaves the chains alone keeps the counts.
    in[0].health = Health::Down;
    REQUIRE(sync.apply(build_desired(c, in)).ok());
    CHECK(kernel.read_reply_counters()->at(2).packets == 40);

    // integra without IPv6: its chain is rewritten and starts at 0; charter keeps counting.
    c.wans[1].ipv6 = false;
    c.wans[1].gateway6.reset();
    REQUIRE(sync.apply(build_desired(c, healthy(c))).ok());
    CHECK(*kernel.read_reply_counters() == std::vector<ReplyCount>{{"charter", Family::V4, 0},
                                                                  {"charter", Family::V6, 7},
                                                                  {"integra", Family::V4, 0},
                                                                  {"lte", Family::V4, 0}});

    kernel.fail_next(FakeKernel::Op::ReadReplyCounters, ENOBUFS);
    auto failed = kernel.read_reply_counters();
    REQUIRE_FALSE(failed);
    CHECK(failed.error().err == ENOBUFS);
}
