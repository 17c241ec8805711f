// Where the control socket lives and what both ends agree on about it: its name in the runtime
// dir, the request size cap, the time one exchange may take.
#pragma once

#include <sys/un.h>

#include <chrono>
#include <cstddef>
#include <string>

#include "base/status.hpp"

namespace wb {

inline constexpr const char* kControlSocketName = "control.sock";
inline constexpr const char* kDefaultRuntimeDir = "/run/wanbalance";
inline constexpr size_t kMaxControlRequestBytes = 64 * 1024;
inline constexpr auto kControlClientTimeout = std::chrono::seconds(10);

// The runtime dir: --runtime-dir if given, else $RUNTIME_DIRECTORY, else /run/wanbalance.
std::string resolve_runtime_dir(const std::string& from_flag);

// RUNTIME_DIR/control.sock (trailing slashes of the dir ignored).
std::string control_socket_path(const std::string& runtime_dir);

// The address of `path`; an error rather than a truncation when it does not fit sun_path.
Expected<sockaddr_un> unix_address(const std::string& path);

}  // namespace wb
