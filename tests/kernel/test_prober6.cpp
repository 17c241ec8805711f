// The ICMPv6 prober against the real kernel (tests/kernel/prober_harness.hpp): link-local and
// global targets, a WAN's two families probed apart, binding and marks, the socket filter.
#include "tests/kernel/prober_harness.hpp"

using namespace prober_test;

namespace {

// IPv6 on the link from `dev` to `peer` ("gw"): router side 2001:db8:NET::2/64, gateway fe80::1
// and 2001:db8:NET::1/64; `targets` on the peer's lo.
void add_ipv6(const Peer& peer, const std::string& dev, const std::string& net, const std::vector<std::string>& targets) {
    must("ip addr add 2001:db8:" + net + "::2/64 dev " + dev);
    peer.sh("ip addr add fe80::1/64 dev gw");
    peer.sh("ip addr add 2001:db8:" + net + "::1/64 dev gw");
    for (const auto& t : targets) peer.sh("ip addr add " + t + "/128 dev lo");
    // Right after the link comes up, the first neighbour solicitation is answered only after
    // about a second (measured on 6.18); wait for it here, not in the probe rounds.
    must("ping -6 -q -c 1 -W 3 fe80::1%" + dev);
}

// A new link carrying IPv6 only.
void link6_to(const Peer& peer, const std::string& dev, const std::string& net, const std::vector<std::string>& targets) {
    must("ip link add " + dev + " type veth peer name gw netns " + peer.name());
    must("ip link set " + dev + " up");
    peer.sh("ip link set lo up");
    peer.sh("ip link set gw up");
    add_ipv6(peer, dev, net, targets);
}

void drop_echo6(const Peer& peer, const std::string& match = "") {
    peer.nft("table inet probe_drop { chain input { type filter hook input priority 0; icmpv6 type echo-request " +
             match + " drop; }; }");
}

void count_identifier6(const Peer& peer, const std::string& counter, uint16_t identifier) {
    peer.nft("table inet probe_count6 { counter " + counter + " {}; chain input { type filter hook input priority -10; "
             "icmpv6 type echo-request icmpv6 id " + std::to_string(identifier) + " counter name " + counter + "; }; }");
}

uint64_t counted6(const Peer& peer, const std::string& counter) {
    std::string out = peer.sh("nft list counter inet probe_count6 " + counter);
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(out, m, std::regex("packets ([0-9]+)")), out);
    return std::stoull(m[1]);
}

}  // namespace

TEST_CASE("ICMPv6 rounds to a link-local gateway and a global target succeed; losing them fails rounds") {
    enter_router();
    Peer peer("a");
    link6_to(peer, "wanA", "1", {"2001:db8:ff::53"});
    must("ip -6 route add default via fe80::1 dev wanA");

    Harness h;
    h.configure(v6("a"), "wanA", 0x100, {"fe80::1", "2001:db8:ff::53"}, 100ms, 300ms);
    REQUIRE(h.wait_rounds(v6("a"), true, 5, 2000ms, 0));
    auto good = h.of(v6("a"));
    check_in_order(good);
    for (const auto& s : good) {
        CAPTURE(s.outcome.round);
        CAPTURE(s.outcome.problem);
        CHECK(s.outcome.success);
        CHECK(s.outcome.sent == 2);
        CHECK(s.outcome.answered == 2);
        REQUIRE(s.outcome.rtt.has_value());
        CHECK(s.outcome.rtt->count() < 50000);
    }
    CHECK(h.of(v4("a")).empty());
    auto stats = h.prober->stats(v6("a"));
    REQUIRE(stats.rtt_ms.has_value());
    CHECK(stats.loss_pct == 0);
    CHECK(h.prober->stats(v4("a")).sent == 0);

    // The global target stops answering: one of two still counts (min_targets_up 1).
    drop_echo6(peer, "ip6 daddr 2001:db8:ff::53");
    h.run_for(450ms);  // rounds in flight finish
    size_t mark = h.seen.size();
    REQUIRE(h.wait_rounds(v6("a"), true, 3, 1000ms, mark));
    for (const auto& s : h.of(v6("a"), mark)) {
        CHECK(s.outcome.sent == 2);
        CHECK(s.outcome.answered == 1);
    }
    peer.stop_dropping();

    // Everything dropped: rounds fail, and say nothing went wrong sending.
    drop_echo6(peer);
    h.run_for(450ms);
    mark = h.seen.size();
    REQUIRE(h.wait_rounds(v6("a"), false, 3, 1500ms, mark));
    for (const auto& s : h.of(v6("a"), mark)) {
        CHECK_FALSE(s.outcome.success);
        CHECK(s.outcome.answered == 0);
        CHECK(s.outcome.problem.empty());
    }
    CHECK(h.prober->stats(v6("a")).lost >= 3);
}

TEST_CASE("a WAN's IPv4 and IPv6 are probed apart: IPv6 dies, IPv4 keeps answering; retain drops one family") {
    enter_router();
    Peer peer("a");
    link_to(peer, "wanA", "203.0.113", {"192.0.2.53"});
    add_ipv6(peer, "wanA", "1", {"2001:db8:ff::53"});  // dual-stack link
    must("ip route add default via 203.0.113.1 dev wanA");
    must("ip -6 route add default via fe80::1 dev wanA");

    Harness h;
    h.configure(v4("a"), "wanA", 0x100, {"192.0.2.53"}, 100ms, 300ms);
    h.configure(v6("a"), "wanA", 0x100, {"2001:db8:ff::53"}, 100ms, 300ms);
    REQUIRE(h.prober->identifier(v4("a")).has_value());
    REQUIRE(h.prober->identifier(v6("a")).has_value());
    CHECK(*h.prober->identifier(v4("a")) != *h.prober->identifier(v6("a")));
    REQUIRE(h.wait_rounds(v4("a"), true, 3, 1000ms, 0));
    REQUIRE(h.wait_rounds(v6("a"), true, 3, 1000ms, 0));

    drop_echo6(peer);
    h.run_for(450ms);
    size_t mark = h.seen.size();
    REQUIRE(h.wait_rounds(v6("a"), false, 4, 1500ms, mark));
    CHECK(h.count(v6("a"), true, mark) == 0);
    CHECK(h.count(v4("a"), false, mark) == 0);
    CHECK(h.count(v4("a"), true, mark) >= 3);
    CHECK(h.prober->stats(v4("a")).loss_pct == 0);
    CHECK(h.prober->stats(v6("a")).loss_pct > 0);

    h.prober->retain({v4("a")});
    CHECK_FALSE(h.prober->identifier(v6("a")).has_value());
    mark = h.seen.size();
    h.run_for(300ms);
    CHECK(h.of(v6("a"), mark).empty());
    CHECK(h.of(v4("a"), mark).size() >= 2);
}

TEST_CASE("IPv6 probes leave through their WAN by binding and mark; fe80::1 is reached on the bound link") {
    enter_router();
    Peer a("a"), b("b");
    link6_to(a, "wanA", "1", {"2001:db8:ff::53"});
    link6_to(b, "wanB", "2", {"2001:db8:ff::53"});
    // Main: everything via A. Only WAN B's table (by mark) knows B.
    must("ip -6 route add default via fe80::1 dev wanA");
    must("ip -6 route add default via fe80::1 dev wanA table 101");
    must("ip -6 route add default via fe80::1 dev wanB table 102");
    must("ip -6 rule add fwmark 0x100/0x3f00 lookup 101 priority 20001");
    must("ip -6 rule add fwmark 0x200/0x3f00 lookup 102 priority 20002");

    Harness h;
    h.configure(v6("a"), "wanA", 0x100, {"2001:db8:ff::53", "fe80::1"}, 100ms, 300ms);
    h.configure(v6("b"), "wanB", 0x200, {"2001:db8:ff::53", "fe80::1"}, 100ms, 300ms);
    uint16_t id_a = *h.prober->identifier(v6("a")), id_b = *h.prober->identifier(v6("b"));
    CHECK(id_a != id_b);
    count_identifier6(a, "from_a", id_a);
    count_identifier6(b, "from_b", id_b);
    a.nft("table inet probe_count6 { counter strays {}; chain input { icmpv6 id " + std::to_string(id_b) +
          " counter name strays; }; }");
    b.nft("table inet probe_count6 { counter strays {}; chain input { icmpv6 id " + std::to_string(id_a) +
          " counter name strays; }; }");
    h.run_for(800ms);
    auto rounds_a = h.of(v6("a")), rounds_b = h.of(v6("b"));
    REQUIRE(rounds_a.size() >= 6);
    REQUIRE(rounds_b.size() >= 6);
    for (const auto& s : rounds_b) {
        CAPTURE(s.outcome.problem);
        CHECK(s.outcome.success);
        CHECK(s.outcome.answered == 2);
    }
    CHECK(h.count(v6("a"), false) == 0);
    // Two probes per round; the counters started after the first round or two.
    uint64_t at_b = counted6(b, "from_b");
    CHECK(at_b + 6 >= 2 * rounds_b.size());
    CHECK(at_b <= 2 * rounds_b.size() + 2);
    CHECK(counted6(a, "from_a") >= 8);
    CHECK(counted6(a, "strays") == 0);
    CHECK(counted6(b, "strays") == 0);

    // Without its mark, B's global probes would find no route out of wanB: the kernel's strict
    // interface lookup (RT6_LOOKUP_F_IFACE) falls through to unreachable instead of leaking via A.
    h.configure(v6("b"), "wanB", 0x300, {"2001:db8:ff::53"}, 100ms, 300ms);
    h.run_for(450ms);
    size_t mark = h.seen.size();
    REQUIRE(h.wait_rounds(v6("b"), false, 3, 1500ms, mark));
    auto last = h.of(v6("b")).back().outcome;
    CHECK(last.sent == 0);
    CHECK(last.problem == "sendto 2001:db8:ff::53 via wanB: Network is unreachable");
    CHECK(counted6(a, "strays") == 0);
}

TEST_CASE("the ICMPv6 socket filter reads the ICMPv6 header at offset 0: our identifier passes, another does not") {
    enter_router();
    Peer peer("a");
    link6_to(peer, "wanA", "1", {});

    auto open_raw = [](const std::vector<sock_filter>* program) {
        int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
        REQUIRE(fd >= 0);
        REQUIRE(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "wanA", 4) == 0);
        if (program) {
            sock_fprog fprog{static_cast<unsigned short>(program->size()), const_cast<sock_filter*>(program->data())};
            REQUIRE(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) == 0);
        }
        return fd;
    };
    // Echo replies with `id` that reach `fd` within `ms` (other ICMPv6, e.g. neighbour discovery,
    // is skipped here, so only the filter decides).
    auto replies = [](int fd, uint16_t id, int ms) {
        int n = 0;
        auto deadline = Clock::now() + std::chrono::milliseconds(ms);
        while (Clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            poll(&p, 1, int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()) + 1);
            uint8_t buf[2048];
            sockaddr_in6 from{};
            socklen_t len = sizeof from;
            ssize_t got;
            while ((got = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len)) > 0) {
                Ipv6 source;
                std::copy(std::begin(from.sin6_addr.s6_addr), std::end(from.sin6_addr.s6_addr), source.bytes.begin());
                auto reply = icmp::parse_echo_reply6(std::span<const uint8_t>(buf, size_t(got)), source);
                if (reply && reply->identifier == id && str(reply->source) == "fe80::1") ++n;
                len = sizeof from;
            }
        }
        return n;
    };
    auto ping = [](int fd, uint16_t id, uint16_t seq) {
        auto packet = icmp::build_echo_request6(id, seq);
        sockaddr_in6 to{};
        to.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "fe80::1", &to.sin6_addr);
        to.sin6_scope_id = if_nametoindex("wanA");
        REQUIRE(sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
                ssize_t(packet.size()));
    };

    const uint16_t ours = 0x5151, theirs = 0x5152;
    auto program = icmp::echo_reply_filter6(ours);
    int filtered = open_raw(&program);
    int unfiltered = open_raw(nullptr);  // the control: the replies do arrive
    ping(filtered, ours, 1);
    CHECK(replies(filtered, ours, 300) == 1);
    ping(filtered, theirs, 2);
    CHECK(replies(unfiltered, theirs, 300) >= 1);
    CHECK(replies(filtered, theirs, 100) == 0);
    ping(filtered, ours, 3);
    CHECK(replies(filtered, ours, 300) == 1);
    close(filtered);
    close(unfiltered);
}
