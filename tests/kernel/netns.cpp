#include "tests/kernel/netns.hpp"

#include <doctest/doctest.h>
#include <sched.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <memory>

namespace wb::test {

void enter_fresh_netns() {
    if (unshare(CLONE_NEWNET) != 0) FAIL("unshare(CLONE_NEWNET): " << std::strerror(errno));
    must("ip link set lo up");
}

CommandResult run(const std::string& command) {
    std::string full = command + " 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(full.c_str(), "r"), pclose);
    if (!pipe) return {127, "popen failed"};
    std::string output;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) output.append(buf.data(), n);
    int status = pclose(pipe.release());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, output};
}

std::string must(const std::string& command) {
    auto result = run(command);
    INFO("command: " << command << "\noutput: " << result.output);
    REQUIRE(result.exit_code == 0);
    return result.output;
}

}  // namespace wb::test
