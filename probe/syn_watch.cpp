#include "probe/syn_watch.hpp"

#include <algorithm>

namespace wb {
namespace {

Usec to_usec(std::chrono::microseconds d) { return d.count() > 0 ? Usec(d.count()) : 0; }

const Usec kWindowUsec = to_usec(kOverdueWindow);

}  // namespace

void SynWatch::opened(const ProbeKey& key, uint32_t id, Usec at) {
    forget(id);  // a reused id (or a repeated event) starts over
    Path& path = paths_[key];
    if (path.waiting.size() + path.late.size() >= kWatchedPerPath) {
        std::set<Stamped>& full = path.waiting.empty() ? path.late : path.waiting;
        by_id_.erase(full.begin()->second);
        full.erase(full.begin());
    }
    path.waiting.emplace(at, id);
    by_id_[id] = Pending{key, at, false};
}

void SynWatch::answered(uint32_t id) { forget(id); }

void SynWatch::forget(uint32_t id) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    auto path = paths_.find(it->second.key);
    if (path != paths_.end()) {
        (it->second.late ? path->second.late : path->second.waiting).erase({it->second.at, id});
        if (path->second.waiting.empty() && path->second.late.empty()) paths_.erase(path);
    }
    by_id_.erase(it);
}

void SynWatch::sort_overdue(Path& path, Usec now, Usec wait) {
    while (!path.waiting.empty() && path.waiting.begin()->first + wait <= now) {
        const Stamped opened = *path.waiting.begin();
        path.waiting.erase(path.waiting.begin());
        const Usec due = opened.first + wait;
        path.late.emplace(due, opened.second);
        Pending& pending = by_id_[opened.second];
        pending.at = due;
        pending.late = true;
    }
    if (path.late.empty()) return;
    const Usec newest = path.late.rbegin()->first;
    while (path.late.begin()->first + kWindowUsec < newest) {
        by_id_.erase(path.late.begin()->second);
        path.late.erase(path.late.begin());
    }
}

std::vector<ProbeKey> SynWatch::overdue(Usec now, const DeadlineFn& deadline) {
    std::vector<ProbeKey> suspects;
    for (auto it = paths_.begin(); it != paths_.end();) {
        Path& path = it->second;
        sort_overdue(path, now, to_usec(deadline(it->first)));
        if (path.late.size() >= kOverdueConnections) {
            suspects.push_back(it->first);
            for (const Stamped& late : path.late) by_id_.erase(late.second);
            path.late.clear();
        }
        it = path.waiting.empty() && path.late.empty() ? paths_.erase(it) : std::next(it);
    }
    return suspects;
}

std::optional<Usec> SynWatch::next_due(const DeadlineFn& deadline) const {
    std::optional<Usec> earliest;
    for (const auto& [key, path] : paths_) {
        if (path.waiting.empty()) continue;
        const Usec due = path.waiting.begin()->first + to_usec(deadline(key));
        earliest = earliest ? std::min(*earliest, due) : due;
    }
    return earliest;
}

void SynWatch::retain(const std::vector<ProbeKey>& keys) {
    for (auto it = paths_.begin(); it != paths_.end();) {
        if (std::find(keys.begin(), keys.end(), it->first) != keys.end()) {
            ++it;
            continue;
        }
        for (const Stamped& s : it->second.waiting) by_id_.erase(s.second);
        for (const Stamped& s : it->second.late) by_id_.erase(s.second);
        it = paths_.erase(it);
    }
}

size_t SynWatch::watched() const { return by_id_.size(); }

}  // namespace wb
