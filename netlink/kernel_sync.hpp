// Makes the kernel hold the desired state (rules/desired.hpp) through a KernelPort: read what
// wanbalance owns, skip what is equal, change what differs, delete what is stale. Pure logic:
// every kernel request goes through the port, so the unit tests run it against a fake kernel.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "netlink/kernel_port.hpp"
#include "rules/desired.hpp"
#include "rules/nft.hpp"
#include "rules/routing.hpp"

namespace wb {

// What a sync did; errors are per route/rule ("Could not replace default route in table 101
// (via 203.0.113.1 dev ether1): Network is unreachable"), the rest still applied.
struct SyncReport {
    unsigned added = 0, replaced = 0, deleted = 0, unchanged = 0;
    std::vector<Status> errors;
    std::vector<Family> error_families;  // the family each error is about, in the same order
    std::vector<uint32_t> error_tables;  // the routing table each is about (0: none, e.g. a dump)
    void fail(Family family, Status error, uint32_t table = 0);
    std::vector<Status> errors_of(Family family) const;
    unsigned changes() const { return added + replaced + deleted; }
    bool changed() const { return changes() > 0; }
};

// Read what we own, skip what is equal, replace what changed, delete what is stale; both
// families, each route and rule in its own (identity includes the family). A default route in
// a (family, table, metric) slot held by a route that is not ours is left alone and reported.
SyncReport sync_routes(KernelPort& kernel, const std::vector<Route>& desired);
SyncReport sync_rules(KernelPort& kernel, const std::vector<Rule>& desired);

// Several errors as one Status, for one log line: the messages joined by "; ", the last errno.
// Ok when there are none.
Status join(const std::vector<Status>& errors);

// What one KernelSync::apply() did.
struct ApplyReport {
    unsigned nft_ops = 0;  // ops of the nftables transaction applied (0: the table was equal)
    SyncReport routes, rules;
    // The outcome of each part, "nftables", "routes", "rules", "IPv6 routes" and "IPv6 rules"
    // (always all five, so an IPv6 error is seen to clear when IPv6 leaves the config): ok,
    // or its errors joined, so a caller can log each error once and say when it cleared. A
    // failed dump of both families counts as IPv4's.
    std::map<std::string, Status> results;

    // Every refusal, with the routing table it is about (0: none in particular: the nftables
    // transaction, a dump). The daemon tells from the table which WAN is degraded.
    struct Refusal {
        uint32_t table = 0;
        std::string message;
    };
    std::vector<Refusal> refusals() const;

    unsigned routes_changed() const { return routes.changes(); }
    unsigned rules_changed() const { return rules.changes(); }
    bool ok() const;
};

// The whole reconcile: the nftables table, then the routes, then the rules. Remembers which
// table the kernel holds so that the next apply sends only the difference.
class KernelSync {
public:
    explicit KernelSync(KernelPort& kernel) : kernel_(kernel) {}

    // The table first (routes and rules then lead to chains that exist). A failed nftables
    // transaction against a recorded table is retried once as a whole-table replace: the
    // record may be stale. Routes and rules are synced whatever the table's fate.
    ApplyReport apply(const Desired& desired);

    // Someone else changed our table (or it may have): the next apply replaces it whole.
    void forget_table() { applied_table_.reset(); }
    // Whether the last apply installed the table (as far as we know the kernel holds it).
    bool table_applied() const { return applied_table_.has_value(); }

    // Removes everything wanbalance owns: the table, the routes, the rules. Returns the errors.
    std::vector<Status> teardown();

private:
    Status apply_table(const nft::Table& table, unsigned& ops);

    KernelPort& kernel_;
    std::optional<nft::Table> applied_table_;  // what the kernel holds, as far as we know
};

}  // namespace wb
