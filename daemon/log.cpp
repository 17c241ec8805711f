#include "daemon/log.hpp"

#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace wb {
namespace {

bool g_journal = false;
bool g_verbose = false;

// systemd sets JOURNAL_STREAM=DEV:INO for services whose stderr goes to the journal; only then
// is sending structured entries the same destination the operator looks at.
bool stderr_is_journal() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (!env) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

const char* level_name(Level level) {
    switch (level) {
        case Level::Debug: return "debug";
        case Level::Info: return "info";
        case Level::Notice: return "notice";
        case Level::Warning: return "warning";
        case Level::Error: return "error";
        case Level::Critical: return "critical";
    }
    return "?";
}

void write_stderr(Level level, std::string_view message, std::string_view suffix) {
    std::string line = std::string("wanbalanced[") + level_name(level) + "]: ";
    line.append(message);
    line.append(suffix);
    line.push_back('\n');
    (void)!write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

void log_init(bool verbose) {
    g_journal = stderr_is_journal();
    g_verbose = verbose;
}

bool log_to_journal() { return g_journal; }

void log(Level level, std::string_view message) {
    if (level == Level::Debug && !g_verbose) return;
    if (g_journal) {
        sd_journal_send("MESSAGE=%.*s", int(message.size()), message.data(), "PRIORITY=%d", int(level),
                        "SYSLOG_IDENTIFIER=wanbalanced", nullptr);
        return;
    }
    write_stderr(level, message, "");
}

void log_event(Level level, const LogEvent& e, std::string_view message) {
    if (g_journal) {
        std::vector<std::string> fields = {
            "MESSAGE=" + std::string(message),
            "PRIORITY=" + std::to_string(int(level)),
            "SYSLOG_IDENTIFIER=wanbalanced",
            std::string("MESSAGE_ID=") + e.message_id,
            "WANBALANCE_EVENT=" + e.kind,
        };
        if (!e.wan.empty()) fields.push_back("WANBALANCE_WAN=" + e.wan);
        if (!e.interface.empty()) fields.push_back("WANBALANCE_INTERFACE=" + e.interface);
        if (!e.state.empty()) fields.push_back("WANBALANCE_STATE=" + e.state);
        if (!e.reason.empty()) fields.push_back("WANBALANCE_REASON=" + e.reason);
        if (!e.family.empty()) fields.push_back("WANBALANCE_FAMILY=" + e.family);
        if (e.rtt_us) fields.push_back("WANBALANCE_RTT_US=" + std::to_string(*e.rtt_us));
        if (e.loss_pct) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.1f", *e.loss_pct);
            fields.push_back(std::string("WANBALANCE_LOSS_PCT=") + buf);
        }
        std::vector<struct iovec> iov;
        for (auto& f : fields) iov.push_back({f.data(), f.size()});
        sd_journal_sendv(iov.data(), int(iov.size()));
        return;
    }
    // Off the journal the same facts go on the line, greppable by event kind.
    std::string suffix = " [event=" + e.kind;
    if (!e.wan.empty()) suffix += " wan=" + e.wan;
    if (!e.interface.empty()) suffix += " interface=" + e.interface;
    if (!e.state.empty()) suffix += " state=" + e.state;
    if (!e.family.empty()) suffix += " family=" + e.family;
    suffix += "]";
    write_stderr(level, message, suffix);
}

}  // namespace wb
