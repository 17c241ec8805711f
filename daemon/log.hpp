// Logging for the daemon: one line per message, to the journal with structured fields when
// stderr is connected to it (JOURNAL_STREAM), otherwise to stderr with the level spelled out.
#pragma once

#include <string_view>

#include "base/log_event.hpp"

namespace wb {

void log_init(bool verbose);  // decides journal vs stderr once
bool log_to_journal();
void log(Level level, std::string_view message);
void log_event(Level level, const LogEvent& event, std::string_view message);

}  // namespace wb
