// The prober kernel tests' harness: the test process is the router (a fresh netns), each
// "gateway" a namespace of its own behind a veth answering pings on its lo addresses; an
// sd-event loop runs the prober for bounded time. Shared by test_prober.cpp (ICMP) and
// test_prober6.cpp (ICMPv6).
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <regex>

#include "probe/health.hpp"
#include "probe/icmp.hpp"
#include "probe/prober.hpp"
#include "tests/kernel/netns.hpp"


namespace prober_test {

using namespace wb;
using namespace std::chrono_literals;
using wb::test::must;
using wb::test::run;
using Clock = std::chrono::steady_clock;

// A gateway namespace, deleted (with its veth ends) however the test ends.
class Peer {
public:
    explicit Peer(const std::string& tag) : name_("probe-" + std::to_string(getpid()) + "-" + tag) {
        must("ip netns add " + name_);
        // No second of tentative IPv6 addresses after each link comes up.
        sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    }
    ~Peer() { run("ip netns del " + name_); }
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    const std::string& name() const { return name_; }
    std::string sh(const std::string& command) const { return must("ip netns exec " + name_ + " " + command); }
    void nft(const std::string& ruleset) const {
        // No heredoc: run() appends "2>&1" to the command, which would follow the terminator.
        must("echo '" + ruleset + "' | ip netns exec " + name_ + " nft -f -");
    }
    void drop_echo_requests(const std::string& match = "") const {
        nft("table inet probe_drop { chain input { type filter hook input priority 0; icmp type echo-request " +
            match + " drop; }; }");
    }
    // Drops echo requests from a whole second of the wall clock on, at least `lead` from now, and
    // returns that moment on the steady clock. The kernel compares packet arrival with the
    // rule's time (meta time, ns), so the test knows to the microsecond when dropping began,
    // however long nft itself took to start.
    Clock::time_point drop_echo_requests_from(std::chrono::milliseconds lead) const {
        auto wall_now = std::chrono::system_clock::now();
        auto steady_now = Clock::now();
        auto at = std::chrono::ceil<std::chrono::seconds>(wall_now + lead);
        nft("table inet probe_drop { chain input { type filter hook input priority 0; meta time >= " +
            std::to_string(at.time_since_epoch().count()) + " icmp type echo-request drop; }; }");
        return steady_now + std::chrono::duration_cast<Clock::duration>(at - wall_now);
    }
    void stop_dropping() const { sh("nft delete table inet probe_drop"); }
    // Echo requests carrying `identifier` that reached this gateway.
    void count_identifier(const std::string& counter, uint16_t identifier) const {
        nft("table inet probe_count { counter " + counter + " {}; chain input { type filter hook input priority -10; "
            "icmp type echo-request icmp id " + std::to_string(identifier) + " counter name " + counter + "; }; }");
    }
    uint64_t counted(const std::string& counter) const {
        std::string out = sh("nft list counter inet probe_count " + counter);
        std::smatch m;
        REQUIRE_MESSAGE(std::regex_search(out, m, std::regex("packets ([0-9]+)")), out);
        return std::stoull(m[1]);
    }

private:
    std::string name_;
};

// Router side `dev` (ADDR.2/30) to the peer's "gw" (ADDR.1/30); `targets` on the peer's lo.
inline void link_to(const Peer& peer, const std::string& dev, const std::string& net, const std::vector<std::string>& targets) {
    must("ip link add " + dev + " type veth peer name gw netns " + peer.name());
    must("ip addr add " + net + ".2/30 dev " + dev);
    must("ip link set " + dev + " up");
    peer.sh("ip link set lo up");
    // A socket bound to a device with no route out of it makes the kernel assume the target is
    // on-link (ip_route_output_key_hash_rcu) and ARP for it; a real gateway does not answer ARP
    // for the internet's hosts, so neither does this one. Without this, a missing SO_MARK
    // would go unnoticed.
    peer.sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1");
    peer.sh("ip addr add " + net + ".1/30 dev gw");
    peer.sh("ip link set gw up");
    for (const auto& t : targets) run("ip netns exec " + peer.name() + " ip addr add " + t + "/32 dev lo");
}

inline void enter_router() {
    test::enter_fresh_netns();
    // Replies from the non-default WAN must not be dropped by a strict reverse-path check.
    must("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0");
    must("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
}

inline ProbeKey v4(const std::string& wan) { return {wan, Family::V4}; }
inline ProbeKey v6(const std::string& wan) { return {wan, Family::V6}; }

struct Seen {
    ProbeKey key;
    RoundOutcome outcome;
    Clock::time_point at;
};

// The event loop and everything the prober reported.
class Harness {
public:
    Harness() {
        sd_event* e = nullptr;
        REQUIRE(sd_event_new(&e) >= 0);
        event_.reset(e);
        auto p = Prober::create(
            event_.get(),
            [this](const ProbeKey& key, const RoundOutcome& o) {
                seen.push_back({key, o, Clock::now()});
                if (on_round) on_round(seen.back());
            },
            [this](const ProbeKey& key) { return replies ? replies(key) : std::nullopt; });
        REQUIRE_MESSAGE(p.has_value(), p.error().message);
        prober = std::move(*p);
    }

    void configure(const ProbeKey& key, const std::string& dev, uint32_t mark, std::vector<std::string> targets,
                   std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
        ProbeSpec spec;
        spec.interface = dev;
        spec.mark = mark;
        for (const auto& t : targets) spec.targets.push_back(icmp_target(*parse_ip(t)));
        spec.interval = interval;
        spec.timeout = timeout;
        Status s = prober->configure(key, spec);
        REQUIRE_MESSAGE(s.is_ok(), s.message);
    }

    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds max) {
        auto deadline = Clock::now() + max;
        while (!done()) {
            auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
            if (left.count() <= 0) return false;
            REQUIRE(sd_event_run(event_.get(), uint64_t(left.count())) >= 0);
        }
        return true;
    }
    void run_for(std::chrono::milliseconds d) { run_until([] { return false; }, d); }

    std::vector<Seen> of(const ProbeKey& key, size_t from = 0) const {
        std::vector<Seen> out;
        for (size_t i = from; i < seen.size(); ++i)
            if (seen[i].key == key) out.push_back(seen[i]);
        return out;
    }
    size_t count(const ProbeKey& key, bool success, size_t from = 0) const {
        size_t n = 0;
        for (const auto& s : of(key, from)) n += s.outcome.success == success;
        return n;
    }
    // Waits until `key` reported `n` rounds with this result after position `from`.
    bool wait_rounds(const ProbeKey& key, bool success, size_t n, std::chrono::milliseconds max, size_t from) {
        return run_until([&] { return count(key, success, from) >= n; }, max);
    }

    std::vector<Seen> seen;
    std::function<void(const Seen&)> on_round;
    // The WAN's reply counter as the prober reads it (the daemon reads nftables); unset: unknown.
    std::function<std::optional<uint64_t>(const ProbeKey&)> replies;
    std::unique_ptr<Prober> prober;

private:
    struct EventUnref {
        void operator()(sd_event* e) const { sd_event_unref(e); }
    };
    std::unique_ptr<sd_event, EventUnref> event_;
};

inline void check_in_order(const std::vector<Seen>& rounds) {
    for (size_t i = 1; i < rounds.size(); ++i) {
        CAPTURE(i);
        CHECK(rounds[i].outcome.round == rounds[i - 1].outcome.round + 1);
    }
}

inline double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace prober_test
