// ICMP and ICMPv6 echo as a probe transport: one raw socket per path, bound to the WAN's
// interface and marked, with a BPF that keeps only this path's identifier, and kernel receive
// timestamps (SO_TIMESTAMPNS) so an RTT never includes the daemon's own delay.
#include <net/if.h>
// net/if.h first: linux/icmp.h pulls in linux/if.h, which then leaves out what glibc defines.
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "base/format.hpp"
#include "probe/icmp.hpp"
#include "probe/probe_socket.hpp"
#include "probe/transport.hpp"

namespace wb {
namespace {



int error_of(int rc) { return rc < 0 ? errno : 0; }

// An IPv4 raw socket hands over the IP header too; an IPv6 one only the ICMPv6 message, the source
// being in the address recvfrom() filled in.
std::optional<icmp::EchoReply> parse_reply(Family family, std::span<const uint8_t> packet, const sockaddr_in6& from) {
    if (family == Family::V4) return icmp::parse_echo_reply(packet);
    if (from.sin6_family != AF_INET6) return std::nullopt;
    Ipv6 source;
    std::copy(std::begin(from.sin6_addr.s6_addr), std::end(from.sin6_addr.s6_addr), source.bytes.begin());
    return icmp::parse_echo_reply6(packet, source);
}

class IcmpTransport final : public ProbeTransport {
public:
    IcmpTransport(TransportSetup setup, AnswerFn on_answer) : setup_(std::move(setup)), on_answer_(std::move(on_answer)) {}

    Status open(sd_event* event) {
        const bool v6 = setup_.family == Family::V6;
        const std::string what = v6 ? "a raw ICMPv6 socket" : "a raw ICMP socket";
        Fd fd(v6 ? socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6)
                 : socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP));
        if (int err = error_of(fd.fd)) return Status::fail(err, "Could not open " + what + ": " + errno_text(err));
        // Bound by name, the kernel stores the ifindex: a re-created interface needs a new bind.
        if (int err = error_of(setsockopt(fd.fd, SOL_SOCKET, SO_BINDTODEVICE, setup_.interface.c_str(),
                                          static_cast<socklen_t>(setup_.interface.size()))))
            return Status::fail(err, "Could not bind the probe socket to " + setup_.interface + ": " + errno_text(err));
        if (int err = error_of(setsockopt(fd.fd, SOL_SOCKET, SO_MARK, &setup_.mark, sizeof setup_.mark)))
            return Status::fail(err, "Could not set mark " + hex(setup_.mark) + " on the probe socket for " +
                                         setup_.interface + ": " + errno_text(err));
        int on = 1;
        if (int err = error_of(setsockopt(fd.fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on)))
            return Status::fail(err, "Could not ask for receive timestamps on the probe socket: " + errno_text(err));
        if (Status s = filter(fd.fd); !s) return s;
        sd_event_source* source = nullptr;
        if (int r = sd_event_add_io(event, &source, fd.fd, EPOLLIN, on_readable, this); r < 0)
            return Status::fail(-r, "Could not watch the probe socket for " + setup_.interface + ": " + errno_text(-r));
        io_.reset(source);
        socket_ = std::move(fd);
        // The bind succeeded, so the name existed a moment ago; 0 if it vanished since, and the
        // sends then fail (ENODEV) and the prober re-opens.
        ifindex_ = static_cast<int>(if_nametoindex(setup_.interface.c_str()));
        return Status::ok();
    }

    int send(const ProbeTarget& target, uint64_t token) override {
        uint16_t sequence = next_sequence_++;
        ssize_t rc;
        if (const auto* v4 = std::get_if<Ipv4>(&target.address)) {
            auto packet = icmp::build_echo_request(setup_.identifier, sequence);
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_addr.s_addr = v4->network();
            rc = sendto(socket_.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
        } else {
            const Ipv6& v6 = std::get<Ipv6>(target.address);
            auto packet = icmp::build_echo_request6(setup_.identifier, sequence);
            sockaddr_in6 to{};
            to.sin6_family = AF_INET6;
            std::copy(v6.bytes.begin(), v6.bytes.end(), to.sin6_addr.s6_addr);
            // fe80::1 exists on every link: the scope says which one (the bound one; another would
            // be refused).
            if (v6.link_local() || v6.multicast()) to.sin6_scope_id = static_cast<uint32_t>(ifindex_);
            rc = sendto(socket_.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
        }
        if (rc < 0) return errno;
        outstanding_[sequence] = Pending{target.address, token};
        return 0;
    }

    void poll() override { drain(); }

    void forget(uint64_t token) override {
        std::erase_if(outstanding_, [&](const auto& entry) { return entry.second.token == token; });
    }

private:
    struct Pending {
        IpAddr target;
        uint64_t token = 0;
    };

    // Both filters only spare wake-ups; replies are matched in full after recv() anyway (packets
    // can be queued between socket() and the filters).
    Status filter(int fd) const {
        if (setup_.family == Family::V6) {
            icmp6_filter only_echo_replies;
            ICMP6_FILTER_SETBLOCKALL(&only_echo_replies);
            ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &only_echo_replies);
            if (int err = error_of(
                    setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &only_echo_replies, sizeof only_echo_replies)))
                return Status::fail(err, "Could not set ICMP6_FILTER on the probe socket: " + errno_text(err));
        } else {
            icmp_filter only_echo_replies{~(1u << ICMP_ECHOREPLY)};
            if (int err = error_of(setsockopt(fd, SOL_RAW, ICMP_FILTER, &only_echo_replies, sizeof only_echo_replies)))
                return Status::fail(err, "Could not set ICMP_FILTER on the probe socket: " + errno_text(err));
        }
        auto program = setup_.family == Family::V6 ? icmp::echo_reply_filter6(setup_.identifier)
                                                   : icmp::echo_reply_filter(setup_.identifier);
        sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
        if (int err = error_of(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog)))
            return Status::fail(err, "Could not attach the probe socket filter: " + errno_text(err));
        return Status::ok();
    }

    void drain() {
        probe_detail::read_datagrams(socket_.fd, [this](const probe_detail::Datagram& d) {
            auto reply = parse_reply(setup_.family, d.bytes, reinterpret_cast<const sockaddr_in6&>(d.from));
            if (!reply || reply->identifier != setup_.identifier) return;
            auto it = outstanding_.find(reply->sequence);
            if (it == outstanding_.end() || it->second.target != reply->source) return;
            uint64_t token = it->second.token;
            outstanding_.erase(it);
            on_answer_(ProbeAnswer{token, d.at});
        });
    }

    static int on_readable(sd_event_source*, int, uint32_t, void* userdata) {
        static_cast<IcmpTransport*>(userdata)->drain();
        return 0;
    }

    TransportSetup setup_;
    AnswerFn on_answer_;
    int ifindex_ = 0;  // of the interface when the socket was bound: a link-local target's scope
    uint16_t next_sequence_ = 1;
    std::map<uint16_t, Pending> outstanding_;  // by sequence
    // The source is declared after the socket so it is disabled before the socket is closed.
    Fd socket_;
    SourcePtr io_;
};

}  // namespace

Expected<std::unique_ptr<ProbeTransport>> open_icmp_transport(sd_event* event, const TransportSetup& setup,
                                                              ProbeTransport::AnswerFn on_answer) {
    auto transport = std::make_unique<IcmpTransport>(setup, std::move(on_answer));
    if (Status s = transport->open(event); !s) return s;
    return std::unique_ptr<ProbeTransport>(std::move(transport));
}

}  // namespace wb
