// Stub until the tcp transport lands.
#include "probe/transport.hpp"

#include <cerrno>

namespace wb {

Expected<std::unique_ptr<ProbeTransport>> open_tcp_transport(sd_event*, const TransportSetup&, ProbeTransport::AnswerFn) {
    return Status::fail(EOPNOTSUPP, "tcp probes are not built yet");
}

}  // namespace wb
