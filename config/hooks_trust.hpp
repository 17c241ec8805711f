// Hooks run only from trusted places (docs/design.md, Journal, hooks): like sshd's StrictModes,
// `hooks_dir`, each of its parents and every hook in it must be owned by root (or the daemon's
// own user) and writable by nobody else, and a symlinked hook must stay inside the directory.
// Read-only file system checks: `wanbalancectl check`, the daemon at start and reload, and the
// hook runner just before each hook.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "config/config.hpp"

namespace wb {

// Every problem with `dir` (absolute), its parents up to / and each entry that would run
// (a regular file with an execute bit, directly or through a symlink, name not starting with
// a dot), as errors at "/hooks_dir". Owners allowed: root and `daemon_uid`. A missing
// directory has no hooks and no problem.
std::vector<ConfigError> check_hooks_dir(const std::string& dir, uid_t daemon_uid);

// The same judgement for the one hook `dir`/`name`, just before it runs (it or the directory
// may have been swapped since start): the directory's chain and that entry. A missing
// directory or file is a problem here.
std::vector<ConfigError> check_hook(const std::string& dir, const std::string& name, uid_t daemon_uid);

// For the daemon at start and reload: when `loaded` holds a config whose hooks are not
// trusted, the config is dropped and the problems become its errors (so they are reported,
// and refused, exactly like config errors: exit 78, or the old configuration keeps running).
void require_trusted_hooks(ConfigResult& loaded, uid_t daemon_uid);

}  // namespace wb
