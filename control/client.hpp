// wanbalancectl's side of the control socket: one blocking call, one typed request out, one
// typed reply back. No event loop, no systemd library.
#pragma once

#include <chrono>
#include <string>

#include "base/status.hpp"
#include "control/protocol.hpp"
#include "control/socket.hpp"

namespace wb {

// Connects to RUNTIME_DIR/control.sock, sends the request, returns the daemon's reply (an
// ErrorReply is a reply, not an error). Errors: "cannot connect to /run/wanbalance/control.sock:
// No such file or directory (is wanbalanced running?)", "no reply from wanbalanced on ... within
// 10s", "malformed reply from wanbalanced on ...: ...".
Expected<Reply> control_call(const std::string& runtime_dir, const Request& request,
                             std::chrono::milliseconds timeout = kControlClientTimeout);

}  // namespace wb
