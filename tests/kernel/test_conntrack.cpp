// Conntrack against the real kernel: entries made with `conntrack -I` (or by traffic through an
// nftables ct mark rule) in a fresh network namespace, counted and deleted by mark and family,
// checked with `conntrack -L`.
#include <algorithm>
#include <netinet/in.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <string>

#include "netlink/conntrack.hpp"
#include "tests/kernel/netns.hpp"

using namespace wb;
using wb::test::must;

namespace {

int next_port = 10000;

// One established TCP entry with `mark` (IPv4 unless `v6`).
void insert(uint32_t mark, bool v6 = false) {
    std::string src = v6 ? "2001:db8::1" : "192.168.88.10";
    std::string dst = v6 ? "2001:db8::2" : "192.0.2.10";
    must("conntrack -I -s " + src + " -d " + dst + " -p tcp --sport " + std::to_string(next_port++) +
         " --dport 80 --state ESTABLISHED -t 300 -m " + std::to_string(mark));
}

// How many entries `conntrack -L` lists with exactly this mark.
int listed(uint32_t mark, const char* family = "ipv4") {
    std::string out = must(std::string("conntrack -L -f ") + family + " 2>/dev/null");
    std::string needle = " mark=" + std::to_string(mark) + " ";
    int n = 0;
    for (size_t pos = out.find(needle); pos != std::string::npos; pos = out.find(needle, pos + 1)) ++n;
    return n;
}

std::unique_ptr<Conntrack> open_ct() {
    auto ct = Conntrack::open();
    REQUIRE_MESSAGE(ct.has_value(), ct.error().message);
    return std::move(*ct);
}

}  // namespace

TEST_CASE("count_by_mark counts IPv4 and IPv6 entries by their masked mark, skipping unmarked ones") {
    test::enter_fresh_netns();
    for (int i = 0; i < 3; ++i) insert(0x100);
    for (int i = 0; i < 2; ++i) insert(0x200);
    for (int i = 0; i < 2; ++i) insert(0x4100);  // kube-proxy's bit plus ours
    insert(0x4000);                              // only a foreign bit: masked to 0
    insert(0);
    insert(0x100, true);  // IPv6: a WAN's count holds both families
    insert(0x300, true);
    insert(0x4000, true);
    auto ct = open_ct();
    auto counts = ct->count_by_mark(0x3f00);
    REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
    CHECK(*counts == std::map<uint32_t, unsigned>{{0x100, 6}, {0x200, 2}, {0x300, 1}});
}

TEST_CASE("count hands each counted entry's original direction to the classifier") {
    test::enter_fresh_netns();
    must("conntrack -I -s 192.168.88.10 -d 192.0.2.10 -p tcp --sport 40001 --dport 443 --state ESTABLISHED -t 300 -m 256");
    must("conntrack -I -s 192.168.88.11 -d 192.0.2.10 -p udp --sport 40002 --dport 5060 -t 300 -m 512");
    must("conntrack -I -s fd00:88::10 -d 2001:db8:ff::10 -p tcp --sport 40003 --dport 443 --state ESTABLISHED -t 300 -m 256");
    must("conntrack -I -s 192.168.88.12 -d 192.0.2.10 -p tcp --sport 40004 --dport 443 --state ESTABLISHED -t 300 -m 0");
    std::vector<PacketKey> seen;
    auto ct = open_ct();
    auto counts = ct->count(0x3f00, {}, [&](const PacketKey& k) -> std::optional<size_t> {
        seen.push_back(k);
        return k.dport == 443 ? std::optional<size_t>(7) : std::nullopt;
    });
    REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
    CHECK(counts->by_mark == std::map<uint32_t, unsigned>{{0x100, 2}, {0x200, 1}});
    CHECK(counts->by_group == std::map<size_t, unsigned>{{7, 2}});  // the unmarked one is nobody's
    REQUIRE(seen.size() == 3);
    std::sort(seen.begin(), seen.end(), [](const PacketKey& a, const PacketKey& b) { return a.sport < b.sport; });
    CHECK(seen[0].family == Family::V4);
    CHECK(str(seen[0].src) == "192.168.88.10");
    CHECK(str(seen[0].dst) == "192.0.2.10");
    CHECK(seen[0].proto == IPPROTO_TCP);
    CHECK(seen[0].dport == 443);
    CHECK(seen[1].proto == IPPROTO_UDP);
    CHECK(seen[1].dport == 5060);
    CHECK(seen[2].family == Family::V6);
    CHECK(str(seen[2].src) == "fd00:88::10");
    CHECK(str(seen[2].dst) == "2001:db8:ff::10");
    CHECK(seen[2].sport == 40003);
}

TEST_CASE("count_by_mark leaves out ICMP and ICMPv6 echoes with the given identifiers (the daemon's probes)") {
    test::enter_fresh_netns();
    insert(0x100);
    for (int id : {4242, 4243, 77})
        must("conntrack -I -s 203.0.113.2 -d 192.0.2.53 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id " +
             std::to_string(id) + " -t 30 -m " + std::to_string(0x100));
    for (int id : {4244, 78})
        must("conntrack -I -s 2001:db8:1::2 -d 2001:db8:ff::53 -p icmpv6 --icmpv6-type 128 --icmpv6-code 0 "
             "--icmpv6-id " + std::to_string(id) + " -t 30 -m " + std::to_string(0x100));
    auto ct = open_ct();
    auto all = ct->count_by_mark(0x3f00);
    REQUIRE_MESSAGE(all.has_value(), all.error().message);
    CHECK(*all == std::map<uint32_t, unsigned>{{0x100, 6}});
    auto without = ct->count_by_mark(0x3f00, ProbeFlows(std::set<uint16_t>{4242, 4243, 4244}));
    REQUIRE_MESSAGE(without.has_value(), without.error().message);
    CHECK(*without == std::map<uint32_t, unsigned>{{0x100, 3}});  // the TCP entry, ids 77 and 78
}

TEST_CASE("count_by_mark leaves out echoes to an ICMP probe target whatever their identifier (an earlier run's probes)") {
    test::enter_fresh_netns();
    for (int id : {11, 12})  // identifiers of a run that is gone
        must("conntrack -I -s 203.0.113.2 -d 192.0.2.53 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id " +
             std::to_string(id) + " -t 30 -m 256");
    must("conntrack -I -s 2001:db8:1::2 -d 2001:db8:ff::53 -p icmpv6 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 13 "
         "-t 30 -m 256");
    must("conntrack -I -s 192.168.88.10 -d 192.0.2.99 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id 14 -t 30 -m 256");
    ProbeFlows probes;
    probes.icmp_targets = {*parse_ip("192.0.2.53"), *parse_ip("2001:db8:ff::53")};
    auto ct = open_ct();
    auto counts = ct->count_by_mark(0x3f00, probes);
    REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
    CHECK(*counts == std::map<uint32_t, unsigned>{{0x100, 1}});  // the LAN host's ping elsewhere
}

TEST_CASE("count_by_mark counts open connections: a TCP entry in TIME_WAIT or CLOSE has ended") {
    test::enter_fresh_netns();
    must("conntrack -I -s 192.168.88.10 -d 192.0.2.10 -p tcp --sport 40001 --dport 8080 --state ESTABLISHED -t 30 -m 256");
    must("conntrack -I -s 192.168.88.10 -d 192.0.2.10 -p tcp --sport 40002 --dport 8080 --state TIME_WAIT -t 30 -m 256");
    must("conntrack -I -s 192.168.88.10 -d 192.0.2.10 -p tcp --sport 40003 --dport 8080 --state CLOSE -t 30 -m 256");
    must("conntrack -I -s 192.168.88.10 -d 192.0.2.10 -p tcp --sport 40004 --dport 8080 --state FIN_WAIT -t 30 -m 256");
    auto ct = open_ct();
    auto counts = ct->count_by_mark(0x3f00);
    REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
    CHECK(*counts == std::map<uint32_t, unsigned>{{0x100, 2}});  // ESTABLISHED and FIN_WAIT
}

TEST_CASE("count_by_mark leaves out the TCP and DNS probes' flows (protocol, target, port)") {
    test::enter_fresh_netns();
    must("conntrack -I -s 203.0.113.2 -d 192.0.2.80 -p tcp --sport 40001 --dport 443 --state ESTABLISHED -t 30 -m 256");
    must("conntrack -I -s 203.0.113.2 -d 192.0.2.80 -p tcp --sport 40002 --dport 80 --state ESTABLISHED -t 30 -m 256");
    must("conntrack -I -s 203.0.113.2 -d 192.0.2.53 -p udp --sport 40003 --dport 53 -t 30 -m 256");
    must("conntrack -I -s 203.0.113.2 -d 192.0.2.54 -p udp --sport 40004 --dport 53 -t 30 -m 256");
    must("conntrack -I -s 2001:db8:1::2 -d 2001:db8:ff::53 -p udp --sport 40005 --dport 53 -t 30 -m 256");
    ProbeFlows probes;
    probes.sockets.insert({IPPROTO_TCP, *parse_ip("192.0.2.80"), 443});
    probes.sockets.insert({IPPROTO_UDP, *parse_ip("192.0.2.53"), 53});
    probes.sockets.insert({IPPROTO_UDP, *parse_ip("2001:db8:ff::53"), 53});
    auto ct = open_ct();
    auto counts = ct->count_by_mark(0x3f00, probes);
    REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
    CHECK(*counts == std::map<uint32_t, unsigned>{{0x100, 2}});  // port 80, and the other DNS server
}

TEST_CASE("delete_by_mark deletes exactly the matching IPv4 entries") {
    test::enter_fresh_netns();
    for (int i = 0; i < 3; ++i) insert(0x100);
    for (int i = 0; i < 2; ++i) insert(0x200);
    for (int i = 0; i < 2; ++i) insert(0x4100);
    insert(0x4000);
    insert(0x300);  // shares a bit with 0x100 but is another WAN
    insert(0);
    insert(0x100, true);
    auto ct = open_ct();

    auto deleted = ct->delete_by_mark(Family::V4, 0x100, 0x3f00);
    REQUIRE_MESSAGE(deleted.has_value(), deleted.error().message);
    CHECK(*deleted == 5);
    CHECK(listed(0x100) == 0);
    CHECK(listed(0x4100) == 0);
    CHECK(listed(0x200) == 2);
    CHECK(listed(0x300) == 1);
    CHECK(listed(0x4000) == 1);
    CHECK(listed(0) == 1);
    CHECK(listed(0x100, "ipv6") == 1);  // the kernel's flush honours the family

    auto again = ct->delete_by_mark(Family::V4, 0x100, 0x3f00);
    REQUIRE(again.has_value());
    CHECK(*again == 0);

    // A mark outside the mask matches nothing; mark 0 would match everything unmarked.
    auto outside = ct->delete_by_mark(Family::V4, 0x4000, 0x3f00);
    REQUIRE(outside.has_value());
    CHECK(*outside == 0);
    CHECK(listed(0x4000) == 1);
    auto zero = ct->delete_by_mark(Family::V4, 0, 0x3f00);
    CHECK_FALSE(zero.has_value());
    CHECK(listed(0) == 1);

    auto counts = ct->count_by_mark(0x3f00);
    REQUIRE(counts.has_value());
    CHECK(*counts == std::map<uint32_t, unsigned>{{0x100, 1}, {0x200, 2}, {0x300, 1}});  // 0x100: the IPv6 one
}

TEST_CASE("a table bigger than one dump datagram is counted and deleted in full") {
    test::enter_fresh_netns();
    // Hundreds of entries span several 32 KiB dump datagrams.
    must("for i in $(seq 1 400); do "
         "conntrack -I -s 192.168.88.$((i % 200 + 1)) -d 192.0.2.$((i / 200 + 1)) -p udp --sport $((20000 + i)) "
         "--dport 53 -t 300 -m $(( (i % 2 + 1) * 256 )) >/dev/null 2>&1 || exit 1; done");
    auto ct = open_ct();
    auto counts = ct->count_by_mark(0x3f00);
    REQUIRE(counts.has_value());
    CHECK(*counts == std::map<uint32_t, unsigned>{{0x100, 200}, {0x200, 200}});
    auto deleted = ct->delete_by_mark(Family::V4, 0x200, 0x3f00);
    REQUIRE(deleted.has_value());
    CHECK(*deleted == 200);
    CHECK(listed(0x200) == 0);
    CHECK(listed(0x100) == 200);
}

TEST_CASE("delete_by_mark(IPv6) deletes the IPv6 entries of that mark and leaves IPv4 ones of the same mark") {
    test::enter_fresh_netns();
    for (int i = 0; i < 3; ++i) insert(0x100, true);
    insert(0x4100, true);  // a foreign bit besides ours: still this WAN
    for (int i = 0; i < 2; ++i) insert(0x200, true);
    for (int i = 0; i < 2; ++i) insert(0x100);
    insert(0x200);
    auto ct = open_ct();

    auto deleted = ct->delete_by_mark(Family::V6, 0x100, 0x3f00);
    REQUIRE_MESSAGE(deleted.has_value(), deleted.error().message);
    CHECK(*deleted == 4);
    CHECK(listed(0x100, "ipv6") == 0);
    CHECK(listed(0x4100, "ipv6") == 0);
    CHECK(listed(0x200, "ipv6") == 2);
    CHECK(listed(0x100) == 2);  // the IPv4 connections of the same WAN stay
    CHECK(listed(0x200) == 1);

    // And the other way round: IPv4 of 0x200 goes, IPv6 of 0x200 stays.
    auto v4 = ct->delete_by_mark(Family::V4, 0x200, 0x3f00);
    REQUIRE(v4.has_value());
    CHECK(*v4 == 1);
    CHECK(listed(0x200) == 0);
    CHECK(listed(0x200, "ipv6") == 2);
    CHECK(listed(0x100) == 2);

    auto again = ct->delete_by_mark(Family::V6, 0x100, 0x3f00);
    REQUIRE(again.has_value());
    CHECK(*again == 0);
    CHECK_FALSE(ct->delete_by_mark(Family::V6, 0, 0x3f00).has_value());
    CHECK(listed(0x200, "ipv6") == 2);
}

TEST_CASE("IPv6 connections marked by nftables, as the data plane marks them, are flushed per family") {
    test::enter_fresh_netns();
    // A client namespace behind a veth; this namespace forwards nothing, it answers: every
    // connection to it gets the ct mark of the interface it came in on, as a WAN's inbound does.
    std::string peer = "ct-" + std::to_string(getpid());
    must("ip netns add " + peer);
    struct Cleanup {
        std::string name;
        ~Cleanup() { test::run("ip netns del " + name); }
    } cleanup{peer};
    must("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    must("ip netns exec " + peer + " sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    must("ip link add wan1 type veth peer name up1 netns " + peer);
    must("ip addr add 2001:db8:1::2/64 dev wan1");
    must("ip addr add 203.0.113.2/24 dev wan1");
    must("ip link set wan1 up");
    must("ip netns exec " + peer + " ip addr add 2001:db8:1::1/64 dev up1");
    must("ip netns exec " + peer + " ip addr add 203.0.113.1/24 dev up1");
    must("ip netns exec " + peer + " ip link set up1 up");
    must("echo 'table inet t { chain pre { type filter hook prerouting priority -150; "
         "ct state new iifname \"wan1\" ct mark set 0x100; }; }' | nft -f -");
    // UDP "connections" toward us: each source port is one conntrack entry (NEW, then kept).
    for (int port = 40000; port < 40003; ++port) {
        must("ip netns exec " + peer + " bash -c 'echo x > /dev/udp/2001:db8:1::2/" + std::to_string(port) + "' || true");
        must("ip netns exec " + peer + " bash -c 'echo x > /dev/udp/203.0.113.2/" + std::to_string(port) + "' || true");
    }
    auto ct = open_ct();
    auto counts = ct->count_by_mark(0x3f00);
    REQUIRE(counts.has_value());
    CHECK(*counts == std::map<uint32_t, unsigned>{{0x100, 6}});  // neighbour discovery is untracked
    CHECK(listed(0x100, "ipv6") == 3);
    CHECK(listed(0x100) == 3);

    auto deleted = ct->delete_by_mark(Family::V6, 0x100, 0x3f00);
    REQUIRE(deleted.has_value());
    CHECK(*deleted == 3);
    CHECK(listed(0x100, "ipv6") == 0);
    CHECK(listed(0x100) == 3);
}
