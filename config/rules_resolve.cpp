// Pass 2 for "policies" and "rules": what they name (WANs, LANs, policies) must exist, rule
// names are unique, the mask has room for the marks they need, and the rule maps for the
// elements their lists multiply out to; then Config::policies and Config::rules, with the
// warnings for what loads but does nothing (rules after a catch-all, IPv6 with no IPv6 WAN,
// policies no rule uses).
#include <netinet/in.h>

#include <algorithm>
#include <map>
#include <set>

#include "base/format.hpp"
#include "config/validate.hpp"
#include "config/wording.hpp"

namespace wb::config_detail {

namespace {

// "(did you mean "integra"?)", else the choices: "(WANs: "charter" and "integra")".
std::string suggestion(const std::string& word, const std::vector<std::string>& names, std::string_view which) {
    std::vector<std::string_view> views(names.begin(), names.end());
    if (auto match = closest_match(word, views)) return " (did you mean " + quote(*match) + "?)";
    if (views.empty()) return "";
    return " (" + std::string(which) + ": " + quote_list(views) + ")";
}

std::vector<std::string> wan_names(const ConfigDraft& draft) {
    std::vector<std::string> out;
    for (const WanDraft& wan : draft.wans) {
        if (wan.name.value) out.push_back(*wan.name.value);
    }
    return out;
}

std::optional<size_t> wan_index(const ConfigDraft& draft, const std::string& name) {
    for (size_t i = 0; i < draft.wans.size(); ++i) {
        if (draft.wans[i].name.value == name) return i;
    }
    return std::nullopt;
}

void check_members(const ConfigDraft& draft, Reporter& report) {
    const std::vector<std::string> wans = wan_names(draft);
    for (const PolicyDraft& policy : draft.policies) {
        std::map<std::string, std::string> first_seen;
        for (const MemberDraft& member : policy.members) {
            if (!member.wan.value) continue;
            const std::string& name = *member.wan.value;
            if (std::find(wans.begin(), wans.end(), name) == wans.end()) {
                report.fail(member.wan.path, quote(name) + " is not a WAN" + suggestion(name, wans, "WANs"));
            } else if (auto [it, fresh] = first_seen.emplace(name, member.path); !fresh) {
                report.fail(member.wan.path, quote(name) + " is already a member at " + it->second);
            }
        }
    }
}

void check_rule_names(const ConfigDraft& draft, Reporter& report) {
    std::map<std::string, std::string> first_seen;
    for (const RuleDraft& rule : draft.rules) {
        if (!rule.name.value) continue;
        if (auto [it, fresh] = first_seen.emplace(*rule.name.value, rule.path); !fresh) {
            report.fail(rule.name.path, quote(*rule.name.value) + " is already used by " + it->second);
        }
    }
}

void check_rule_policy(const ConfigDraft& draft, const RuleDraft& rule, Reporter& report) {
    if (!rule.policy.value) return;
    const std::string& name = *rule.policy.value;
    if (name == "balanced" || name == "main") return;
    std::vector<std::string> choices;
    for (const PolicyDraft& policy : draft.policies) {
        if (policy.written == name) return;  // that policy exists (its own errors are reported there)
        choices.push_back(policy.written);
    }
    std::string message = quote(name) + " is not a policy, \"balanced\" or \"main\"";
    choices.push_back("balanced");
    choices.push_back("main");
    std::vector<std::string_view> views(choices.begin(), choices.end());
    if (auto match = closest_match(name, views)) {
        message += " (did you mean " + quote(*match) + "?)";
    } else if (draft.policies.empty()) {
        message += " (\"policies\" defines none)";
    } else {
        views.resize(views.size() - 2);
        message += " (policies: " + quote_list(views) + ")";
    }
    report.fail(rule.policy.path, message);
}

void check_rule_iif(const ConfigDraft& draft, const RuleDraft& rule, Reporter& report) {
    std::vector<std::string> lans;
    for (const auto& lan : draft.lans) {
        if (lan.value) lans.push_back(*lan.value);
    }
    for (const auto& item : rule.iif.items) {
        // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
        const auto& name = item.first;
        const auto& path = item.second;
        if (std::find(lans.begin(), lans.end(), name) != lans.end()) continue;
        auto wan = std::find_if(draft.wans.begin(), draft.wans.end(),
                                [&](const WanDraft& w) { return w.interface.value == name && w.name.value; });
        if (wan != draft.wans.end()) {
            report.fail(path, quote(name) + " is the interface of WAN " + quote(*wan->name.value) +
                                  ", not one of \"lans\": rules see only new connections from the LANs");
        } else {
            report.fail(path, quote(name) + " is not one of \"lans\"" + suggestion(name, lans, "LANs"));
        }
    }
}

// The WANs a sticky rule keeps sets for (rules/desired_rules.cpp): its policy's members, and
// every WAN for "balanced" or a policy whose last resort is "balanced"; none when not sticky.
std::vector<std::string> sticky_wans(const ConfigDraft& draft, const RuleDraft& rule) {
    if (rule.sticky.value.value_or(Sticky::None) == Sticky::None || !rule.policy.value || *rule.policy.value == "main")
        return {};
    const std::vector<std::string> all = wan_names(draft);
    if (*rule.policy.value == "balanced") return all;
    for (const PolicyDraft& policy : draft.policies) {
        if (policy.written != *rule.policy.value) continue;
        if (policy.last_resort.value.value_or(LastResort::Balanced) == LastResort::Balanced) return all;
        std::vector<std::string> out;
        for (const MemberDraft& member : policy.members) {
            if (member.wan.value && std::find(all.begin(), all.end(), *member.wan.value) != all.end())
                out.push_back(*member.wan.value);
        }
        return out;
    }
    return {};
}

// Sticky sets are named sticky_RULE_WAN, so rule "a_b" with WAN "c" and rule "a" with WAN "b_c"
// would share one: refused at the later rule.
void check_sticky_names(const ConfigDraft& draft, Reporter& report) {
    std::map<std::string, std::pair<const RuleDraft*, std::string>> owner;  // set name -> rule, WAN
    for (const RuleDraft& rule : draft.rules) {
        if (!rule.name.value) continue;
        for (const std::string& wan : sticky_wans(draft, rule)) {
            const std::string set = "sticky_" + *rule.name.value + "_" + wan;
            auto [it, fresh] = owner.emplace(set, std::pair{&rule, wan});
            const RuleDraft& other = *it->second.first;
            if (fresh || other.name.value == rule.name.value) continue;  // same name: reported already
            report.fail(rule.sticky.path, "its sticky set for WAN " + quote(wan) + " would be named " + quote(set) +
                                              ", like that of rule " + quote(*other.name.value) + " (" + other.path +
                                              ") for WAN " + quote(it->second.second) + "; rename one of the two rules");
            break;
        }
    }
}

// Main, then unreachable, take the marks after the WANs': the mask must hold them all.
void check_mark_room(const ConfigDraft& draft, std::optional<uint32_t> mask, const ExtraMarks& extra,
                     Reporter& report) {
    if (!mask || !draft.wan_count.value || extra.count() == 0) return;
    uint64_t capacity = mark_capacity(*mask);
    uint64_t wans = *draft.wan_count.value;
    if (wans > capacity) return;  // reported as too many WANs
    uint64_t free = capacity - wans;
    std::string full = " mark_mask " + quote(hex(*mask)) + " is full: its " + std::to_string(capacity) +
                       (capacity == 1 ? " mark goes" : " marks go") + " to the WANs";
    if (!extra.main_path.empty() && free == 0) {
        report.fail(extra.main_path, "\"main\" needs a mark of its own, and" + full + "; widen mark_mask");
    }
    if (!extra.unreachable_path.empty() && free < extra.count()) {
        std::string also = extra.count() == 2 && free == 1 ? " and \"main\"" : "";
        report.fail(extra.unreachable_path,
                    "\"unreachable\" needs a mark of its own, and" + full + also + "; widen mark_mask");
    }
}

// ---- The element limit ----

__extension__ typedef unsigned __int128 Wide;  // an address of either family as a number

struct Range {
    Wide first, last;
    bool operator<(const Range& o) const { return first < o.first; }
};

Range range_of(const Cidr& cidr) {
    if (const auto* v4 = std::get_if<Ipv4>(&cidr.addr)) {
        uint32_t host = cidr.len == 0 ? ~uint32_t(0) : (uint32_t(1) << (32 - cidr.len)) - 1;
        return {v4->value, Wide(v4->value) | host};
    }
    Wide value = 0;
    for (uint8_t byte : std::get<Ipv6>(cidr.addr).bytes) value = (value << 8) | byte;
    Wide host = cidr.len == 0 ? ~Wide(0) : (Wide(1) << (128 - cidr.len)) - 1;
    return {value, value | host};
}

// How many ranges are left once overlapping and adjacent ones are joined: the elements a list
// becomes in an interval map.
size_t merged_count(std::vector<Range> ranges) {
    std::sort(ranges.begin(), ranges.end());
    size_t count = 0;
    Wide end = 0;
    for (size_t i = 0; i < ranges.size(); ++i) {
        if (i > 0 && end != ~Wide(0) && ranges[i].first <= end + 1) {
            end = std::max(end, ranges[i].last);
            continue;
        }
        ++count;
        end = ranges[i].last;
    }
    return count;
}

// An absent list is one element (its full range); nullopt when the list has none of `family`.
std::optional<size_t> cidr_count(const ListDraft<Cidr>& list, Family family) {
    if (!list.present()) return 1;
    std::vector<Range> ranges;
    for (const auto& [cidr, path] : list.items) {
        if (cidr.family() == family) ranges.push_back(range_of(cidr));
    }
    if (ranges.empty()) return std::nullopt;
    return merged_count(ranges);
}

size_t port_count(const ListDraft<PortRange>& list) {
    if (!list.present()) return 1;
    std::vector<Range> ranges;
    for (const auto& [ports, path] : list.items) ranges.push_back({ports.first, ports.last});
    return merged_count(ranges);
}

bool lists_valid(const RuleDraft& rule) {
    for (bool bad : {rule.src.present() && !rule.src.valid, rule.dst.present() && !rule.dst.valid,
                     rule.src_port.present() && !rule.src_port.valid, rule.dst_port.present() && !rule.dst_port.valid,
                     rule.iif.present() && !rule.iif.valid}) {
        if (bad) return false;
    }
    return true;
}

// The factors of a rule's elements in `family` (src, dst, ports; LANs are filled in later), or
// nullopt when the rule cannot match that family.
std::optional<std::array<size_t, 5>> rule_factors(const RuleDraft& rule, Family family) {
    if (rule.proto.value == IPPROTO_ICMP && family == Family::V6) return std::nullopt;
    if (rule.proto.value == IPPROTO_ICMPV6 && family == Family::V4) return std::nullopt;
    auto src = cidr_count(rule.src, family), dst = cidr_count(rule.dst, family);
    if (!src || !dst) return std::nullopt;
    return std::array<size_t, 5>{*src, *dst, port_count(rule.src_port), port_count(rule.dst_port), 1};
}

// Per family, the elements of every rule up to the first catch-all (which the map does not
// hold) must fit kMaxRuleElements; the rule that crosses is named. With `iif` in some rule of
// the family, every rule of it is multiplied out over its LANs (all of them without `iif`).
void check_rule_elements(const ConfigDraft& draft, Reporter& report) {
    if (draft.rules.size() > kMaxRules) return;
    size_t lans = size_t(
        std::count_if(draft.lans.begin(), draft.lans.end(), [](const auto& lan) { return lan.value.has_value(); }));
    for (Family family : kFamilies) {
        std::vector<std::pair<const RuleDraft*, std::array<size_t, 5>>> counted;
        bool any_iif = false;
        for (const RuleDraft& rule : draft.rules) {
            if (rule.catch_all()) break;
            auto factors = lists_valid(rule) ? rule_factors(rule, family) : std::nullopt;
            if (!factors) continue;
            counted.emplace_back(&rule, *factors);
            any_iif = any_iif || rule.iif.present();
        }
        uint64_t total = 0;
        for (auto& [rule, factors] : counted) {
            if (any_iif) factors[4] = rule->iif.present() ? rule->iif.items.size() : lans;
            uint64_t elements = 1;
            for (size_t f : factors) {
                if (__builtin_mul_overflow(elements, uint64_t(f), &elements)) elements = UINT64_MAX;
            }
            if (__builtin_add_overflow(total, elements, &total)) total = UINT64_MAX;
            if (total <= kMaxRuleElements) continue;
            std::string name = rule->name.value ? "rule " + quote(*rule->name.value) : "this rule";
            report.fail(rule->path, name + " takes the " + std::string(family_label(family)) + " rule maps past " +
                                        std::to_string(kMaxRuleElements) + " elements (it adds " +
                                        std::to_string(elements) +
                                        ": src x dst x src_port x dst_port" + (any_iif ? " x iif" : "") +
                                        ", each list merged); use wider prefixes or port ranges");
            break;
        }
    }
}

// ---- Warnings ----

void warn_unreachable_rules(const ConfigDraft& draft, Reporter& report) {
    auto catch_all =
        std::find_if(draft.rules.begin(), draft.rules.end(), [](const RuleDraft& r) { return r.catch_all(); });
    if (catch_all == draft.rules.end()) return;
    std::string name = catch_all->name.value ? "rule " + quote(*catch_all->name.value) + " (" + catch_all->path + ")"
                                             : catch_all->path;
    for (auto it = catch_all + 1; it != draft.rules.end(); ++it) {
        report.warn(it->path, "never matches: " + name + " before it has no match keys, so it takes every connection");
    }
}

void warn_unused_ipv6(const Config& config, const ConfigDraft& draft, Reporter& report) {
    if (config.any_ipv6()) return;
    for (size_t i = 0; i < draft.rules.size(); ++i) {
        const RuleDraft& d = draft.rules[i];
        const RuleConfig& rule = config.rules[i];
        std::string v6_path;
        for (const ListDraft<Cidr>* list : {&d.src, &d.dst}) {
            for (const auto& [cidr, path] : list->items) {
                if (cidr.family() == Family::V6 && v6_path.empty()) v6_path = path;
            }
        }
        if (rule.proto == IPPROTO_ICMPV6) {
            report.warn(d.proto.path, "the rule is unused: \"icmpv6\" is IPv6 and no WAN has \"gateway6\"");
        } else if (!v6_path.empty() && !rule.applies_to(Family::V4)) {
            report.warn(v6_path, "the rule is unused: its addresses are IPv6 and no WAN has \"gateway6\"");
        } else if (!v6_path.empty()) {
            report.warn(v6_path, "the IPv6 addresses are unused: no WAN has \"gateway6\"");
        }
    }
}

void warn_unused_policies(const Config& config, const ConfigDraft& draft, Reporter& report) {
    for (size_t p = 0; p < config.policies.size(); ++p) {
        bool used = std::any_of(config.rules.begin(), config.rules.end(), [&](const RuleConfig& r) {
            return r.target == RuleTarget::Policy && r.policy == p;
        });
        if (!used) report.warn(draft.policies[p].path, "no rule uses policy " + quote(config.policies[p].name));
    }
}

RuleConfig build_rule(const Config& config, const RuleDraft& d) {
    RuleConfig rule;
    rule.name = *d.name.value;
    rule.src = d.src.values();
    rule.dst = d.dst.values();
    rule.proto = d.proto.value;
    rule.src_port = d.src_port.values();
    rule.dst_port = d.dst_port.values();
    rule.iif = d.iif.values();
    const std::string& target = *d.policy.value;
    if (target == "balanced") {
        rule.target = RuleTarget::Balanced;
    } else if (target == "main") {
        rule.target = RuleTarget::Main;
    } else {
        rule.target = RuleTarget::Policy;
        auto it = std::find_if(config.policies.begin(), config.policies.end(),
                               [&](const PolicyConfig& p) { return p.name == target; });
        rule.policy = size_t(it - config.policies.begin());
    }
    rule.sticky = d.sticky.value.value_or(Sticky::None);
    rule.sticky_timeout_s = d.sticky_timeout_s.value.value_or(kDefaultStickyTimeoutS);
    return rule;
}

}  // namespace

ExtraMarks extra_marks_needed(const ConfigDraft& draft, const Reporter& report) {
    ExtraMarks extra;
    auto take_first = [&](std::string& slot, const std::string& path) {
        if (slot.empty() || report.order_of(path) < report.order_of(slot)) slot = path;
    };
    for (const RuleDraft& rule : draft.rules) {
        if (rule.policy.value == "main") take_first(extra.main_path, rule.policy.path);
    }
    for (const PolicyDraft& policy : draft.policies) {
        if (policy.last_resort.value == LastResort::Main) take_first(extra.main_path, policy.last_resort.path);
        if (policy.last_resort.value == LastResort::Unreachable) {
            take_first(extra.unreachable_path, policy.last_resort.path);
        }
    }
    return extra;
}

void check_policies_and_rules(const ConfigDraft& draft, std::optional<uint32_t> mask, Reporter& report) {
    check_members(draft, report);
    check_rule_names(draft, report);
    check_sticky_names(draft, report);
    for (const RuleDraft& rule : draft.rules) {
        check_rule_policy(draft, rule, report);
        check_rule_iif(draft, rule, report);
    }
    check_mark_room(draft, mask, extra_marks_needed(draft, report), report);
    check_rule_elements(draft, report);
}

void build_policies_and_rules(Config& config, const ConfigDraft& draft, Reporter& report) {
    for (const PolicyDraft& d : draft.policies) {
        PolicyConfig policy;
        policy.name = *d.name.value;
        for (const MemberDraft& m : d.members) {
            size_t wan = *wan_index(draft, *m.wan.value);
            policy.members.push_back({wan, m.weight.value.value_or(config.wans[wan].weight),
                                      m.tier.value.value_or(config.wans[wan].tier)});
        }
        policy.last_resort = d.last_resort.value.value_or(LastResort::Balanced);
        config.policies.push_back(std::move(policy));
    }
    for (const RuleDraft& d : draft.rules) config.rules.push_back(build_rule(config, d));
    warn_unreachable_rules(draft, report);
    warn_unused_ipv6(config, draft, report);
    warn_unused_policies(config, draft, report);
}

}  // namespace wb::config_detail
