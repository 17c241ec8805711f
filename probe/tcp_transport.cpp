// TCP handshakes as a probe transport: one non-blocking socket per probe, bound to the WAN's
// interface and marked, connecting to the target's port. A SYN-ACK (the connect completes) or an
// RST (ECONNREFUSED) is an answer: the path carried TCP both ways. Anything else (an ICMP error
// turned into EHOSTUNREACH, a timeout) is not; the prober's deadline judges the probe. The socket
// is closed with an RST (SO_LINGER 0) as soon as it has answered: no TIME_WAIT here and no
// half-open connection left on the server.
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <vector>

#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "base/format.hpp"
#include "probe/probe_socket.hpp"
#include "probe/transport.hpp"

namespace wb {
namespace {

using probe_detail::bind_and_mark;
using probe_detail::socket_address;

class TcpTransport final : public ProbeTransport {
public:
    TcpTransport(sd_event* event, TransportSetup setup, AnswerFn on_answer)
        : event_(sd_event_ref(event)), setup_(std::move(setup)), on_answer_(std::move(on_answer)) {}

    Status open() {
        if (if_nametoindex(setup_.interface.c_str()) == 0) {
            int err = errno;
            return Status::fail(err, "Could not find interface " + setup_.interface + " for tcp probes: " +
                                         errno_text(err));
        }
        return Status::ok();
    }

    int send(const ProbeTarget& target, uint64_t token) override {
        auto probe = std::make_unique<Probe>();
        probe->owner = this;
        probe->token = token;
        const int af = family_of(target.address) == Family::V6 ? AF_INET6 : AF_INET;
        probe->socket = Fd(socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!probe->socket) return errno;
        if (Status s = bind_and_mark(probe->socket.fd, setup_); !s) return s.err;
        // Closing sends an RST instead of a FIN: nothing lingers on either side.
        linger reset{1, 0};
        if (setsockopt(probe->socket.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) < 0) return errno;
        const int ifindex = static_cast<int>(if_nametoindex(setup_.interface.c_str()));
        auto to = socket_address(target.address, target.port, ifindex);
        probe->sent_at = monotonic_usec();
        int rc = connect(probe->socket.fd, to.get(), to.length);
        int err = rc < 0 ? errno : 0;
        if (err != 0 && err != EINPROGRESS && err != ECONNREFUSED) return err;
        // Done already (loopback can complete or refuse inside connect()): the answer waits for
        // the event loop all the same, as a callback must never run inside send().
        if (err == ECONNREFUSED) probe->refused_at = monotonic_usec();
        sd_event_source* source = nullptr;
        int r = err == ECONNREFUSED ? sd_event_add_defer(event_.get(), &source, on_refused_early, probe.get())
                                    : sd_event_add_io(event_.get(), &source, probe->socket.fd, EPOLLOUT, on_ready,
                                                      probe.get());
        if (r < 0) return -r;
        probe->io.reset(source);
        forget(token);  // a token reused while its probe is pending: the new probe replaces it
        probes_[token] = std::move(probe);
        return 0;
    }

    // Settles the handshakes the kernel has already decided, before the prober judges a deadline
    // (the epoll event may not have been dispatched yet). By token: an answer's callback may
    // forget other probes.
    void poll() override {
        std::vector<uint64_t> pending;
        for (const auto& entry : probes_)
            if (entry.second->socket) pending.push_back(entry.first);
        for (uint64_t token : pending) {
            auto it = probes_.find(token);
            if (it == probes_.end() || !it->second->socket) continue;
            if (it->second->refused_at) {
                answer(*it->second, it->second->refused_at);
            } else {
                settle(*it->second);
            }
        }
    }

    void forget(uint64_t token) override { probes_.erase(token); }

private:
    struct Probe {
        TcpTransport* owner = nullptr;
        uint64_t token = 0;
        Usec sent_at = 0;
        Usec refused_at = 0;  // refused inside connect()
        Fd socket;
        // Declared after the socket: disabled before the socket is closed.
        SourcePtr io;
    };

    // The handshake's outcome, when there is one: answered (erased, callback), failed (socket
    // closed, kept until forget()), or still pending (nothing).
    void settle(Probe& probe) {
        int err = 0;
        socklen_t length = sizeof err;
        if (getsockopt(probe.socket.fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0) err = errno;
        if (err == 0) {
            if (!handshake_done(probe.socket.fd)) return;  // still in SYN_SENT
            answer(probe, handshake_time(probe));
        } else if (err == ECONNREFUSED || err == ECONNRESET) {
            // An RST to the SYN, or one right after the handshake: the server answered either way.
            answer(probe, monotonic_usec());
        } else {
            // No answer (EHOSTUNREACH from an ICMP error, ETIMEDOUT): the deadline will say so.
            probe.io.reset();
            probe.socket.reset();
        }
    }

    // Past SYN_SENT without an error: a SYN-ACK came (the server may have sent its FIN since).
    static bool handshake_done(int fd) {
        tcp_info info{};
        socklen_t length = sizeof info;
        return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) == 0 && info.tcpi_state != TCP_SYN_SENT &&
               info.tcpi_state != TCP_CLOSE;
    }

    // When the SYN-ACK arrived: the kernel's own RTT sample of the handshake (tcpi_rtt, µs) after
    // the send, so the daemon's scheduling delay is not counted; never later than now. After a
    // retransmitted SYN the sample (from TCP timestamps) times the retransmission, not the first
    // SYN: then only now is safe.
    static Usec handshake_time(const Probe& probe) {
        Usec now = monotonic_usec();
        tcp_info info{};
        socklen_t length = sizeof info;
        if (getsockopt(probe.socket.fd, IPPROTO_TCP, TCP_INFO, &info, &length) < 0 || info.tcpi_rtt == 0 ||
            info.tcpi_total_retrans > 0)
            return now;
        return std::min(now, probe.sent_at + info.tcpi_rtt);
    }

    // Closes the socket (an RST, with SO_LINGER 0) before telling the prober.
    void answer(Probe& probe, Usec at) {
        uint64_t token = probe.token;
        probes_.erase(token);
        on_answer_(ProbeAnswer{token, at});
    }

    static int on_ready(sd_event_source*, int, uint32_t, void* userdata) {
        auto* probe = static_cast<Probe*>(userdata);
        probe->owner->settle(*probe);
        return 0;
    }

    static int on_refused_early(sd_event_source*, void* userdata) {
        auto* probe = static_cast<Probe*>(userdata);
        probe->owner->answer(*probe, probe->refused_at);
        return 0;
    }

    EventPtr event_;
    TransportSetup setup_;
    AnswerFn on_answer_;
    std::map<uint64_t, std::unique_ptr<Probe>> probes_;  // by token
};

}  // namespace

Expected<std::unique_ptr<ProbeTransport>> open_tcp_transport(sd_event* event, const TransportSetup& setup,
                                                             ProbeTransport::AnswerFn on_answer) {
    auto transport = std::make_unique<TcpTransport>(event, setup, std::move(on_answer));
    if (Status s = transport->open(); !s) return s;
    return std::unique_ptr<ProbeTransport>(std::move(transport));
}

}  // namespace wb
