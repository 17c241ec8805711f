// The blocking client: connect (bounded by SO_SNDTIMEO), send the request line, read until the
// daemon closes, everything under one deadline.
#include "control/client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.hpp"
#include "base/ipv4.hpp"

namespace wb {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

std::string seconds_text(std::chrono::milliseconds timeout) {
    if (timeout.count() % 1000 == 0) return std::to_string(timeout.count() / 1000) + "s";
    return std::to_string(timeout.count()) + "ms";
}

}  // namespace

Expected<Reply> control_call(const std::string& runtime_dir, const Request& request,
                             std::chrono::milliseconds timeout) {
    const std::string path = control_socket_path(runtime_dir);
    const auto deadline = Clock::now() + timeout;
    const std::string no_reply = "no reply from wanbalanced on " + path + " within " + seconds_text(timeout);
    auto addr = unix_address(path);
    if (!addr) return addr.error();

    Fd fd{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (fd.fd < 0) return Status::fail(errno, "Could not create a Unix socket: " + errno_text(errno));
    // A blocking connect to a Unix socket waits only while the listener's backlog is full,
    // bounded by SO_SNDTIMEO.
    auto ms = timeout.count();
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    if (setsockopt(fd.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        return Status::fail(errno, "Could not set a send timeout on a Unix socket: " + errno_text(errno));
    if (connect(fd.fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
        int err = errno;
        if (err == EAGAIN || err == EINPROGRESS) return Status::fail(ETIMEDOUT, no_reply);
        std::string hint;
        if (err == ENOENT || err == ECONNREFUSED) hint = " (is wanbalanced running?)";
        if (err == EACCES || err == EPERM) hint = " (only root may control wanbalanced)";
        return Status::fail(err, "cannot connect to " + path + ": " + errno_text(err) + hint);
    }
    int flags = fcntl(fd.fd, F_GETFL);
    if (flags < 0 || fcntl(fd.fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return Status::fail(errno, "Could not make " + path + " non-blocking: " + errno_text(errno));

    std::string out = encode(request) + "\n";
    size_t sent = 0;
    while (sent < out.size()) {
        ssize_t n = send(fd.fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n >= 0) {
            sent += static_cast<size_t>(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EPIPE || errno == ECONNRESET) break;  // the server gave up on us: read why
        if (errno != EAGAIN) return Status::fail(errno, "Could not send to " + path + ": " + errno_text(errno));
        pollfd p{fd.fd, POLLOUT, 0};
        if (poll(&p, 1, remaining_ms(deadline)) == 0) return Status::fail(ETIMEDOUT, no_reply);
    }

    std::string in;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd.fd, buf, sizeof buf);
        if (n > 0) {
            in.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) break;
        if (errno == EINTR) continue;
        // The server closes with our unread request bytes in its queue when it rejects a
        // request early; Linux then reports ECONNRESET after the reply it did send.
        if (errno == ECONNRESET) break;
        if (errno != EAGAIN) return Status::fail(errno, "Could not read from " + path + ": " + errno_text(errno));
        pollfd p{fd.fd, POLLIN, 0};
        if (poll(&p, 1, remaining_ms(deadline)) == 0) return Status::fail(ETIMEDOUT, no_reply);
    }
    if (in.empty()) return Status::fail(EPROTO, "wanbalanced closed " + path + " without replying");
    auto reply = decode_reply(in);
    if (!reply) return Status::fail(EPROTO, "malformed reply from wanbalanced on " + path + ": " + reply.error().message);
    return reply;
}

}  // namespace wb
