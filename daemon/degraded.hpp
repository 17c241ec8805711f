// Which WANs the kernel does not hold as the configuration asks (docs/design.md, Degraded), from
// what the last reconcile's kernel refused. Pure: unit-tested without a kernel.
#pragma once

#include <map>
#include <string>

#include "config/config.hpp"
#include "netlink/kernel_sync.hpp"

namespace wb {

// WAN name -> the kernel's words. A refusal in a WAN's own routing table is that WAN's; any
// other (the balanced or a policy table, the nftables transaction, a dump) is every WAN's, since
// it decides where all of them send. Several refusals of one WAN are joined with "; ".
std::map<std::string, std::string> degraded_wans(const Config& config, const ApplyReport& report);

// "the kernel refused …" one line for a reply or a log: every degraded WAN and why.
std::string degraded_summary(const std::map<std::string, std::string>& degraded);

}  // namespace wb
