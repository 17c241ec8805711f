// Conntrack events over ctnetlink (NFNLGRP_CONNTRACK_NEW, _UPDATE, _DESTROY), as the daemon's
// traffic evidence needs them: which new TCP connections carry a WAN's mark and when each first
// hears back. Subscribing turns events on in this network namespace (nf_conntrack_events=2, the
// default, sends them only while someone listens). Read on the sd-event loop, never blocking.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "base/ip.hpp"
#include "base/noncopyable.hpp"
#include "base/status.hpp"

namespace wb {

struct CtEvent {
    enum class Kind { New, Update, Destroy };
    Kind kind = Kind::New;
    uint32_t id = 0;    // CTA_ID
    uint32_t mark = 0;  // CTA_MARK (the whole mark; the daemon masks it)
    Family family = Family::V4;
    uint8_t l4proto = 0;     // IPPROTO_TCP, ...
    bool seen_reply = false;  // IPS_SEEN_REPLY: a packet came back in the reply direction
    bool operator==(const CtEvent&) const = default;
};

class ConntrackEvents : NonCopyable {
public:
    using Callback = std::function<void(const CtEvent&)>;
    // Subscribes in the current netns and watches the socket on `event`. An event the kernel
    // could not queue (ENOBUFS: a burst beyond the receive buffer) is lost; the callback is then
    // not told, and overflows() counts it.
    static Expected<std::unique_ptr<ConntrackEvents>> open(sd_event* event, Callback callback);
    ~ConntrackEvents();
    uint64_t overflows() const;

private:
    ConntrackEvents() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wb
