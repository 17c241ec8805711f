// Test support for the nftables kernel tests: an NftSocket, plans applied or failing the test,
// what `nft list` shows, loading text with nft itself, and the kernel's view of a table.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "netlink/nft_apply.hpp"
#include "rules/nft.hpp"
#include "rules/nft_diff.hpp"
#include "tests/kernel/netns.hpp"

namespace wb::test {

inline std::unique_ptr<nft::NftSocket> open_socket() {
    auto s = nft::NftSocket::open();
    if (!s) FAIL(s.error().message);
    return std::move(*s);
}

inline nft::Plan plan_of(std::vector<nft::Op> ops) { return nft::Plan{std::move(ops)}; }

inline void apply_ok(nft::NftSocket& sock, const nft::Plan& plan) {
    wb::Status s = sock.apply(plan);
    INFO("apply: " << s.message);
    REQUIRE(s.is_ok());
}

inline uint32_t generation(nft::NftSocket& sock) {
    auto g = sock.generation();
    if (!g) FAIL(g.error().message);
    return *g;
}

// `nft list table` with every counter at 0, as render() prints them (the reply counters
// count whatever a test forwards).
inline std::string listing(const std::string& table = nft::kTableName) {
    return std::regex_replace(must("nft list table inet " + table),
                              std::regex("counter packets [0-9]+ bytes [0-9]+"), "counter packets 0 bytes 0");
}

inline void load_nft(const std::string& text) {
    std::string path = "/tmp/wbnft-test-" + std::to_string(getpid()) + ".nft";
    std::ofstream(path) << text;
    auto r = run("nft -f " + path);
    std::remove(path.c_str());
    INFO("nft -f:\n" << text << "\n" << r.output);
    REQUIRE(r.exit_code == 0);
}

// What the kernel holds, expression by expression (`nft --debug=netlink list`), without what
// differs between two equal tables: the table name, rule handles, hash-order of elements.
inline std::string kernel_view(const std::string& table) {
    std::istringstream in(must("nft --debug=netlink list table inet " + table));
    std::string out, line;
    std::vector<std::string> elements;
    auto flush = [&] {
        std::sort(elements.begin(), elements.end());
        for (const auto& e : elements) out += e + "\n";
        elements.clear();
    };
    const std::string prefix = "inet " + table + " ";
    while (std::getline(in, line)) {
        if (line.rfind("\telement ", 0) == 0) {
            elements.push_back(line);
            continue;
        }
        flush();
        line = std::regex_replace(line, std::regex("counter pkts [0-9]+ bytes [0-9]+"), "counter pkts 0 bytes 0");
        if (line.rfind(prefix, 0) == 0) {
            line = "inet T " + line.substr(prefix.size());
            if (line.find('@') == std::string::npos) line = line.substr(0, line.find(' ', 7));  // drop handles
        }
        if (line.rfind("table inet " + table + " {", 0) == 0) line = "table inet T {";
        out += line + "\n";
    }
    flush();
    return out;
}

}  // namespace wb::test
