#include "netlink/kernel_sync.hpp"

#include <cerrno>
#include <set>
#include <tuple>
#include <utility>

namespace wb {

namespace {

// "IPv6 " where the family is worth saying; IPv4 messages read as they always did.
std::string family_word(Family family) {
    return family == Family::V4 ? std::string() : std::string(family_label(family)) + " ";
}

// A default route's identity in the kernel: fib_table_insert() (IPv4) and fib6_add_rt2node()
// (IPv6) replace the route with the same (table, metric) for the same prefix, per family.
using RouteSlot = std::tuple<Family, uint32_t, uint32_t>;
RouteSlot slot_of(const Route& r) { return {r.family, r.table, r.metric}; }

// Whether the dump of what we own came back; if not, its error is the report's.
template <class T>
bool dumped(const Expected<std::vector<T>>& own, SyncReport& report) {
    if (!own) report.fail(Family::V4, own.error());
    return own.has_value();
}

std::string part_name(const char* part, Family family) {
    return family == Family::V4 ? std::string(part) : std::string(family_label(family)) + " " + part;
}

// A slot we do not own yet: a replace would silently take over someone else's route there.
void add_route(KernelPort& kernel, const Route& want, SyncReport& report) {
    auto foreign = kernel.foreign_default_route(want.family, want.table, want.metric);
    if (!foreign) {
        report.fail(want.family, foreign.error(), want.table);
    } else if (!foreign->empty()) {
        report.fail(want.family, Status::fail(
            EEXIST, "Could not add " + describe(want) + ": " + family_word(want.family) + "table " +
                        table_name(want.table) + " metric " +
                        std::to_string(want.metric) + " already holds \"" + *foreign +
                        "\", which wanbalance does not own; left alone"), want.table);
    } else if (Status st = kernel.replace_route(want); st) {
        ++report.added;
    } else {
        report.fail(want.family, st, want.table);
    }
}

}  // namespace

SyncReport sync_routes(KernelPort& kernel, const std::vector<Route>& desired) {
    SyncReport report;
    auto own = kernel.dump_own_routes();
    if (!dumped(own, report)) return report;
    std::vector<bool> wanted(own->size(), false);
    std::set<RouteSlot> slots_seen;
    for (const auto& want : desired) {
        if (!slots_seen.insert(slot_of(want)).second) {
            report.fail(want.family, Status::fail(EINVAL, "Could not add " + describe(want) +
                                                             ": another desired route has the same table and metric"),
                        want.table);
            continue;
        }
        size_t i = 0;
        while (i < own->size() && slot_of((*own)[i]) != slot_of(want)) ++i;
        if (i == own->size()) {
            add_route(kernel, want, report);
            continue;
        }
        wanted[i] = true;
        if (kernel_equal((*own)[i], want)) ++report.unchanged;
        else if (Status st = kernel.replace_route(want); st) ++report.replaced;
        else report.fail(want.family, st, want.table);
    }
    // Stale routes go last, so traffic always has a route while the new ones go in.
    for (size_t i = 0; i < own->size(); ++i) {
        if (wanted[i]) continue;
        if (Status st = kernel.delete_route((*own)[i]); st) ++report.deleted;
        else report.fail((*own)[i].family, st, (*own)[i].table);
    }
    return report;
}

SyncReport sync_rules(KernelPort& kernel, const std::vector<Rule>& desired) {
    SyncReport report;
    auto own = kernel.dump_own_rules();
    if (!dumped(own, report)) return report;
    std::vector<bool> kept(own->size(), false);
    std::vector<Rule> to_add;
    for (const auto& want : desired) {
        size_t i = 0;
        while (i < own->size() && (kept[i] || !kernel_equal((*own)[i], want))) ++i;
        if (i < own->size()) {
            kept[i] = true;
            ++report.unchanged;
        } else {
            to_add.push_back(want);
        }
    }
    // Rules have no replace (fib_nl_newrule() only adds): add the new one first, then delete the
    // stale one, so marked traffic always has a rule. The new rule goes after every rule of the
    // same priority, so the delete (rule_find(): first match, unset attributes match anything,
    // FRA_PROTOCOL always set) still finds the old one first.
    // Each family has its own rule list: a replace is an add and a delete in the same one.
    std::multiset<std::pair<Family, uint32_t>> added_priorities;
    for (const auto& rule : to_add) {
        if (Status st = kernel.add_rule(rule); st) added_priorities.insert({rule.family, rule.priority});
        else report.fail(rule.family, st, rule.table);
    }
    report.added = unsigned(added_priorities.size());
    for (size_t i = 0; i < own->size(); ++i) {
        if (kept[i]) continue;
        Status st = kernel.delete_rule((*own)[i]);
        if (!st) {
            report.fail((*own)[i].family, st, (*own)[i].table);
            continue;
        }
        // A rule deleted where another was added at its priority was changed: count a replace.
        if (auto it = added_priorities.find({(*own)[i].family, (*own)[i].priority}); it != added_priorities.end()) {
            added_priorities.erase(it);
            --report.added;
            ++report.replaced;
        } else {
            ++report.deleted;
        }
    }
    return report;
}

void SyncReport::fail(Family family, Status error, uint32_t table) {
    errors.push_back(std::move(error));
    error_families.push_back(family);
    error_tables.push_back(table);
}

std::vector<Status> SyncReport::errors_of(Family family) const {
    std::vector<Status> out;
    for (size_t i = 0; i < errors.size(); ++i)
        if (error_families[i] == family) out.push_back(errors[i]);
    return out;
}

Status join(const std::vector<Status>& errors) {
    Status joined;
    for (const auto& e : errors) {
        joined.err = e.err;
        joined.message += (joined.message.empty() ? "" : "; ") + e.message;
    }
    return joined;
}

std::vector<ApplyReport::Refusal> ApplyReport::refusals() const {
    std::vector<Refusal> out;
    auto nft = results.find("nftables");
    if (nft != results.end() && !nft->second) out.push_back({0, nft->second.message});
    for (const SyncReport* part : {&routes, &rules})
        for (size_t i = 0; i < part->errors.size(); ++i) out.push_back({part->error_tables[i], part->errors[i].message});
    return out;
}

bool ApplyReport::ok() const {
    for (const auto& [part, status] : results)
        if (!status) return false;
    return true;
}

ApplyReport KernelSync::apply(const Desired& desired) {
    ApplyReport report;
    report.results["nftables"] = apply_table(desired.table, report.nft_ops);
    report.routes = sync_routes(kernel_, desired.routes);
    report.rules = sync_rules(kernel_, desired.rules);
    for (Family family : kFamilies) {
        report.results[part_name("routes", family)] = join(report.routes.errors_of(family));
        report.results[part_name("rules", family)] = join(report.rules.errors_of(family));
    }
    return report;
}

Status KernelSync::apply_table(const nft::Table& table, unsigned& ops) {
    nft::Plan plan = nft::diff(applied_table_, table);
    if (plan.empty()) return Status::ok();
    Status s = kernel_.apply(plan);
    if (!s && applied_table_) {
        // Our record may be stale (someone edited the table): replace it whole.
        applied_table_.reset();
        plan = nft::diff(applied_table_, table);
        s = kernel_.apply(plan);
    }
    if (!s) {
        applied_table_.reset();
        return s;
    }
    ops = unsigned(plan.ops.size());
    applied_table_ = table;
    return s;
}

std::vector<Status> KernelSync::teardown() {
    std::vector<Status> errors;
    applied_table_.reset();
    if (Status s = kernel_.apply(nft::Plan{{nft::OpDeleteTable{}}}); !s) errors.push_back(s);
    SyncReport routes = sync_routes(kernel_, {});
    SyncReport rules = sync_rules(kernel_, {});
    for (const SyncReport* r : {&routes, &rules}) errors.insert(errors.end(), r->errors.begin(), r->errors.end());
    return errors;
}

}  // namespace wb
