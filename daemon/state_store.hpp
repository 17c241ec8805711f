// What survives a restart, kept in the state directory ($STATE_DIRECTORY, else
// /var/lib/wanbalance): the configuration last applied, the operator's overrides, the HA role, and the
// original sysctl values wanbalanced changed. A crash, a watchdog kill or a package upgrade
// then keeps a drained WAN drained, runs the last good config when the file was broken
// meanwhile, and still restores what the host had.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"
#include "core/wan_state.hpp"

namespace wb {

inline constexpr const char* kDefaultStateDir = "/var/lib/wanbalance";

// --state-dir if given, else $STATE_DIRECTORY (its first entry), else /var/lib/wanbalance.
std::string resolve_state_dir(const std::string& from_flag);

struct SysctlOriginal {
    int ifindex = 0;
    bool src_valid_mark = false;
    bool operator==(const SysctlOriginal&) const = default;
};
using SysctlRecord = std::map<std::string, SysctlOriginal>;  // by interface name
using OverrideRecord = std::map<std::string, Override>;      // by WAN name; Auto is not kept

class StateStore {
public:
    explicit StateStore(std::string dir) : dir_(std::move(dir)) {}
    const std::string& dir() const { return dir_; }

    // Creates the directory (mode 0700) if it is missing.
    Status prepare() const;

    // The text of the configuration last applied, and where it is kept.
    std::optional<std::string> last_config() const;
    Status save_last_config(std::string_view text) const;
    std::string last_config_path() const;

    OverrideRecord overrides() const;  // empty when absent or unreadable
    Status save_overrides(const OverrideRecord& record) const;

    // The HA role the daemon was last told (wanbalancectl role); nullopt when never told, or
    // when the file holds something else.
    std::optional<std::string> role() const;
    Status save_role(std::string_view role) const;

    SysctlRecord sysctls() const;  // empty when absent or unreadable
    Status save_sysctls(const SysctlRecord& record) const;
    void remove_sysctls() const;

private:
    std::string path(std::string_view name) const;
    Status write(std::string_view name, std::string_view text) const;  // atomic: temp file, rename

    std::string dir_;
};

}  // namespace wb
