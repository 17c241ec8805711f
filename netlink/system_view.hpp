// What the live check reads of the running system in one go (docs/design.md, Live check): links
// with their addresses, the main table's default routes that are not ours, and whether gateways
// answer ARP or neighbour solicitations. A snapshot over rtnetlink, not followed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/ip.hpp"
#include "base/status.hpp"

namespace wb {

namespace rtnl {
class Socket;
}

struct AddressView {
    IpAddr address;                 // the local address
    unsigned prefix_len = 0;
    std::optional<IpAddr> peer;     // a point-to-point address's other end (IFA_ADDRESS != IFA_LOCAL)
    bool operator==(const AddressView&) const = default;
};

struct LinkView {
    int ifindex = 0;
    bool admin_up = false;
    bool point_to_point = false;
    std::vector<AddressView> addresses;  // both families; IPv6 link-local ones too
    bool operator==(const LinkView&) const = default;
};

// A default route in the main table that wanbalance did not make (a DHCP client's, ifupdown's).
struct ForeignDefault {
    Family family = Family::V4;
    std::string interface;    // its output device ("" for a multipath or blackhole route)
    std::optional<IpAddr> gateway;
    std::string description;  // "default via 192.0.2.1 dev eth0 proto dhcp metric 100"
    bool operator==(const ForeignDefault&) const = default;
};

// Whether a gateway answers ARP (IPv4) or neighbour solicitations (IPv6) on its interface.
enum class NeighbourAnswer { Unknown, Answers, Silent };

struct SystemView {
    std::map<std::string, LinkView> links;  // by name
    std::vector<ForeignDefault> main_defaults;  // lowest metric first
    std::map<std::pair<std::string, IpAddr>, NeighbourAnswer> neighbours;  // (interface, gateway)
    // Why the service's user could not read the configuration file; nullopt when it can.
    std::optional<std::string> config_unreadable;
};

// Links, addresses and the main table's foreign default routes of both families, as they are
// now (neighbours and config_unreadable are left for the caller).
Expected<SystemView> read_system_view();

// What the kernel's neighbour table says of `gateway` on `ifindex`: Silent while resolution
// fails (INCOMPLETE, FAILED), Answers once it has answered (REACHABLE, STALE, DELAY, PROBE,
// PERMANENT), Unknown without an entry. One request on `sock` (RouteNetlink::neighbour_state
// passes its own); the other form opens a socket for it.
Expected<NeighbourAnswer> neighbour_state(rtnl::Socket& sock, int ifindex, const IpAddr& gateway);
Expected<NeighbourAnswer> neighbour_state(int ifindex, const IpAddr& gateway);

}  // namespace wb
