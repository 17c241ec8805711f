// Pass 2 of validation: the rules that span keys (unique names, interfaces, tables and marks;
// marks inside the mask and clear of other software's marks under it; LANs that are not WANs;
// room for the rules; probe targets after the per-WAN merge; what policies and rules name, in
// config/rules_resolve.cpp), then the Config with every table, mark and probe setting resolved
// (and a warning for an allocated mark other software uses).
#include <bit>
#include <map>
#include <set>

#include "base/format.hpp"
#include "base/route_tables.hpp"
#include "config/validate.hpp"
#include "config/wording.hpp"

namespace wb::config_detail {

uint32_t deposit_bits(uint32_t k, uint32_t mask) {
    uint32_t out = 0;
    for (uint32_t bit = 1; mask != 0 && bit != 0; bit <<= 1) {
        uint32_t lowest = mask & -mask;
        if (k & bit) out |= lowest;
        mask &= mask - 1;
    }
    return out;
}

uint64_t mark_capacity(uint32_t mask) { return (uint64_t{1} << std::popcount(mask)) - 1; }

namespace {

constexpr uint32_t kMainRulePriority = 32766;
constexpr uint32_t kFirstReservedTable = kDefaultTable;  // 253 default, 254 main, 255 local
constexpr uint32_t kLastReservedTable = kLocalTable;

// The name of a WAN for messages about another key: its name when valid, else its path.
std::string wan_label(const WanDraft& wan) { return wan.name.value ? "WAN " + quote(*wan.name.value) : wan.path; }

// The first WAN that used a value claims it; later ones are errors naming the first.
template <class T>
class FirstUse {
public:
    // The path of the earlier user, or empty when `value` was free (and is now taken).
    std::string claim(const T& value, const std::string& owner) {
        auto [it, fresh] = owners_.emplace(value, owner);
        return fresh ? std::string() : it->second;
    }

private:
    std::map<T, std::string> owners_;
};

void check_wan_count(const ConfigDraft& draft, std::optional<uint32_t> mask, Reporter& report) {
    if (!draft.wan_count.value) return;
    size_t count = *draft.wan_count.value;
    uint64_t room = mask ? mark_capacity(*mask) : kMaxWans;
    if (count <= std::min<uint64_t>(kMaxWans, room)) return;
    uint64_t most = std::min<uint64_t>(kMaxWans, room);
    std::string message = "expected at most " + std::to_string(most) + (most == 1 ? " WAN" : " WANs");
    if (room < kMaxWans) {
        message += " (mark_mask " + quote(hex(*mask)) + " has room for " + std::to_string(room) +
                   (room == 1 ? " mark)" : " marks)");
    }
    report.fail(draft.wan_count.path, message + ", got " + std::to_string(count));
}

void check_unique_per_wan(const ConfigDraft& draft, std::optional<uint32_t> mask, Reporter& report) {
    FirstUse<std::string> names, interfaces;
    FirstUse<uint32_t> tables, marks;
    for (const WanDraft& wan : draft.wans) {
        if (wan.name.value) {
            if (auto first = names.claim(*wan.name.value, wan.path); !first.empty()) {
                report.fail(wan.name.path, quote(*wan.name.value) + " is already used by " + first);
            }
        }
        if (wan.interface.value) {
            if (auto first = interfaces.claim(*wan.interface.value, wan.path); !first.empty()) {
                report.fail(wan.interface.path, quote(*wan.interface.value) + " is already used by " + first);
            }
        }
        if (wan.table.value) {
            if (auto first = tables.claim(*wan.table.value, wan.path); !first.empty()) {
                report.fail(wan.table.path, std::to_string(*wan.table.value) + " is already used by " + first);
            }
        }
        if (wan.mark.value) {
            const KnownMark* known = mask ? known_mark_matching(*wan.mark.value, *mask) : nullptr;
            if (mask && (*wan.mark.value & ~*mask) != 0) {
                report.fail(wan.mark.path, wan.mark_as_written + " has bits outside mark_mask " + quote(hex(*mask)));
            } else if (known) {
                report.fail(wan.mark.path,
                            wan.mark_as_written + " is " + known_mark_phrase(*known, *mask) + "; choose another");
            } else if (auto first = marks.claim(*wan.mark.value, wan.path); !first.empty()) {
                report.fail(wan.mark.path, wan.mark_as_written + " is already used by " + first);
            }
        }
    }
}

void check_lans_are_not_wans(const ConfigDraft& draft, Reporter& report) {
    std::map<std::string, const WanDraft*> wan_interfaces;
    for (const WanDraft& wan : draft.wans) {
        if (wan.interface.value) wan_interfaces.emplace(*wan.interface.value, &wan);
    }
    for (const auto& lan : draft.lans) {
        if (!lan.value) continue;
        if (auto it = wan_interfaces.find(*lan.value); it != wan_interfaces.end()) {
            report.fail(lan.path, quote(*lan.value) + " is also the interface of " + wan_label(*it->second));
        }
    }
}

// snat6 translates IPv6, which only a WAN with gateway6 carries; an HA pair shares an address
// per WAN and family, so every WAN needs snat (and snat6 with gateway6).
void check_snat(const ConfigDraft& draft, Reporter& report) {
    const bool pair = draft.ha_pair.value.value_or(false);
    for (const WanDraft& wan : draft.wans) {
        if (wan.snat6.present() && !wan.gateway6.present())
            report.fail(wan.snat6.path, "\"snat6\" needs \"gateway6\": without it the WAN carries no IPv6");
        if (!pair) continue;
        const std::string why = " (with \"ha_pair\": true, LAN connections leave with the address the two routers share)";
        if (!wan.snat.present()) report.fail_after(wan.path, "missing required key \"snat\"" + why);
        if (wan.gateway6.present() && !wan.snat6.present())
            report.fail_after(wan.path, "missing required key \"snat6\" (it has \"gateway6\")" + why);
    }
}

// One rule to keep LAN replies in the main table, one fwmark rule per WAN, one for the mark
// of "main" and one for "unreachable" when rules need them, then the balanced table's rule,
// all below the kernel's own rule for the main table.
void check_rule_room(const ConfigDraft& draft, const ExtraMarks& extra, Reporter& report) {
    if (!draft.rule_priority.value || !draft.wan_count.value || *draft.wan_count.value > kMaxWans) return;
    uint32_t rules = uint32_t(*draft.wan_count.value + extra.count()) + 2;
    uint32_t highest = kMainRulePriority - rules;
    if (*draft.rule_priority.value <= highest) return;
    report.fail(draft.rule_priority.path,
                "expected an integer from 1 to " + std::to_string(highest) + " (" + std::to_string(rules) +
                    " rules must fit below the main table's rule at " + std::to_string(kMainRulePriority) + "), got " +
                    std::to_string(*draft.rule_priority.value));
}

// How many targets a family's rounds use: its own addresses, or its gateway alone.
std::string targets_phrase(Family f, const ProbeTargets& targets) {
    size_t n = targets.count(f);
    if (n > 0) return std::to_string(n);
    return f == Family::V4 ? "1: the gateway, as targets is empty"
                           : "1: the IPv6 gateway, as targets holds no IPv6 address";
}

std::string family_words(Family f) { return f == Family::V4 ? "" : std::string(family_label(f)) + " "; }

// min_targets_up against the targets it will be used with, reported where min_targets_up was
// set: the global value alone, then each WAN's merged settings. IPv6 counts only for WANs with
// gateway6, against the IPv6 targets (a WAN's IPv4 and IPv6 rounds are judged apart).
void check_min_targets(const ConfigDraft& draft, Reporter& report) {
    const Field<unsigned>& global_min = draft.probe.min_targets_up;
    const Field<ProbeTargets>& global_targets = draft.probe.targets;
    bool any_ipv6 = std::any_of(draft.wans.begin(), draft.wans.end(), [](const WanDraft& w) { return w.gateway6.value; });
    if (global_min.value && (!global_targets.present() || global_targets.value)) {
        auto targets = global_targets.value.value_or(ProbeTargets{});
        for (Family f : kFamilies) {
            if (f == Family::V6 && !any_ipv6) continue;
            if (*global_min.value <= std::max<size_t>(1, targets.count(f))) continue;
            report.fail(global_min.path, std::to_string(*global_min.value) + " is more than the number of " +
                                             family_words(f) + "probe targets (" + targets_phrase(f, targets) + ")");
            break;
        }
    }
    for (const WanDraft& wan : draft.wans) {
        bool own_min = wan.probe.min_targets_up.present();
        bool own_targets = wan.probe.targets.present();
        if (!own_min && !own_targets) continue;  // the global check covers it
        const Field<unsigned>& min = own_min ? wan.probe.min_targets_up : global_min;
        const Field<ProbeTargets>& targets_field = own_targets ? wan.probe.targets : global_targets;
        if (!min.value || (targets_field.present() && !targets_field.value)) continue;
        auto targets = targets_field.value.value_or(ProbeTargets{});
        for (Family f : kFamilies) {
            if (f == Family::V6 && !wan.gateway6.value) continue;
            if (*min.value <= std::max<size_t>(1, targets.count(f))) continue;
            std::string whose = own_min ? "" : " of " + wan_label(wan);
            report.fail(min.path, std::to_string(*min.value) + " is more than the number of " + family_words(f) +
                                      "probe targets" + whose + " (" + targets_phrase(f, targets) + ")");
            break;
        }
    }
}

ProbeConfig merge(ProbeConfig base, const ProbeDraft& over) {
    if (over.targets.value) {
        base.targets = over.targets.value->v4;
        base.targets6 = over.targets.value->v6;
    }
    if (over.interval_ms.value) base.interval = std::chrono::milliseconds(*over.interval_ms.value);
    if (over.timeout_ms.value) base.timeout = std::chrono::milliseconds(*over.timeout_ms.value);
    if (over.down_after.value) base.down_after = *over.down_after.value;
    if (over.up_after.value) base.up_after = *over.up_after.value;
    if (over.min_targets_up.value) base.min_targets_up = *over.min_targets_up.value;
    return base;
}

// The marks allocation hands out, in order: deposit_bits(1), (2), ... that no WAN claims
// explicitly, first those no well-known program uses under the mask, then (only when those run
// out) the ones it does. Enough for `needed` WANs when the mask has room (check_wan_count).
std::vector<uint32_t> mark_candidates(uint32_t mask, size_t needed, const std::set<uint32_t>& taken) {
    std::vector<uint32_t> clean, colliding;
    const uint64_t capacity = mark_capacity(mask);
    for (uint64_t k = 1; k <= capacity && clean.size() < needed; ++k) {
        uint32_t mark = deposit_bits(uint32_t(k), mask);
        if (taken.count(mark)) continue;
        (known_mark_matching(mark, mask) ? colliding : clean).push_back(mark);
    }
    clean.insert(clean.end(), colliding.begin(), colliding.end());
    return clean;
}

// An allocated mark that another program uses: a warning at `path`, the key that got it.
void warn_known_mark(uint32_t mark, const Config& config, const std::string& path, const std::string& whose,
                     Reporter& report) {
    if (const KnownMark* known = known_mark_matching(mark, config.mark_mask)) {
        report.warn(path, "allocated mark " + hex(mark) + whose + " is " + known_mark_phrase(*known, config.mark_mask) +
                              ": its " + std::string(known->marked) + " would follow " +
                              (whose.empty() ? "this WAN" : "it") + " (no other mark is free)");
    }
}

// Tables 101, 102, ... and marks from mark_candidates in WAN order, skipping any value a WAN
// claims explicitly, so adding a WAN at the end never renumbers the WANs before it; then the
// marks of "main" and "unreachable" when rules need them (check_mark_room made room). A mark
// another program uses is warned about.
void allocate(Config& config, const ConfigDraft& draft, const ExtraMarks& extra, Reporter& report) {
    std::set<uint32_t> explicit_tables, explicit_marks;
    size_t allocated_marks = 0;
    for (const WanDraft& wan : draft.wans) {
        if (wan.table.value) explicit_tables.insert(*wan.table.value);
        if (wan.mark.value) {
            explicit_marks.insert(*wan.mark.value);
        } else {
            ++allocated_marks;
        }
    }
    const std::vector<uint32_t> marks =
        mark_candidates(config.mark_mask, allocated_marks + extra.count(), explicit_marks);
    auto next_mark = marks.begin();
    uint32_t next_table = kFirstTable;
    for (size_t i = 0; i < draft.wans.size(); ++i) {
        WanConfig& wan = config.wans[i];
        if (draft.wans[i].table.value) {
            wan.table = *draft.wans[i].table.value;
        } else {
            while (explicit_tables.count(next_table) ||
                   (next_table >= kFirstReservedTable && next_table <= kLastReservedTable)) {
                ++next_table;
            }
            wan.table = next_table++;
        }
        if (draft.wans[i].mark.value) {
            wan.mark = *draft.wans[i].mark.value;
            continue;
        }
        wan.mark = *next_mark++;
        warn_known_mark(wan.mark, config, draft.wans[i].path, "", report);
    }
    if (!extra.main_path.empty()) {
        config.main_mark = *next_mark++;
        warn_known_mark(*config.main_mark, config, extra.main_path, " for \"main\"", report);
    }
    if (!extra.unreachable_path.empty()) {
        config.unreachable_mark = *next_mark++;
        warn_known_mark(*config.unreachable_mark, config, extra.unreachable_path, " for \"unreachable\"", report);
    }
}

// IPv6 targets probe only the WANs with gateway6: say so where they are listed for none.
void warn_unused_ipv6_targets(const Config& config, const ConfigDraft& draft, Reporter& report) {
    const auto& global = draft.probe.targets;
    if (global.value && !global.value->v6.empty() && !config.any_ipv6())
        report.warn(global.path, "the IPv6 targets are not probed: no WAN has \"gateway6\"");
    for (size_t i = 0; i < draft.wans.size(); ++i) {
        const auto& own = draft.wans[i].probe.targets;
        if (own.value && !own.value->v6.empty() && !config.wans[i].ipv6)
            report.warn(own.path, "the IPv6 targets are not probed: " + config.wans[i].name + " has no \"gateway6\"");
    }
}

Config build(const ConfigDraft& draft, Reporter& report) {
    Config config;
    if (draft.classifier.value) config.classifier = *draft.classifier.value;
    config.probe = merge(ProbeConfig{}, draft.probe);
    if (draft.masquerade.value) config.masquerade = *draft.masquerade.value;
    if (draft.flush_conntrack.value) config.flush_conntrack = *draft.flush_conntrack.value;
    if (draft.ha_pair.value) config.ha_pair = *draft.ha_pair.value;
    if (draft.mark_mask.value) config.mark_mask = *draft.mark_mask.value;
    if (draft.rule_priority.value) config.rule_priority = *draft.rule_priority.value;
    if (draft.hooks_dir.value) config.hooks_dir = *draft.hooks_dir.value;
    for (const auto& lan : draft.lans) config.lans.push_back(*lan.value);
    for (const WanDraft& d : draft.wans) {
        WanConfig wan;
        wan.name = *d.name.value;
        wan.interface = *d.interface.value;
        wan.gateway = *d.gateway.value;
        if (d.gateway6.value) {
            wan.ipv6 = true;
            wan.gateway6 = *d.gateway6.value;
        }
        wan.weight = d.weight.value.value_or(1);
        wan.tier = d.tier.value.value_or(0);
        wan.probe = merge(config.probe, d.probe);
        wan.snat = d.snat.value;
        wan.snat6 = d.snat6.value;
        config.wans.push_back(std::move(wan));
    }
    allocate(config, draft, extra_marks_needed(draft, report), report);
    warn_unused_ipv6_targets(config, draft, report);
    build_policies_and_rules(config, draft, report);
    return config;
}

}  // namespace

std::optional<Config> resolve(const ConfigDraft& draft, Reporter& report) {
    // A mask that is present but invalid has been reported; checks that need it are skipped.
    std::optional<uint32_t> mask = draft.mark_mask.present() ? draft.mark_mask.value : kDefaultMarkMask;
    check_wan_count(draft, mask, report);
    check_unique_per_wan(draft, mask, report);
    check_lans_are_not_wans(draft, report);
    check_snat(draft, report);
    check_rule_room(draft, extra_marks_needed(draft, report), report);
    check_min_targets(draft, report);
    check_policies_and_rules(draft, mask, report);
    if (!report.ok()) return std::nullopt;
    return build(draft, report);
}

}  // namespace wb::config_detail
