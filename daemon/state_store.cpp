#include "daemon/state_store.hpp"


#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/dirs.hpp"
#include "config/config.hpp"
#include "control/protocol.hpp"

namespace wb {
namespace {

constexpr const char* kLastConfig = "last-applied.json";
constexpr const char* kOverrides = "overrides.json";
constexpr const char* kSysctls = "sysctl-originals.json";
constexpr const char* kRole = "role";

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > kMaxConfigBytes) return std::nullopt;
    return text.str();
}

nlohmann::json read_json(const std::string& path) {
    auto text = read_file(path);
    return text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
}

}  // namespace

std::string resolve_state_dir(const std::string& from_flag) {
    if (!from_flag.empty()) return from_flag;
    if (const char* env = getenv("STATE_DIRECTORY"); env && *env) {
        std::string dirs = env;  // systemd joins several StateDirectory= entries with ':'
        return dirs.substr(0, dirs.find(':'));
    }
    return kDefaultStateDir;
}

std::string StateStore::path(std::string_view name) const { return dir_ + "/" + std::string(name); }

std::string StateStore::last_config_path() const { return path(kLastConfig); }

Status StateStore::prepare() const { return make_dirs(dir_, 0700, "state directory"); }

Status StateStore::write(std::string_view name, std::string_view text) const {
    std::string final_path = path(name);
    std::string tmp = final_path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
        out << text;
        if (!out.flush()) return Status::fail(EIO, "Could not write " + tmp + ": " + errno_text(errno ? errno : EIO));
    }
    if (std::rename(tmp.c_str(), final_path.c_str()) != 0)
        return Status::fail(errno, "Could not replace " + final_path + ": " + errno_text(errno));
    return Status::ok();
}

std::optional<std::string> StateStore::last_config() const { return read_file(path(kLastConfig)); }

Status StateStore::save_last_config(std::string_view text) const { return write(kLastConfig, text); }

OverrideRecord StateStore::overrides() const {
    OverrideRecord out;
    nlohmann::json j = read_json(path(kOverrides));
    if (!j.is_object()) return out;
    for (auto& [wan, mode] : j.items())
        if (auto o = mode.is_string() ? parse_override(mode.get<std::string>()) : std::nullopt; o && *o != Override::Auto)
            out[wan] = *o;
    return out;
}

Status StateStore::save_overrides(const OverrideRecord& record) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [wan, mode] : record)
        if (mode != Override::Auto) j[wan] = std::string(override_name(mode));
    return write(kOverrides, j.dump(2) + "\n");
}

std::optional<std::string> StateStore::role() const {
    auto text = read_file(path(kRole));
    if (!text) return std::nullopt;
    std::string role = text->substr(0, text->find('\n'));
    if (!is_ha_role(role)) return std::nullopt;
    return role;
}

Status StateStore::save_role(std::string_view role) const { return write(kRole, std::string(role) + "\n"); }

SysctlRecord StateStore::sysctls() const {
    SysctlRecord out;
    nlohmann::json j = read_json(path(kSysctls));
    if (!j.is_object()) return out;
    for (auto& [name, v] : j.items()) {
        if (!v.is_object() || !v.contains("ifindex") || !v["ifindex"].is_number_integer() ||
            !v.contains("src_valid_mark") || !v["src_valid_mark"].is_boolean())
            continue;
        out[name] = {v["ifindex"].get<int>(), v["src_valid_mark"].get<bool>()};
    }
    return out;
}

Status StateStore::save_sysctls(const SysctlRecord& record) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, o] : record) j[name] = {{"ifindex", o.ifindex}, {"src_valid_mark", o.src_valid_mark}};
    return write(kSysctls, j.dump(2) + "\n");
}

void StateStore::remove_sysctls() const { std::remove(path(kSysctls).c_str()); }

}  // namespace wb
