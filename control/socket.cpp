#include "control/socket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace wb {

std::string resolve_runtime_dir(const std::string& from_flag) {
    if (!from_flag.empty()) return from_flag;
    if (const char* env = getenv("RUNTIME_DIRECTORY"); env && *env) {
        // systemd joins several RuntimeDirectory= entries with ':'; ours is the first.
        std::string dirs = env;
        return dirs.substr(0, dirs.find(':'));
    }
    return kDefaultRuntimeDir;
}

std::string control_socket_path(const std::string& runtime_dir) {
    std::string dir = runtime_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/" + kControlSocketName;
}

Expected<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return Status::fail(ENAMETOOLONG, "control socket path " + path + " is longer than " +
                                              std::to_string(sizeof addr.sun_path - 1) + " bytes");
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

}  // namespace wb
