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

class SynWatch {
public:
    using DeadlineFn = std::function<std::chrono::microseconds(const ProbeKey&)>;

    // A new LAN TCP connection (conntrack id `id`) went out on `key` at `at` (its SYN).
    void opened(const ProbeKey& key, uint32_t id, Usec at);
    // It got its first reply, or ended: no longer watched.
    void answered(uint32_t id);
    // Paths with at least kOverdueConnections connections older than deadline(key) and still
    // unanswered at `now`. Each connection counts once: reported ones are forgotten.
    std::vector<ProbeKey> overdue(Usec now, const DeadlineFn& deadline);
    // When overdue() can next report something (the earliest watched connection's due time), to
    // arm a timer; nullopt when nothing is watched.
    std::optional<Usec> next_due(const DeadlineFn& deadline) const;
    // Forgets everything of paths not in `keys` (reload).
    void retain(const std::vector<ProbeKey>& keys);
    size_t watched() const;

private:
    struct Pending {
        ProbeKey key;
        Usec at = 0;
    };
    std::map<uint32_t, Pending> by_id_;
};

}  // namespace wb
