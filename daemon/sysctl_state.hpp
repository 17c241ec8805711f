// The per-interface sysctls wanbalanced changed (src_valid_mark) and their original values,
// kept in the runtime dir so a restart after a crash still restores what the host had.
#pragma once

#include <map>
#include <string>

namespace wb {

struct SysctlOriginal {
    int ifindex = 0;
    bool src_valid_mark = false;
    bool operator==(const SysctlOriginal&) const = default;
};
using SysctlRecord = std::map<std::string, SysctlOriginal>;  // by interface name

SysctlRecord load_sysctl_record(const std::string& runtime_dir);  // empty when absent or unreadable
void save_sysctl_record(const std::string& runtime_dir, const SysctlRecord& record);
void remove_sysctl_record(const std::string& runtime_dir);

}  // namespace wb
