// The live check's reading of the running system (docs/design.md, Live check): the daemon runs
// it at start and on reload (warnings in the journal and in status), and `wanbalancectl check
// --live` runs `wanbalanced --check-live`, which also asks each gateway for its link-layer address.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "config/config.hpp"

namespace wb {

// Why the service's user (systemd's DynamicUser: neither root nor the file's owner) cannot read
// `path`: the file is not readable by others, or a directory on the way not searchable by them.
// nullopt when it can, or when the file cannot be examined at all (loading it says why).
std::optional<std::string> unreadable_by_service(const std::string& path);

// Every finding for `config` (read from `path`) on this system. With `solicit`, each gateway on
// a link that is up is asked with ARP or a neighbour solicitation (about a second for one that
// does not answer); without, what the kernel's neighbour table says of it is taken.
Expected<std::vector<ConfigError>> live_check(const Config& config, const std::string& path, bool solicit);

// `wanbalanced --check-live`: loads `path`, prints each problem or finding as `check` does, and
// returns the exit status (78 for an invalid file; findings are warnings and leave it 0).
int run_live_check(const std::string& path);

}  // namespace wb
