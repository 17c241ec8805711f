// The control socket between wanbalancectl and the daemon: a Unix stream socket in the runtime
// dir (mode 0600, root peers only), one JSON request and one JSON reply per connection.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/status.hpp"

namespace wb {

inline constexpr const char* kControlSocketName = "control.sock";
inline constexpr const char* kDefaultRuntimeDir = "/run/wanbalance";
inline constexpr size_t kMaxControlRequestBytes = 64 * 1024;
inline constexpr auto kControlClientTimeout = std::chrono::seconds(10);

// Requests (one JSON object, newline-terminated):
//   {"command": "status"}
//   {"command": "reload"}
//   {"command": "set", "wan": "charter", "mode": "down" | "up" | "auto"}
// Replies:
//   {"ok": true, ...command-specific fields...}     e.g. "status": {DESIGN.md §5 object}
//   {"ok": false, "error": "one line", "exit_code": 78 | 1}
// exit_code is what wanbalancectl exits with: 78 for configuration errors, 1 otherwise.
using ControlHandler = std::function<nlohmann::json(const nlohmann::json& request)>;

// {"ok": false, "error": message, "exit_code": exit_code}: the error reply, for handlers too.
nlohmann::json control_error(const std::string& message, int exit_code = 1);

// The runtime dir: --runtime-dir if given, else $RUNTIME_DIRECTORY, else /run/wanbalance.
std::string resolve_runtime_dir(const std::string& from_flag);

class ControlServer {
public:
    // Creates RUNTIME_DIR (0755) if missing, binds RUNTIME_DIR/control.sock (0600; a stale
    // socket file from a crashed run is replaced), listens, and serves on `event`.
    // Refuses peers whose SO_PEERCRED uid is not 0; replies with an error to requests that are
    // not JSON objects, lack "command", or exceed kMaxControlRequestBytes, and keeps serving.
    static Expected<std::unique_ptr<ControlServer>> open(sd_event* event, const std::string& runtime_dir,
                                                         ControlHandler handler);
    // The same, with the time one client gets to send its request and read the reply before
    // it is dropped (default kControlClientTimeout; tests use a short one).
    static Expected<std::unique_ptr<ControlServer>> open(sd_event* event, const std::string& runtime_dir,
                                                         ControlHandler handler,
                                                         std::chrono::milliseconds client_timeout);
    ~ControlServer();  // closes and unlinks the socket
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const;

private:
    ControlServer() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Client side: connects to RUNTIME_DIR/control.sock, sends the request, returns the reply.
// Errors: "cannot connect to /run/wanbalance/control.sock: No such file or directory (is
// wanbalanced running?)", or a timeout.
Expected<nlohmann::json> control_request(const std::string& runtime_dir, const nlohmann::json& request,
                                         std::chrono::milliseconds timeout = kControlClientTimeout);

}  // namespace wb
