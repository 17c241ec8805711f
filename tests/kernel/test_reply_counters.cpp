// The reply counters against the real kernel: three kinds of namespaces (a LAN client, this
// process as the router with the article's table, routes and rules applied through the
// KernelPort, two ISPs with a server behind each), TCP connections through the router, and
// NetlinkKernel::read_reply_counters() after each. Replies count on the WAN they come back
// in on and nowhere else; what the internet sends unasked, and the router's own traffic, never.
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

// The article's lab in small: ether1 to isp1 (charter, gateway 203.0.113.1), ether2 to isp2
// (integra, 198.51.100.1), ether3 to the LAN (192.168.88.2). Both ISPs hold the server
// 192.0.2.10 on lo; isp2 can reach the LAN directly (as an unsolicited sender would).
struct Lab {
    PeerNetns isp1{"isp1"}, isp2{"isp2"}, lan{"lan"};
    Lab() {
        must("ip link add ether1 type veth peer name up0 netns " + isp1.name);
        must("ip link add ether2 type veth peer name up0 netns " + isp2.name);
        must("ip link add ether3 type veth peer name lan0 netns " + lan.name);
        must("ip addr add 203.0.113.2/24 dev ether1 && ip link set ether1 up");
        must("ip addr add 198.51.100.2/24 dev ether2 && ip link set ether2 up");
        must("ip addr add 192.168.88.1/24 dev ether3 && ip link set ether3 up");
        must("sysctl -qw net.ipv4.ip_forward=1");
        for (const auto* isp : {&isp1, &isp2}) {
            const std::string gw = isp == &isp1 ? "203.0.113.1/24" : "198.51.100.1/24";
            must("ip -n " + isp->name + " addr add " + gw + " dev up0 && ip -n " + isp->name + " link set up0 up");
            must("ip -n " + isp->name + " addr add 192.0.2.10/32 dev lo");
        }
        must("ip -n " + isp2.name + " route add 192.168.88.0/24 via 198.51.100.2");
        must("ip -n " + lan.name + " addr add 192.168.88.2/24 dev lan0 && ip -n " + lan.name + " link set lan0 up");
        must("ip -n " + lan.name + " route add default via 192.168.88.1");
    }

    // One TCP connection from the LAN to the server, which sends `bytes` back.
    void download(unsigned bytes) {
        must(isp1.exec(serve(bytes)));
        must(isp2.exec(serve(bytes)));
        must(lan.exec("timeout 10 socat -u TCP:192.0.2.10:8080,retry=50,interval=0.1 OPEN:/dev/null"));
        // The other ISP's server was not connected to: stop it.
        isp1.stop_all();
        isp2.stop_all();
    }
    static std::string serve(unsigned bytes) {
        return "sh -c 'timeout 10 socat TCP-LISTEN:8080,reuseaddr SYSTEM:\"head -c " + std::to_string(bytes) +
               " /dev/zero\" >/dev/null 2>&1 &'";
    }
};

std::vector<WanInputs> inputs_for(const Config& config, Health charter, Health integra) {
    std::vector<WanInputs> in = healthy(config);
    for (size_t i = 0; i < in.size(); ++i) in[i].ifindex = int(if_nametoindex(config.wans[i].interface.c_str()));
    in[0].health = charter;
    in[1].health = integra;
    return in;
}

uint64_t packets_of(const std::vector<ReplyCount>& counts, const std::string& wan) {
    for (const auto& c : counts)
        if (c.wan == wan && c.family == Family::V4) return c.packets;
    FAIL("no IPv4 counter for " << wan);
    return 0;
}

std::vector<ReplyCount> read(NetlinkKernel& kernel) {
    auto counts = kernel.read_reply_counters();
    REQUIRE_MESSAGE(counts.has_value(), counts.error().message);
    return *counts;
}

}  // namespace

TEST_CASE("replies count on the WAN they come back in on; unsolicited and the router's own traffic never") {
    enter_fresh_netns();
    Lab lab;
    auto opened = NetlinkKernel::open();
    REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
    NetlinkKernel& kernel = **opened;
    KernelSync sync(kernel);
    const Config config = article_config();

    // charter alone takes new connections.
    ApplyReport report = sync.apply(build_desired(config, inputs_for(config, Health::Up, Health::Down)));
    REQUIRE(report.ok());
    CHECK(read(kernel) == std::vector<ReplyCount>{{"charter", Family::V4, 0}, {"integra", Family::V4, 0}});

    lab.download(100000);
    auto after_charter = read(kernel);
    // The SYN-ACK, the data (in a few large segments: veth offloads), the FIN: all in on ether1.
    CHECK(packets_of(after_charter, "charter") >= 3);
    CHECK(packets_of(after_charter, "integra") == 0);

    // Unsolicited from the internet, through the router to the LAN: pings, SYNs to a closed
    // port, stray ACKs (which conntrack picks up as new, tcp_loose). All original direction;
    // the LAN's answers come back in on ether3, which is no WAN.
    must(lab.isp2.exec("ping -c 3 -i 0.2 -W 2 192.168.88.2"));
    run(lab.isp2.exec("hping3 -q -c 3 -i u100000 -S -p 81 192.168.88.2"));
    run(lab.isp2.exec("hping3 -q -c 3 -i u100000 -A -p 82 192.168.88.2"));
    // The router's own connections (input and output, never forwarded), on either WAN.
    must("ping -c 2 -i 0.2 -W 2 203.0.113.1 && ping -c 2 -i 0.2 -W 2 198.51.100.1");
    CHECK(read(kernel) == after_charter);

    // integra takes over: the health change touches the balance map only, so charter's
    // counter keeps what it counted; the next connection counts on integra.
    report = sync.apply(build_desired(config, inputs_for(config, Health::Down, Health::Up)));
    REQUIRE(report.ok());
    CHECK(read(kernel) == after_charter);
    lab.download(100000);
    auto after_integra = read(kernel);
    CHECK(packets_of(after_integra, "charter") == packets_of(after_charter, "charter"));
    CHECK(packets_of(after_integra, "integra") >= 3);

    // What nft lists is what render() prints, but for the counters' values.
    CHECK(listing() == nft::render(build_desired(config, inputs_for(config, Health::Down, Health::Up)).table));
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
