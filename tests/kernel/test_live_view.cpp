// The live check's eyes against the real kernel: the system view (links, addresses, the main
// table's foreign default routes), the neighbour table, and ARP / neighbour solicitations sent
// on the wire to a gateway namespace that answers, and to addresses nobody holds.
#include "netlink/system_view.hpp"
#include "probe/neighbour_solicit.hpp"
#include "tests/kernel/prober_harness.hpp"

using namespace prober_test;

namespace {

// wanA 203.0.113.2/24 and 2001:db8:1::2/64 to the peer's gw 203.0.113.1/24, 2001:db8:1::1/64.
int wired(const Peer& peer) {
    enter_router();
    must("ip link add wanA type veth peer name gw netns " + peer.name());
    must("ip addr add 203.0.113.2/24 dev wanA");
    must("ip -6 addr add 2001:db8:1::2/64 dev wanA nodad");
    must("ip link set wanA up");
    peer.sh("ip addr add 203.0.113.1/24 dev gw");
    peer.sh("ip -6 addr add 2001:db8:1::1/64 dev gw nodad");
    peer.sh("ip link set gw up");
    // IPv6 on a veth starts once the carrier event is through (linkwatch: up to a second);
    // until then the peer ignores solicitations.
    must("for i in $(seq 50); do ping -6 -c 1 -W 0.1 2001:db8:1::1 >/dev/null && exit 0; done; exit 1");
    return int(if_nametoindex("wanA"));
}

IpAddr ip(const char* text) { return *parse_ip(text); }

}  // namespace

TEST_CASE("the system view: links with their subnets, foreign default routes lowest metric first, not ours") {
    Peer peer("view");
    int ifindex = wired(peer);
    must("ip link add ptp0 type veth peer name ptp1");  // down, with a point-to-point address
    must("ip addr add 10.64.0.7 peer 10.64.0.1 dev ptp0");
    must("ip route add default via 203.0.113.1 dev wanA proto dhcp metric 100");
    must("ip route add default via 203.0.113.1 dev wanA proto static metric 50");
    must("ip route add default via 203.0.113.1 dev wanA proto 87 metric 10");  // ours: not foreign

    auto view = read_system_view();
    REQUIRE_MESSAGE(view, view.error().message);
    REQUIRE(view->links.count("wanA"));
    const LinkView& wan = view->links.at("wanA");
    CHECK(wan.ifindex == ifindex);
    CHECK(wan.admin_up);
    CHECK_FALSE(wan.point_to_point);
    bool v4 = false, v6 = false;
    for (const auto& a : wan.addresses) {
        if (a.address == ip("203.0.113.2")) v4 = a.prefix_len == 24 && !a.peer;
        if (a.address == ip("2001:db8:1::2")) v6 = a.prefix_len == 64;
    }
    CHECK(v4);
    CHECK(v6);
    const LinkView& ptp = view->links.at("ptp0");
    CHECK_FALSE(ptp.admin_up);
    REQUIRE(ptp.addresses.size() == 1);
    CHECK(ptp.addresses[0].address == ip("10.64.0.7"));
    CHECK(ptp.addresses[0].prefix_len == 32);
    CHECK(ptp.addresses[0].peer == ip("10.64.0.1"));

    REQUIRE(view->main_defaults.size() == 2);
    CHECK(view->main_defaults[0].description == "default via 203.0.113.1 dev wanA proto static metric 50");
    CHECK(view->main_defaults[1].description == "default via 203.0.113.1 dev wanA proto dhcp metric 100");
    CHECK(view->main_defaults[0].interface == "wanA");
    CHECK(view->main_defaults[0].gateway == ip("203.0.113.1"));
    CHECK(view->main_defaults[0].family == Family::V4);
}

TEST_CASE("ARP and neighbour solicitations on the wire: the gateway answers, an empty address does not") {
    Peer peer("arp");
    int ifindex = wired(peer);
    auto ask = [&](const char* gateway) {
        SolicitRequest r{"wanA", ifindex, ip(gateway), ip("203.0.113.2"), 2, std::chrono::milliseconds(200)};
        if (family_of(r.gateway) == Family::V6) r.source.reset();
        auto answered = solicit_neighbour(r);
        REQUIRE_MESSAGE(answered, answered.error().message);
        return *answered;
    };
    CHECK(ask("203.0.113.1"));
    auto t0 = Clock::now();
    CHECK_FALSE(ask("203.0.113.11"));
    CHECK(Clock::now() - t0 >= 350ms);  // both tries waited for an answer
    CHECK(ask("2001:db8:1::1"));
    CHECK_FALSE(ask("2001:db8:1::11"));
    // The gateway's link-local address, as router advertisements give it.
    std::string out = peer.sh("ip -6 -o addr show dev gw scope link");
    std::smatch m;
    REQUIRE(std::regex_search(out, m, std::regex("inet6 (fe80::[0-9a-f:]+)/64")));
    CHECK(ask(m[1].str().c_str()));
    // Nothing learnt by the kernel from what it did not ask itself: the check changes nothing.
    CHECK(must("ip neigh show dev wanA 203.0.113.11").empty());

    SolicitRequest missing{"nosuch0", 9999, ip("203.0.113.1"), std::nullopt, 1, std::chrono::milliseconds(100)};
    auto err = solicit_neighbour(missing);
    REQUIRE_FALSE(err);
    CHECK(err.error().message.find("nosuch0") != std::string::npos);
}

TEST_CASE("the neighbour table: a gateway that answered, one that does not, one never asked") {
    Peer peer("neigh");
    int ifindex = wired(peer);
    run("ping -c 1 -W 1 203.0.113.1");
    run("ping -c 1 -W 0.3 203.0.113.11");  // nobody: INCOMPLETE, then FAILED
    auto state = [&](const char* a) {
        auto s = neighbour_state(ifindex, ip(a));
        REQUIRE_MESSAGE(s, s.error().message);
        return *s;
    };
    CHECK(state("203.0.113.1") == NeighbourAnswer::Answers);
    CHECK(state("203.0.113.11") == NeighbourAnswer::Silent);
    CHECK(state("203.0.113.99") == NeighbourAnswer::Unknown);
    run("ping -6 -c 1 -W 0.3 2001:db8:1::11");
    CHECK(state("2001:db8:1::11") == NeighbourAnswer::Silent);
}
