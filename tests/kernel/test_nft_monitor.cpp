// NftMonitor against the real kernel: the daemon's own transactions are not reported, another
// program's changes to table inet wanbalance are (with what and who), other tables are ignored,
// and a lost notification is reported as a possible change.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include "netlink/nft_apply.hpp"
#include "netlink/nft_monitor.hpp"
#include "rules/nft.hpp"
#include "rules/nft_diff.hpp"
#include "tests/kernel/netns.hpp"

using namespace wb::nft;
using wb::test::enter_fresh_netns;
using wb::test::must;

namespace {

constexpr uint32_t kBuckets = 1021;

Table small_table() {
    Table t;
    t.comment = "nft_monitor test";
    Set balance{"balance", KeyType::HashBucket, kBuckets, true, {}};
    // Built element by element: g++ 12 warns falsely (maybe-uninitialized) on a braced variant key.
    for (uint32_t b = 0; b < kBuckets; ++b) {
        Element e;
        e.key = Key(b);
        e.goto_chain = b % 2 ? "wan_a" : "wan_b";
        balance.elements.push_back(std::move(e));
    }
    t.sets = {balance};
    for (auto [name, mark] : {std::pair{"wan_a", 0x100u}, std::pair{"wan_b", 0x200u}})
        t.chains.push_back({name, std::nullopt, {Rule{{SetMarkBits{MarkKind::Meta, 0x3f00, mark}}, ""}}});
    t.chains.push_back({"prerouting", BaseChain{ChainType::Filter, Hook::Prerouting, -150},
                        {Rule{{CtStateNew{}, HashVmap{{HashField::SrcAddr}, kBuckets, 1, "balance"}}, "pick"}}});
    return t;
}

std::unique_ptr<NftSocket> open_socket() {
    auto s = NftSocket::open();
    if (!s) FAIL(s.error().message);
    return std::move(*s);
}

std::unique_ptr<NftMonitor> open_monitor(uint32_t own) {
    auto m = NftMonitor::open(own);
    if (!m) FAIL(m.error().message);
    return std::move(*m);
}

ForeignChange drain(NftMonitor& m) {
    auto c = m.process();
    if (!c) FAIL(c.error().message);
    return *c;
}

void replace(NftSocket& sock, const Table& t) {
    wb::Status s = sock.apply(Plan{{OpReplaceTable{t}}});
    INFO(s.message);
    REQUIRE(s.is_ok());
}

}  // namespace

TEST_CASE("the daemon's own transactions are not reported; the same change from another socket is") {
    enter_fresh_netns();
    auto own = open_socket();
    auto monitor = open_monitor(own->portid());
    CHECK(own->portid() != 0);

    replace(*own, small_table());
    unsigned long seen = monitor->messages_read();
    ForeignChange c = drain(*monitor);
    CHECK_FALSE(c.any());
    // The notifications did arrive (a table, two sets of chains, 1021 elements …): the filter,
    // not a missing subscription, kept them quiet.
    CHECK(monitor->messages_read() - seen > 1000);

    Table less = small_table();
    less.sets[0].elements.resize(10);
    replace(*own, less);
    CHECK_FALSE(drain(*monitor).any());

    auto other = open_socket();  // another program using the same library
    replace(*other, small_table());
    c = drain(*monitor);
    CHECK(c.any());
    CHECK_FALSE(c.lost);
    CHECK(c.messages > 1000);
    INFO(c.describe());
    CHECK(c.describe().find("table inet wanbalance") != std::string::npos);
}

TEST_CASE("nft's deletions inside the table are reported with what was deleted and by whom") {
    enter_fresh_netns();
    auto own = open_socket();
    auto monitor = open_monitor(own->portid());
    replace(*own, small_table());
    drain(*monitor);

    must("nft delete element inet wanbalance balance '{ 5 }'");
    ForeignChange c = drain(*monitor);
    INFO(c.describe());
    CHECK(c.messages == 1);
    CHECK(c.first == "delete elements from set balance");
    CHECK(c.by.rfind("nft (pid ", 0) == 0);
    CHECK(c.describe().rfind("nft (pid ", 0) == 0);

    std::string handle = must("nft -a list chain inet wanbalance prerouting | sed -n 's/.*# handle //p' | tail -1");
    while (!handle.empty() && handle.back() == '\n') handle.pop_back();
    must("nft delete rule inet wanbalance prerouting handle " + handle);
    c = drain(*monitor);
    INFO(c.describe());
    CHECK(c.first == "delete rule from chain prerouting (handle " + handle + ")");

    must("nft flush chain inet wanbalance prerouting && nft delete chain inet wanbalance prerouting");
    c = drain(*monitor);
    INFO(c.describe());
    CHECK(c.describe().find("chain prerouting") != std::string::npos);

    must("nft flush ruleset");
    c = drain(*monitor);
    INFO(c.describe());
    CHECK(c.messages > 3);  // rules, chains, set, table: one notification each, read in one go
    CHECK(c.first == "delete table");
    CHECK(must("nft list tables").empty());
}

TEST_CASE("other tables, and a change that only lists, are not reported") {
    enter_fresh_netns();
    auto own = open_socket();
    auto monitor = open_monitor(own->portid());
    replace(*own, small_table());
    drain(*monitor);
    must("nft add table inet firewall && nft add chain inet firewall input '{ type filter hook input priority 0; }'");
    must("nft add table ip wanbalance");  // same name, other family: not ours
    must("nft list ruleset > /dev/null");
    must("nft delete table inet firewall");
    CHECK_FALSE(drain(*monitor).any());
    CHECK(monitor->messages_read() > 0);
}

TEST_CASE("lost notifications are reported as a possible change") {
    enter_fresh_netns();
    auto own = open_socket();
    auto monitor = open_monitor(own->portid());
    // The smallest queue the kernel allows: a full table's notifications cannot fit.
    int tiny = 1;
    REQUIRE(setsockopt(monitor->fd(), SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny) == 0);
    replace(*own, small_table());
    ForeignChange c = drain(*monitor);
    CHECK(c.lost);
    CHECK(c.any());
    INFO(c.describe());
    CHECK(c.describe().find("lost") != std::string::npos);
    // And the socket keeps working afterwards.
    must("nft delete element inet wanbalance balance '{ 7 }'");
    c = drain(*monitor);
    CHECK(c.messages == 1);
    CHECK_FALSE(c.lost);
}
