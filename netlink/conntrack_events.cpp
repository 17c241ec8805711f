// Stub until the conntrack event reader lands.
#include "netlink/conntrack_events.hpp"

namespace wb {

struct ConntrackEvents::Impl {};

Expected<std::unique_ptr<ConntrackEvents>> ConntrackEvents::open(sd_event*, Callback) {
    return Status::fail(EOPNOTSUPP, "conntrack events are not built yet");
}
ConntrackEvents::~ConntrackEvents() = default;
uint64_t ConntrackEvents::overflows() const { return 0; }

}  // namespace wb
