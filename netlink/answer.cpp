#include "netlink/answer.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace wb {

int wait_readable(int fd, Deadline deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return ETIMEDOUT;
        pollfd p{fd, POLLIN, 0};
        int ready = poll(&p, 1, int(left.count()));
        if (ready > 0) return 0;
        if (ready < 0 && errno != EINTR) return errno;
    }
}

void discard_pending(int fd) {
    char byte;
    // A netlink datagram read into a short buffer is dropped whole (MSG_TRUNC only reports it).
    while (recv(fd, &byte, sizeof byte, MSG_DONTWAIT | MSG_TRUNC) > 0) {
    }
}

}  // namespace wb
