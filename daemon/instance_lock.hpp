// One wanbalanced per network namespace: it owns the table inet wanbalance, the routes of
// protocol wanbalance and the rules in its range there, and a second one would delete them.
// The lock is an abstract Unix socket, which the kernel keeps per network namespace and frees
// when its holder dies, so a crashed daemon never leaves it taken.
#pragma once

#include "base/fd.hpp"
#include "base/status.hpp"

namespace wb {

inline constexpr const char* kInstanceLockName = "wanbalanced";

class InstanceLock {
public:
    // Fails with EADDRINUSE and a sentence for the operator when another wanbalanced holds it.
    Status acquire();

private:
    Fd fd_;
};

}  // namespace wb
