// Test support for kernel tests: run each test case in a fresh network namespace of this
// process, and run shell commands (ip, nft, conntrack) in it. Never touches the host's netns.
#pragma once

#include <string>

namespace wb::test {

// Moves the calling thread (the whole test process: it is single-threaded) into a brand new
// network namespace with lo up. The previous namespace is left to the kernel to free.
void enter_fresh_netns();

struct CommandResult {
    int exit_code;
    std::string output;  // stdout and stderr together
};
// Runs `sh -c command` in the current network namespace; children inherit it.
CommandResult run(const std::string& command);
// Like run() but fails the current test (doctest REQUIRE) when the exit code is not 0.
std::string must(const std::string& command);

}  // namespace wb::test
