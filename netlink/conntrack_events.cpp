#include "netlink/conntrack_events.hpp"

#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <optional>
#include <vector>

#include "base/event_ptr.hpp"
#include "netlink/ctnetlink_parse.hpp"
#include "netlink/handles.hpp"
#include "netlink/nfnl_listener.hpp"

namespace wb {
namespace {

constexpr const char* kWhat = "conntrack events";
// Every new connection brings a few events (new, its reply, TCP state changes, destroy); a LAN
// opening thousands a second while the loop is busy elsewhere must not overflow at once. The
// kernel counts an event's whole skb (about 1 KiB) against this.
constexpr int kReceiveBufferBytes = 8 << 20;
// One event per datagram (nfnetlink_send()); an event is a few hundred bytes.
constexpr size_t kReadBufferBytes = 64 * 1024;
// Datagrams read per wake-up at most: the socket is level-triggered, so what is left is read on
// the next loop iteration, after the timers and the other sockets had their turn (a flood of
// connections must not stall probe rounds). About 4 ms at the rate measured in
// tests/kernel/test_conntrack_events.cpp (about 250 000 events/s).
constexpr size_t kReadsPerWakeup = 1024;

// The event an nfnetlink conntrack message stands for; nullopt for anything else.
// ctnetlink_conntrack_event(): a destroy is IPCTNL_MSG_CT_DELETE; a new (or related) entry is
// IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL; every other change IPCTNL_MSG_CT_NEW without.
std::optional<CtEvent> to_event(const nlmsghdr* nlh) {
    if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK) return std::nullopt;
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return std::nullopt;
    CtEvent event;
    switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
        case IPCTNL_MSG_CT_NEW:
            event.kind = nlh->nlmsg_flags & NLM_F_CREATE ? CtEvent::Kind::New : CtEvent::Kind::Update;
            break;
        case IPCTNL_MSG_CT_DELETE: event.kind = CtEvent::Kind::Destroy; break;
        default: return std::nullopt;
    }
    const auto* nfg = static_cast<const nfgenmsg*>(NLMSG_DATA(nlh));
    if (nfg->nfgen_family == AF_INET) event.family = Family::V4;
    else if (nfg->nfgen_family == AF_INET6) event.family = Family::V6;
    else return std::nullopt;
    // Attributes absent from an event read as 0 (ctnetlink_parse.hpp): a mark left out is 0, and
    // a status left out reads as "no reply seen", the safe side for a watch that only forgets a
    // connection when its reply (or its end) is seen.
    const CtEntry entry = read_ct_entry(nlh);
    event.id = entry.id;
    event.mark = entry.mark;
    event.l4proto = entry.original.proto;
    event.seen_reply = (entry.status & IPS_SEEN_REPLY) != 0;
    return event;
}

}  // namespace

struct ConntrackEvents::Impl {
    MnlSocketPtr sock;
    SourcePtr source;
    Callback callback;
    uint64_t overflows = 0;
    std::vector<char> buffer = std::vector<char>(kReadBufferBytes);
    NfnlHandlers handlers{[this](const nlmsghdr* nlh) {
                              if (auto event = to_event(nlh)) callback(*event);
                          },
                          [this] { ++overflows; }};

    static int on_readable(sd_event_source*, int fd, uint32_t, void* userdata) {
        auto* self = static_cast<Impl*>(userdata);
        // Only EBADF or EFAULT could end it early (a bug, not the kernel's doing); the socket is
        // level-triggered, so nothing queued is left behind either way.
        (void)drain_nfnl(fd, self->buffer, kReadsPerWakeup, self->handlers, kWhat);
        return 0;
    }
};

Expected<std::unique_ptr<ConntrackEvents>> ConntrackEvents::open(sd_event* event, Callback callback) {
    auto sock = open_nfnl_listener(
        kWhat, {NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY}, kReceiveBufferBytes);
    if (!sock) return sock.error();
    std::unique_ptr<ConntrackEvents> events(new ConntrackEvents);
    events->impl_ = std::make_unique<Impl>();
    Impl& im = *events->impl_;
    im.sock = std::move(*sock);
    im.callback = std::move(callback);
    sd_event_source* source = nullptr;
    if (int r = sd_event_add_io(event, &source, mnl_socket_get_fd(im.sock.get()), EPOLLIN, Impl::on_readable, &im);
        r < 0)
        return Status::fail(-r, std::string("Could not watch the socket for ") + kWhat + ": " + errno_text(-r));
    im.source.reset(source);
    return events;
}

ConntrackEvents::~ConntrackEvents() = default;

uint64_t ConntrackEvents::overflows() const { return impl_->overflows; }

}  // namespace wb
