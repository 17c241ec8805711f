// libFuzzer target for the config loader: arbitrary bytes through parse, both validation passes
// and resolve (wb::parse_config, the same path `wanbalancectl check` and reloads take).
// Besides crashes, hangs and leaks (the sanitizers' job) it checks the loader's own promises.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>

#include "config/config.hpp"
#include "rules/desired.hpp"

namespace {

[[noreturn]] void broken(const char* promise) {
    std::fprintf(stderr, "fuzz_config: broken promise: %s\n", promise);
    std::abort();
}

void expect(bool ok, const char* promise) {
    if (!ok) broken(promise);
}

bool one_line(std::string_view s) { return s.find_first_of("\n\r") == std::string_view::npos; }

void check_errors(const wb::ConfigResult& result) {
    for (const wb::ConfigError& e : result.errors) {
        expect(!e.message.empty(), "every error has a message");
        expect(one_line(e.message) && one_line(e.path), "errors are one line (docs/design.md: FILE: /path: problem)");
        expect(e.path.empty() || e.path.front() == '/', "error paths are JSON pointers");
    }
}

// A config the loader accepts is one the daemon will apply: the resolved values must be in range
// and `wanbalancectl ruleset` must be able to render it.
void check_config(const wb::Config& config) {
    expect(config.path == "fuzz.json", "Config::path is the file name given");
    expect(!config.wans.empty() && config.wans.size() <= wb::kMaxWans, "1..63 WANs");
    expect(!config.lans.empty(), "at least one LAN");
    expect(config.mark_mask != 0, "mark_mask is not zero");
    std::set<uint32_t> marks, tables;
    std::set<std::string_view> names;
    for (const wb::WanConfig& wan : config.wans) {
        expect(wan.mark != 0 && (wan.mark & ~config.mark_mask) == 0, "marks are nonzero and inside mark_mask");
        expect(marks.insert(wan.mark).second, "marks are unique");
        expect(tables.insert(wan.table).second, "tables are unique");
        expect(wan.table != 0 && (wan.table < 253 || wan.table > 255), "tables are not 0 or the kernel's 253..255");
        expect(names.insert(wan.name).second, "WAN names are unique");
        expect(wan.weight >= 1 && wan.weight <= 1000, "weight 1..1000");
        expect(wan.probe.min_targets_up >= 1, "min_targets_up >= 1");
    }
    wb::Desired desired = wb::build_desired(config, wb::assume_all_up(config));
    std::string ruleset = wb::render_ruleset(config, desired);
    expect(!ruleset.empty(), "an accepted config renders a ruleset");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // load_config refuses bigger files before parsing; the fuzzer need not spend time there.
    if (size > wb::kMaxConfigBytes) return -1;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    wb::ConfigResult result = wb::parse_config(text, "fuzz.json");
    expect(result.config.has_value() == result.errors.empty(), "a config exactly when there are no errors");
    check_errors(result);
    if (result.config) check_config(*result.config);
    return 0;
}
