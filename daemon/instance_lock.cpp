#include "daemon/instance_lock.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "base/ipv4.hpp"

namespace wb {

Status InstanceLock::acquire() {
    Fd fd{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (!fd) return Status::fail(errno, "Could not create a Unix socket: " + errno_text(errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    // Abstract: sun_path starts with NUL, the name follows (no file, per network namespace).
    std::memcpy(addr.sun_path + 1, kInstanceLockName, std::strlen(kInstanceLockName));
    auto len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + std::strlen(kInstanceLockName));
    if (bind(fd.fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
        int err = errno;
        if (err == EADDRINUSE)
            return Status::fail(err, "another wanbalanced already manages this network namespace (its routes, rules "
                                     "and table inet wanbalance); refusing to start a second one");
        return Status::fail(err, "Could not take the instance lock @" + std::string(kInstanceLockName) + ": " +
                                     errno_text(err));
    }
    fd_ = std::move(fd);
    return Status::ok();
}

}  // namespace wb
