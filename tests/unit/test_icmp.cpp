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
