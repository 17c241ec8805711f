// DNS queries as a probe transport: one UDP socket per path, bound to the WAN's interface and
// marked, with kernel receive timestamps. Each probe is a query with a fresh random id; a
// response (any rcode) with that id from the target's address and port 53 is its answer. An ICMP
// port unreachable is not: an unconnected UDP socket without IP_RECVERR never reports it.
#include <net/if.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <random>

#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "base/format.hpp"
#include "probe/dns.hpp"
#include "probe/probe_socket.hpp"
#include "probe/transport.hpp"

namespace wb {
namespace {

using probe_detail::bind_and_mark;
using probe_detail::same_endpoint;
using probe_detail::socket_address;


// Seeded from the kernel: ids an off-path attacker cannot guess (RFC 5452), not that a forged
// answer could do more than keep a dead WAN up for one probe.
std::mt19937 random_engine() {
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) seed = static_cast<uint32_t>(monotonic_usec());
    return std::mt19937(seed);
}

class DnsTransport final : public ProbeTransport {
public:
    DnsTransport(TransportSetup setup, AnswerFn on_answer)
        : setup_(std::move(setup)), on_answer_(std::move(on_answer)), random_(random_engine()) {}

    Status open(sd_event* event) {
        const bool v6 = setup_.family == Family::V6;
        Fd fd(socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd) {
            int err = errno;
            return Status::fail(err, "Could not open a UDP socket for dns probes: " + errno_text(err));
        }
        if (Status s = bind_and_mark(fd.fd, setup_); !s) return s;
        int on = 1;
        if (setsockopt(fd.fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) {
            int err = errno;
            return Status::fail(err, "Could not ask for receive timestamps on the probe socket: " + errno_text(err));
        }
        sd_event_source* source = nullptr;
        if (int r = sd_event_add_io(event, &source, fd.fd, EPOLLIN, on_readable, this); r < 0)
            return Status::fail(-r, "Could not watch the probe socket for " + setup_.interface + ": " + errno_text(-r));
        io_.reset(source);
        socket_ = std::move(fd);
        ifindex_ = static_cast<int>(if_nametoindex(setup_.interface.c_str()));
        return Status::ok();
    }

    int send(const ProbeTarget& target, uint64_t token) override {
        uint16_t id = fresh_id();
        auto query = dns::build_query(id, target.name, dns::query_type_for(family_of(target.address)));
        if (!query) return EINVAL;  // the config refuses such names
        auto to = socket_address(target.address, target.port, ifindex_);
        if (sendto(socket_.fd, query->data(), query->size(), 0, to.get(), to.length) < 0) return errno;
        forget(token);
        outstanding_[id] = Pending{target.address, target.port, token};
        return 0;
    }

    void poll() override { drain(); }

    void forget(uint64_t token) override {
        std::erase_if(outstanding_, [&](const auto& entry) { return entry.second.token == token; });
    }

private:
    struct Pending {
        IpAddr target;
        uint16_t port = 0;
        uint64_t token = 0;
    };

    // Random, and not the id of a query still outstanding (there are at most a few).
    uint16_t fresh_id() {
        for (;;) {
            auto id = static_cast<uint16_t>(random_());
            if (!outstanding_.contains(id)) return id;
        }
    }

    void drain() {
        probe_detail::read_datagrams(socket_.fd, [this](const probe_detail::Datagram& d) {
            auto id = dns::response_id(d.bytes);
            if (!id) return;
            auto it = outstanding_.find(*id);
            if (it == outstanding_.end() || !same_endpoint(d.from, it->second.target, it->second.port)) return;
            uint64_t token = it->second.token;
            outstanding_.erase(it);
            on_answer_(ProbeAnswer{token, d.at});
        });
    }

    static int on_readable(sd_event_source*, int, uint32_t, void* userdata) {
        static_cast<DnsTransport*>(userdata)->drain();
        return 0;
    }

    TransportSetup setup_;
    AnswerFn on_answer_;
    std::mt19937 random_;
    int ifindex_ = 0;  // of the interface when the socket was bound: a link-local target's scope
    std::map<uint16_t, Pending> outstanding_;  // by query id
    // The source is declared after the socket so it is disabled before the socket is closed.
    Fd socket_;
    SourcePtr io_;
};

}  // namespace

Expected<std::unique_ptr<ProbeTransport>> open_dns_transport(sd_event* event, const TransportSetup& setup,
                                                             ProbeTransport::AnswerFn on_answer) {
    auto transport = std::make_unique<DnsTransport>(setup, std::move(on_answer));
    if (Status s = transport->open(event); !s) return s;
    return std::unique_ptr<ProbeTransport>(std::move(transport));
}

}  // namespace wb
