// The nftables constructs of policy rules against the real kernel: concatenated interval maps,
// "jump" verdicts, dynamic sticky sets with their update rules, ct mark matches and gotos read
// back exactly as render() prints them and as nft itself encodes the same text; and diffs that
// add, replace, remove and flush sets, checked against the kernel after each one; and the
// whole table build_desired makes for rules that use iif with both ports (split by LAN).
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "config/config.hpp"
#include "netlink/nft_apply.hpp"
#include "rules/desired.hpp"
#include "rules/nft.hpp"
#include "rules/nft_diff.hpp"
#include "tests/kernel/netns.hpp"
#include "tests/kernel/nft_harness.hpp"
#include "tests/unit/fake_kernel.hpp"
#include "tests/unit/nft_keys.hpp"

using namespace wb::nft;
using namespace wb::test;

namespace {

// Loads render()'s text with nft itself under another name and compares the kernel's objects.
void check_same_as_nft(const Table& table) {
    std::string text = render(table);
    text.replace(0, text.find('{'), "table inet wbref ");
    load_nft(text);
    CHECK(kernel_view(kTableName) == kernel_view("wbref"));
    must("nft delete table inet wbref");
}

}  // namespace

TEST_CASE("policy rules: a table reads back exactly as render() prints it and as nft encodes it") {
    enter_fresh_netns();
    auto sock = open_socket();
    Table table = policy_rules_table();
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));
    CHECK(listing() == render(table));
    check_same_as_nft(table);
}

namespace {

// Applies diff(current, desired) to the kernel and to the fake kernel, which lists sets and
// chains in the order they were made as the kernel does: `nft list` must show what the fake
// holds, rendered.
void apply_diff(NftSocket& sock, FakeKernel& fake, const Table& current, const Table& desired) {
    Plan plan = diff(current, desired);
    for (const auto& op : plan.ops) MESSAGE(describe(op));
    const uint32_t gen = generation(sock);
    apply_ok(sock, plan);
    CHECK(generation(sock) == gen + 1);  // one transaction
    REQUIRE(fake.apply(plan).is_ok());
    CHECK(listing() == render(*fake.table()));
}

Set& set_of(Table& t, const std::string& name) {
    for (auto& s : t.sets)
        if (s.name == name) return s;
    FAIL("no set " << name);
    throw 0;
}
Chain& chain_of(Table& t, const std::string& name) {
    for (auto& c : t.chains)
        if (c.name == name) return c;
    FAIL("no chain " << name);
    throw 0;
}

}  // namespace

TEST_CASE("policy rules: diffs add a rule map, re-shape and remove sets, flush a sticky set, one transaction each") {
    enter_fresh_netns();
    auto sock = open_socket();
    FakeKernel fake;
    Table t0 = policy_rules_table(64);
    apply_ok(*sock, plan_of({OpReplaceTable{t0}}));
    REQUIRE(fake.apply(plan_of({OpReplaceTable{t0}})).is_ok());

    SUBCASE("a new layer, then a new key for layer 1, a new sticky timeout, a layer fewer") {
        Table t1 = t0;
        t1.sets.push_back(rule_map("rules4_3", {KeyType::Ipv4Addr, KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService},
                                   {element({addr("0.0.0.0/0"), addr("203.0.113.0/24"), proto(6), any_port()}, "rule_https")}));
        auto& rules4 = chain_of(t1, "rules4").rules;
        rules4.insert(rules4.begin() + 2, rules4[1]);
        std::get<ConcatVmap>(rules4[2].statements[0]).map = "rules4_3";
        apply_diff(*sock, fake, t0, t1);

        Table t2 = t1;
        Set& map = set_of(t2, "rules4_1");
        map.concat.insert(map.concat.begin(), KeyType::Ifname);
        for (auto& e : map.elements) {
            auto& ranges = std::get<FieldRanges>(e.key);
            ranges.insert(ranges.begin(), iif("ether3"));
        }
        auto& lookup = std::get<ConcatVmap>(chain_of(t2, "rules4").rules[0].statements[0]);
        lookup.fields.insert(lookup.fields.begin(), MatchField::Iifname);
        apply_diff(*sock, fake, t1, t2);

        Table t3 = t2;
        set_of(t3, "sticky_bank_charter").timeout_s = 900;
        apply_diff(*sock, fake, t2, t3);
        CHECK(listing().find("\t\ttimeout 15m\n") != std::string::npos);

        Table t4 = t3;
        std::erase_if(t4.sets, [](const Set& s) { return s.name == "rules4_2"; });
        auto& rules = chain_of(t4, "rules4").rules;
        rules.erase(rules.begin() + 1);
        apply_diff(*sock, fake, t3, t4);
        CHECK(listing().find("rules4_2") == std::string::npos);

        // Rule map elements change: the ones after the common prefix go and come back in order.
        Table t5 = t4;
        auto& elements = set_of(t5, "rules4_3").elements;
        elements.insert(elements.begin(), element({addr("0.0.0.0/0"), addr("203.0.114.0/24"), proto(17), port(53)}, "rule_voip", true));
        apply_diff(*sock, fake, t4, t5);
    }
    SUBCASE("a WAN going down flushes the sticky entries the packet path made, and only those") {
        must("nft add element inet wanbalance sticky_bank_integra '{ 10.0.0.1 . 192.0.2.1, 10.0.0.2 . 192.0.2.1 }'");
        must("nft add element inet wanbalance sticky_bank_charter '{ 10.0.0.3 . 192.0.2.1 }'");
        REQUIRE(listing().find("10.0.0.2 . 192.0.2.1") != std::string::npos);
        Table down = t0;
        set_of(down, "sticky_bank_integra").keep_entries = false;
        Plan plan = diff(t0, down);
        REQUIRE(plan.ops.size() == 1);
        apply_ok(*sock, plan);
        CHECK(must("nft list set inet wanbalance sticky_bank_integra").find("elements") == std::string::npos);
        CHECK(must("nft list set inet wanbalance sticky_bank_charter").find("10.0.0.3 . 192.0.2.1") != std::string::npos);
        must("nft delete element inet wanbalance sticky_bank_charter '{ 10.0.0.3 . 192.0.2.1 }'");
        CHECK(listing() == render(down));
        CHECK(sock->last_stats().messages == 3);  // begin, DELSETELEM, end
    }
}

TEST_CASE("policy rules: the kernel refuses what the fake kernel refuses, with the same errno") {
    enter_fresh_netns();
    auto sock = open_socket();
    Table t = policy_rules_table();
    apply_ok(*sock, plan_of({OpReplaceTable{t}}));
    const std::string before = listing();
    auto refused = [&](Op op) {
        wb::Status s = sock->apply(plan_of({op}));
        FakeKernel fake;
        REQUIRE(fake.apply(plan_of({OpReplaceTable{t}})).is_ok());
        wb::Status f = fake.apply(plan_of({op}));
        INFO(describe(op) << ": " << s.message);
        CHECK(f.err == s.err);
        return s.err;
    };
    CHECK(refused(OpDeleteSet{"sticky_bank_charter"}) == EBUSY);
    CHECK(refused(OpDeleteSet{"rules4_1"}) == EBUSY);
    CHECK(refused(OpDeleteChain{"to_main"}) == EBUSY);
    CHECK(refused(OpReplaceRules{"rules4", {Rule{{Goto{"nowhere"}}, ""}}}) == ENOENT);
    CHECK(refused(OpReplaceRules{"rules4", {Rule{{ConcatVmap{wb::Family::V4, {MatchField::SrcAddr, MatchField::DstAddr},
                                                             "sticky_bank_charter"}},
                                                  ""}}}) == EINVAL);
    CHECK(refused(OpReplaceRules{"rule_bank", {Rule{{UpdateSet{wb::Family::V4, true, "rules4_1"}}, ""}}}) == EOPNOTSUPP);
    CHECK(refused(OpFlushSet{"nowhere"}) == ENOENT);
    Set reshaped = set_of(t, "sticky_bank_charter");
    reshaped.concat.clear();
    CHECK(refused(OpAddSet{reshaped}) == EEXIST);
    reshaped = set_of(t, "rules4_1");
    reshaped.interval = false;
    reshaped.elements.clear();
    CHECK(refused(OpAddSet{reshaped}) == EEXIST);
    Set overlap = set_of(t, "rules4_1");
    overlap.elements = {element({addr("10.1.0.0/16"), addr("1.2.3.4"), proto(17), port(5060)}, "rule_voip")};
    CHECK(refused(OpAddElements{overlap}) == EEXIST);
    CHECK(listing() == before);

    // This kernel (6.18) takes a new timeout for an existing set in place; the diff re-creates
    // the set instead, which every kernel takes.
    Set timeout = set_of(t, "sticky_bank_charter");
    timeout.timeout_s = 60;
    CHECK(refused(OpAddSet{timeout}) == 0);
    CHECK(must("nft list set inet wanbalance sticky_bank_charter").find("timeout 1m\n") != std::string::npos);
}

namespace {

struct KeyShape {
    const char* name;
    wb::Family family;
    std::vector<MatchField> fields;
};

KeyType key_type_of(MatchField f, wb::Family family) {
    switch (f) {
        case MatchField::Iifname: return KeyType::Ifname;
        case MatchField::SrcAddr:
        case MatchField::DstAddr: return family == wb::Family::V4 ? KeyType::Ipv4Addr : KeyType::Ipv6Addr;
        case MatchField::L4proto: return KeyType::InetProto;
        default: return KeyType::InetService;
    }
}

// `count` disjoint elements of a map keyed by `shape`: source /24s (/120s) one after another,
// every other field a value or a range, alternately goto and jump.
Set shaped_map(const KeyShape& shape, size_t count) {
    std::vector<KeyType> types;
    for (MatchField f : shape.fields) types.push_back(key_type_of(f, shape.family));
    std::vector<Element> elements;
    const bool v6 = shape.family == wb::Family::V6;
    for (size_t i = 0; i < count; ++i) {
        FieldRanges key;
        for (MatchField f : shape.fields) {
            switch (f) {
                case MatchField::Iifname: key.push_back(iif(i % 2 ? "ether3" : "ether4")); break;
                case MatchField::SrcAddr: {
                    char net[64];
                    if (v6) std::snprintf(net, sizeof net, "2001:db8:%zx::%zx/120", i / 256, i % 256 * 256);
                    else std::snprintf(net, sizeof net, "10.%zu.%zu.0/24", i / 256, i % 256);
                    key.push_back(addr(net));
                    break;
                }
                case MatchField::DstAddr: key.push_back(addr(i % 3 ? (v6 ? "::/0" : "0.0.0.0/0") : (v6 ? "2001:db8::1-2001:db8::9" : "192.0.2.1-192.0.2.9"))); break;
                case MatchField::L4proto: key.push_back(i % 2 ? proto(6) : any_proto()); break;
                default: key.push_back(i % 2 ? port(uint16_t(1000 + i % 1000)) : port(1024, 65535)); break;
            }
        }
        elements.push_back(element(std::move(key), i % 2 ? "wan_charter" : "wan_integra", i % 4 == 0));
    }
    return rule_map("rules_shape", types, std::move(elements));
}

}  // namespace

TEST_CASE("policy rules: every key shape (2 to 5 fields, either family) reads back as render() prints it") {
    using F = MatchField;
    const std::vector<KeyShape> shapes = {
        {"addresses", wb::Family::V4, {F::SrcAddr, F::DstAddr}},
        {"addresses6", wb::Family::V6, {F::SrcAddr, F::DstAddr}},
        {"ports", wb::Family::V4, {F::SrcAddr, F::DstAddr, F::L4proto, F::SrcPort, F::DstPort}},
        {"iifname", wb::Family::V4, {F::Iifname, F::SrcAddr, F::DstAddr}},
        {"iifname6-sport", wb::Family::V6, {F::Iifname, F::SrcAddr, F::DstAddr, F::L4proto, F::SrcPort}},
    };
    enter_fresh_netns();
    auto sock = open_socket();
    unsigned small_messages = 0;
    for (const auto& shape : shapes) {
        for (size_t count : {size_t(7), size_t(3000)}) {
            const std::string shape_name = shape.name;
            CAPTURE(shape_name);
            CAPTURE(count);
            Table t = policy_rules_table();
            t.sets.push_back(shaped_map(shape, count));
            chain_of(t, "rules4").rules.insert(chain_of(t, "rules4").rules.begin(),
                                               Rule{{ConcatVmap{shape.family, shape.fields, "rules_shape"}}, ""});
            apply_ok(*sock, plan_of({OpReplaceTable{t}}));
            CHECK(listing() == render(t));
            if (count > 100) {
                CHECK(sock->last_stats().messages > small_messages + 2);  // the map's elements over several
                MESSAGE(shape_name << ": " << count << " elements, " << sock->last_stats().messages << " messages, "
                                   << sock->last_stats().bytes << " bytes");
            } else {
                small_messages = sock->last_stats().messages;
                check_same_as_nft(t);
            }
        }
    }
}

TEST_CASE("policy rules with iif and both ports: the table build_desired makes, split by LAN, reads back as rendered") {
    // ssh: iif, proto, src_port and dst_port. Keyed by iifname too that would be six fields,
    // which nft 1.0.6 prints as "type verdict . ipv6_addr ..." with garbled elements.
    wb::ConfigResult loaded = wb::load_config(WB_SOURCE_DIR "/tests/configs/good/rules-dual-stack.json");
    REQUIRE(loaded.config);
    wb::Config config = *loaded.config;
    REQUIRE(config.lans == std::vector<std::string>{"ether3", "ether4"});
    // A LAN whose name nft's parser cannot take in a chain name (nft needs no such interface).
    config.lans.push_back("guest@1");
    const Table table = wb::build_desired(config, wb::assume_all_up(config)).table;
    for (const char* name : {"rules4_lans", "rules4_ether4_1", "rules6_ether3_1", "rules4_guest/401_1"})
        REQUIRE_MESSAGE(table.find_set(name), name);
    enter_fresh_netns();
    auto sock = open_socket();
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));
    const std::string listed = listing();
    CHECK(listed == render(table));
    CHECK(listed.find("type ipv4_addr . ipv4_addr . inet_service . inet_service . inet_proto : verdict") != std::string::npos);
    CHECK(listed.find("0.0.0.0/0 . 0.0.0.0/0 . 22 . 1024-65535 . tcp : goto rule_ssh") != std::string::npos);
    CHECK(listed.find("\"guest@1\" : goto rules4_guest/401") != std::string::npos);
    // nft itself takes the text, names and all, and encodes every object as we do.
    std::string text = render(table);
    text.replace(0, text.find('{'), "table inet wbref ");
    load_nft(text);
    CHECK(listing("wbref") == text);
    must("nft delete table inet wbref");
    check_same_as_nft(table);

    // To the table of the same rules without iif (one chain per family) and back, a diff each.
    wb::Config whole = config;
    for (auto& rule : whole.rules) rule.iif.clear();
    const Table unsplit = wb::build_desired(whole, wb::assume_all_up(whole)).table;
    REQUIRE(unsplit.find_set("rules4_1"));
    REQUIRE_FALSE(unsplit.find_set("rules4_lans"));
    FakeKernel fake;
    REQUIRE(fake.apply(plan_of({OpReplaceTable{table}})).is_ok());
    apply_diff(*sock, fake, table, unsplit);
    apply_diff(*sock, fake, unsplit, table);
}

TEST_CASE("an HA pair: SNAT rules and the guard chain read back as rendered and as nft encodes them; diffs add and remove them") {
    wb::ConfigResult loaded = wb::load_config(WB_SOURCE_DIR "/tests/configs/good/ha-pair.json");
    REQUIRE(loaded.config);
    const wb::Config config = *loaded.config;
    const Table table = wb::build_desired(config, wb::assume_all_up(config)).table;
    REQUIRE(table.find_chain("guard"));
    enter_fresh_netns();
    auto sock = open_socket();
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));
    const std::string listed = listing();
    CHECK(listed == render(table));
    CHECK(listed.find("tcp flags != syn / fin,syn,rst,ack ct state new counter packets 0 bytes 0 drop") != std::string::npos);
    CHECK(listed.find("snat ip6 to 2001:db8:1::10") != std::string::npos);
    // nft's own encoding of the new rules. (Only these: nft -f puts the "meta nfproto" its
    // listing hides in a jhash rule elsewhere than build_desired does, equivalently.)
    Table ha;
    ha.sets = {*table.find_set("lans")};
    ha.chains = {*table.find_chain("guard"), *table.find_chain("postrouting")};
    must("nft delete table inet " + std::string(kTableName));
    apply_ok(*sock, plan_of({OpReplaceTable{ha}}));
    check_same_as_nft(ha);
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));

    // A router joining a pair and leaving it again: a reload, one transaction each way.
    wb::Config single = config;
    single.ha_pair = false;
    for (auto& wan : single.wans) {
        wan.snat.reset();
        wan.snat6.reset();
    }
    const Table plain = wb::build_desired(single, wb::assume_all_up(single)).table;
    FakeKernel fake;
    REQUIRE(fake.apply(plan_of({OpReplaceTable{table}})).is_ok());
    apply_diff(*sock, fake, table, plain);
    CHECK(listing().find("chain guard") == std::string::npos);
    apply_diff(*sock, fake, plain, table);
    CHECK(listing().find("chain guard") != std::string::npos);
}
