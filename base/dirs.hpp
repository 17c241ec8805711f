// mkdir -p for the daemon's own directories (runtime, state): the ones it creates get `mode`
// whatever the umask, and the result must be a directory.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/status.hpp"

namespace wb {

// `what` names the directory in messages: "Could not create runtime directory /run/x: ...".
Status make_dirs(const std::string& dir, mode_t mode, const std::string& what);

}  // namespace wb
