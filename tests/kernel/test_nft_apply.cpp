// NftSocket against the real kernel: what `nft list` shows after each kind of plan, the
// transaction's all-or-nothing behaviour, foreign state, and packets through the rules.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "netlink/nft_apply.hpp"
#include "rules/desired.hpp"
#include "rules/nft.hpp"
#include "rules/nft_diff.hpp"
#include "tests/unit/rules_fixtures.hpp"
#include "tests/kernel/netns.hpp"
#include "tests/kernel/nft_harness.hpp"

using namespace wb::nft;
using namespace wb::test;

namespace {

constexpr uint32_t kMask = 0x3f00;
constexpr uint32_t kBuckets = 1021;
constexpr uint32_t kSeed = 0x77616e62;

struct Variant {
    const char* name;
    std::vector<HashField> fields;  // empty: round robin
};

const std::vector<Variant>& variants() {
    using F = HashField;
    static const std::vector<Variant> all = {
        {"src-address", {F::SrcAddr}},
        {"dst-address", {F::DstAddr}},
        {"both-addresses", {F::SrcAddr, F::DstAddr}},
        {"both-ports", {F::SrcPort, F::DstPort}},
        {"both-addresses-and-ports", {F::SrcAddr, F::DstAddr, F::SrcPort, F::DstPort}},
        {"src-address-and-port", {F::SrcAddr, F::SrcPort}},
        {"dst-address-and-port", {F::DstAddr, F::DstPort}},
        {"round-robin", {}},
    };
    return all;
}
const Variant& default_variant() { return variants()[4]; }

// Two WANs weighted 2:1 by bucket number; every bucket to charter with `all_charter`.
std::string bucket_chain(uint32_t bucket, bool all_charter = false) {
    return all_charter || bucket % 3 != 0 ? "wan_charter" : "wan_integra";
}

// Elements are appended one by one: g++ 12 warns falsely (maybe-uninitialized) when a
// std::variant key is copied out of a braced list.
Set make_set(const std::string& name, KeyType type, bool map,
             const std::vector<std::pair<Key, std::string>>& elements) {
    Set set{name, type, 0, map, {}};
    for (const auto& [key, chain] : elements) set.elements.push_back(Element{key, chain});
    return set;
}

Rule mark_rule(MarkKind kind, uint32_t value) { return Rule{{SetMarkBits{kind, kMask, value}}, ""}; }

// The shape rules/desired.cpp builds: 2 WANs on ether1/ether2, LAN ether3.
Table make_table(const Variant& v = default_variant(), bool all_charter = false) {
    Table t;
    t.comment = "managed by wanbalanced; edit /etc/wanbalance.json instead";
    Set lans = make_set("lans", KeyType::Ifname, false, {{std::string("ether3"), ""}});
    Set by_mark = make_set("by_mark", KeyType::Mark, true, {{0x100u, "wan_charter"}, {0x200u, "wan_integra"}});
    Set by_wan = make_set("by_wan", KeyType::Ifname, true,
                          {{std::string("ether1"), "wan_charter"}, {std::string("ether2"), "wan_integra"}});
    Set balance{"balance", KeyType::HashBucket, kBuckets, true, {}};
    for (uint32_t b = 0; b < kBuckets; ++b) balance.elements.push_back({b, bucket_chain(b, all_charter)});
    t.sets = {lans, by_mark, by_wan, balance};

    for (auto [name, mark] : {std::pair{"wan_charter", 0x100u}, std::pair{"wan_integra", 0x200u}})
        t.chains.push_back({name, std::nullopt, {mark_rule(MarkKind::Ct, mark), mark_rule(MarkKind::Meta, mark)}});

    Rule balance_rule{{CtStateNew{}, NfprotoIpv4{}, IifnameInSet{"lans"}, FibDaddrNotLocal{}}, ""};
    if (v.fields.empty())
        balance_rule.statements.push_back(NumgenVmap{kBuckets, "balance"});
    else
        balance_rule.statements.push_back(HashVmap{v.fields, kBuckets, kSeed, "balance"});
    balance_rule.comment = std::string("new from a LAN: pick a WAN (") + v.name + ")";
    const MarkVmap restore_ct{MarkKind::Ct, kMask, "by_mark"};
    t.chains.push_back({"prerouting", BaseChain{ChainType::Filter, Hook::Prerouting, -150},
                        {Rule{{restore_ct}, "known connection: the packet takes its WAN's mark"},
                         Rule{{CtStateNew{}, IifnameVmap{"by_wan"}}, "new from a WAN: answer through that WAN"},
                         balance_rule}});
    t.chains.push_back({"output", BaseChain{ChainType::Route, Hook::Output, -150},
                        {Rule{{restore_ct}, "replies of connections that came in on a WAN"},
                         Rule{{CtStateNew{}, MarkVmap{MarkKind::Meta, kMask, "by_mark"}},
                              "sockets that chose a WAN (SO_MARK) keep it for their replies"}}});
    t.chains.push_back({"postrouting", BaseChain{ChainType::Nat, Hook::Postrouting, 100},
                        {Rule{{NfprotoIpv4{}, OifnameIs{"ether1"}, Masquerade{}}, "charter"},
                         Rule{{NfprotoIpv4{}, OifnameIs{"ether2"}, Masquerade{}}, "integra"}}});
    return t;
}

Set* find_set(Table& t, const std::string& name) {
    for (auto& s : t.sets)
        if (s.name == name) return &s;
    return nullptr;
}
Chain* find_chain(Table& t, const std::string& name) {
    for (auto& c : t.chains)
        if (c.name == name) return &c;
    return nullptr;
}

// Loads `table` with nft itself under another name and compares the kernel's objects. The
// rule text nft gets keeps "meta nfproto ipv4" where the statements have it (render() hides it
// before an ip address match, as `nft list` does, and nft would then put it elsewhere).
void check_same_as_nft(const Table& table) {
    std::string text = render(table);
    text.replace(0, text.find('{'), "table inet wbref ");
    for (size_t at; (at = text.find("ct state new iifname @lans")) != std::string::npos;) {
        bool v6 = text.compare(text.find("jhash ", at) + 6, 4, "ip6 ") == 0;
        text.replace(at, 26, std::string("ct state new meta nfproto ") + (v6 ? "ipv6" : "ipv4") + " iifname @lans");
    }
    load_nft(text);
    CHECK(kernel_view(kTableName) == kernel_view("wbref"));
    must("nft delete table inet wbref");
}

double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

unsigned count(const std::string& haystack, const std::string& needle) {
    unsigned n = 0;
    for (size_t at = 0; (at = haystack.find(needle, at)) != std::string::npos; at += needle.size()) ++n;
    return n;
}

}  // namespace

TEST_CASE("a full table reads back from the kernel exactly as render() prints it, for every classifier") {
    enter_fresh_netns();
    auto sock = open_socket();
    for (const Variant& v : variants()) {
        CAPTURE(v.name);
        Table table = make_table(v);
        apply_ok(*sock, plan_of({OpReplaceTable{table}}));
        CHECK(listing() == render(table));
        check_same_as_nft(table);
    }
    // The expressions of the notes for the 4-field hash, registers included.
    apply_ok(*sock, plan_of({OpReplaceTable{make_table()}}));
    std::string view = kernel_view(kTableName);
    CHECK(view.find("  [ payload load 4b @ network header + 12 => reg 2 ]\n"
                    "  [ payload load 4b @ network header + 16 => reg 13 ]\n"
                    "  [ payload load 2b @ transport header + 0 => reg 14 ]\n"
                    "  [ payload load 2b @ transport header + 2 => reg 15 ]\n"
                    "  [ hash reg 1 = jhash(reg 2, 16, 0x77616e62) % mod 1021 ]\n") != std::string::npos);
    CHECK(count(view, "[ meta load nfproto => reg 1 ]") == 3);  // balance rule + 2 masquerades
    CHECK(view.find("userdata = { \\x00\\x08charter\\x00 }") != std::string::npos);
}

TEST_CASE("a dual-stack table reads back exactly as render() prints it and as nft itself encodes it") {
    enter_fresh_netns();
    auto sock = open_socket();
    wb::Config config = wb::test::dual_stack_config();
    for (const Variant& v : variants()) {
        CAPTURE(v.name);
        config.classifier = wb::parse_classifier(v.name).value();
        Table table = wb::build_desired(config, wb::test::healthy(config)).table;
        apply_ok(*sock, plan_of({OpReplaceTable{table}}));
        CHECK(listing() == render(table));
        check_same_as_nft(table);
    }
    // The IPv6 4-field hash: 16-byte addresses in reg 2 and reg 3, ports in the words after.
    config.classifier = wb::Classifier::BothAddressesAndPorts;
    Table table = wb::build_desired(config, wb::test::healthy(config)).table;
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));
    std::string view = kernel_view(kTableName);
    CHECK(view.find("  [ payload load 16b @ network header + 8 => reg 2 ]\n"
                    "  [ payload load 16b @ network header + 24 => reg 3 ]\n"
                    "  [ payload load 2b @ transport header + 0 => reg 4 ]\n"
                    "  [ payload load 2b @ transport header + 2 => reg 21 ]\n"
                    "  [ hash reg 1 = jhash(reg 2, 40, 0x77616e62) % mod 1021 ]\n") != std::string::npos);
    // fe80::/10 is a masked 16-byte compare; ff00::/8 one byte.
    CHECK(view.find("  [ payload load 1b @ network header + 24 => reg 1 ]\n  [ cmp eq reg 1 0x000000ff ]\n") !=
          std::string::npos);
    CHECK(count(view, "[ immediate reg 0 return ]") == 6);
    // The reply counters: ct direction is one byte; charter and integra count both families, lte IPv4.
    CHECK(view.find("  [ ct load direction => reg 1 ]\n  [ cmp eq reg 1 0x00000001 ]\n"
                    "  [ meta load iifname => reg 1 ]\n  [ lookup reg 1 set reply_wans dreg 0 0x0 ]\n") !=
          std::string::npos);
    CHECK(count(view, "[ counter pkts 0 bytes 0 ]") == 5);
    CHECK(listing().find("\t\tmeta nfproto ipv6 oifname \"ether1\" masquerade comment \"charter\"\n") !=
          std::string::npos);
}

TEST_CASE("replacing the table twice leaves one table, and each apply is one transaction") {
    enter_fresh_netns();
    auto sock = open_socket();
    CHECK(*sock->table_exists() == false);
    uint32_t gen0 = generation(*sock);
    Table table = make_table();
    auto start = std::chrono::steady_clock::now();
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));
    const double first_ms = ms_since(start);
    const ApplyStats first = sock->last_stats();
    CHECK(generation(*sock) == gen0 + 1);
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));
    CHECK(generation(*sock) == gen0 + 2);
    CHECK(*sock->table_exists() == true);
    CHECK(count(must("nft list tables"), "table inet wanbalance") == 1);
    CHECK(listing() == render(table));
    CHECK(count(must("nft list chains inet"), "chain prerouting") == 1);

    // begin + add/delete/add table + 4 sets + 5 chains + 4 element lists + 11 rules + end
    CHECK(first.messages == 29);
    MESSAGE("full table (1021 buckets): " << first.messages << " messages, " << first.bytes << " bytes, "
                                          << first_ms << " ms");

    apply_ok(*sock, Plan{});
    CHECK(sock->last_stats().messages == 0);
    CHECK(generation(*sock) == gen0 + 2);
}

TEST_CASE("element, rule, chain and set ops change exactly what they name") {
    enter_fresh_netns();
    auto sock = open_socket();
    Table table = make_table();
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));

    SUBCASE("300 buckets move to the other WAN: delete then add, in one transaction") {
        Set old_part = *find_set(table, "balance"), new_part = old_part;
        old_part.elements.resize(300);
        new_part.elements.resize(300);
        for (auto& e : new_part.elements) e.goto_chain = e.goto_chain == "wan_charter" ? "wan_integra" : "wan_charter";
        for (uint32_t b = 0; b < 300; ++b) find_set(table, "balance")->elements[b] = new_part.elements[b];
        auto start = std::chrono::steady_clock::now();
        apply_ok(*sock, plan_of({OpDeleteElements{old_part}, OpAddElements{new_part}}));
        const double took_ms = ms_since(start);
        CHECK(listing() == render(table));
        CHECK(sock->last_stats().messages == 4);  // begin, DELSETELEM, NEWSETELEM, end
        MESSAGE("300 changed buckets: " << sock->last_stats().messages << " messages, " << sock->last_stats().bytes
                                        << " bytes, " << took_ms << " ms");
    }
    SUBCASE("the rules of a chain are replaced") {
        std::vector<Rule> rules = {Rule{{MarkVmap{MarkKind::Ct, kMask, "by_mark"}}, "only this"}};
        find_chain(table, "output")->rules = rules;
        apply_ok(*sock, plan_of({OpReplaceRules{"output", rules}}));
        CHECK(listing() == render(table));
        find_chain(table, "output")->rules.clear();
        apply_ok(*sock, plan_of({OpReplaceRules{"output", {}}}));
        CHECK(listing() == render(table));
    }
    SUBCASE("a third WAN's chain comes and goes with its map elements") {
        Chain third{"wan_third", std::nullopt, {mark_rule(MarkKind::Ct, 0x300), mark_rule(MarkKind::Meta, 0x300)}};
        Set by_mark_part = make_set("by_mark", KeyType::Mark, true, {{0x300u, "wan_third"}});
        Set by_wan_part = make_set("by_wan", KeyType::Ifname, true, {{std::string("ppp0"), "wan_third"}});
        apply_ok(*sock, plan_of({OpAddChain{third}, OpAddElements{by_mark_part}, OpAddElements{by_wan_part}}));
        Table with = table;
        with.chains.push_back(third);  // the kernel lists chains in the order they were made
        find_set(with, "by_mark")->elements.push_back(by_mark_part.elements[0]);
        find_set(with, "by_wan")->elements.push_back(by_wan_part.elements[0]);
        CHECK(listing() == render(with));
        apply_ok(*sock,
                 plan_of({OpDeleteElements{by_mark_part}, OpDeleteElements{by_wan_part}, OpDeleteChain{"wan_third"}}));
        CHECK(listing() == render(table));
    }
    SUBCASE("a set is added with its elements and deleted") {
        Set extra =
            make_set("extra_lans", KeyType::Ifname, false, {{std::string("br0"), ""}, {std::string("lan1"), ""}});
        apply_ok(*sock, plan_of({OpAddSet{extra}}));
        Table with = table;
        with.sets.push_back(extra);
        CHECK(listing() == render(with));
        apply_ok(*sock, plan_of({OpDeleteSet{"extra_lans"}}));
        CHECK(listing() == render(table));
    }
    SUBCASE("an element list too long for one netlink attribute is split over several messages") {
        Set big{"big", KeyType::Mark, 0, true, {}};
        for (uint32_t m = 1; m <= 5000; ++m) big.elements.push_back({m, m % 2 ? "wan_charter" : "wan_integra"});
        table.sets.push_back(big);
        apply_ok(*sock, plan_of({OpReplaceTable{table}}));
        CHECK(sock->last_stats().messages > 29 + 3);
        CHECK(listing() == render(table));
        MESSAGE("table with a 5000-element map: " << sock->last_stats().messages << " messages, "
                                                  << sock->last_stats().bytes << " bytes");
    }
}

TEST_CASE("a plan the kernel refuses changes nothing and names what was refused") {
    enter_fresh_netns();
    auto sock = open_socket();

    SUBCASE("an op on a table that does not exist") {
        wb::Status s = sock->apply(plan_of({OpAddChain{Chain{"wan_charter", std::nullopt, {}}}}));
        CHECK(s.err == ENOENT);
        CHECK(s.message == "Could not add chain wan_charter to table inet wanbalance: No such file or directory");
        CHECK(*sock->table_exists() == false);
    }

    Table table = make_table();
    apply_ok(*sock, plan_of({OpReplaceTable{table}}));
    const std::string before = listing();
    const uint32_t gen = generation(*sock);

    SUBCASE("the last op sends map elements to a chain that does not exist") {
        std::vector<Rule> rules = {Rule{{Masquerade{}}, "would change postrouting"}};
        Set part = make_set("balance", KeyType::HashBucket, true, {{7u, "wan_nowhere"}});
        part.bucket_modulus = kBuckets;
        wb::Status s = sock->apply(plan_of({OpReplaceRules{"postrouting", rules}, OpAddElements{part}}));
        CHECK(s.err == ENOENT);
        CHECK(s.message == "Could not add element 7 : goto wan_nowhere to map balance in table inet wanbalance: "
                           "No such file or directory");
    }
    SUBCASE("a replacement table whose rule looks up a missing map leaves the old table in place") {
        Table bad = make_table(variants()[0], true);
        find_chain(bad, "output")->rules.push_back(Rule{{IifnameVmap{"no_such_map"}}, ""});
        wb::Status s = sock->apply(plan_of({OpReplaceTable{bad}}));
        CHECK(s.err == ENOENT);
        CHECK(s.message.find("Could not add rule `iifname vmap @no_such_map` to chain output") == 0);
    }
    SUBCASE("a map element would lead prerouting packets to a masquerade") {
        // masquerade is only valid under a nat postrouting hook; by_mark is used in prerouting.
        Chain bad{"wan_bad", std::nullopt, {Rule{{Masquerade{}}, ""}}};
        Set part = make_set("by_mark", KeyType::Mark, true, {{0x300u, "wan_bad"}});
        wb::Status s = sock->apply(plan_of({OpAddChain{bad}, OpAddElements{part}}));
        CHECK(s.err == EOPNOTSUPP);
        CHECK(s.message == "Could not add element 0x00000300 : goto wan_bad to map by_mark in table inet wanbalance: "
                           "Operation not supported");
    }
    SUBCASE("the batch as a whole is refused (no CAP_NET_ADMIN)") {
        // The kernel checks the capability of whoever opened the socket, once per batch.
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_t child = fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            close(fds[0]);
            std::string out = "setresuid failed";
            if (setresuid(65534, 65534, 65534) == 0) {
                auto unprivileged = NftSocket::open();
                out = unprivileged ? (*unprivileged)->apply(plan_of({OpDeleteTable{}})).message
                                   : unprivileged.error().message;
            }
            ssize_t ignored = write(fds[1], out.data(), out.size());
            (void)ignored;
            _exit(0);
        }
        close(fds[1]);
        char buf[512];
        ssize_t n = read(fds[0], buf, sizeof buf);
        close(fds[0]);
        waitpid(child, nullptr, 0);
        CHECK(std::string(buf, size_t(std::max<ssize_t>(n, 0))) ==
              "Could not apply an nftables transaction of 4 messages: Operation not permitted");
    }
    SUBCASE("deleting a chain that a map still jumps to") {
        wb::Status s = sock->apply(plan_of({OpDeleteChain{"wan_integra"}}));
        CHECK(s.err == EBUSY);
        CHECK(s.message == "Could not delete chain wan_integra from table inet wanbalance: Device or resource busy");
    }
    CHECK(listing() == before);
    CHECK(generation(*sock) == gen);
}

TEST_CASE("tables that are not ours survive replace and delete") {
    enter_fresh_netns();
    auto sock = open_socket();
    load_nft(
        "table ip filter {\n"
        "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
        "\t\ttcp dport 22 counter accept\n\t}\n}\n"
        "table inet wanbalance2 {\n\tset lans {\n\t\ttype ifname\n\t\telements = { \"ether9\" }\n\t}\n}\n");
    const std::string foreign = must("nft list table ip filter") + must("nft list table inet wanbalance2");

    apply_ok(*sock, plan_of({OpReplaceTable{make_table()}}));
    apply_ok(*sock, plan_of({OpReplaceTable{make_table(variants()[7])}}));
    CHECK(must("nft list table ip filter") + must("nft list table inet wanbalance2") == foreign);
    apply_ok(*sock, plan_of({OpDeleteTable{}}));
    CHECK(*sock->table_exists() == false);
    CHECK(must("nft list table ip filter") + must("nft list table inet wanbalance2") == foreign);
}

TEST_CASE("deleting a table that is not there succeeds") {
    enter_fresh_netns();
    auto sock = open_socket();
    uint32_t gen = generation(*sock);
    apply_ok(*sock, plan_of({OpDeleteTable{}}));
    CHECK(sock->last_stats().messages == 4);  // begin, add table, delete table, end
    CHECK(*sock->table_exists() == false);
    CHECK(generation(*sock) == gen + 1);
}

namespace {

// A named network namespace for the far end of a veth pair; removed even when a check fails.
struct PeerNetns {
    std::string name;
    explicit PeerNetns(const std::string& role) : name("wbnft-" + role + "-" + std::to_string(getpid())) {
        must("ip netns add " + name);
        must("ip -n " + name + " link set lo up");
    }
    ~PeerNetns() { run("ip netns del " + name); }
    std::string exec(const std::string& command) const { return "ip netns exec " + name + " " + command; }
};

}  // namespace

TEST_CASE("packets: the wan chains set our mark bits and keep foreign ones") {
    enter_fresh_netns();
    PeerNetns isp("isp"), lan("lan");
    // Router (this netns): ether1 to the ISP, ether3 to the LAN; the ISP has 198.51.100.7 on lo
    // and no route back to the LAN, so a reply proves the masquerade rule ran.
    must("ip link add ether1 type veth peer name isp1 netns " + isp.name);
    must("ip link add ether3 type veth peer name lan0 netns " + lan.name);
    must("ip addr add 203.0.113.1/24 dev ether1 && ip link set ether1 up");
    must("ip addr add 192.168.88.1/24 dev ether3 && ip link set ether3 up");
    must("ip route add default via 203.0.113.2 dev ether1");
    must("sysctl -qw net.ipv4.ip_forward=1");
    must("ip -n " + isp.name + " addr add 203.0.113.2/24 dev isp1 && ip -n " + isp.name + " link set isp1 up");
    must("ip -n " + isp.name + " addr add 198.51.100.7/32 dev lo");
    must("ip -n " + lan.name + " addr add 192.168.88.2/24 dev lan0 && ip -n " + lan.name + " link set lan0 up");
    must("ip -n " + lan.name + " route add default via 192.168.88.1");

    // Someone else's marks (kube-proxy style 0x4000), set before our chains (-150) and checked after.
    load_nft(
        "table inet foreign {\n"
        "\tchain before {\n\t\ttype filter hook prerouting priority -200; policy accept;\n"
        "\t\tct state new ct mark set ct mark | 0x00004000\n"
        "\t\tmeta mark set meta mark | 0x00004000\n\t}\n"
        "\tchain after {\n\t\ttype filter hook prerouting priority -100; policy accept;\n"
        "\t\tmeta mark 0x00004100 counter\n\t}\n}\n");

    auto sock = open_socket();
    for (const Variant& v : {default_variant(), variants()[7]}) {
        CAPTURE(v.name);
        apply_ok(*sock, plan_of({OpReplaceTable{make_table(v, true)}}));
        must("conntrack -F");
        must("nft reset counters table inet foreign");

        // New from the LAN: balanced (every bucket to charter), marked 0x100, masqueraded.
        must(lan.exec("ping -c 2 -W 2 198.51.100.7"));
        std::string ct = must("conntrack -L -p icmp --src 192.168.88.2");
        INFO("conntrack: " << ct);
        CHECK(ct.find("mark=16640") != std::string::npos);  // 0x4100: ours and the foreign bit
        CHECK(ct.find("dst=203.0.113.1") != std::string::npos);  // reply to the masqueraded address

        // New from the WAN: by_wan sends it through wan_charter too.
        must(isp.exec("ping -c 1 -W 2 203.0.113.1"));
        std::string in = must("conntrack -L -p icmp --src 203.0.113.2");
        INFO("conntrack: " << in);
        CHECK(in.find("mark=16640") != std::string::npos);

        // The packet mark carried both bits into the next chain (LAN pings, WAN ping, replies).
        std::string after = must("nft list chain inet foreign after");
        INFO(after);
        CHECK(after.find("counter packets 0 ") == std::string::npos);
    }
}
