// StrictModes for hooks: owners and modes of the hooks directory, its parents (as written and
// as resolved) and each hook, and symlinks followed hop by hop so that none leaves the directory.
#include "config/hooks_trust.hpp"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <utility>

#include "base/handle.hpp"
#include "base/ipv4.hpp"

namespace wb {
namespace {

constexpr const char* kPointer = "/hooks_dir";
constexpr int kMaxHops = 40;  // as the kernel's MAXSYMLINKS
constexpr const char* kDirRule = "the hooks directory and its parents";
constexpr const char* kSubdirRule = "directories that hooks are in";

std::string octal_mode(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", unsigned(mode & 07777));
    return text;
}

std::string without_trailing_slashes(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
}

std::string join(const std::string& dir, const std::string& name) { return (dir == "/" ? "" : dir) + "/" + name; }

// "/a/b" -> "/a", "/a" -> "/", "b" -> "."
std::string parent_of(const std::string& path) {
    std::string p = without_trailing_slashes(path);
    size_t slash = p.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : p.substr(0, slash);
}

std::string base_of(const std::string& path) {
    std::string p = without_trailing_slashes(path);
    size_t slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

// "/a/b/c" -> "/", "/a", "/a/b", "/a/b/c" (as written: "." and ".." are left to stat).
std::vector<std::string> dir_and_parents(const std::string& path) {
    std::vector<std::string> out{"/"};
    std::string prefix;
    for (size_t i = 0; i < path.size();) {
        size_t end = std::min(path.find('/', i), path.size());
        if (end > i) out.push_back(prefix += "/" + path.substr(i, end - i));
        i = end + 1;
    }
    return out;
}

std::optional<std::string> resolve(const std::string& path) {
    char* real = realpath(path.c_str(), nullptr);
    if (!real) return std::nullopt;
    std::string s = real;
    free(real);
    return s;
}

std::optional<std::string> read_link(const std::string& path) {
    char target[PATH_MAX];
    ssize_t n = readlink(path.c_str(), target, sizeof target);
    if (n < 0 || size_t(n) >= sizeof target) return std::nullopt;
    return std::string(target, size_t(n));
}

bool inside(const std::string& path, const std::string& dir) {
    return dir == "/" || path == dir || path.compare(0, dir.size() + 1, dir + "/") == 0;
}

class Judge {
public:
    explicit Judge(uid_t daemon_uid) : daemon_uid_(daemon_uid) {}

    void fail(std::string message) { errors_.push_back({kPointer, std::move(message)}); }
    std::vector<ConfigError> take() { return std::move(errors_); }

    // The owner and mode of `st` (called `name`), for `what` ("hooks", "the hooks directory ...").
    void owner_and_mode(const std::string& name, const struct stat& st, const std::string& what) {
        bool bad_owner = st.st_uid != 0 && st.st_uid != daemon_uid_;
        bool bad_mode = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
        if (!bad_owner && !bad_mode) return;
        std::string owners = daemon_uid_ == 0 ? "root" : "root or uid " + std::to_string(daemon_uid_);
        std::string problem, rule;
        if (bad_owner) {
            problem = "is owned by uid " + std::to_string(st.st_uid);
            rule = "owned by " + owners;
        }
        if (bad_mode) {
            problem += std::string(bad_owner ? " and " : "is ") + "writable by group or others (mode " +
                       octal_mode(st.st_mode) + ")";
            rule += std::string(bad_owner ? " and " : "") + "writable only by " + owners;
        }
        fail(name + " " + problem + ": " + what + " must be " + rule);
    }

    // A directory on the way to the hooks; each one is judged once, however it is reached.
    void directory(const std::string& path, const std::string& what) {
        struct stat st;
        if (stat(path.c_str(), &st) != 0) {
            int err = errno;
            fail("cannot read " + path + ": " + errno_text(err));
            return;
        }
        if (!seen_.insert({st.st_dev, st.st_ino}).second) return;
        owner_and_mode(path, st, what);
    }

private:
    uid_t daemon_uid_;
    std::vector<ConfigError> errors_;
    std::set<std::pair<dev_t, ino_t>> seen_;
};

// Judges `dir` and every directory above it, both as written and as resolved (a symlink on the
// way is only as safe as where it leads). Returns the resolved directory; nullopt when it does
// not exist (`missing`) or cannot be judged (a problem was recorded).
std::optional<std::string> judge_dir(Judge& judge, const std::string& dir, bool& missing) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) {
        int err = errno;
        if (err == ENOENT) {
            missing = true;
        } else {
            judge.fail("cannot read " + dir + ": " + errno_text(err));
        }
        return std::nullopt;
    }
    if (!S_ISDIR(st.st_mode)) {
        judge.fail(dir + " is not a directory");
        return std::nullopt;
    }
    auto real = resolve(dir);
    if (!real) {
        int err = errno;
        judge.fail("cannot resolve " + dir + ": " + errno_text(err));
        return std::nullopt;
    }
    for (const auto& d : dir_and_parents(dir)) judge.directory(d, kDirRule);
    for (const auto& d : dir_and_parents(*real)) judge.directory(d, kDirRule);
    return real;
}

// Follows the symlinks from `start` (in the resolved directory `real_dir`) hop by hop, each
// hop's directory resolved: every hop must stay inside. Returns the file the chain ends at,
// or nullopt when it leaves (with a problem recorded).
std::optional<std::string> follow_inside(Judge& judge, const std::string& shown, const std::string& start,
                                         const std::string& dir, const std::string& real_dir) {
    std::string at = start;
    for (int hop = 0;; ++hop) {
        struct stat st;
        if (lstat(at.c_str(), &st) != 0) {
            int err = errno;
            judge.fail("cannot read " + at + ": " + errno_text(err));
            return std::nullopt;
        }
        if (!S_ISLNK(st.st_mode)) return at;
        auto target = read_link(at);
        if (hop == kMaxHops || !target) {
            int err = hop == kMaxHops ? ELOOP : errno;
            judge.fail("cannot follow the symlink " + shown + ": " + errno_text(err));
            return std::nullopt;
        }
        std::string next = target->empty() || (*target)[0] != '/' ? join(parent_of(at), *target) : *target;
        auto where = resolve(parent_of(next));
        if (!where || !inside(*where, real_dir)) {
            judge.fail(shown + " is a symlink to " + resolve(start).value_or(*target) + ", outside " + dir);
            return std::nullopt;
        }
        at = join(*where, base_of(next));
    }
}

// Judges the entry `name`: always (`always`), or only when it would run (a regular file with
// an execute bit, maybe through symlinks).
void judge_entry(Judge& judge, const std::string& dir, const std::string& real_dir, const std::string& name,
                 bool always) {
    const std::string path = join(dir, name);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        int err = errno;
        if (always) judge.fail("cannot read " + path + ": " + errno_text(err));
        return;
    }
    bool runnable = S_ISREG(st.st_mode) && (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0;
    if (!runnable) {
        if (always) judge.fail(path + " is not an executable regular file");
        return;
    }
    auto file = follow_inside(judge, path, join(real_dir, name), dir, real_dir);
    if (!file) return;
    for (std::string d = parent_of(*file); d != real_dir && inside(d, real_dir); d = parent_of(d))
        judge.directory(d, kSubdirRule);
    if (lstat(file->c_str(), &st) != 0) {
        int err = errno;
        judge.fail("cannot read " + *file + ": " + errno_text(err));
        return;
    }
    std::string shown = *file == join(real_dir, name) ? path : path + " (a symlink to " + *file + ")";
    judge.owner_and_mode(shown, st, "hooks");
}

}  // namespace

std::vector<ConfigError> check_hooks_dir(const std::string& dir_as_given, uid_t daemon_uid) {
    const std::string dir = without_trailing_slashes(dir_as_given);
    Judge judge(daemon_uid);
    bool missing = false;
    auto real_dir = judge_dir(judge, dir, missing);
    if (!real_dir) return judge.take();
    Handle<DIR, closedir> d(opendir(dir.c_str()));
    if (!d) {
        int err = errno;
        judge.fail("cannot list " + dir + ": " + errno_text(err));
        return judge.take();
    }
    std::vector<std::string> names;
    while (struct dirent* e = readdir(d.get()))
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) judge_entry(judge, dir, *real_dir, name, false);
    return judge.take();
}

std::vector<ConfigError> check_hook(const std::string& dir_as_given, const std::string& name, uid_t daemon_uid) {
    const std::string dir = without_trailing_slashes(dir_as_given);
    Judge judge(daemon_uid);
    bool missing = false;
    auto real_dir = judge_dir(judge, dir, missing);
    if (missing) judge.fail("cannot read " + dir + ": " + errno_text(ENOENT));
    if (real_dir) judge_entry(judge, dir, *real_dir, name, true);
    return judge.take();
}

void require_trusted_hooks(ConfigResult& loaded, uid_t daemon_uid) {
    if (!loaded.config) return;
    std::vector<ConfigError> problems = check_hooks_dir(loaded.config->hooks_dir, daemon_uid);
    if (problems.empty()) return;
    loaded.config.reset();
    loaded.errors.insert(loaded.errors.end(), problems.begin(), problems.end());
}

}  // namespace wb
