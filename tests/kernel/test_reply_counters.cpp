// The reply counters against the real kernel: three kinds of namespaces (a LAN client, this
// process as the router with the article's table, routes and rules applied through the
// KernelPort, two ISPs with a server behind each), TCP connections of both families through
// the router, and NetlinkKernel::read_reply_counters() after each. Replies count on the WAN and
// family they come back in on and nowhere else; what the internet sends unasked, and the
// router's own traffic, never. And what a read costs with a big table.
#include <doctest/doctest.h>
#include <net/if.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "netlink/kernel_sync.hpp"
#include "netlink/netlink_kernel.hpp"
#include "netlink/nft_counters.hpp"
#include "rules/desired.hpp"
#include "tests/kernel/netns.hpp"
#include "tests/kernel/nft_harness.hpp"
#include "tests/unit/rules_fixtures.hpp"

using namespace wb;
using namespace wb::test;

namespace {

// A named network namespace at the far end of a veth pair; removed, with what runs in it,
// even when a check fails.
struct PeerNetns {
    std::string name;
    explicit PeerNetns(const std::string& role) : name("wbreply-" + role + "-" + std::to_string(getpid())) {
        must("ip netns add " + name);
        must("ip -n " + name + " link set lo up");
    }
    ~PeerNetns() {
        stop_all();
        run("ip netns del " + name);
    }
    // Ends what this test started in the namespace (and nothing outside it).
    void stop_all() const { run("ip netns pids " + name + " | xargs -r kill"); }
    std::string exec(const std::string& command) const { return "ip netns exec " + name + " " + command; }
};

// The article's lab in small, dual-stack: ether1 to isp1 (charter, gateways 203.0.113.1 and
// 2001:db8:1::1), ether2 to isp2 (integra, 198.51.100.1 and 2001:db8:2::1), ether3 to the LAN
// (192.168.88.2, fd00:88::2). Both ISPs hold the server (192.0.2.10, 2001:db8:ff::10) on lo;
// isp2 can reach the LAN directly (as an unsolicited sender would).
struct Lab {
    PeerNetns isp1{"isp1"}, isp2{"isp2"}, lan{"lan"};
    Lab() {
        must("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
        link("ether1", "up0", isp1, "203.0.113.2/24", "2001:db8:1::2/64");
        link("ether2", "up0", isp2, "198.51.100.2/24", "2001:db8:2::2/64");
        link("ether3", "lan0", lan, "192.168.88.1/24", "fd00:88::1/64");
        peer(isp1, "up0", "203.0.113.1/24", "2001:db8:1::1/64");
        peer(isp2, "up0", "198.51.100.1/24", "2001:db8:2::1/64");
        peer(lan, "lan0", "192.168.88.2/24", "fd00:88::2/64");
        for (const auto* isp : {&isp1, &isp2}) {
            must("ip -n " + isp->name + " addr add 192.0.2.10/32 dev lo");
            must("ip -n " + isp->name + " addr add 2001:db8:ff::10/128 dev lo");
        }
        must("ip -n " + isp2.name + " route add 192.168.88.0/24 via 198.51.100.2");
        must("ip -n " + lan.name + " route add default via 192.168.88.1");
        must("ip -n " + lan.name + " -6 route add default via fd00:88::1");
    }
    static void link(const std::string& ours, const std::string& theirs, const PeerNetns& ns, const std::string& v4,
                     const std::string& v6) {
        must("ip link add " + ours + " type veth peer name " + theirs + " netns " + ns.name);
        must("ip addr add " + v4 + " dev " + ours + " && ip addr add " + v6 + " dev " + ours + " nodad");
        must("ip link set " + ours + " up");
    }
    static void peer(const PeerNetns& ns, const std::string& dev, const std::string& v4, const std::string& v6) {
        must("ip -n " + ns.name + " addr add " + v4 + " dev " + dev + " && ip -n " + ns.name + " addr add " + v6 +
             " dev " + dev + " nodad && ip -n " + ns.name + " link set " + dev + " up");
    }

    // One TCP connection from the LAN to the server, which sends `bytes` back.
    void download(unsigned bytes, Family family = Family::V4) {
        must(isp1.exec(serve(bytes)));
        must(isp2.exec(serve(bytes)));
        const std::string server = family == Family::V4 ? "TCP4:192.0.2.10:8080" : "TCP6:[2001:db8:ff::10]:8080";
        must(lan.exec("timeout 10 socat -u " + server + ",retry=50,interval=0.1 OPEN:/dev/null"));
        // The other ISP's server was not connected to: stop it.
        isp1.stop_all();
        isp2.stop_all();
    }
    // Both families on one socket (a v6 socket with ipv6only=0 takes IPv4 as mapped addresses).
    static std::string serve(unsigned bytes) {
        return "sh -c 'timeout 10 socat TCP6-LISTEN:8080,reuseaddr,ipv6only=0 SYSTEM:\"head -c " + std::to_string(bytes) +
               " /dev/zero\" >/dev/null 2>&1 &'";
    }
};

Config lab_config() {
    Config c = article_config();
    c.wans[0].ipv6 = c.wans[1].ipv6 = true;
    c.wans[0].gateway6 = Ipv6::parse("2001:db8:1::1");
    c.wans[1].gateway6 = Ipv6::parse("2001:db8:2::1");
    return c;
}

// `up` takes new connections in both families, the other WAN none.
std::vector<WanInputs> inputs_for(const Config& config, size_t up) {
    std::vector<WanInputs> in = healthy(config);
    for (size_t i = 0; i < in.size(); ++i) {
        in[i].ifindex = int(if_nametoindex(config.wans[i].interface.c_str()));
        in[i].health = in[i].health6 = i == up ? Health::Up : Health::Down;
    }
    return in;
}

uint64_t packets_of(const std::vector<ReplyCount>& counts, const std::string& wan, Family family) {
    for (const auto& c : counts)
        if (c.wan == wan && c.family == family) return c.packets;
    FAIL("no " << family_label(family) << " counter for " << wan);
    return 0;
}

std::vector<ReplyCount> read(NetlinkKernel& kernel) {
    auto counts = kernel.read_reply_counters();
    REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
    return *counts;
}

}  // namespace

TEST_CASE("replies count on the WAN and family they come back in on; unsolicited and the router's own traffic never") {
    enter_fresh_netns();
    Lab lab;
    auto opened = NetlinkKernel::open();
    REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
    NetlinkKernel& kernel = **opened;
    KernelSync sync(kernel);
    const Config config = lab_config();
    constexpr Family V4 = Family::V4, V6 = Family::V6;

    // charter alone takes new connections.
    ApplyReport report = sync.apply(build_desired(config, inputs_for(config, 0)));
    REQUIRE(report.ok());
    CHECK(read(kernel) == std::vector<ReplyCount>{{"charter", V4, 0}, {"charter", V6, 0}, {"integra", V4, 0},
                                                  {"integra", V6, 0}});

    lab.download(100000);
    auto after = read(kernel);
    // The SYN-ACK, the data (in a few large segments: veth offloads), the FIN: all in on ether1.
    CHECK(packets_of(after, "charter", V4) >= 3);
    CHECK(packets_of(after, "charter", V6) == 0);
    CHECK(packets_of(after, "integra", V4) == 0);
    lab.download(100000, V6);
    after = read(kernel);
    CHECK(packets_of(after, "charter", V6) >= 3);
    CHECK(packets_of(after, "integra", V6) == 0);

    // Unsolicited from the internet, through the router to the LAN: pings, SYNs to a closed
    // port, stray ACKs (which conntrack picks up as new, tcp_loose). All original direction;
    // the LAN's answers come back in on ether3, which is no WAN.
    must(lab.isp2.exec("ping -c 3 -i 0.2 -W 2 192.168.88.2"));
    run(lab.isp2.exec("hping3 -q -c 3 -i u100000 -S -p 81 192.168.88.2"));
    run(lab.isp2.exec("hping3 -q -c 3 -i u100000 -A -p 82 192.168.88.2"));
    // The router's own connections (input and output, never forwarded), on either WAN.
    must("ping -c 2 -i 0.2 -W 2 203.0.113.1 && ping -c 2 -i 0.2 -W 2 198.51.100.1");
    must("ping -c 2 -i 0.2 -W 2 2001:db8:1::1 && ping -c 2 -i 0.2 -W 2 2001:db8:2::1");
    CHECK(read(kernel) == after);

    // integra takes over: the health change touches the balance maps only, so charter's
    // counters keep what they counted; the next connections count on integra.
    report = sync.apply(build_desired(config, inputs_for(config, 1)));
    REQUIRE(report.ok());
    CHECK(read(kernel) == after);
    lab.download(100000);
    lab.download(100000, V6);
    auto later = read(kernel);
    for (Family f : {V4, V6}) {
        CAPTURE(family_label(f));
        CHECK(packets_of(later, "charter", f) == packets_of(after, "charter", f));
        CHECK(packets_of(later, "integra", f) >= 3);
    }

    // What nft lists is what render() prints, but for the counters' values.
    CHECK(listing() == nft::render(build_desired(config, inputs_for(config, 1)).table));
    CHECK(must("nft list chain inet wanbalance replies_integra").find("counter packets 0 ") == std::string::npos);
}

TEST_CASE("reading the counters: a dump per WAN; what it costs with 1000 policy rules in the table") {
    enter_fresh_netns();
    auto opened = NetlinkKernel::open();
    REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
    NetlinkKernel& kernel = **opened;

    // No table: no counters, no error.
    CHECK(read(kernel).empty());

    // 1000 rules, every one sticky (a chain of its own with a lookup and an update per WAN:
    // the most rules a rule can make), to distinct hosts, over two policies.
    Config config = article_config();
    config.policies = {PolicyConfig{"charter_first", {{0, 1, 0}, {1, 1, 1}}, LastResort::Balanced},
                       PolicyConfig{"both", {{0, 1, 0}, {1, 1, 0}}, LastResort::Main}};
    config.main_mark = 0x3e00;
    for (unsigned i = 0; i < 1000; ++i) {
        RuleConfig rule;
        rule.name = "r" + std::to_string(i);
        rule.dst = {Cidr{*Ipv4::parse("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1"), 32}};
        rule.target = RuleTarget::Policy;
        rule.policy = i % 2;
        rule.sticky = Sticky::Src;
        config.rules.push_back(rule);
    }
    nft::Table table = build_desired(config, test::healthy(config)).table;
    size_t rules = 0;
    for (const auto& chain : table.chains) rules += chain.rules.size();
    REQUIRE(kernel.apply(nft::Plan{{nft::OpReplaceTable{table}}}).is_ok());

    auto time_ms = [](auto&& read_once) {
        constexpr int kRounds = 20;
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < kRounds; ++i) read_once();
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / kRounds;
    };
    // The port knows the replies chains from the plan it applied: a dump of each.
    const double per_chain = time_ms([&] { CHECK(read(kernel).size() == 2); });
    // What a port that knows nothing yet does: the whole table's rules, the others unparsed.
    auto sock = open_socket();
    const double whole = time_ms([&] {
        auto counters = nft::read_rule_counters(*sock, nft::kTableName, "", std::string(kReplyChainPrefix));
        REQUIRE(counters.has_value());
        CHECK(counters->size() == 2);
    });
    MESSAGE("read_reply_counters() with " << table.chains.size() << " chains, " << rules << " rules: " << per_chain
                                          << " ms per call (a dump per replies chain); the whole table's dump: "
                                          << whole << " ms");
    CHECK(per_chain < whole);
}
