// A netfilter netlink socket that listens to notification groups and is read without blocking:
// the plumbing the nftables monitor and the conntrack events share.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "netlink/handles.hpp"

namespace wb {

// Opens a non-blocking NETLINK_NETFILTER socket in the current network namespace, subscribed to
// `groups` (NFNLGRP_*), with a receive buffer of `receive_buffer` bytes: SO_RCVBUFFORCE with
// CAP_NET_ADMIN, past net.core.rmem_max; without it SO_RCVBUF, which the sysctl caps.
// NETLINK_NO_ENOBUFS stays off, so a reader learns when notifications were lost.
// `what` names the notifications in errors ("conntrack events").
Expected<MnlSocketPtr> open_nfnl_listener(const std::string& what, const std::vector<int>& groups, int receive_buffer);

struct NfnlHandlers {
    std::function<void(const nlmsghdr*)> message;  // each message read (control messages skipped)
    // Notifications were lost: the kernel's queue overflowed (ENOBUFS, once per overflow, not
    // per lost message), or a datagram did not fit `buffer`.
    std::function<void()> lost;
};

// Reads the datagrams already queued on fd until none is left (EAGAIN) or `max_reads` were
// read; the rest stays queued for the next call. An error other than EAGAIN, EINTR and ENOBUFS
// ends the call and is returned with `what` in its text.
Status drain_nfnl(int fd, std::vector<char>& buffer, size_t max_reads, const NfnlHandlers& handlers,
                  const std::string& what);

}  // namespace wb
