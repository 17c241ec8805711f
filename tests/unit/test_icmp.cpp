#include <doctest/doctest.h>

#include <vector>

#include "probe/icmp.hpp"

using namespace wb;

namespace {

// An IPv4 header (20 bytes, no options) from `source` around `icmp_message`.
std::vector<uint8_t> ip_packet(Ipv4 source, std::vector<uint8_t> icmp_message, uint8_t protocol = 1) {
    size_t total = 20 + icmp_message.size();
    std::vector<uint8_t> p(total, 0);
    p[0] = 0x45;
    p[2] = static_cast<uint8_t>(total >> 8);
    p[3] = static_cast<uint8_t>(total);
    p[8] = 64;
    p[9] = protocol;
    for (int i = 0; i < 4; ++i) p[12 + i] = static_cast<uint8_t>(source.value >> (24 - 8 * i));
    std::copy(icmp_message.begin(), icmp_message.end(), p.begin() + 20);
    return p;
}

// What a host answering `request` sends back: type 0, same id/seq/payload, checksum redone.
std::vector<uint8_t> answer(std::vector<uint8_t> request) {
    request[0] = 0;
    request[2] = request[3] = 0;
    uint16_t sum = icmp::internet_checksum(request);
    request[2] = static_cast<uint8_t>(sum >> 8);
    request[3] = static_cast<uint8_t>(sum);
    return request;
}

// Runs a classic BPF program over `packet` as the kernel would (the instructions the filters use:
// ld/ldx byte and half, absolute and indexed, ldx msh, jeq, ret); the value returned, 0 = drop.
uint32_t run_bpf(const std::vector<sock_filter>& program, const std::vector<uint8_t>& packet) {
    uint32_t a = 0, x = 0;
    auto load = [&](uint32_t at, uint32_t size, uint32_t* out) {
        if (at + size > packet.size()) return false;
        *out = size == 1 ? packet[at] : uint32_t(packet[at] << 8 | packet[at + 1]);
        return true;
    };
    for (size_t pc = 0; pc < program.size(); ++pc) {
        const sock_filter& i = program[pc];
        const uint32_t size = BPF_SIZE(i.code) == BPF_B ? 1 : 2;
        if (i.code == (BPF_LDX | BPF_B | BPF_MSH)) {
            uint32_t b = 0;
            if (!load(i.k, 1, &b)) return 0;
            x = (b & 0xf) * 4;
        } else if (BPF_CLASS(i.code) == BPF_LD && (BPF_MODE(i.code) == BPF_ABS || BPF_MODE(i.code) == BPF_IND)) {
            uint32_t at = i.k + (BPF_MODE(i.code) == BPF_IND ? x : 0);
            if (!load(at, size, &a)) return 0;  // out of the packet: the kernel drops
        } else if (i.code == (BPF_JMP | BPF_JEQ | BPF_K)) {
            pc += a == i.k ? i.jt : i.jf;
        } else if (i.code == (BPF_RET | BPF_K)) {
            return i.k;
        } else {
            FAIL("instruction the test interpreter does not know: " << i.code);
        }
    }
    FAIL("fell off the end of the program");
    return 0;
}

std::vector<uint8_t> echo_reply6(uint16_t id, uint16_t seq) {
    auto m = icmp::build_echo_request6(id, seq);
    m[0] = 129;
    return m;
}

}  // namespace

TEST_CASE("internet_checksum matches RFC 1071's example and verifies to 0") {
    // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2; the checksum is its complement.
    std::vector<uint8_t> words{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    CHECK(icmp::internet_checksum(words) == static_cast<uint16_t>(~0xddf2));
    // Odd length pads with a zero byte.
    std::vector<uint8_t> odd{0x12, 0x34, 0x56};
    CHECK(icmp::internet_checksum(odd) == static_cast<uint16_t>(~(0x1234 + 0x5600)));
}

TEST_CASE("build_echo_request lays out type, code, id, sequence, payload and a valid checksum") {
    auto req = icmp::build_echo_request(0xbeef, 0x0102);
    REQUIRE(req.size() == icmp::kEchoHeaderBytes + icmp::kProbePayload.size());
    CHECK(req[0] == 8);
    CHECK(req[1] == 0);
    CHECK(req[4] == 0xbe);
    CHECK(req[5] == 0xef);
    CHECK(req[6] == 0x01);
    CHECK(req[7] == 0x02);
    CHECK(std::equal(icmp::kProbePayload.begin(), icmp::kProbePayload.end(), req.begin() + 8));
    CHECK(icmp::internet_checksum(req) == 0);
}

TEST_CASE("parse_echo_reply returns source, id and sequence of a valid reply") {
    Ipv4 source = *Ipv4::parse("192.0.2.53");
    auto reply = icmp::parse_echo_reply(ip_packet(source, answer(icmp::build_echo_request(0x1234, 7))));
    REQUIRE(reply.has_value());
    CHECK(*reply == icmp::EchoReply{source, 0x1234, 7});

    // IP options: the ICMP message starts after IHL*4 bytes.
    auto with_options = ip_packet(source, answer(icmp::build_echo_request(9, 10)));
    with_options[0] = 0x46;
    for (int i = 0; i < 4; ++i) with_options.insert(with_options.begin() + 20, uint8_t{1});  // NOPs
    with_options[3] = static_cast<uint8_t>(with_options[3] + 4);
    auto opt_reply = icmp::parse_echo_reply(with_options);
    REQUIRE(opt_reply.has_value());
    CHECK(opt_reply->identifier == 9);
    CHECK(opt_reply->sequence == 10);
}

TEST_CASE("parse_echo_reply rejects everything that is not a whole valid echo reply") {
    Ipv4 source = *Ipv4::parse("192.0.2.53");
    auto good = ip_packet(source, answer(icmp::build_echo_request(1, 2)));
    REQUIRE(icmp::parse_echo_reply(good).has_value());

    auto request = ip_packet(source, icmp::build_echo_request(1, 2));  // type 8
    CHECK_FALSE(icmp::parse_echo_reply(request).has_value());

    auto bad_sum = good;
    bad_sum.back() ^= 0xff;
    CHECK_FALSE(icmp::parse_echo_reply(bad_sum).has_value());

    CHECK_FALSE(icmp::parse_echo_reply(ip_packet(source, answer(icmp::build_echo_request(1, 2)), 17)).has_value());

    auto truncated = good;
    truncated.resize(good.size() - 1);  // total length now exceeds what was received
    CHECK_FALSE(icmp::parse_echo_reply(truncated).has_value());
    CHECK_FALSE(icmp::parse_echo_reply(std::vector<uint8_t>(good.begin(), good.begin() + 24)).has_value());

    auto fragment = good;
    fragment[6] = 0x20;  // more fragments
    CHECK_FALSE(icmp::parse_echo_reply(fragment).has_value());

    auto ipv6 = good;
    ipv6[0] = 0x65;
    CHECK_FALSE(icmp::parse_echo_reply(ipv6).has_value());

    auto short_ihl = good;
    short_ihl[0] = 0x44;
    CHECK_FALSE(icmp::parse_echo_reply(short_ihl).has_value());

    auto bad_code = ip_packet(source, [] {
        auto m = answer(icmp::build_echo_request(1, 2));
        m[1] = 1;
        return answer(m);
    }());
    CHECK_FALSE(icmp::parse_echo_reply(bad_code).has_value());

    CHECK_FALSE(icmp::parse_echo_reply(std::vector<uint8_t>{}).has_value());
}

TEST_CASE("echo_reply_filter checks the ICMP type and then the identifier") {
    auto program = icmp::echo_reply_filter(0xabcd);
    REQUIRE(program.size() == 7);
    CHECK(program[2].k == 0);       // echo reply type
    CHECK(program[4].k == 0xabcd);  // identifier
    CHECK(program.back().k == 0);   // drop
    // Every jump lands inside the program.
    for (size_t i = 0; i < program.size(); ++i) {
        if (BPF_CLASS(program[i].code) != BPF_JMP) continue;
        CHECK(i + 1 + program[i].jt < program.size());
        CHECK(i + 1 + program[i].jf < program.size());
    }
}

TEST_CASE("build_echo_request6 lays out type 128, id, sequence and payload; the checksum is the kernel's") {
    auto req = icmp::build_echo_request6(0xbeef, 0x0102);
    REQUIRE(req.size() == icmp::kEchoHeaderBytes + icmp::kProbePayload.size());
    CHECK(req[0] == 128);
    CHECK(req[1] == 0);
    CHECK(req[2] == 0);  // filled in by the kernel on a raw IPPROTO_ICMPV6 socket
    CHECK(req[3] == 0);
    CHECK(req[4] == 0xbe);
    CHECK(req[5] == 0xef);
    CHECK(req[6] == 0x01);
    CHECK(req[7] == 0x02);
    CHECK(std::equal(icmp::kProbePayload.begin(), icmp::kProbePayload.end(), req.begin() + 8));
    std::vector<uint8_t> payload{1, 2, 3};
    CHECK(icmp::build_echo_request6(1, 2, payload).size() == icmp::kEchoHeaderBytes + 3);
}

TEST_CASE("parse_echo_reply6 reads an ICMPv6 echo reply without IP header; the source is given") {
    Ipv6 source = *Ipv6::parse("fe80::1");
    auto reply_message = icmp::build_echo_request6(0x1234, 7);
    reply_message[0] = 129;
    reply_message[2] = 0x5a;  // some checksum: the kernel checked it already
    auto reply = icmp::parse_echo_reply6(reply_message, source);
    REQUIRE(reply.has_value());
    CHECK(*reply == icmp::EchoReply{source, 0x1234, 7});
    CHECK(family_of(reply->source) == Family::V6);

    // The echo header alone is enough (a reply to a request without payload).
    std::vector<uint8_t> bare(reply_message.begin(), reply_message.begin() + 8);
    CHECK(icmp::parse_echo_reply6(bare, source).has_value());
}

TEST_CASE("parse_echo_reply6 rejects requests, other types and codes, short messages and IPv6 headers") {
    Ipv6 source = *Ipv6::parse("2001:db8:ff::53");
    auto good = icmp::build_echo_request6(1, 2);
    good[0] = 129;
    REQUIRE(icmp::parse_echo_reply6(good, source).has_value());

    CHECK_FALSE(icmp::parse_echo_reply6(icmp::build_echo_request6(1, 2), source).has_value());  // type 128
    auto ipv4_reply_type = good;
    ipv4_reply_type[0] = 0;
    CHECK_FALSE(icmp::parse_echo_reply6(ipv4_reply_type, source).has_value());
    auto unreachable = good;
    unreachable[0] = 1;
    CHECK_FALSE(icmp::parse_echo_reply6(unreachable, source).has_value());
    auto bad_code = good;
    bad_code[1] = 1;
    CHECK_FALSE(icmp::parse_echo_reply6(bad_code, source).has_value());
    CHECK_FALSE(icmp::parse_echo_reply6(std::vector<uint8_t>(good.begin(), good.begin() + 7), source).has_value());
    CHECK_FALSE(icmp::parse_echo_reply6(std::vector<uint8_t>{}, source).has_value());

    // What an IPv4-style parser would be handed (an IPv6 header first) is not an echo reply.
    std::vector<uint8_t> with_header(40, 0);
    with_header[0] = 0x60;
    with_header[6] = 58;  // next header: ICMPv6
    with_header.insert(with_header.end(), good.begin(), good.end());
    CHECK_FALSE(icmp::parse_echo_reply6(with_header, source).has_value());
}

TEST_CASE("echo_reply_filter6 reads type and identifier at fixed offsets from the ICMPv6 header") {
    auto program = icmp::echo_reply_filter6(0xabcd);
    REQUIRE(program.size() == 6);
    CHECK(program[0].code == (BPF_LD | BPF_B | BPF_ABS));
    CHECK(program[0].k == 0);       // type at the start: no IPv6 header in front
    CHECK(program[1].k == 129);     // echo reply
    CHECK(program[2].code == (BPF_LD | BPF_H | BPF_ABS));
    CHECK(program[2].k == 4);       // identifier
    CHECK(program[3].k == 0xabcd);
    CHECK(program[4].k == 0xffffffffu);
    CHECK(program.back().k == 0);  // drop
    for (size_t i = 0; i < program.size(); ++i) {
        if (BPF_CLASS(program[i].code) != BPF_JMP) continue;
        CHECK(i + 1 + program[i].jt < program.size());
        CHECK(i + 1 + program[i].jf < program.size());
    }
}

TEST_CASE("echo_reply_filter keeps our IPv4 echo replies, past IP options, and drops the rest") {
    Ipv4 source = *Ipv4::parse("192.0.2.53");
    auto filter = icmp::echo_reply_filter(0x1234);
    CHECK(run_bpf(filter, ip_packet(source, answer(icmp::build_echo_request(0x1234, 1)))) != 0);
    CHECK(run_bpf(filter, ip_packet(source, answer(icmp::build_echo_request(0x1235, 1)))) == 0);
    CHECK(run_bpf(filter, ip_packet(source, icmp::build_echo_request(0x1234, 1))) == 0);  // a request
    auto with_options = ip_packet(source, answer(icmp::build_echo_request(0x1234, 1)));
    with_options[0] = 0x46;
    for (int i = 0; i < 4; ++i) with_options.insert(with_options.begin() + 20, uint8_t{1});
    CHECK(run_bpf(filter, with_options) != 0);
}

TEST_CASE("echo_reply_filter6 keeps our ICMPv6 echo replies and drops other identifiers and types") {
    auto filter = icmp::echo_reply_filter6(0x1234);
    CHECK(run_bpf(filter, echo_reply6(0x1234, 9)) != 0);
    CHECK(run_bpf(filter, echo_reply6(0x1235, 9)) == 0);
    CHECK(run_bpf(filter, icmp::build_echo_request6(0x1234, 9)) == 0);
    auto neighbour_solicitation = echo_reply6(0x1234, 9);
    neighbour_solicitation[0] = 135;
    CHECK(run_bpf(filter, neighbour_solicitation) == 0);
    CHECK(run_bpf(filter, std::vector<uint8_t>{129, 0}) == 0);  // too short to hold an identifier
    // The IPv4 filter on the same bytes would read an "IP header": it must not be used for IPv6.
    CHECK(run_bpf(icmp::echo_reply_filter(0x1234), echo_reply6(0x1234, 9)) == 0);
}
