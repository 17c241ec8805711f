// ConntrackEvents against the real kernel: TCP connections from this namespace to a server
// namespace behind a veth, their conntrack entries marked from the socket's SO_MARK by an nft
// rule (as the daemon's output chain does), seen as new, answered (IPS_SEEN_REPLY) and destroyed;
// a connection whose SYN the server drops is new and never answered. Also measures how many
// events a second the reader gets through.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "netlink/conntrack.hpp"
#include "netlink/conntrack_events.hpp"
#include "tests/kernel/netns.hpp"

using namespace wb;
using namespace std::chrono_literals;
using wb::test::must;
using Kind = CtEvent::Kind;

namespace {

constexpr uint16_t kOpenPort = 8080;  // the server listens
constexpr uint16_t kDroppedPort = 9;  // the server's nft drops every packet to it

// A server namespace "cte-PID" behind the veth wan1 (here) - up1 (there), IPv4 and IPv6, and
// the nft rule that gives each new connection of this namespace its socket's mark.
struct Lab {
    std::string peer = "cte-" + std::to_string(getpid());

    Lab() {
        test::enter_fresh_netns();
        must("ip netns add " + peer);
        must("ip link add wan1 type veth peer name up1 netns " + peer);
        must("ip addr add 203.0.113.2/24 dev wan1 && ip addr add 2001:db8:1::2/64 dev wan1 nodad");
        must("ip link set wan1 up");
        in_peer("ip addr add 203.0.113.1/24 dev up1");
        in_peer("ip addr add 2001:db8:1::1/64 dev up1 nodad");
        in_peer("ip link set up1 up");
        in_peer("ip link set lo up");
        must("echo 'table inet t { chain in { type filter hook input priority 0; tcp dport " +
             std::to_string(kDroppedPort) + " drop; }; }' | " + "ip netns exec " + peer + " nft -f -");
        must("echo 'table inet t { chain out { type route hook output priority mangle; "
             "ct state new meta mark != 0 ct mark set meta mark; }; }' | nft -f -");
    }
    ~Lab() { test::run("ip netns del " + peer); }

    void in_peer(const std::string& command) { must("ip netns exec " + peer + " " + command); }

    // A socket made in the server's namespace (it stays there); this thread comes back here.
    Fd listener(int family, int backlog = 128) {
        Fd self{open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)};
        Fd there{open(("/run/netns/" + peer).c_str(), O_RDONLY | O_CLOEXEC)};
        REQUIRE((self && there));
        REQUIRE(setns(there.fd, CLONE_NEWNET) == 0);
        Fd sock{socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        int one = 1;
        setsockopt(sock.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_storage addr = address(family, kOpenPort, true);
        bool ok = sock && bind(sock.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  listen(sock.fd, backlog) == 0;
        REQUIRE(setns(self.fd, CLONE_NEWNET) == 0);
        REQUIRE(ok);
        return sock;
    }

    // The server's address (or the wildcard) of `family` with `port`.
    static sockaddr_storage address(int family, uint16_t port, bool any = false) {
        sockaddr_storage ss{};
        if (family == AF_INET) {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            a->sin_port = htons(port);
            a->sin_addr.s_addr = any ? htonl(INADDR_ANY) : inet_addr("203.0.113.1");
        } else {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(port);
            a->sin6_addr = in6addr_any;
            if (!any) inet_pton(AF_INET6, "2001:db8:1::1", &a->sin6_addr);
        }
        return ss;
    }

    // A non-blocking connect from here with SO_MARK `mark`: the SYN is on its way on return.
    static Fd connect_to(int family, uint16_t port, uint32_t mark) {
        Fd sock{socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
        REQUIRE(sock);
        REQUIRE(setsockopt(sock.fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0);
        sockaddr_storage addr = address(family, port);
        int rc = connect(sock.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        REQUIRE((rc == 0 || errno == EINPROGRESS));
        return sock;
    }
};

// The loop, the reader and every event it reported.
struct Reader {
    EventPtr loop;
    std::vector<CtEvent> seen;
    std::unique_ptr<ConntrackEvents> events;

    Reader() {
        sd_event* e = nullptr;
        REQUIRE(sd_event_new(&e) >= 0);
        loop.reset(e);
        auto opened = ConntrackEvents::open(loop.get(), [this](const CtEvent& ev) { seen.push_back(ev); });
        REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
        events = std::move(*opened);
    }

    // Runs the loop until `done()` or `limit` has passed; returns done().
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
        auto until = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < until) REQUIRE(sd_event_run(loop.get(), 50'000) >= 0);
        return done();
    }

    const CtEvent* find(const std::function<bool(const CtEvent&)>& match) const {
        auto it = std::find_if(seen.begin(), seen.end(), match);
        return it == seen.end() ? nullptr : &*it;
    }
    // The first new TCP connection with `mark`.
    const CtEvent* new_tcp(uint32_t mark) const {
        return find([&](const CtEvent& e) { return e.kind == Kind::New && e.mark == mark && e.l4proto == IPPROTO_TCP; });
    }
    const CtEvent* of(uint32_t id, Kind kind, bool answered = false) const {
        return find([&](const CtEvent& e) { return e.id == id && e.kind == kind && (!answered || e.seen_reply); });
    }
};

// A handshake's events: new (not answered), an update that says answered, a destroy once flushed.
void check_answered_connection(int family) {
    Lab lab;
    Fd server = lab.listener(family);
    Reader reader;
    const uint32_t mark = family == AF_INET ? 0x100 : 0x600;
    Fd client = Lab::connect_to(family, kOpenPort, mark);

    REQUIRE(reader.run_until([&] { return reader.new_tcp(mark) != nullptr; }));
    const CtEvent created = *reader.new_tcp(mark);
    CHECK_FALSE(created.seen_reply);  // sent when the SYN left, before the SYN-ACK came
    CHECK(created.family == (family == AF_INET ? Family::V4 : Family::V6));
    CHECK(created.id != 0);
    REQUIRE(reader.run_until([&] { return reader.of(created.id, Kind::Update, true) != nullptr; }));
    const CtEvent answered = *reader.of(created.id, Kind::Update, true);
    CHECK(answered.mark == mark);
    CHECK(answered.l4proto == IPPROTO_TCP);
    CHECK(answered.family == created.family);
    CHECK(reader.of(created.id, Kind::Destroy) == nullptr);

    client.reset();  // FIN: the entry lingers in TIME_WAIT; a flush ends it now
    auto ct = Conntrack::open();
    REQUIRE(ct.has_value());
    auto deleted = (*ct)->delete_by_mark(created.family, mark, 0xffffffff);
    REQUIRE_MESSAGE(deleted.has_value(), deleted.error().message);
    CHECK(*deleted == 1);
    REQUIRE(reader.run_until([&] { return reader.of(created.id, Kind::Destroy) != nullptr; }));
    const CtEvent destroyed = *reader.of(created.id, Kind::Destroy);
    CHECK(destroyed.mark == mark);
    CHECK(destroyed.seen_reply);
    CHECK(reader.events->overflows() == 0);
}

}  // namespace

TEST_CASE("an answered IPv4 TCP connection: new without a reply, then an update with one, then destroy") {
    check_answered_connection(AF_INET);
}

TEST_CASE("an answered IPv6 TCP connection: new without a reply, then an update with one, then destroy") {
    check_answered_connection(AF_INET6);
}

TEST_CASE("a connection whose SYNs are dropped is new and never seen answered") {
    Lab lab;
    Reader reader;
    const uint32_t mark = 0x300;
    Fd client = Lab::connect_to(AF_INET, kDroppedPort, mark);
    REQUIRE(reader.run_until([&] { return reader.new_tcp(mark) != nullptr; }));
    const uint32_t id = reader.new_tcp(mark)->id;
    CHECK_FALSE(reader.new_tcp(mark)->seen_reply);
    // The first SYN retransmission goes out after 1 s: give it time to come back if it could.
    reader.run_until([] { return false; }, 1500ms);
    CHECK(reader.find([&](const CtEvent& e) { return e.id == id && e.seen_reply; }) == nullptr);
    CHECK(reader.of(id, Kind::Destroy) == nullptr);
}

TEST_CASE("an unmarked connection's events carry mark 0") {
    Lab lab;
    Fd server = lab.listener(AF_INET);
    Reader reader;
    Fd client = Lab::connect_to(AF_INET, kOpenPort, 0);
    REQUIRE(reader.run_until([&] { return reader.new_tcp(0) != nullptr; }));
    const uint32_t id = reader.new_tcp(0)->id;
    // The mark is 0 and unchanged: the kernel leaves CTA_MARK out of these events.
    REQUIRE(reader.run_until([&] { return reader.of(id, Kind::Update, true) != nullptr; }));
    CHECK(reader.of(id, Kind::Update, true)->mark == 0);
}

TEST_CASE("throughput: the events of 2000 connections opened at once are all read, and how fast") {
    constexpr int kConnections = 2000;
    Lab lab;
    Fd server = lab.listener(AF_INET, 4096);
    Reader reader;
    const uint32_t mark = 0x200;
    std::vector<Fd> clients;
    clients.reserve(kConnections);
    for (int i = 0; i < kConnections; ++i) clients.push_back(Lab::connect_to(AF_INET, kOpenPort, mark));
    // Let every handshake finish while nothing reads: the events wait in the socket's queue.
    test::run("sleep 0.5");

    auto start = std::chrono::steady_clock::now();
    while (sd_event_run(reader.loop.get(), 0) > 0) {
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const size_t queued = reader.seen.size();
    auto count = [&](Kind kind, bool answered) {
        return std::count_if(reader.seen.begin(), reader.seen.end(), [&](const CtEvent& e) {
            return e.kind == kind && e.mark == mark && (!answered || e.seen_reply);
        });
    };
    MESSAGE(queued << " queued events read in " << seconds * 1e3 << " ms: " << long(queued / seconds)
                   << " events/s (" << count(Kind::New, false) << " new, " << count(Kind::Update, true)
                   << " answered updates, overflows " << reader.events->overflows() << ")");
    CHECK(reader.events->overflows() == 0);
    CHECK(count(Kind::New, false) == kConnections);

    // The destroy events of a flush, read as they come.
    auto ct = Conntrack::open();
    REQUIRE(ct.has_value());
    const size_t before = reader.seen.size();
    start = std::chrono::steady_clock::now();
    auto deleted = (*ct)->delete_by_mark(Family::V4, mark, 0xffffffff);
    REQUIRE(deleted.has_value());
    CHECK(*deleted == unsigned(kConnections));
    REQUIRE(reader.run_until([&] { return count(Kind::Destroy, false) == kConnections; }));
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE((reader.seen.size() - before) << " destroy events of a flush in " << seconds * 1e3 << " ms (flush included)");
    CHECK(reader.events->overflows() == 0);
}

TEST_CASE("a burst beyond the receive buffer counts as an overflow, and events after it still come") {
    test::enter_fresh_netns();
    Reader reader;
    // 20 000 entries made over ctnetlink, one new event each, while nothing reads: more than the
    // 8 MiB buffer holds (the kernel counts about 1.25 KiB of it per event).
    must("f=$(mktemp) && seq 1 20000 | awk '{ printf \"-I -s 10.1.%d.%d -d 192.0.2.1 -p udp --sport 1000 "
         "--dport 53 -t 300 -m 256\\n\", int($1 / 250), $1 % 250 }' > $f && conntrack -R $f >/dev/null 2>&1; "
         "rc=$?; rm -f $f; exit $rc");
    while (sd_event_run(reader.loop.get(), 0) > 0) {
    }
    CHECK(reader.events->overflows() >= 1);
    CHECK(reader.seen.size() < 20000);
    CHECK_FALSE(reader.seen.empty());
    must("conntrack -I -s 10.2.0.1 -d 192.0.2.1 -p udp --sport 1000 --dport 53 -t 300 -m 1792");
    auto marked = [](const CtEvent& e) { return e.mark == 0x700; };
    REQUIRE(reader.run_until([&] { return reader.find(marked) != nullptr; }));
    const CtEvent* late = reader.find(marked);
    CHECK(late->kind == Kind::New);
    CHECK(late->l4proto == IPPROTO_UDP);
}
