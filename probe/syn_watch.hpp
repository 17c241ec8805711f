// Traffic as evidence that a path may be dead: new LAN TCP connections on a WAN whose first
// reply (SYN-ACK or RST) does not come back within the WAN's adaptive deadline. Pure: the daemon
// feeds it conntrack events (netlink/conntrack_events.hpp) and asks it, on a timer, which paths
// are overdue; it then calls Prober::suspect() on them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "probe/prober.hpp"
#include "probe/transport.hpp"

namespace wb {

// How many of a path's new connections must be overdue at once before it is suspect: one lost
// SYN is normal on the internet (a dead server, a filtered port); several on one WAN are not.
inline constexpr unsigned kOverdueConnections = 3;
// Connections remembered per path; beyond it the oldest are forgotten (a SYN flood from the LAN
// must not grow memory).
inline constexpr size_t kWatchedPerPath = 4096;
// Overdue connections count together only when they fell due within this of each other: a
// lost SYN now and two more a minute later are three unrelated failures, not a dead path.
inline constexpr std::chrono::milliseconds kOverdueWindow{1000};

class SynWatch {
public:
    using DeadlineFn = std::function<std::chrono::microseconds(const ProbeKey&)>;

    // A new LAN TCP connection (conntrack id `id`) went out on `key` at `at` (its SYN).
    void opened(const ProbeKey& key, uint32_t id, Usec at);
    // It got its first reply, or ended: no longer watched.
    void answered(uint32_t id);
    // Paths with at least kOverdueConnections connections older than deadline(key) and still
    // unanswered at `now`, all fallen due within kOverdueWindow of the newest of them. Each
    // connection counts once: reported ones are forgotten. Once found overdue, a connection stays
    // so (a later, longer deadline does not bring it back) until it is answered, reported, or
    // falls out of the window.
    std::vector<ProbeKey> overdue(Usec now, const DeadlineFn& deadline);
    // When overdue() can next report something (the earliest due time of a connection not yet
    // found overdue), to arm a timer; nullopt when no connection waits for its deadline. Overdue
    // ones that are too few to report do not count: the timer must not fire again and again for
    // them.
    std::optional<Usec> next_due(const DeadlineFn& deadline) const;
    // Forgets everything of paths not in `keys` (reload).
    void retain(const std::vector<ProbeKey>& keys);
    size_t watched() const;

private:
    using Stamped = std::pair<Usec, uint32_t>;  // (a time, the conntrack id), oldest first
    struct Pending {
        ProbeKey key;
        Usec at = 0;  // when it opened, or once found overdue when it fell due
        bool late = false;
    };
    struct Path {
        std::set<Stamped> waiting;  // (opened at, id): within their deadline when last looked at
        std::set<Stamped> late;     // (fell due at, id): overdue, too few yet to report
    };
    void forget(uint32_t id);
    // Moves the path's connections past `wait` into `late`, drops those too old to count.
    void sort_overdue(Path& path, Usec now, Usec wait);
    std::map<uint32_t, Pending> by_id_;
    std::map<ProbeKey, Path> paths_;
};

}  // namespace wb
