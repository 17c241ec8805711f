// An owned file descriptor: closed when it goes out of scope, movable, never copied.
// Used for every socket the daemon opens itself (control socket, probe sockets).
#pragma once

#include <unistd.h>

#include <utility>

namespace wb {

struct Fd {
    int fd = -1;

    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd = std::exchange(o.fd, -1);
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    void reset() {
        if (fd >= 0) close(fd);
        fd = -1;
    }
    explicit operator bool() const { return fd >= 0; }
};

}  // namespace wb
