#include "base/dirs.hpp"

#include <sys/stat.h>

#include <cerrno>

#include "base/ipv4.hpp"

namespace wb {

Status make_dirs(const std::string& dir, mode_t mode, const std::string& what) {
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
        if (pos != dir.size() && dir[pos] != '/') continue;
        std::string part = dir.substr(0, pos);
        if (mkdir(part.c_str(), mode) == 0) {
            chmod(part.c_str(), mode);
        } else if (errno != EEXIST) {
            return Status::fail(errno, "Could not create " + what + " " + part + ": " + errno_text(errno));
        }
    }
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0)
        return Status::fail(errno, "Could not use " + what + " " + dir + ": " + errno_text(errno));
    if (!S_ISDIR(st.st_mode))
        return Status::fail(ENOTDIR, "Could not use " + what + " " + dir + ": " + errno_text(ENOTDIR));
    return Status::ok();
}

}  // namespace wb
