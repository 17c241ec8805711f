// The exit codes of wanbalanced and wanbalancectl (docs/design.md, Programs), also carried in the control
// protocol's error replies so that wanbalancectl exits with the daemon's verdict.
#pragma once

namespace wb {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitConfig = 78;  // EX_CONFIG (sysexits.h): invalid configuration

}  // namespace wb
