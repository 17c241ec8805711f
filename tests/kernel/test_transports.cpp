// The tcp and dns probe transports against the real kernel, without the prober: the test process
// is the router (a fresh netns), the "internet" a namespace behind a veth that only the WAN's
// mark routes to. A listener's SYN-ACK and a closed port's RST answer; a drop does not; a DNS
// response with the query's id answers, an ICMP port unreachable does not.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "probe/transport.hpp"
#include "tests/kernel/netns.hpp"

using namespace wb;
using wb::test::must;
using wb::test::run;

namespace {

constexpr uint32_t kMark = 0x100;
constexpr const char* kTcpHost = "192.0.2.80";
constexpr const char* kDnsHost = "192.0.2.53";
constexpr const char* kForgingDnsHost = "192.0.2.54";  // answers with another id
constexpr uint16_t kOpenPort = 8080, kClosedPort = 8081, kDroppedPort = 8082;

// The "internet": a namespace with the targets on its lo, behind veth wanA (router 203.0.113.2,
// gateway .1). The router's main table has no route there; table 101 does, for mark 0x100 only:
// a probe that loses its mark goes nowhere.
// A named namespace, deleted however the test ends (even when a command of the setup fails).
struct NamedNetns {
    std::string name;
    explicit NamedNetns(std::string n) : name(std::move(n)) { must("ip netns add " + name); }
    ~NamedNetns() { run("ip netns del " + name); }
    NamedNetns(const NamedNetns&) = delete;
    NamedNetns& operator=(const NamedNetns&) = delete;
};

class Internet {
public:
    Internet() : netns_("transports-" + std::to_string(getpid())), name_(netns_.name) {
        test::enter_fresh_netns();
        must("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0");
        must("ip link add wanA type veth peer name gw netns " + name_);
        must("ip addr add 203.0.113.2/30 dev wanA");
        must("ip link set wanA up");
        sh("ip link set lo up");
        // Bound to a device with no route, the kernel assumes the target on-link and ARPs for
        // it; a real gateway does not answer that, so neither does this one.
        sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1");
        sh("ip addr add 203.0.113.1/30 dev gw");
        sh("ip link set gw up");
        for (const char* host : {kTcpHost, kDnsHost, kForgingDnsHost}) sh(std::string("ip addr add ") + host + "/32 dev lo");
        must("ip route add default via 203.0.113.1 dev wanA table 101");
        must("ip rule add fwmark 0x100/0x3f00 lookup 101 priority 20001");
        sh("nft add table inet blackhole");
        sh("nft add chain inet blackhole input '{ type filter hook input priority 0; }'");
        sh("nft add rule inet blackhole input tcp dport " + std::to_string(kDroppedPort) + " drop");
    }

    const std::string& name() const { return name_; }
    std::string sh(const std::string& command) const { return must("ip netns exec " + name_ + " " + command); }

    // A socket of the internet's namespace (sockets stay where they were made).
    Fd socket_inside(int type, const char* host, uint16_t port) const {
        Fd here(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        Fd there(open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC));
        REQUIRE(here);
        REQUIRE(there);
        REQUIRE(setns(there.fd, CLONE_NEWNET) == 0);
        const bool v6 = std::string_view(host).find(':') != std::string_view::npos;
        Fd fd(socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0));
        int on = 1;
        setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_port = htons(port);
        inet_pton(AF_INET, host, &at.sin_addr);
        sockaddr_in6 at6{};
        at6.sin6_family = AF_INET6;
        at6.sin6_port = htons(port);
        inet_pton(AF_INET6, host, &at6.sin6_addr);
        int bound = v6 ? bind(fd.fd, reinterpret_cast<sockaddr*>(&at6), sizeof at6)
                       : bind(fd.fd, reinterpret_cast<sockaddr*>(&at), sizeof at);
        REQUIRE(setns(here.fd, CLONE_NEWNET) == 0);
        REQUIRE(bound == 0);
        return fd;
    }

private:
    NamedNetns netns_;
    std::string name_;
};

// Answers each query on `fd` (a copy with QR and RA set, rcode NXDOMAIN), its id changed by
// `id_offset`, until destroyed; counts what it read.
class Responder {
public:
    Responder(Fd fd, uint16_t id_offset) : fd_(std::move(fd)), thread_([this, id_offset] { serve(id_offset); }) {}
    ~Responder() {
        stop_ = true;
        thread_.join();
    }
    int queries() const { return queries_; }
    std::vector<uint8_t> last_query() const {
        std::lock_guard lock(mutex_);
        return last_;
    }

private:
    void serve(uint16_t id_offset) {
        while (!stop_) {
            pollfd p{fd_.fd, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            uint8_t buffer[512];
            sockaddr_in6 from{};  // big enough for either family
            socklen_t length = sizeof from;
            ssize_t n = recvfrom(fd_.fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
            if (n < 12) continue;
            {
                std::lock_guard lock(mutex_);
                last_.assign(buffer, buffer + n);
            }
            ++queries_;
            uint16_t id = static_cast<uint16_t>((buffer[0] << 8 | buffer[1]) + id_offset);
            buffer[0] = static_cast<uint8_t>(id >> 8);
            buffer[1] = static_cast<uint8_t>(id);
            buffer[2] |= 0x80;
            buffer[3] = 0x83;
            sendto(fd_.fd, buffer, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), length);
        }
    }

    Fd fd_;
    std::atomic<bool> stop_{false};
    std::atomic<int> queries_{0};
    mutable std::mutex mutex_;
    std::vector<uint8_t> last_;
    std::thread thread_;
};

// An event loop and what a transport answered, by token.
struct Loop {
    EventPtr event;
    std::map<uint64_t, Usec> answers;

    Loop() {
        sd_event* e = nullptr;
        REQUIRE(sd_event_new(&e) >= 0);
        event.reset(e);
    }
    std::unique_ptr<ProbeTransport> open(ProbeKind kind, const std::string& interface, uint32_t mark,
                                         Family family = Family::V4) {
        auto t = open_transport(kind, event.get(), TransportSetup{interface, mark, family, 0},
                                [this](const ProbeAnswer& a) { answers[a.token] = a.at; });
        std::string problem = t ? std::string() : t.error().message;
        INFO(problem);
        REQUIRE(t.has_value());
        return std::move(*t);
    }
    void run_for(Usec usec) {
        Usec until = monotonic_usec() + usec;
        for (Usec now = monotonic_usec(); now < until; now = monotonic_usec()) sd_event_run(event.get(), until - now);
    }
};

ProbeTarget tcp(const char* host, uint16_t port) { return {ProbeKind::Tcp, *parse_ip(host), port, {}}; }
ProbeTarget dns(const char* host, std::string name) { return {ProbeKind::Dns, *parse_ip(host), kDnsPort, name}; }

constexpr Usec kWait = 300'000;

}  // namespace

TEST_CASE("tcp: a SYN-ACK and an RST answer, a drop does not; the socket is closed with an RST") {
    Internet internet;
    Fd listener = internet.socket_inside(SOCK_STREAM, kTcpHost, kOpenPort);
    REQUIRE(listen(listener.fd, 16) == 0);  // the kernel finishes handshakes without accept()
    Loop loop;
    auto transport = loop.open(ProbeKind::Tcp, "wanA", kMark);

    Usec sent = monotonic_usec();
    CHECK(transport->send(tcp(kTcpHost, kOpenPort), 1) == 0);
    CHECK(transport->send(tcp(kTcpHost, kClosedPort), 2) == 0);
    CHECK(transport->send(tcp(kTcpHost, kDroppedPort), 3) == 0);
    CHECK(loop.answers.empty());  // never inside send()
    loop.run_for(kWait);
    REQUIRE(loop.answers.count(1) == 1);
    REQUIRE(loop.answers.count(2) == 1);
    CHECK(loop.answers.count(3) == 0);
    CHECK(loop.answers[1] >= sent);
    CHECK(loop.answers[1] - sent < 50'000);
    CHECK(loop.answers[2] - sent < 50'000);
    transport->forget(3);
    transport->forget(1);  // already answered: nothing happens

    // The answered probe's connection was reset, not closed: no TIME_WAIT here, nothing left there.
    CHECK(must("ss -Htn state connected").empty());
    CHECK(internet.sh("ss -Htn state connected").empty());
    // Two more rounds on the same transport.
    for (uint64_t token : {4, 5}) CHECK(transport->send(tcp(kTcpHost, kOpenPort), token) == 0);
    loop.run_for(kWait);
    CHECK(loop.answers.count(4) == 1);
    CHECK(loop.answers.count(5) == 1);
}

TEST_CASE("tcp: the answer is dated by the kernel's handshake RTT, not by when the loop ran") {
    Internet internet;
    // With netem, a 40 ms path; without it (a kernel without sch_netem), well under 1 ms.
    const bool delayed =
        run("ip netns exec " + internet.name() + " tc qdisc add dev gw root netem delay 40ms").exit_code == 0;
    Fd listener = internet.socket_inside(SOCK_STREAM, kTcpHost, kOpenPort);
    REQUIRE(listen(listener.fd, 16) == 0);
    Loop loop;
    auto transport = loop.open(ProbeKind::Tcp, "wanA", kMark);
    Usec sent = monotonic_usec();
    REQUIRE(transport->send(tcp(kTcpHost, kOpenPort), 7) == 0);
    usleep(150'000);  // the daemon was busy
    loop.run_for(kWait);
    REQUIRE(loop.answers.count(7) == 1);
    Usec rtt = loop.answers[7] - sent;
    INFO("answered " << rtt << " us after sending; netem " << delayed);
    CHECK(rtt >= (delayed ? 40'000u : 0u));
    CHECK(rtt < (delayed ? 100'000u : 50'000u));
}

TEST_CASE("tcp: an answer to a retransmitted SYN is dated when it was seen, not by the retransmission's RTT") {
    Internet internet;
    Fd listener = internet.socket_inside(SOCK_STREAM, kTcpHost, kOpenPort);
    REQUIRE(listen(listener.fd, 16) == 0);
    internet.sh("nft add table inet first_syn");
    internet.sh("nft add chain inet first_syn input '{ type filter hook input priority 0; }'");
    internet.sh("nft add rule inet first_syn input tcp dport " + std::to_string(kOpenPort) + " drop");
    Loop loop;
    auto transport = loop.open(ProbeKind::Tcp, "wanA", kMark);
    Usec sent = monotonic_usec();
    REQUIRE(transport->send(tcp(kTcpHost, kOpenPort), 1) == 0);
    loop.run_for(kWait);
    CHECK(loop.answers.empty());
    internet.sh("nft delete table inet first_syn");
    loop.run_for(1'500'000);  // the kernel retransmits the SYN 1 s after the first
    REQUIRE(loop.answers.count(1) == 1);
    INFO("answered " << (loop.answers[1] - sent) << " us after sending");
    CHECK(loop.answers[1] - sent >= 900'000);
}

TEST_CASE("tcp and dns probes carry the WAN's mark and leave by its interface") {
    Internet internet;
    Fd listener = internet.socket_inside(SOCK_STREAM, kTcpHost, kOpenPort);
    REQUIRE(listen(listener.fd, 16) == 0);
    Responder responder(internet.socket_inside(SOCK_DGRAM, kDnsHost, kDnsPort), 0);
    must("ip link add wanB type veth peer name wanBpeer");
    must("ip link set wanB up");
    Loop loop;
    // Unmarked, the main table has no route; marked but bound elsewhere, table 101's route is
    // not usable.
    auto unmarked_tcp = loop.open(ProbeKind::Tcp, "wanA", 0x200);
    auto unmarked_dns = loop.open(ProbeKind::Dns, "wanA", 0x200);
    auto elsewhere_tcp = loop.open(ProbeKind::Tcp, "wanB", kMark);
    auto marked_dns = loop.open(ProbeKind::Dns, "wanA", kMark);
    // The kernel may refuse at once (no route) or let the SYN go nowhere: no answer either way.
    unmarked_tcp->send(tcp(kTcpHost, kOpenPort), 1);
    unmarked_dns->send(dns(kDnsHost, "example.com"), 2);
    elsewhere_tcp->send(tcp(kTcpHost, kOpenPort), 3);
    CHECK(marked_dns->send(dns(kDnsHost, "example.com"), 4) == 0);
    loop.run_for(kWait);
    CHECK(loop.answers.count(1) == 0);
    CHECK(loop.answers.count(2) == 0);
    CHECK(loop.answers.count(3) == 0);
    CHECK(loop.answers.count(4) == 1);
    CHECK(responder.queries() == 1);
}

TEST_CASE("tcp: a missing interface is ENODEV, at open and at send") {
    Internet internet;
    Loop loop;
    auto missing = open_tcp_transport(loop.event.get(), TransportSetup{"nosuch0", kMark, Family::V4, 0},
                                      [](const ProbeAnswer&) {});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().err == ENODEV);
    must("ip link add wanB type veth peer name wanBpeer");
    auto transport = loop.open(ProbeKind::Tcp, "wanB", kMark);
    must("ip link del wanB");
    CHECK(transport->send(tcp(kTcpHost, kOpenPort), 1) == ENODEV);
}

TEST_CASE("dns: a response with the query's id answers; a forged id or a closed port does not") {
    Internet internet;
    Responder honest(internet.socket_inside(SOCK_DGRAM, kDnsHost, kDnsPort), 0);
    Responder forging(internet.socket_inside(SOCK_DGRAM, kForgingDnsHost, kDnsPort), 1);
    Loop loop;
    auto transport = loop.open(ProbeKind::Dns, "wanA", kMark);

    Usec sent = monotonic_usec();
    CHECK(transport->send(dns(kDnsHost, "example.com"), 1) == 0);
    CHECK(transport->send(dns(kForgingDnsHost, "example.com"), 2) == 0);
    CHECK(transport->send(dns(kTcpHost, "example.com"), 3) == 0);  // nothing listens: port unreachable
    CHECK(loop.answers.empty());
    usleep(100'000);  // the daemon was busy: the kernel's receive time still dates the answer
    loop.run_for(kWait);
    REQUIRE(loop.answers.count(1) == 1);
    CHECK(loop.answers[1] >= sent);
    CHECK(loop.answers[1] - sent < 50'000);
    CHECK(loop.answers.count(2) == 0);
    CHECK(forging.queries() == 1);
    CHECK(loop.answers.count(3) == 0);

    // What went out: RD, one question for example.com, type A, class IN.
    auto q = honest.last_query();
    REQUIRE(q.size() == 29);
    CHECK(q[2] == 0x01);
    CHECK(q[5] == 1);
    CHECK(std::string(q.begin() + 13, q.begin() + 20) == "example");
    CHECK(q[26] == 1);

    // Forgotten before the answer came: not reported.
    CHECK(transport->send(dns(kDnsHost, "example.com"), 4) == 0);
    transport->forget(4);
    loop.run_for(kWait);
    CHECK(loop.answers.count(4) == 0);
    CHECK(honest.queries() == 2);
}

TEST_CASE("IPv6: tcp to a global and a link-local target, dns to a global server, by the mark's table") {
    Internet internet;
    must("ip -6 addr add 2001:db8:1::2/64 dev wanA nodad");
    internet.sh("ip -6 addr add 2001:db8:1::1/64 dev gw nodad");
    internet.sh("ip -6 addr add fe80::1/64 dev gw nodad");
    internet.sh("ip -6 addr add 2001:db8:ff::80/128 dev lo");
    internet.sh("ip -6 addr add 2001:db8:ff::53/128 dev lo");
    must("ip -6 route add default via 2001:db8:1::1 dev wanA table 101");
    must("ip -6 rule add fwmark 0x100/0x3f00 lookup 101 priority 20001");
    Fd listener = internet.socket_inside(SOCK_STREAM, "::", kOpenPort);
    REQUIRE(listen(listener.fd, 16) == 0);
    Responder responder(internet.socket_inside(SOCK_DGRAM, "2001:db8:ff::53", kDnsPort), 0);
    Loop loop;
    auto tcp6 = loop.open(ProbeKind::Tcp, "wanA", kMark, Family::V6);
    auto dns6 = loop.open(ProbeKind::Dns, "wanA", kMark, Family::V6);
    CHECK(tcp6->send(tcp("2001:db8:ff::80", kOpenPort), 1) == 0);
    CHECK(tcp6->send(tcp("fe80::1", kOpenPort), 2) == 0);  // needs the interface as its scope
    CHECK(tcp6->send(tcp("2001:db8:ff::80", kClosedPort), 3) == 0);
    CHECK(dns6->send(dns("2001:db8:ff::53", "example.com"), 4) == 0);
    loop.run_for(kWait);
    CHECK(loop.answers.count(1) == 1);
    CHECK(loop.answers.count(2) == 1);
    CHECK(loop.answers.count(3) == 1);
    CHECK(loop.answers.count(4) == 1);
    auto q = responder.last_query();
    REQUIRE(q.size() == 29);
    CHECK(q[26] == 28);  // AAAA from an IPv6 server
}
