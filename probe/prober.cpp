// The ICMP and ICMPv6 prober: per probed path (a WAN's IPv4 or IPv6) a raw socket bound to the
// interface and marked, a round timer that sends one echo request per target, and a deadline
// timer that declares unanswered probes lost.
// Rounds may overlap; they are reported strictly in order, each as soon as it and all earlier
// rounds are finished.
#include "probe/prober.hpp"

// net/if.h first: linux/icmp.h pulls in linux/if.h, which then leaves out what glibc defines.
#include <net/if.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <random>
#include <set>
#include <utility>

#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "base/format.hpp"
#include "probe/icmp.hpp"

namespace wb {
namespace {

using Usec = uint64_t;

// Probe timing is in hundreds of milliseconds; 1 ms lets sd-event coalesce wake-ups without
// distorting RTTs or deadlines.
constexpr Usec kTimerAccuracyUsec = 1000;
constexpr size_t kReceiveBufferBytes = 2048;
// TCP's srtt gain (RFC 6298).
constexpr double kRttGain = 1.0 / 8;

Usec now_usec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<Usec>(ts.tv_sec) * 1000000u + static_cast<Usec>(ts.tv_nsec) / 1000u;
}

Usec to_usec(std::chrono::milliseconds ms) { return static_cast<Usec>(ms.count()) * 1000u; }

enum class Fate { Outstanding, Answered, Lost, NotSent };

struct Probe {
    IpAddr target;
    uint16_t sequence = 0;
    Usec sent_at = 0;
    Usec rtt = 0;
    Fate fate = Fate::Outstanding;
};

struct Round {
    uint64_t number = 0;
    Usec deadline = 0;
    unsigned min_targets_up = 1;
    std::vector<Probe> probes;
    std::string problem;

    bool finished() const {
        return std::none_of(probes.begin(), probes.end(), [](const Probe& p) { return p.fate == Fate::Outstanding; });
    }
};

}  // namespace

struct Prober::Impl {
    // One probed path: one family of one WAN.
    struct Wan {
        Impl* impl = nullptr;
        uint64_t serial = 0;  // tells a path apart from a re-created one of the same key
        ProbeKey key;
        ProbeSpec spec;
        int ifindex = 0;  // of spec.interface when the socket was bound: a link-local target's scope
        uint16_t identifier = 0;
        uint16_t next_sequence = 1;
        uint64_t rounds_started = 0;
        Usec last_round_at = 0;  // when the round timer last fired (its schedule, not the delay)
        bool paused = false;
        std::deque<Round> rounds;  // started, not yet reported; oldest first

        std::optional<double> srtt_ms;
        std::deque<bool> window;  // lost? for the last kLossWindow probes
        uint64_t sent = 0, lost = 0;

        // Sources are declared after the socket so they are disabled before it is closed.
        Fd socket;
        SourcePtr io;
        SourcePtr round_timer;
        SourcePtr deadline_timer;
    };

    EventPtr event;
    RoundCallback callback;
    std::map<ProbeKey, std::unique_ptr<Wan>> wans;
    uint64_t next_serial = 1;
    uint16_t next_identifier = 0;
    Status timer_status;  // the last failure to arm a timer (ok once one succeeds again)

    uint16_t allocate_identifier();
    void arm(sd_event_source* timer, Usec at, bool enabled);
    Status open_socket(Wan& w);
    Status filter_socket(const Wan& w, int fd);
    int send_probe(const Wan& w, const Probe& probe);
    void close_socket(Wan& w);
    void start_round(Wan& w);
    void arm_deadline(Wan& w);
    void schedule_next_round(Wan& w, Usec at);
    bool deliver(Wan& w);
    void account(Wan& w, const Round& r);

    static int on_round_timer(sd_event_source*, uint64_t usec, void* userdata);
    static int on_deadline(sd_event_source*, uint64_t usec, void* userdata);
    static int on_readable(sd_event_source*, int fd, uint32_t revents, void* userdata);
};

uint16_t Prober::Impl::allocate_identifier() {
    // Unique among this process's paths (a WAN's IPv4 and IPv6 too); the random start keeps two daemons (or a daemon and a
    // test) in one namespace from picking the same identifiers.
    std::set<uint16_t> used;
    for (const auto& [key, w] : wans) used.insert(w->identifier);
    do ++next_identifier;
    while (next_identifier == 0 || used.count(next_identifier));
    return next_identifier;
}

Status Prober::Impl::open_socket(Wan& w) {
    const ProbeSpec& spec = w.spec;
    const bool v6 = w.key.family == Family::V6;
    const std::string what = std::string(v6 ? "a raw ICMPv6 socket" : "a raw ICMP socket");
    // errno, read before any message is built.
    auto error_of = [](int rc) { return rc < 0 ? errno : 0; };
    Fd fd(v6 ? socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6)
             : socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP));
    if (int err = error_of(fd.fd))
        return Status::fail(err, "Could not open " + what + " for " + w.key.wan + ": " + errno_text(err));
    // Bound by name, the kernel stores the ifindex: a re-created interface needs a new bind.
    if (int err = error_of(setsockopt(fd.fd, SOL_SOCKET, SO_BINDTODEVICE, spec.interface.c_str(),
                                      static_cast<socklen_t>(spec.interface.size()))))
        return Status::fail(err, "Could not bind the probe socket to " + spec.interface + ": " + errno_text(err));
    if (int err = error_of(setsockopt(fd.fd, SOL_SOCKET, SO_MARK, &spec.mark, sizeof spec.mark)))
        return Status::fail(err, "Could not set mark " + hex(spec.mark) + " on the probe socket for " +
                                     spec.interface + ": " + errno_text(err));
    if (Status s = filter_socket(w, fd.fd); !s) return s;

    sd_event_source* source = nullptr;
    if (int r = sd_event_add_io(event.get(), &source, fd.fd, EPOLLIN, on_readable, &w); r < 0)
        return Status::fail(-r, "Could not watch the probe socket for " + spec.interface + ": " + errno_text(-r));
    w.io.reset(source);
    w.socket = std::move(fd);
    // The bind succeeded, so the name existed a moment ago; 0 if it vanished since, and the
    // sends then fail (ENODEV) and re-open.
    w.ifindex = static_cast<int>(if_nametoindex(spec.interface.c_str()));
    return Status::ok();
}

// Both filters only spare wake-ups; replies are matched in full after recv() anyway (packets
// can be queued between socket() and the filters).
Status Prober::Impl::filter_socket(const Wan& w, int fd) {
    auto error_of = [](int rc) { return rc < 0 ? errno : 0; };
    if (w.key.family == Family::V6) {
        icmp6_filter only_echo_replies;
        ICMP6_FILTER_SETBLOCKALL(&only_echo_replies);
        ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &only_echo_replies);
        if (int err = error_of(setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &only_echo_replies, sizeof only_echo_replies)))
            return Status::fail(err, "Could not set ICMP6_FILTER on the probe socket: " + errno_text(err));
    } else {
        icmp_filter only_echo_replies{~(1u << ICMP_ECHOREPLY)};
        if (int err = error_of(setsockopt(fd, SOL_RAW, ICMP_FILTER, &only_echo_replies, sizeof only_echo_replies)))
            return Status::fail(err, "Could not set ICMP_FILTER on the probe socket: " + errno_text(err));
    }
    auto program = w.key.family == Family::V6 ? icmp::echo_reply_filter6(w.identifier)
                                              : icmp::echo_reply_filter(w.identifier);
    sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
    if (int err = error_of(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog)))
        return Status::fail(err, "Could not attach the probe socket filter: " + errno_text(err));
    return Status::ok();
}

// Sends one echo request; 0 or the errno of sendto().
int Prober::Impl::send_probe(const Wan& w, const Probe& probe) {
    ssize_t rc;
    if (const auto* v4 = std::get_if<Ipv4>(&probe.target)) {
        auto packet = icmp::build_echo_request(w.identifier, probe.sequence);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = v4->network();
        rc = sendto(w.socket.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    } else {
        const Ipv6& v6 = std::get<Ipv6>(probe.target);
        auto packet = icmp::build_echo_request6(w.identifier, probe.sequence);
        sockaddr_in6 to{};
        to.sin6_family = AF_INET6;
        std::copy(v6.bytes.begin(), v6.bytes.end(), to.sin6_addr.s6_addr);
        // fe80::1 exists on every link: the scope says which one (the bound one; another would
        // be refused).
        if (v6.link_local() || v6.multicast()) to.sin6_scope_id = static_cast<uint32_t>(w.ifindex);
        rc = sendto(w.socket.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    }
    return rc < 0 ? errno : 0;
}

void Prober::Impl::close_socket(Wan& w) {
    w.io.reset();
    w.socket.reset();
}

void Prober::Impl::start_round(Wan& w) {
    Round round;
    round.number = ++w.rounds_started;
    round.deadline = now_usec() + to_usec(w.spec.timeout);
    round.min_targets_up = w.spec.min_targets_up;

    // No socket: the interface was missing at the last attempt. Retrying here, once per round,
    // picks up an interface that (re)appeared without the daemon having to say so.
    if (!w.socket) {
        if (Status s = open_socket(w); !s) round.problem = s.message;
    }
    if (w.spec.targets.empty() && round.problem.empty()) round.problem = "no probe targets (gateway unknown)";

    bool interface_gone = false;
    for (const ProbeTarget& spec_target : w.spec.targets) {
        const IpAddr& target = spec_target.address;
        Probe& probe = round.probes.emplace_back(Probe{target, w.next_sequence++});
        if (!w.socket) {
            probe.fate = Fate::NotSent;
            continue;
        }
        probe.sent_at = now_usec();
        if (int err = send_probe(w, probe)) {
            probe.fate = Fate::NotSent;
            if (round.problem.empty())
                round.problem = "sendto " + str(target) + " via " + w.spec.interface + ": " + errno_text(err);
            // The bound ifindex no longer exists (ip_route_output_key_hash_rcu: -ENODEV).
            if (err == ENODEV || err == ENXIO) interface_gone = true;
        }
    }
    // Replies to earlier rounds cannot arrive on a vanished interface; they will time out.
    if (interface_gone) close_socket(w);
    w.rounds.push_back(std::move(round));
    arm_deadline(w);
}

void Prober::Impl::arm_deadline(Wan& w) {
    std::optional<Usec> earliest;
    for (const Round& r : w.rounds)
        if (!r.finished() && (!earliest || r.deadline < *earliest)) earliest = r.deadline;
    arm(w.deadline_timer.get(), earliest.value_or(0), earliest.has_value());
}

void Prober::Impl::schedule_next_round(Wan& w, Usec at) { arm(w.round_timer.get(), at, !w.paused); }

void Prober::Impl::arm(sd_event_source* timer, Usec at, bool enabled) {
    int r = enabled ? sd_event_source_set_time(timer, at) : 0;
    if (r >= 0) r = sd_event_source_set_enabled(timer, enabled ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
    timer_status = r < 0 ? Status::fail(-r, "Could not arm a probe timer: " + errno_text(-r)) : Status::ok();
}

void Prober::Impl::account(Wan& w, const Round& r) {
    for (const Probe& p : r.probes) {
        bool lost = p.fate != Fate::Answered;
        ++w.sent;
        w.lost += lost;
        w.window.push_back(lost);
        if (w.window.size() > kLossWindow) w.window.pop_front();
    }
}

// Reports every finished round at the head of the queue. The callback may reconfigure or remove
// this path; returns false when `w` no longer exists, so callers stop touching it.
bool Prober::Impl::deliver(Wan& w) {
    const ProbeKey key = w.key;
    const uint64_t serial = w.serial;
    Impl* self = w.impl;
    Wan* current = &w;
    while (!current->rounds.empty() && current->rounds.front().finished()) {
        Round round = std::move(current->rounds.front());
        current->rounds.pop_front();
        account(*current, round);

        RoundOutcome outcome;
        outcome.round = round.number;
        outcome.problem = std::move(round.problem);
        Usec rtt_sum = 0;
        for (const Probe& p : round.probes) {
            outcome.sent += p.fate != Fate::NotSent;
            if (p.fate == Fate::Answered) {
                ++outcome.answered;
                rtt_sum += p.rtt;
            }
        }
        if (outcome.answered) outcome.rtt = std::chrono::microseconds(rtt_sum / outcome.answered);
        // More required answers than targets could never succeed; ask for all of them instead.
        unsigned required = std::clamp<unsigned>(round.min_targets_up, 1, std::max<size_t>(round.probes.size(), 1));
        outcome.success = !round.probes.empty() && outcome.answered >= required;

        self->callback(key, outcome);
        auto it = self->wans.find(key);
        if (it == self->wans.end() || it->second->serial != serial) return false;
        current = it->second.get();
    }
    return true;
}

int Prober::Impl::on_round_timer(sd_event_source*, uint64_t usec, void* userdata) {
    Wan& w = *static_cast<Wan*>(userdata);
    // Keep the grid (no drift from dispatch delay) unless a whole interval was missed.
    Usec interval = to_usec(w.spec.interval);
    Usec next = usec + interval;
    Usec now = now_usec();
    if (next <= now) next = now + interval;
    w.last_round_at = usec;
    w.impl->schedule_next_round(w, next);
    w.impl->start_round(w);
    w.impl->deliver(w);  // a round that sent nothing is finished at once
    return 0;
}

int Prober::Impl::on_deadline(sd_event_source*, uint64_t, void* userdata) {
    Wan& w = *static_cast<Wan*>(userdata);
    Usec now = now_usec();
    for (Round& r : w.rounds) {
        if (r.deadline > now) continue;
        for (Probe& p : r.probes)
            if (p.fate == Fate::Outstanding) p.fate = Fate::Lost;
    }
    w.impl->arm_deadline(w);
    w.impl->deliver(w);
    return 0;
}

namespace {

// An IPv4 raw socket hands over the IP header too; an IPv6 one only the ICMPv6 message, the source
// being in the address recvfrom() filled in.
std::optional<icmp::EchoReply> parse_reply(Family family, std::span<const uint8_t> packet, const sockaddr_in6& from) {
    if (family == Family::V4) return icmp::parse_echo_reply(packet);
    if (from.sin6_family != AF_INET6) return std::nullopt;
    Ipv6 source;
    std::copy(std::begin(from.sin6_addr.s6_addr), std::end(from.sin6_addr.s6_addr), source.bytes.begin());
    return icmp::parse_echo_reply6(packet, source);
}

}  // namespace

int Prober::Impl::on_readable(sd_event_source*, int fd, uint32_t, void* userdata) {
    Wan& w = *static_cast<Wan*>(userdata);
    uint8_t buffer[kReceiveBufferBytes];
    bool matched = false;
    for (;;) {
        sockaddr_in6 from{};
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;  // EAGAIN: drained. Raw sockets report nothing else without IP_RECVERR.
        }
        Usec received_at = now_usec();
        auto reply = parse_reply(w.key.family, std::span<const uint8_t>(buffer, static_cast<size_t>(n)), from);
        if (!reply || reply->identifier != w.identifier) continue;
        for (Round& r : w.rounds) {
            auto probe = std::find_if(r.probes.begin(), r.probes.end(), [&](const Probe& p) {
                return p.fate == Fate::Outstanding && p.sequence == reply->sequence && p.target == reply->source;
            });
            if (probe == r.probes.end()) continue;
            // The deadline timer may not have run yet; a late answer is still a lost probe.
            if (received_at > r.deadline) {
                probe->fate = Fate::Lost;
            } else {
                probe->fate = Fate::Answered;
                probe->rtt = received_at - probe->sent_at;
                double rtt_ms = static_cast<double>(probe->rtt) / 1000.0;
                w.srtt_ms = w.srtt_ms ? *w.srtt_ms + kRttGain * (rtt_ms - *w.srtt_ms) : rtt_ms;
            }
            matched = true;
            break;
        }
    }
    if (matched) {
        w.impl->arm_deadline(w);
        w.impl->deliver(w);
    }
    return 0;
}

Expected<std::unique_ptr<Prober>> Prober::create(sd_event* event, RoundCallback callback, RepliesFn) {
    if (!event) return Status::fail(EINVAL, "Prober needs an event loop");
    std::unique_ptr<Prober> prober(new Prober());
    prober->impl_ = std::make_unique<Impl>();
    prober->impl_->event.reset(sd_event_ref(event));
    prober->impl_->callback = std::move(callback);
    prober->impl_->next_identifier = static_cast<uint16_t>(std::random_device{}());
    return prober;
}

Prober::~Prober() = default;

Status Prober::configure(const ProbeKey& key, const ProbeSpec& spec) {
    Impl& impl = *impl_;
    // "charter" for IPv4 as ever, "charter (IPv6)" for IPv6.
    const std::string wan = key.family == Family::V4 ? key.wan : key.wan + " (" + std::string(family_label(key.family)) + ")";
    if (spec.interface.empty() || spec.interface.size() >= IFNAMSIZ)
        return Status::fail(EINVAL, "Cannot probe " + wan + ": \"" + spec.interface + "\" is not an interface name");
    if (spec.interval.count() <= 0 || spec.timeout.count() <= 0)
        return Status::fail(EINVAL, "Cannot probe " + wan + ": interval and timeout must be positive");
    for (const ProbeTarget& target : spec.targets)
        if (family_of(target.address) != key.family)
            return Status::fail(EINVAL, "Cannot probe " + wan + ": target " + describe(target) + " is not an " +
                                            std::string(family_label(key.family)) + " address");

    uint64_t loop_now = 0;
    sd_event_now(impl.event.get(), CLOCK_MONOTONIC, &loop_now);

    auto it = impl.wans.find(key);
    if (it != impl.wans.end()) {
        Impl::Wan& w = *it->second;
        if (w.spec == spec) return Status::ok();
        const bool rebind = w.spec.interface != spec.interface || w.spec.mark != spec.mark;
        const bool reschedule = w.spec.interval != spec.interval;
        w.spec = spec;
        if (rebind) {
            // Rounds in flight went out of the old interface; their answers would not reach the
            // new socket, so they are dropped rather than reported as failures.
            impl.close_socket(w);
            w.rounds.clear();
            impl.arm_deadline(w);
        }
        if (reschedule) impl.schedule_next_round(w, std::max<Usec>(w.last_round_at + to_usec(spec.interval), loop_now));
        if (rebind && !w.socket) {
            Status s = impl.open_socket(w);
            if (!s && s.err != ENODEV) return s;
        }
        return Status::ok();
    }

    auto owned = std::make_unique<Impl::Wan>();
    Impl::Wan& w = *owned;
    w.impl = &impl;
    w.serial = impl.next_serial++;
    w.key = key;
    w.spec = spec;
    w.identifier = impl.allocate_identifier();
    sd_event_source* source = nullptr;
    if (int r = sd_event_add_time(impl.event.get(), &source, CLOCK_MONOTONIC, loop_now, kTimerAccuracyUsec,
                                  Impl::on_round_timer, &w);
        r < 0)
        return Status::fail(-r, "Could not add the probe timer for " + wan + ": " + errno_text(-r));
    w.round_timer.reset(source);
    if (int r = sd_event_add_time(impl.event.get(), &source, CLOCK_MONOTONIC, loop_now, kTimerAccuracyUsec,
                                  Impl::on_deadline, &w);
        r < 0)
        return Status::fail(-r, "Could not add the probe deadline timer for " + wan + ": " + errno_text(-r));
    w.deadline_timer.reset(source);
    if (int r = sd_event_source_set_enabled(source, SD_EVENT_OFF); r < 0)
        return Status::fail(-r, "Could not add the probe deadline timer for " + wan + ": " + errno_text(-r));
    impl.wans.emplace(key, std::move(owned));

    // A missing interface is normal (PPP, USB modems): rounds fail with the reason and retry
    // the bind each round. Anything else (no CAP_NET_RAW) is worth saying now, too.
    Status s = impl.open_socket(w);
    if (!s && s.err != ENODEV) return s;
    return Status::ok();
}

void Prober::retain(const std::vector<ProbeKey>& keys) {
    std::set<ProbeKey> keep(keys.begin(), keys.end());
    std::erase_if(impl_->wans, [&](const auto& entry) { return !keep.count(entry.first); });
}

void Prober::pause(const ProbeKey& key, bool paused) {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end() || it->second->paused == paused) return;
    Impl::Wan& w = *it->second;
    w.paused = paused;
    uint64_t loop_now = 0;
    sd_event_now(impl_->event.get(), CLOCK_MONOTONIC, &loop_now);
    // Resuming starts a round at once: the carrier just came back and the daemon wants to know.
    impl_->schedule_next_round(w, loop_now);
}

bool Prober::suspect(const ProbeKey&) { return false; }
std::chrono::microseconds Prober::deadline(const ProbeKey&) const { return std::chrono::microseconds{600000}; }
std::vector<ProbeTarget> Prober::socket_targets(const ProbeKey&) const { return {}; }

Status Prober::timer_status() const { return impl_->timer_status; }

ProbeStats Prober::stats(const ProbeKey& key) const {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end()) return {};
    const Impl::Wan& w = *it->second;
    ProbeStats stats;
    stats.rtt_ms = w.srtt_ms;
    stats.sent = w.sent;
    stats.lost = w.lost;
    if (!w.window.empty())
        stats.loss_pct = 100.0 * static_cast<double>(std::count(w.window.begin(), w.window.end(), true)) /
                         static_cast<double>(w.window.size());
    return stats;
}

std::optional<uint16_t> Prober::identifier(const ProbeKey& key) const {
    auto it = impl_->wans.find(key);
    if (it == impl_->wans.end()) return std::nullopt;
    return it->second->identifier;
}

}  // namespace wb
