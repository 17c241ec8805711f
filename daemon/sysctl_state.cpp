#include "daemon/sysctl_state.hpp"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace wb {
namespace {
std::string record_path(const std::string& dir) { return dir + "/sysctl-originals.json"; }
}  // namespace

SysctlRecord load_sysctl_record(const std::string& runtime_dir) {
    SysctlRecord out;
    std::ifstream in(record_path(runtime_dir));
    if (!in) return out;
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_object()) return out;
    for (auto& [name, v] : j.items()) {
        if (!v.is_object() || !v.contains("ifindex") || !v["ifindex"].is_number_integer() ||
            !v.contains("src_valid_mark") || !v["src_valid_mark"].is_boolean())
            continue;
        out[name] = {v["ifindex"].get<int>(), v["src_valid_mark"].get<bool>()};
    }
    return out;
}

void save_sysctl_record(const std::string& runtime_dir, const SysctlRecord& record) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, o] : record) j[name] = {{"ifindex", o.ifindex}, {"src_valid_mark", o.src_valid_mark}};
    std::string tmp = record_path(runtime_dir) + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) return;
        out << j.dump(2) << "\n";
    }
    std::rename(tmp.c_str(), record_path(runtime_dir).c_str());
}

void remove_sysctl_record(const std::string& runtime_dir) { std::remove(record_path(runtime_dir).c_str()); }

}  // namespace wb
