#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "probe/dns.hpp"

using namespace wb;

namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> list) {
    std::vector<uint8_t> out;
    for (int b : list) out.push_back(static_cast<uint8_t>(b));
    return out;
}

}  // namespace

TEST_CASE("a query: header with RD, one question, type and class IN") {
    auto q = dns::build_query(0xbeef, "example.com", dns::QueryType::A);
    REQUIRE(q);
    CHECK(*q == bytes({0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,                    //
                       7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,          //
                       0, 1, 0, 1}));
    // A final dot (the root) is the same name; AAAA is type 28.
    auto aaaa = dns::build_query(1, "example.com.", dns::QueryType::Aaaa);
    REQUIRE(aaaa);
    CHECK(aaaa->size() == q->size());
    CHECK((*aaaa)[aaaa->size() - 3] == 28);
    CHECK(dns::query_type_for(Family::V4) == dns::QueryType::A);
    CHECK(dns::query_type_for(Family::V6) == dns::QueryType::Aaaa);
    CHECK(dns::build_query(2, "a_b-9.Example", dns::QueryType::A));
}

TEST_CASE("names: labels of 1-63 characters, at most 253 in all, letters digits - _") {
    const std::string label63(63, 'a');
    CHECK_FALSE(dns::name_problem(label63 + ".com"));
    CHECK(dns::name_problem(std::string(64, 'a') + ".com"));
    std::string long_name;  // 4 labels of 63 and a dot each: 255; cut to 253 and 254
    for (int i = 0; i < 4; ++i) long_name += (i ? "." : "") + label63;
    CHECK_FALSE(dns::name_problem(long_name.substr(0, 253)));
    CHECK(dns::name_problem(long_name.substr(0, 254)) ==
          std::string("it is 254 characters long; DNS allows at most 253"));
    CHECK_FALSE(dns::name_problem(long_name.substr(0, 253) + "."));
    for (std::string bad : {"", ".", "a..b", ".a", "a b", "ex*ample.com", "é.com", "a/b", "a\nb"}) {
        INFO(bad);
        CHECK(dns::name_problem(bad));
        CHECK_FALSE(dns::build_query(1, bad, dns::QueryType::A));
    }
}

TEST_CASE("a response is QR=1 with its id; any rcode counts") {
    auto q = *dns::build_query(0x1234, "example.com", dns::QueryType::A);
    CHECK_FALSE(dns::response_id(q));  // our own query, looped back, is not an answer
    auto r = q;
    r[2] |= 0x80;
    CHECK(dns::response_id(r) == 0x1234);
    r[3] = 0x83;  // RA, NXDOMAIN
    CHECK(dns::response_id(r) == 0x1234);
    r[3] = 0x05;  // REFUSED
    CHECK(dns::response_id(r) == 0x1234);
    CHECK_FALSE(dns::response_id(std::span<const uint8_t>(r).first(11)));
    CHECK_FALSE(dns::response_id({}));
}
