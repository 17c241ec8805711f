// The live check (docs/design.md, Live check): a valid configuration held against the running
// system, each finding one warning line naming the key. Pure: the system is described by a
// SystemView that the caller read (netlink/system_view.hpp) and, for `check --live`, completed
// with neighbour solicitations; unit-tested without a kernel.
#pragma once

#include <optional>
#include <vector>

#include "base/ip.hpp"
#include "config/config.hpp"
#include "netlink/system_view.hpp"

namespace wb {

// The gateway a WAN uses for `family` as the system stands: the configured one, else ("auto")
// the lowest foreign default route's on its interface. nullopt: none.
std::optional<IpAddr> live_gateway(const WanConfig& wan, const SystemView& view, Family family);

// The link's own address whose subnet holds `gateway`, or whose point-to-point peer it is.
std::optional<IpAddr> address_toward(const LinkView& link, const IpAddr& gateway);

// Every finding, in configuration order, as {JSON path, problem} ("" path: the file itself),
// e.g. {"/wans/0/gateway", "203.0.113.99 is outside ether1's subnets (203.0.113.2/24) ..."}.
std::vector<ConfigError> live_findings(const Config& config, const SystemView& view);

}  // namespace wb
