// The daemon's side of the control socket: a Unix stream socket in the runtime dir (mode 0600,
// root peers only) served on an sd-event loop, one request line in and one reply line out.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/status.hpp"
#include "control/protocol.hpp"
#include "control/socket.hpp"

namespace wb {

// Called on the loop for every well-formed request from root; what it returns is sent back.
// An exception becomes an ErrorReply "internal error: ..." (it never reaches the loop).
using ControlHandler = std::function<Reply(const Request& request)>;

// Sends the reply to one request. Call it on the loop's thread, before the handler returns or
// any time later. Only the first call counts; a reply to a client that is gone (it timed out,
// hung up) or to a server that is destroyed is dropped.
using Respond = std::function<void(const Reply& reply)>;
// The asynchronous form, for requests whose answer takes a while (the status's conntrack
// count): the loop serves everything else meanwhile, and the client timeout still bounds the
// wait. An exception thrown before the handler responds becomes the ErrorReply as above.
using AsyncControlHandler = std::function<void(const Request& request, Respond respond)>;

class ControlServer {
public:
    // Creates RUNTIME_DIR (0755) if missing, binds RUNTIME_DIR/control.sock (0600; a stale
    // socket file from a crashed run is replaced, a live daemon's is refused), listens, and
    // serves on `event`. Refuses peers whose SO_PEERCRED uid is not 0; answers requests that
    // decode_request rejects, or that exceed kMaxControlRequestBytes, with an ErrorReply and
    // keeps serving.
    static Expected<std::unique_ptr<ControlServer>> open(sd_event* event, const std::string& runtime_dir,
                                                         ControlHandler handler);
    // The same, with the time one client gets to send its request and read the reply before
    // it is dropped (default kControlClientTimeout; tests use a short one).
    static Expected<std::unique_ptr<ControlServer>> open(sd_event* event, const std::string& runtime_dir,
                                                         ControlHandler handler,
                                                         std::chrono::milliseconds client_timeout);
    // The same with a handler that may reply later.
    static Expected<std::unique_ptr<ControlServer>> open(sd_event* event, const std::string& runtime_dir,
                                                         AsyncControlHandler handler);
    static Expected<std::unique_ptr<ControlServer>> open(sd_event* event, const std::string& runtime_dir,
                                                         AsyncControlHandler handler,
                                                         std::chrono::milliseconds client_timeout);
    ~ControlServer();  // closes and unlinks the socket
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const;

private:
    ControlServer() = default;
    struct Impl;
    std::shared_ptr<Impl> impl_;  // shared: a Respond holds a weak_ptr to it
};

}  // namespace wb
