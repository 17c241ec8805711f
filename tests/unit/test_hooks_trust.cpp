// Hooks run only from trusted places (config/hooks_trust.hpp): owners and modes of the hooks
// directory, its parents and each hook, and symlinks that must stay inside the directory. The
// directories live under a trusted parent (/run as root); the ownership cases need root.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/hooks_trust.hpp"

namespace fs = std::filesystem;

namespace {

constexpr uid_t kNobody = 65534;

// A writable parent whose chain check_hooks_dir accepts for the running user: /run as root,
// else $HOME.
std::string trusted_parent() {
    const char* home = getenv("HOME");
    std::string parent = geteuid() == 0 ? "/run" : home ? home : "";
    if (parent.empty() || access(parent.c_str(), W_OK) != 0 || !wb::check_hooks_dir(parent, geteuid()).empty())
        return "";
    return parent;
}

// base/ (0755, private) with base/hooks.d/ (0755) in it; removed at the end.
struct HooksDir {
    fs::path base, hooks;
    bool ok = false;

    HooksDir() {
        std::string parent = trusted_parent();
        if (parent.empty()) return;
        std::string tmpl = parent + "/wanbalance-test-hooks-XXXXXX";
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        base = tmpl;
        REQUIRE(chmod(base.c_str(), 0755) == 0);
        hooks = base / "hooks.d";
        make_dir(hooks);
        ok = true;
    }
    ~HooksDir() {
        if (!base.empty()) fs::remove_all(base);
    }

    static void make_dir(const fs::path& path, mode_t mode = 0755) {
        REQUIRE(mkdir(path.c_str(), 0700) == 0);
        REQUIRE(chmod(path.c_str(), mode) == 0);  // whatever the umask
    }
    static void script(const fs::path& path, mode_t mode = 0755) {
        std::ofstream(path) << "#!/bin/sh\nexit 0\n";
        REQUIRE(chmod(path.c_str(), mode) == 0);
    }
    std::vector<wb::ConfigError> check(uid_t daemon_uid = geteuid()) const {
        return wb::check_hooks_dir(hooks.string(), daemon_uid);
    }
};

bool skipped(const HooksDir& d) {
    if (!d.ok) MESSAGE("skipped: no trusted parent directory for the test's hooks (not root, $HOME not private)");
    return !d.ok;
}

bool need_root() {
    if (geteuid() != 0) MESSAGE("skipped: changing a file's owner needs root");
    return geteuid() != 0;
}

std::vector<wb::ConfigError> errors(std::initializer_list<std::string> messages) {
    std::vector<wb::ConfigError> out;
    for (const auto& m : messages) out.push_back({"/hooks_dir", m});
    return out;
}

}  // namespace

TEST_CASE("a missing hooks directory has no hooks and no problem") {
    HooksDir d;
    if (skipped(d)) return;
    CHECK(wb::check_hooks_dir((d.base / "none").string(), geteuid()).empty());
    CHECK(wb::check_hooks_dir((d.base / "none" / "deeper").string(), geteuid()).empty());
    // Just before a hook runs, though, a missing directory is a problem.
    CHECK(wb::check_hook((d.base / "none").string(), "10-x", geteuid()) ==
          errors({"cannot read " + (d.base / "none").string() + ": No such file or directory"}));
}

TEST_CASE("a good hooks directory passes, and what would not run is not judged") {
    HooksDir d;
    if (skipped(d)) return;
    CHECK(d.check().empty());  // empty
    HooksDir::script(d.hooks / "10-notify");
    HooksDir::script(d.hooks / "20-owner-only", 0700);
    HooksDir::script(d.hooks / "README", 0666);   // not executable: never run
    HooksDir::script(d.hooks / ".hidden", 0777);  // dot file: never run
    HooksDir::make_dir(d.hooks / "lib", 0755);
    CHECK(d.check().empty());
    CHECK(wb::check_hooks_dir(d.hooks.string() + "/", geteuid()).empty());
    CHECK(wb::check_hook(d.hooks.string(), "10-notify", geteuid()).empty());
    // Asked about by name, just before it would run, a non-executable file is a problem.
    CHECK(wb::check_hook(d.hooks.string(), "README", geteuid()) ==
          errors({(d.hooks / "README").string() + " is not an executable regular file"}));
}

TEST_CASE("a hooks directory or a parent writable by group or others is refused") {
    HooksDir d;
    if (skipped(d)) return;
    HooksDir::script(d.hooks / "10-notify");
    REQUIRE(chmod(d.hooks.c_str(), 0775) == 0);
    CHECK(d.check(0) == errors({d.hooks.string() +
                                " is writable by group or others (mode 0775): the hooks directory and its parents "
                                "must be writable only by root"}));
    REQUIRE(chmod(d.hooks.c_str(), 0755) == 0);
    // A world-writable parent, sticky bit or not (as sshd's StrictModes: /tmp is no place for hooks).
    REQUIRE(chmod(d.base.c_str(), 01777) == 0);
    CHECK(d.check(0) == errors({d.base.string() +
                                " is writable by group or others (mode 1777): the hooks directory and its parents "
                                "must be writable only by root"}));
    // Every hook run re-checks the chain too.
    CHECK(wb::check_hook(d.hooks.string(), "10-notify", 0).size() == 1);
    REQUIRE(chmod(d.base.c_str(), 0755) == 0);
    CHECK(d.check().empty());
}

TEST_CASE("a hook writable by group or others is refused, one problem per hook") {
    HooksDir d;
    if (skipped(d)) return;
    HooksDir::script(d.hooks / "10-notify", 0775);
    HooksDir::script(d.hooks / "20-ok");
    HooksDir::script(d.hooks / "30-world", 0757);
    CHECK(d.check(0) ==
          errors({(d.hooks / "10-notify").string() +
                      " is writable by group or others (mode 0775): hooks must be writable only by root",
                  (d.hooks / "30-world").string() +
                      " is writable by group or others (mode 0757): hooks must be writable only by root"}));
    // A hook changed after start is caught just before it runs.
    CHECK(wb::check_hook(d.hooks.string(), "20-ok", 0).empty());
    REQUIRE(chmod((d.hooks / "20-ok").c_str(), 0777) == 0);
    CHECK(wb::check_hook(d.hooks.string(), "20-ok", 0) ==
          errors({(d.hooks / "20-ok").string() +
                  " is writable by group or others (mode 0777): hooks must be writable only by root"}));
}

TEST_CASE("a hook or directory owned by another user is refused, unless it is the daemon's user") {
    HooksDir d;
    if (skipped(d) || need_root()) return;
    HooksDir::script(d.hooks / "10-notify");
    REQUIRE(chown((d.hooks / "10-notify").c_str(), kNobody, kNobody) == 0);
    CHECK(d.check(0) == errors({(d.hooks / "10-notify").string() +
                                " is owned by uid 65534: hooks must be owned by root"}));
    // The daemon's own user (DynamicUser) may own hooks and the directory.
    CHECK(d.check(kNobody).empty());
    REQUIRE(chown(d.hooks.c_str(), kNobody, kNobody) == 0);
    CHECK(d.check(kNobody).empty());
    CHECK(d.check(0) == errors({d.hooks.string() +
                                    " is owned by uid 65534: the hooks directory and its parents must be owned by root",
                                (d.hooks / "10-notify").string() + " is owned by uid 65534: hooks must be owned by root"}));
    // Both problems at once, in one message; the rule names the daemon's user when it is not root.
    REQUIRE(chmod((d.hooks / "10-notify").c_str(), 0777) == 0);
    CHECK(d.check(1000) ==
          errors({d.hooks.string() +
                      " is owned by uid 65534: the hooks directory and its parents must be owned by root or uid 1000",
                  (d.hooks / "10-notify").string() +
                      " is owned by uid 65534 and writable by group or others (mode 0777): hooks must be owned by "
                      "root or uid 1000 and writable only by root or uid 1000"}));
}

TEST_CASE("a symlink to a hook inside the directory is fine, and judged by its target") {
    HooksDir d;
    if (skipped(d)) return;
    HooksDir::script(d.hooks / "10-notify");
    HooksDir::make_dir(d.hooks / "lib");
    HooksDir::script(d.hooks / "lib" / "update-dns");
    fs::create_symlink("10-notify", d.hooks / "20-again");
    fs::create_symlink(d.hooks / "lib" / "update-dns", d.hooks / "30-dns");  // absolute
    fs::create_symlink("lib/../20-again", d.hooks / "40-chain");             // a chain, all inside
    CHECK(d.check(0).empty());
    CHECK(wb::check_hook(d.hooks.string(), "40-chain", 0).empty());
    // The target's own mode, and the directory it lies in, count.
    REQUIRE(chmod((d.hooks / "lib").c_str(), 0777) == 0);
    CHECK(d.check(0) == errors({(d.hooks / "lib").string() +
                                " is writable by group or others (mode 0777): directories that hooks are in must be "
                                "writable only by root"}));
    REQUIRE(chmod((d.hooks / "lib").c_str(), 0755) == 0);
    REQUIRE(chmod((d.hooks / "10-notify").c_str(), 0775) == 0);
    std::string rule = " is writable by group or others (mode 0775): hooks must be writable only by root";
    CHECK(d.check(0) == errors({(d.hooks / "10-notify").string() + rule,
                                (d.hooks / "20-again").string() + " (a symlink to " +
                                    (d.hooks / "10-notify").string() + ")" + rule,
                                (d.hooks / "40-chain").string() + " (a symlink to " +
                                    (d.hooks / "10-notify").string() + ")" + rule}));
}

TEST_CASE("a symlink that leads out of the directory is refused") {
    HooksDir d;
    if (skipped(d)) return;
    HooksDir::script(d.hooks / "10-notify");
    HooksDir::script(d.base / "elsewhere");  // a trusted place, but not the hooks directory
    fs::create_symlink(d.base / "elsewhere", d.hooks / "20-out");
    fs::create_symlink("../elsewhere", d.hooks / "30-relative");
    // Out and back in: the hop outside could be swapped by whoever owns it.
    fs::create_symlink(d.hooks / "10-notify", d.base / "hop");
    fs::create_symlink("../hop", d.hooks / "40-hop");
    std::string outside = ", outside " + d.hooks.string();
    CHECK(d.check(0) ==
          errors({(d.hooks / "20-out").string() + " is a symlink to " + (d.base / "elsewhere").string() + outside,
                  (d.hooks / "30-relative").string() + " is a symlink to " + (d.base / "elsewhere").string() + outside,
                  (d.hooks / "40-hop").string() + " is a symlink to " + (d.hooks / "10-notify").string() + outside}));
    CHECK(wb::check_hook(d.hooks.string(), "20-out", 0).size() == 1);
    // A dangling symlink would not run: not judged.
    fs::remove(d.hooks / "20-out");
    fs::remove(d.hooks / "30-relative");
    fs::remove(d.hooks / "40-hop");
    fs::create_symlink("/nonexistent/hook", d.hooks / "50-dangling");
    CHECK(d.check(0).empty());
}

TEST_CASE("a symlinked hooks directory is judged where it leads") {
    HooksDir d;
    if (skipped(d)) return;
    HooksDir::script(d.hooks / "10-notify");
    fs::create_symlink(d.hooks, d.base / "link.d");
    CHECK(wb::check_hooks_dir((d.base / "link.d").string(), 0).empty());
    HooksDir::make_dir(d.base / "shared", 01777);
    HooksDir::make_dir(d.base / "shared" / "hooks.d");
    fs::remove(d.base / "link.d");
    fs::create_symlink(d.base / "shared" / "hooks.d", d.base / "link.d");
    CHECK(wb::check_hooks_dir((d.base / "link.d").string(), 0) ==
          errors({(d.base / "shared").string() +
                  " is writable by group or others (mode 1777): the hooks directory and its parents must be "
                  "writable only by root"}));
    // A file where the directory should be.
    CHECK(wb::check_hooks_dir((d.hooks / "10-notify").string(), 0) ==
          errors({(d.hooks / "10-notify").string() + " is not a directory"}));
}

TEST_CASE("require_trusted_hooks turns the problems into config errors") {
    HooksDir d;
    if (skipped(d)) return;
    wb::ConfigResult loaded;
    loaded.config = wb::Config{};
    loaded.config->hooks_dir = d.hooks.string();
    wb::require_trusted_hooks(loaded, 0);
    CHECK(loaded.config.has_value());
    CHECK(loaded.errors.empty());
    REQUIRE(chmod(d.hooks.c_str(), 0770) == 0);
    wb::require_trusted_hooks(loaded, 0);
    CHECK_FALSE(loaded.config.has_value());
    REQUIRE(loaded.errors.size() == 1);
    CHECK(loaded.errors[0].format("/etc/wanbalance.json") ==
          "/etc/wanbalance.json: /hooks_dir: " + d.hooks.string() +
              " is writable by group or others (mode 0770): the hooks directory and its parents must be writable "
              "only by root");
}
