#include "netlink/nfnl_listener.hpp"

#include <libmnl/libmnl.h>
#include <sys/socket.h>

#include <cerrno>

#include "base/ipv4.hpp"

namespace wb {

Expected<MnlSocketPtr> open_nfnl_listener(const std::string& what, const std::vector<int>& groups, int receive_buffer) {
    MnlSocketPtr nl(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        int err = errno;
        return Status::fail(err, "Could not open a netfilter netlink socket for " + what + ": " + errno_text(err));
    }
    for (int group : groups) {
        if (mnl_socket_setsockopt(nl.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
            int err = errno;
            return Status::fail(err, "Could not subscribe to " + what + ": " + errno_text(err));
        }
    }
    int fd = mnl_socket_get_fd(nl.get());
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer, sizeof receive_buffer) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    return nl;
}

Status drain_nfnl(int fd, std::vector<char>& buffer, size_t max_reads, const NfnlHandlers& handlers,
                  const std::string& what) {
    for (size_t reads = 0; reads < max_reads;) {
        ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            // The queue overflowed (or the kernel could not allocate a notification:
            // nfnetlink_set_err()); the socket keeps working, what was lost is unknown.
            if (errno == ENOBUFS) {
                handlers.lost();
                continue;
            }
            int err = errno;
            return Status::fail(err, "Could not read " + what + ": " + errno_text(err));
        }
        ++reads;
        if (size_t(n) > buffer.size()) {  // truncated: a message was cut off
            handlers.lost();
            continue;
        }
        int len = int(n);
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, len);
             nlh = mnl_nlmsg_next(nlh, &len))
            if (nlh->nlmsg_type >= NLMSG_MIN_TYPE) handlers.message(nlh);
    }
    return Status::ok();
}

}  // namespace wb
