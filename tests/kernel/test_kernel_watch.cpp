// KernelWatch against the real kernel: links, addresses and default routes changed with `ip`
// in a fresh network namespace, followed through notifications only.
#include <doctest/doctest.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "netlink/kernel_watch.hpp"
#include "tests/kernel/netns.hpp"

using namespace wb;
using wb::test::must;

namespace {

int ifindex(const std::string& name) { return int(if_nametoindex(name.c_str())); }
Ipv4 ip(const char* text) { return *Ipv4::parse(text); }

struct Watcher {
    std::unique_ptr<KernelWatch> kw;
    KernelChanges seen;  // everything reported since the last reset()

    Watcher() {
        auto opened = KernelWatch::open();
        REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
        kw = std::move(*opened);
    }
    const KernelSnapshot& snap() const { return kw->snapshot(); }
    void reset() { seen = KernelChanges{}; }

    void process_once() {
        auto changes = kw->process();
        REQUIRE_MESSAGE(changes.has_value(), changes.error().message);
        seen.links.insert(seen.links.end(), changes->links.begin(), changes->links.end());
        seen.auto_gateways = seen.auto_gateways || changes->auto_gateways;
        seen.own_routes = seen.own_routes || changes->own_routes;
        seen.resynced = seen.resynced || changes->resynced;
    }

    // Processes notifications until `holds` is true of the snapshot (linkwatch batches carrier
    // events up to a second) or the timeout passes.
    bool wait_for(const std::function<bool(const KernelSnapshot&)>& holds, int timeout_ms = 3000) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            process_once();
            if (holds(snap())) return true;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd p{kw->fd(), POLLIN, 0};
            poll(&p, 1, int(left.count()));
        }
    }
    // Processes whatever arrives within `ms`.
    void settle(int ms = 200) {
        wait_for([](const KernelSnapshot&) { return false; }, ms);
    }
    bool saw_link(const std::string& name) const {
        return std::find(seen.links.begin(), seen.links.end(), name) != seen.links.end();
    }
};

void make_wans() {
    test::enter_fresh_netns();
    must("ip link add ether1 type veth peer name isp1");
    must("ip link add ether2 type veth peer name isp2");
    for (const char* dev : {"ether1", "ether2", "isp1", "isp2"}) must(std::string("ip link set ") + dev + " up");
    must("ip addr add 203.0.113.2/24 dev ether1");
    must("ip addr add 198.51.100.2/24 dev ether2");
}

std::optional<Ipv4> auto_gateway(const KernelSnapshot& s, const std::string& dev) {
    auto it = s.auto_gateways.find(ifindex(dev));
    if (it == s.auto_gateways.end()) return std::nullopt;
    return it->second;
}

}  // namespace

TEST_CASE("the first snapshot holds links, addresses and the system's default routes") {
    make_wans();
    must("ip route add default via 203.0.113.1 dev ether1 proto dhcp metric 100");
    must("ip route add default via 203.0.113.9 dev ether1 proto dhcp metric 300");
    must("ip route add default via 198.51.100.254 dev ether2 proto static metric 200");
    must("ip route add default via 198.51.100.1 dev ether2 proto 87 metric 0");  // ours: not "auto"
    must("ip route add default metric 5 nexthop via 203.0.113.5 dev ether1 nexthop via 198.51.100.5 dev ether2");
    must("ip route add default via 203.0.113.77 dev ether1 table 101 proto dhcp");  // not main
    Watcher w;
    const LinkState* e1 = w.snap().link("ether1");
    REQUIRE(e1);
    CHECK(e1->ifindex == ifindex("ether1"));
    CHECK(e1->admin_up);
    CHECK(e1->carrier);
    CHECK_FALSE(e1->point_to_point);
    CHECK(e1->addresses == std::vector<Ipv4>{ip("203.0.113.2")});
    REQUIRE(w.snap().link("lo"));
    CHECK(w.snap().link("lo")->addresses == std::vector<Ipv4>{ip("127.0.0.1")});
    CHECK(w.snap().links.size() == 5);
    CHECK(w.snap().auto_gateways.size() == 2);
    CHECK(auto_gateway(w.snap(), "ether1") == ip("203.0.113.1"));
    CHECK(auto_gateway(w.snap(), "ether2") == ip("198.51.100.254"));

    w.settle();
    CHECK_FALSE(w.seen.any());  // nothing happened after open()
}

TEST_CASE("links appear, lose carrier, go down and disappear") {
    make_wans();
    Watcher w;
    must("ip link add ether4 type veth peer name isp4");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether4") && s.link("isp4"); }));
    CHECK(w.saw_link("ether4"));
    CHECK(w.saw_link("isp4"));
    CHECK_FALSE(w.snap().link("ether4")->admin_up);
    CHECK(w.snap().link("ether4")->ifindex == ifindex("ether4"));

    must("ip link set ether4 up");
    must("ip link set isp4 up");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether4")->carrier; }));
    CHECK(w.snap().link("ether4")->admin_up);

    w.reset();
    must("ip link set isp4 down");  // the peer: our side keeps admin up, loses carrier
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return !s.link("ether4")->carrier; }));
    CHECK(w.snap().link("ether4")->admin_up);
    CHECK(w.saw_link("ether4"));

    must("ip link set isp4 up");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether4")->carrier; }));
    must("ip link set ether4 down");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return !s.link("ether4")->admin_up; }));
    CHECK_FALSE(w.snap().link("ether4")->carrier);

    w.reset();
    must("ip link del ether4");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return !s.link("ether4") && !s.link("isp4"); }));
    CHECK(w.saw_link("ether4"));
    CHECK(w.saw_link("isp4"));
}

TEST_CASE("addresses are added and removed") {
    make_wans();
    Watcher w;
    must("ip addr add 10.1.1.1/24 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether1")->addresses.size() == 2; }));
    CHECK(w.snap().link("ether1")->addresses == std::vector<Ipv4>{ip("10.1.1.1"), ip("203.0.113.2")});
    CHECK(w.saw_link("ether1"));
    must("ip addr del 203.0.113.2/24 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether1")->addresses.size() == 1; }));
    CHECK(w.snap().link("ether1")->addresses == std::vector<Ipv4>{ip("10.1.1.1")});
    // Deleting a primary address takes its secondaries with it (without promote_secondaries).
    must("ip addr add 10.1.1.2/24 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether1")->addresses.size() == 2; }));
    must("ip addr del 10.1.1.1/24 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether1")->addresses.empty(); }));
    must("ip addr add 10.1.1.1/24 dev ether1");
    must("ip addr flush dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("ether1")->addresses.empty(); }));
}

TEST_CASE("auto gateways follow the system's default routes: added, replaced, removed") {
    make_wans();
    Watcher w;
    must("ip route add default via 203.0.113.1 dev ether1 proto dhcp metric 100");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway(s, "ether1") == ip("203.0.113.1"); }));
    CHECK(w.seen.auto_gateways);
    CHECK_FALSE(w.seen.own_routes);

    // A DHCP renewal with a new gateway replaces the route: no RTM_DELROUTE for the old one.
    w.reset();
    must("ip route replace default via 203.0.113.254 dev ether1 proto dhcp metric 100");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway(s, "ether1") == ip("203.0.113.254"); }));
    CHECK(w.snap().auto_gateways.size() == 1);

    must("ip route add default via 203.0.113.7 dev ether1 proto static metric 50");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway(s, "ether1") == ip("203.0.113.7"); }));
    must("ip route del default via 203.0.113.7 dev ether1 metric 50");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway(s, "ether1") == ip("203.0.113.254"); }));

    // Ours, other tables and multipath routes are not what "auto" follows.
    w.reset();
    must("ip route add default via 198.51.100.1 dev ether2 proto 87 metric 0");
    must("ip route add default via 198.51.100.9 dev ether2 table 102 proto dhcp");
    must("ip route add default metric 7 nexthop via 198.51.100.5 dev ether2 nexthop via 203.0.113.5 dev ether1");
    w.settle();
    CHECK(w.seen.own_routes);
    CHECK_FALSE(w.seen.auto_gateways);
    CHECK(w.snap().auto_gateways.size() == 1);

    w.reset();
    must("ip route del default via 203.0.113.254 dev ether1 metric 100");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.auto_gateways.empty(); }));
    CHECK(w.seen.auto_gateways);
}

TEST_CASE("two interfaces' defaults at one metric: replacing one keeps the other's gateway") {
    make_wans();
    Watcher w;
    // Two DHCP clients, one metric: the kernel lists ether2's route first.
    must("ip route add default via 198.51.100.1 dev ether2 proto dhcp metric 1024");
    must("ip route append default via 203.0.113.1 dev ether1 proto dhcp metric 1024");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.auto_gateways.size() == 2; }));
    // ether1's client renews with a new gateway (the kernel replaces the first route of that
    // metric, ether2's): each interface still has its own gateway.
    must("ip route replace default via 203.0.113.254 dev ether1 proto dhcp metric 1024");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway(s, "ether1") == ip("203.0.113.254"); }));
    w.settle();
    CHECK(auto_gateway(w.snap(), "ether2") == ip("198.51.100.1"));
}

TEST_CASE("own routes and rules, added or deleted behind our back, are reported") {
    make_wans();
    must("ip route add default via 198.51.100.1 dev ether2 table 102 proto 87");
    Watcher w;
    must("ip route del default table 102");
    REQUIRE(w.wait_for([&](const KernelSnapshot&) { return w.seen.own_routes; }));
    w.reset();
    must("ip rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto 87");
    REQUIRE(w.wait_for([&](const KernelSnapshot&) { return w.seen.own_routes; }));
    w.reset();
    must("ip rule del priority 20001");
    REQUIRE(w.wait_for([&](const KernelSnapshot&) { return w.seen.own_routes; }));
    w.reset();
    must("ip rule add priority 100 lookup 300 proto static");
    must("ip route add default via 198.51.100.1 dev ether2 table 102 proto static");
    w.settle();
    CHECK_FALSE(w.seen.own_routes);
}

TEST_CASE("routes the kernel flushes without a notification leave auto_gateways") {
    make_wans();
    must("ip addr add 203.0.113.3/24 dev ether1");
    must("ip route add default via 203.0.113.1 dev ether1 proto dhcp metric 100");
    must("ip route add default via 198.51.100.1 dev ether2 proto dhcp metric 101");
    must("ip route add default via 203.0.113.50 dev ether1 proto dhcp src 203.0.113.3 metric 50");
    Watcher w;
    CHECK(auto_gateway(w.snap(), "ether1") == ip("203.0.113.50"));
    CHECK(w.snap().auto_gateways.size() == 2);

    // The route's preferred source goes away: fib_sync_down_addr() drops it, silently.
    must("ip addr del 203.0.113.3/24 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway(s, "ether1") == ip("203.0.113.1"); }));
    CHECK(must("ip -4 route show default") ==
          "default via 203.0.113.1 dev ether1 proto dhcp metric 100 \n"
          "default via 198.51.100.1 dev ether2 proto dhcp metric 101 \n");
    CHECK(auto_gateway(w.snap(), "ether1") == ip("203.0.113.1"));

    // Admin down flushes every route through the device.
    w.reset();
    must("ip link set ether1 down");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return !auto_gateway(s, "ether1"); }));
    CHECK(w.seen.auto_gateways);
    CHECK(must("ip -4 route show default") == "default via 198.51.100.1 dev ether2 proto dhcp metric 101 \n");

    // The last address goes: the same.
    w.reset();
    must("ip addr flush dev ether2");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.auto_gateways.empty(); }));
    CHECK(must("ip -4 route show default") == "");
}

TEST_CASE("a renamed interface moves in the by-name map; a re-created one gets its new ifindex") {
    make_wans();
    Watcher w;
    int old_index = ifindex("ether1");
    must("ip link set ether1 down");
    must("ip link set ether1 name wan1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("wan1") && !s.link("ether1"); }));
    CHECK(w.saw_link("ether1"));
    CHECK(w.saw_link("wan1"));
    CHECK(w.snap().link("wan1")->ifindex == old_index);
    CHECK(w.snap().link("wan1")->addresses == std::vector<Ipv4>{ip("203.0.113.2")});

    w.reset();
    must("ip link del ether2");
    must("ip link add ether2 type veth peer name isp2");
    int new_index = ifindex("ether2");
    REQUIRE(w.wait_for([&](const KernelSnapshot& s) { return s.link("ether2") && s.link("ether2")->ifindex == new_index; }));
    CHECK(w.snap().link("ether2")->addresses.empty());
    CHECK_FALSE(w.snap().link("ether2")->admin_up);
    CHECK(w.saw_link("ether2"));
}

TEST_CASE("lost notifications (ENOBUFS) trigger a full re-dump") {
    make_wans();
    must("ip link add gone1 type veth peer name gone2");
    Watcher w;
    // A receive buffer far too small for the flood below.
    int tiny = 1;
    REQUIRE(setsockopt(w.kw->fd(), SOL_SOCKET, SO_RCVBUFFORCE, &tiny, sizeof tiny) == 0);
    must("(for i in $(seq 1 300); do echo \"addr add 10.7.$((i / 200)).$((i % 200 + 1))/32 dev lo\"; done; "
         "echo 'link del gone1'; echo 'route add default via 203.0.113.1 dev ether1 proto dhcp') | ip -batch -");
    int big = 8 << 20;
    REQUIRE(setsockopt(w.kw->fd(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) == 0);
    w.process_once();
    CHECK(w.seen.resynced);
    CHECK(w.seen.own_routes);
    CHECK(w.snap().link("lo")->addresses.size() == 301);
    CHECK_FALSE(w.snap().link("gone1"));
    CHECK_FALSE(w.snap().link("gone2"));
    CHECK(w.saw_link("gone1"));
    CHECK(auto_gateway(w.snap(), "ether1") == ip("203.0.113.1"));
    CHECK(w.seen.auto_gateways);

    // And it keeps following afterwards.
    w.reset();
    must("ip addr del 10.7.0.2/32 dev lo");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.link("lo")->addresses.size() == 300; }));
    CHECK_FALSE(w.seen.resynced);
}

TEST_CASE("refresh_counters re-reads byte counters without reporting a change") {
    make_wans();
    Watcher w;
    uint64_t tx_before = w.snap().link("ether1")->tx_bytes;
    uint64_t rx_before = w.snap().link("isp1")->rx_bytes;
    // Unanswered ARP requests for a missing gateway: bytes out of ether1, into isp1.
    test::run("ping -c 2 -i 0.2 -W 1 -I ether1 203.0.113.99");
    REQUIRE(w.kw->refresh_counters().is_ok());
    CHECK(w.snap().link("ether1")->tx_bytes > tx_before);
    CHECK(w.snap().link("isp1")->rx_bytes > rx_before);
    w.settle();
    CHECK(w.seen.links.empty());
}

TEST_CASE("a namespace without any route yet (no main table) can be watched") {
    test::enter_fresh_netns();
    Watcher w;
    REQUIRE(w.snap().link("lo"));
    CHECK(w.snap().auto_gateways.empty());
    must("ip link add ether1 type veth peer name isp1");
    must("ip link set ether1 up");
    must("ip link set isp1 up");
    must("ip addr add 203.0.113.2/24 dev ether1");
    must("ip route add default via 203.0.113.1 dev ether1 proto dhcp");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway(s, "ether1") == ip("203.0.113.1"); }));
    // Down flushes the routes; the re-read of a now empty table must not fail.
    must("ip link set ether1 down");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.auto_gateways.empty(); }));
}

// --- IPv6 ---

namespace {

Ipv6 ip6(const char* text) { return *Ipv6::parse(text); }

std::optional<Ipv6> auto_gateway6(const KernelSnapshot& s, const std::string& dev) {
    auto it = s.auto_gateways6.find(ifindex(dev));
    if (it == s.auto_gateways6.end()) return std::nullopt;
    return it->second;
}

// `ip -6 addr` about one address: "inet6 2001:db8:1::2/64 scope global tentative".
std::string address_line(const std::string& dev, const std::string& address) {
    return must("ip -6 -o addr show dev " + dev + " | grep -F ' " + address + "/' || true");
}

std::vector<Ipv6> addresses6(const KernelSnapshot& s, const std::string& dev) {
    const LinkState* link = s.link(dev);
    return link ? link->addresses6 : std::vector<Ipv6>{};
}

}  // namespace

TEST_CASE("a global IPv6 address counts once DAD is done; tentative, failed and link-local ones do not") {
    make_wans();
    must("ip addr add 2001:db8:2::2/64 dev ether2 nodad");
    Watcher w;
    CHECK(addresses6(w.snap(), "ether2") == std::vector<Ipv6>{ip6("2001:db8:2::2")});
    for (const auto& [name, link] : w.snap().links)
        for (const Ipv6& a : link.addresses6) {
            CAPTURE(name);
            CHECK_FALSE(a.link_local());
        }

    // Tentative first (about a second of DAD on a veth), then the same address again without the
    // flag: only then is it in the snapshot, and the link is reported changed.
    must("ip addr add 2001:db8:1::2/64 dev ether1");
    REQUIRE(address_line("ether1", "2001:db8:1::2").find("tentative") != std::string::npos);
    w.settle(100);
    CHECK(addresses6(w.snap(), "ether1").empty());
    w.reset();
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return !addresses6(s, "ether1").empty(); }));
    CHECK(addresses6(w.snap(), "ether1") == std::vector<Ipv6>{ip6("2001:db8:1::2")});
    CHECK(w.saw_link("ether1"));
    CHECK(address_line("ether1", "2001:db8:1::2").find("tentative") == std::string::npos);

    // Someone else on the link holds it already: DAD fails, the address never counts.
    must("ip addr add 2001:db8:1::7/64 dev isp1 nodad");
    must("ip addr add 2001:db8:1::7/64 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot&) {
        return address_line("ether1", "2001:db8:1::7").find("dadfailed") != std::string::npos;
    }));
    w.settle(100);
    CHECK(addresses6(w.snap(), "ether1") == std::vector<Ipv6>{ip6("2001:db8:1::2")});

    w.reset();
    must("ip addr del 2001:db8:1::2/64 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return addresses6(s, "ether1").empty(); }));
    CHECK(w.saw_link("ether1"));
    CHECK(w.snap().link("ether1")->addresses == std::vector<Ipv4>{ip("203.0.113.2")});  // IPv4 untouched
}

TEST_CASE("auto_gateways6 follows an RA default route, a new router, and the old one's removal") {
    make_wans();
    must("ip -6 route add default via fe80::1 dev ether1 proto ra");
    Watcher w;
    CHECK(auto_gateway6(w.snap(), "ether1") == ip6("fe80::1"));
    CHECK(w.snap().auto_gateways6.size() == 1);
    CHECK(w.snap().auto_gateways.empty());

    // The ISP's new router advertises: both routes exist, the new one is followed at once.
    must("ip -6 route append default via fe80::2 dev ether1 proto ra");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway6(s, "ether1") == ip6("fe80::2"); }));
    CHECK(w.seen.auto_gateways);
    // The old one expires: the new one stays.
    w.reset();
    must("ip -6 route del default via fe80::1 dev ether1");
    w.settle();
    CHECK(auto_gateway6(w.snap(), "ether1") == ip6("fe80::2"));
    CHECK_FALSE(w.seen.auto_gateways);
    REQUIRE(must("ip -6 route show default").find("fe80::1 ") == std::string::npos);

    // And once more the other way round: a third router, then the second one's route goes.
    must("ip -6 route append default via fe80::3 dev ether1 proto ra");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway6(s, "ether1") == ip6("fe80::3"); }));
    w.reset();
    must("ip -6 route del default via fe80::3 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway6(s, "ether1") == ip6("fe80::2"); }));
    CHECK(w.seen.auto_gateways);

    // A lower metric wins over the newer route; removed, the other one is followed again.
    must("ip -6 route add default via fe80::4 dev ether1 proto static metric 100");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway6(s, "ether1") == ip6("fe80::4"); }));
    must("ip -6 route del default via fe80::4 dev ether1 metric 100");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway6(s, "ether1") == ip6("fe80::2"); }));

    w.reset();
    must("ip -6 route del default via fe80::2 dev ether1");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.auto_gateways6.empty(); }));
    CHECK(w.seen.auto_gateways);
}

TEST_CASE("auto_gateways6 per interface: multipath nexthops count for their interface; ours and other tables do not") {
    make_wans();
    must("ip addr add 2001:db8:2::2/64 dev ether2 nodad");
    Watcher w;
    must("ip -6 route add default via fe80::1 dev ether1 proto ra");
    must("ip -6 route add default via 2001:db8:2::1 dev ether2 proto dhcp metric 2000");
    must("ip -6 route add default metric 3000 nexthop via fe80::a dev ether1 nexthop via fe80::b dev ether2");
    must("ip -6 route add default via fe80::77 dev ether2 proto 87 metric 10");  // ours
    must("ip -6 route add default via fe80::88 dev ether2 proto ra table 101");   // not main
    REQUIRE(w.wait_for([](const KernelSnapshot& s) {
        return auto_gateway6(s, "ether1") == ip6("fe80::1") && auto_gateway6(s, "ether2") == ip6("2001:db8:2::1");
    }));
    CHECK(w.seen.own_routes);
    w.settle();
    CHECK(w.snap().auto_gateways6.size() == 2);
    CHECK(auto_gateway6(w.snap(), "ether2") == ip6("2001:db8:2::1"));

    // ether2's own default goes: the multipath route's nexthop on ether2 is what is left there.
    must("ip -6 route del default via 2001:db8:2::1 dev ether2 metric 2000");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return auto_gateway6(s, "ether2") == ip6("fe80::b"); }));
    CHECK(auto_gateway6(w.snap(), "ether1") == ip6("fe80::1"));

    // A fresh watch reads the same from its dump.
    Watcher fresh;
    CHECK(fresh.snap().auto_gateways6 == w.snap().auto_gateways6);

    // The interface goes: its gateways go with it.
    w.reset();
    must("ip link del ether2");
    REQUIRE(w.wait_for([](const KernelSnapshot& s) { return s.auto_gateways6.size() == 1; }));
    CHECK(auto_gateway6(w.snap(), "ether1") == ip6("fe80::1"));
    CHECK(w.seen.auto_gateways);
}

TEST_CASE("own IPv6 routes and rules, added or deleted behind our back, are reported") {
    make_wans();
    must("ip -6 route add default via fe80::1 dev ether2 table 102 proto 87");
    Watcher w;
    must("ip -6 route del default table 102");
    REQUIRE(w.wait_for([&](const KernelSnapshot&) { return w.seen.own_routes; }));
    CHECK_FALSE(w.seen.auto_gateways);
    w.reset();
    must("ip -6 rule add priority 20001 fwmark 0x100/0x3f00 lookup 101 proto 87");
    REQUIRE(w.wait_for([&](const KernelSnapshot&) { return w.seen.own_routes; }));
    w.reset();
    must("ip -6 rule del priority 20001");
    REQUIRE(w.wait_for([&](const KernelSnapshot&) { return w.seen.own_routes; }));
    w.reset();
    must("ip -6 rule add priority 100 lookup 300 proto static");
    must("ip -6 route add default via fe80::1 dev ether2 table 102 proto static");
    w.settle();
    CHECK_FALSE(w.seen.own_routes);
}
