// How every netlink socket of wanbalance waits for the kernel's answer: never longer than
// kAnswerTimeout without a word from it, so a lost answer cannot stall the event loop.
#pragma once

#include <chrono>

namespace wb {

inline constexpr std::chrono::milliseconds kAnswerTimeout{5000};  // units/: WatchdogSec is well above it

using Deadline = std::chrono::steady_clock::time_point;

// kAnswerTimeout from now. A request that reads a long dump passes a fresh one per datagram:
// the kernel must keep talking, not finish within it.
inline Deadline answer_deadline() { return std::chrono::steady_clock::now() + kAnswerTimeout; }

// 0 once fd is readable; ETIMEDOUT when the deadline passes first; else poll()'s errno.
int wait_readable(int fd, Deadline deadline);

// Reads and drops every datagram already queued on fd: answers to a request that timed out,
// which must not be taken for the answers to the next one.
void discard_pending(int fd);

}  // namespace wb
