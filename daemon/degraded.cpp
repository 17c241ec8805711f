#include "daemon/degraded.hpp"

namespace wb {

std::map<std::string, std::string> degraded_wans(const Config& config, const ApplyReport& report) {
    std::map<std::string, std::string> out;
    auto add = [&out](const std::string& wan, const std::string& message) {
        std::string& reason = out[wan];
        if (reason.find(message) != std::string::npos) return;
        reason += (reason.empty() ? "" : "; ") + message;
    };
    for (const ApplyReport::Refusal& r : report.refusals()) {
        bool owned = false;
        for (const WanConfig& wan : config.wans) {
            if (r.table != 0 && wan.table == r.table) {
                add(wan.name, r.message);
                owned = true;
            }
        }
        if (owned) continue;
        for (const WanConfig& wan : config.wans) add(wan.name, r.message);
    }
    return out;
}

std::string degraded_summary(const std::map<std::string, std::string>& degraded) {
    std::string out;
    for (const auto& [wan, reason] : degraded) out += (out.empty() ? "" : "; ") + wan + " is degraded: " + reason;
    return out;
}

}  // namespace wb
