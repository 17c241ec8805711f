// Stub until the dns transport lands.
#include "probe/transport.hpp"

#include <cerrno>

namespace wb {

Expected<std::unique_ptr<ProbeTransport>> open_dns_transport(sd_event*, const TransportSetup&, ProbeTransport::AnswerFn) {
    return Status::fail(EOPNOTSUPP, "dns probes are not built yet");
}

}  // namespace wb
