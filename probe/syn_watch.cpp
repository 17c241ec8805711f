// Stub until SynWatch lands.
#include "probe/syn_watch.hpp"

namespace wb {

void SynWatch::opened(const ProbeKey&, uint32_t, Usec) {}
void SynWatch::answered(uint32_t) {}
std::vector<ProbeKey> SynWatch::overdue(Usec, const DeadlineFn&) { return {}; }
std::optional<Usec> SynWatch::next_due(const DeadlineFn&) const { return std::nullopt; }
void SynWatch::retain(const std::vector<ProbeKey>&) {}
size_t SynWatch::watched() const { return by_id_.size(); }

}  // namespace wb
