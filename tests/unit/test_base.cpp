#include <doctest/doctest.h>

#include <iomanip>  // std::quoted, which must not be picked for wb::quoted

#include "base/format.hpp"
#include "base/ipv4.hpp"

using wb::Ipv4;

TEST_CASE("Ipv4::parse accepts dotted quads and rejects everything else") {
    CHECK(Ipv4::parse("203.0.113.1")->value == 0xcb007101u);
    CHECK(Ipv4::parse("0.0.0.0")->value == 0u);
    CHECK(Ipv4::parse("255.255.255.255")->value == 0xffffffffu);
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", " 1.2.3.4",
                            "1..2.3", "198.51.100.x", "1.2.3.-4", "1234.1.1.1", "auto"}) {
        CAPTURE(bad);
        CHECK_FALSE(Ipv4::parse(bad).has_value());
    }
}

TEST_CASE("Ipv4 round-trips through str() and network order") {
    auto a = *Ipv4::parse("192.168.88.1");
    CHECK(a.str() == "192.168.88.1");
    CHECK(Ipv4::from_network(a.network()) == a);
    CHECK(wb::errno_text(101) == "Network is unreachable");
}

TEST_CASE("hex, hex_padded and quoted format as printf and the golden files do") {
    CHECK(wb::hex(0x3f00) == "0x3f00");
    CHECK(wb::hex(0) == "0x0");
    CHECK(wb::hex(0xffffffffu) == "0xffffffff");
    CHECK(wb::hex_padded(0x100, 8) == "0x00000100");
    CHECK(wb::hex_padded(0xffffffffu, 8) == "0xffffffff");
    CHECK(wb::quoted("charter") == "\"charter\"");
    CHECK(wb::quoted("") == "\"\"");
}

TEST_CASE("quoted is ours, not std::quoted, for every kind of string") {
    std::string name = "charter";
    std::string_view view = name;
    CHECK("WAN " + wb::quoted(name) == "WAN \"charter\"");
    CHECK("WAN " + wb::quoted(view) == "WAN \"charter\"");
    CHECK("WAN " + wb::quoted("charter") == "WAN \"charter\"");
    using namespace wb;
    CHECK(quoted(name + "2") == "\"charter2\"");  // unqualified, as the modules call it: no ADL surprise
}

TEST_CASE("counted: a count and its noun, singular for one") {
    CHECK(wb::counted(1, "LAN") == "1 LAN");
    CHECK(wb::counted(2, "LAN") == "2 LANs");
    CHECK(wb::counted(0, "route change") == "0 route changes");
    CHECK(wb::counted(3, "policy", "policies") == "3 policies");
    CHECK(wb::counted(1, "policy", "policies") == "1 policy");
}
