#include "tests/unit/fake_kernel.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <variant>

#include "base/ipv4.hpp"
#include "rules/desired.hpp"

namespace wb::test {
namespace {

const char* const kOurProtocol = "wanbalance";

// `ip route` style, as the real port describes a foreign route.
std::string describe_foreign(const Route& route, const std::string& protocol) {
    auto hop = [](const Nexthop& nh) {
        return (nh.gateway ? " via " + str(*nh.gateway) : std::string()) + " dev " + nh.ifname;
    };
    std::string out = "default";
    if (route.nexthops.size() == 1) out += hop(route.nexthops[0]);
    out += " proto " + protocol;
    if (route.metric) out += " metric " + std::to_string(route.metric);
    if (route.nexthops.size() > 1)
        for (const auto& nh : route.nexthops) out += " nexthop" + hop(nh) + " weight " + std::to_string(nh.weight);
    return out;
}

// The set or map a statement looks up, if any.
std::optional<std::string> referenced_set(const nft::Statement& statement) {
    return std::visit(
        [](const auto& s) -> std::optional<std::string> {
            if constexpr (requires { s.map; })
                return s.map;
            else if constexpr (requires { s.set; })
                return s.set;
            else
                return std::nullopt;
        },
        statement);
}

// The chain a statement goes to, if any.
std::optional<std::string> referenced_chain(const nft::Statement& statement) {
    if (const auto* g = std::get_if<nft::Goto>(&statement)) return g->chain;
    return std::nullopt;
}

// Statements that take a verdict from the map they look up (a lookup with NFTA_LOOKUP_DREG).
bool wants_verdict(const nft::Statement& statement) {
    return std::holds_alternative<nft::MarkVmap>(statement) || std::holds_alternative<nft::IifnameVmap>(statement) ||
           std::holds_alternative<nft::HashVmap>(statement) || std::holds_alternative<nft::NumgenVmap>(statement) ||
           std::holds_alternative<nft::ConcatVmap>(statement);
}

std::vector<nft::KeyType> key_fields(const nft::Set& set) {
    return set.concat.empty() ? std::vector<nft::KeyType>{set.key_type} : set.concat;
}

// What NEWSET must match for an existing set (else EEXIST): key, data, flags. A timeout it
// takes in place (nf_tables_newset() on 6.18; the diff re-creates the set instead).
bool same_shape(const nft::Set& a, const nft::Set& b) {
    return key_fields(a) == key_fields(b) && a.verdict_map == b.verdict_map && a.bucket_modulus == b.bucket_modulus &&
           a.interval == b.interval && a.dynamic() == b.dynamic();
}

// Two elements of a pipapo set clash when every field's ranges intersect (nft_pipapo_insert()
// finds one's start or end inside the other: -ENOTEMPTY, which the kernel reports as EEXIST).
bool overlap(const nft::Key& a, const nft::Key& b) {
    const auto* ra = std::get_if<nft::FieldRanges>(&a);
    const auto* rb = std::get_if<nft::FieldRanges>(&b);
    if (!ra || !rb || ra->size() != rb->size()) return false;
    for (size_t i = 0; i < ra->size(); ++i)
        if ((*ra)[i].last < (*rb)[i].first || (*rb)[i].last < (*ra)[i].first) return false;
    return true;
}

// One nftables transaction on a copy of the table: each op as the kernel takes the messages
// netlink/nft_apply.cpp encodes it into; the first refusal (an errno) aborts the whole plan.
class Transaction {
public:
    explicit Transaction(std::optional<nft::Table> table) : t_(std::move(table)) {}
    std::optional<nft::Table>& table() { return t_; }

    int operator()(const nft::OpReplaceTable& op) {  // add table, delete table, add it whole
        t_ = op.table;
        return 0;
    }
    int operator()(const nft::OpDeleteTable& op) {  // add table, delete table: never refused
        if (t_ && t_->name == op.name) t_.reset();
        return 0;
    }
    int operator()(const nft::OpAddChain& op) {
        if (!t_) return ENOENT;
        nft::Chain* chain = find_chain(op.chain.name);
        if (!chain) {
            t_->chains.push_back(nft::Chain{op.chain.name, op.chain.base, {}});
            chain = &t_->chains.back();
        } else if (chain->base != op.chain.base) {
            return EEXIST;  // a hook cannot change (nf_tables_updchain())
        }
        return append_rules(*chain, op.chain.rules);
    }
    int operator()(const nft::OpDeleteChain& op) {
        if (!t_ || !find_chain(op.name)) return ENOENT;
        for (const auto& set : t_->sets)
            for (const auto& e : set.elements)
                if (e.goto_chain == op.name) return EBUSY;  // still the target of a map element
        for (const auto& chain : t_->chains)
            for (const auto& rule : chain.rules)
                for (const auto& st : rule.statements)
                    if (referenced_chain(st) == op.name) return EBUSY;  // or of a rule's goto
        std::erase_if(t_->chains, [&](const nft::Chain& c) { return c.name == op.name; });
        return 0;
    }
    int operator()(const nft::OpReplaceRules& op) {
        nft::Chain* chain = t_ ? find_chain(op.chain) : nullptr;
        if (!chain) return ENOENT;
        chain->rules.clear();
        return append_rules(*chain, op.rules);
    }
    int operator()(const nft::OpAddSet& op) {
        if (!t_) return ENOENT;
        nft::Set* set = find_set(op.set.name);
        if (!set) {
            nft::Set empty = op.set;
            empty.elements.clear();
            t_->sets.push_back(empty);
        } else if (!same_shape(*set, op.set)) {
            return EEXIST;
        } else {
            set->timeout_s = op.set.timeout_s;
        }
        return (*this)(nft::OpAddElements{op.set});
    }
    int operator()(const nft::OpDeleteSet& op) {
        if (!t_ || !find_set(op.name)) return ENOENT;
        for (const auto& chain : t_->chains)
            for (const auto& rule : chain.rules)
                for (const auto& s : rule.statements)
                    if (referenced_set(s) == op.name) return EBUSY;
        std::erase_if(t_->sets, [&](const nft::Set& s) { return s.name == op.name; });
        return 0;
    }
    int operator()(const nft::OpAddElements& op) {
        nft::Set* set = t_ ? find_set(op.set.name) : nullptr;
        if (!set) return ENOENT;
        for (const auto& e : op.set.elements) {
            if (!e.goto_chain.empty() && !find_chain(e.goto_chain)) return ENOENT;
            auto it = std::find_if(set->elements.begin(), set->elements.end(),
                                   [&](const nft::Element& x) { return x.key == e.key; });
            if (it == set->elements.end()) {
                if (set->interval && std::any_of(set->elements.begin(), set->elements.end(),
                                                 [&](const nft::Element& x) { return overlap(x.key, e.key); }))
                    return EEXIST;
                set->elements.push_back(e);  // pipapo lists elements in this order
            } else if (!(*it == e)) {
                return EBUSY;  // same key, other data (nft_add_set_elem())
            }
        }
        return 0;
    }
    int operator()(const nft::OpDeleteElements& op) {
        nft::Set* set = t_ ? find_set(op.set.name) : nullptr;
        if (!set) return ENOENT;
        for (const auto& e : op.set.elements) {
            auto it = std::find_if(set->elements.begin(), set->elements.end(),
                                   [&](const nft::Element& x) { return x.key == e.key; });
            if (it == set->elements.end()) return ENOENT;
            set->elements.erase(it);
        }
        return 0;
    }

    int operator()(const nft::OpFlushSet& op) {
        nft::Set* set = t_ ? find_set(op.name) : nullptr;
        if (!set) return ENOENT;
        set->elements.clear();
        return 0;
    }

private:
    nft::Chain* find_chain(const std::string& name) {
        for (auto& c : t_->chains)
            if (c.name == name) return &c;
        return nullptr;
    }
    nft::Set* find_set(const std::string& name) {
        for (auto& s : t_->sets)
            if (s.name == name) return &s;
        return nullptr;
    }
    int append_rules(nft::Chain& chain, const std::vector<nft::Rule>& rules) {
        for (const auto& rule : rules) {
            for (const auto& s : rule.statements)
                if (int err = check_statement(s)) return err;
            chain.rules.push_back(rule);
        }
        return 0;
    }
    // The kernel's answers to a rule's references: ENOENT for a missing set or chain, EINVAL
    // for a verdict lookup in a plain set (nft_lookup_init()), EOPNOTSUPP for "update" on a
    // set that is not dynamic (nft_dynset_init()).
    int check_statement(const nft::Statement& s) {
        if (auto chain = referenced_chain(s); chain && !find_chain(*chain)) return ENOENT;
        auto name = referenced_set(s);
        if (!name) return 0;
        const nft::Set* set = find_set(*name);
        if (!set) return ENOENT;
        if (wants_verdict(s) && !set->verdict_map) return EINVAL;
        if (std::holds_alternative<nft::UpdateSet>(s) && !set->dynamic()) return EOPNOTSUPP;
        return 0;
    }

    std::optional<nft::Table> t_;
};

}  // namespace

// --- error injection and counters ---

int FakeKernel::begin(Op op) {
    ++calls_[op];
    auto it = failures_.find(op);
    if (it == failures_.end() || it->second.empty()) return 0;
    int err = it->second.front();
    it->second.pop_front();
    return err;
}

Status FakeKernel::answer(int err, const std::string& what) {
    last_errno_ = err;
    if (!err) return Status::ok();
    return Status::fail(err, what + errno_text(err));
}

unsigned FakeKernel::calls(Op op) const {
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
}

unsigned FakeKernel::total_calls() const {
    unsigned n = 0;
    for (const auto& [op, count] : calls_) n += count;
    return n;
}

unsigned FakeKernel::writes() const {
    unsigned n = 0;
    for (Op op : {Op::ReplaceRoute, Op::DeleteRoute, Op::AddRule, Op::DeleteRule, Op::NftApply, Op::SetSrcValidMark,
                  Op::DeleteConntrack})
        n += calls(op);
    return n;
}

// --- state ---

void FakeKernel::add_foreign_route(const Route& route, const std::string& protocol) {
    routes_[slot_of(route)] = {route, protocol};
}

void FakeKernel::add_foreign_rule(const Rule& rule) {
    auto after = std::find_if(rules_.begin(), rules_.end(),
                              [&](const StoredRule& r) { return r.rule.priority > rule.priority; });
    rules_.insert(after, {rule, false});
}

std::vector<Route> FakeKernel::own_routes() const {
    std::vector<Route> out;
    for (const auto& [slot, stored] : routes_)
        if (stored.protocol == kOurProtocol) out.push_back(stored.route);
    return out;
}

std::vector<Rule> FakeKernel::own_rules() const {
    // As the real dump: IPv4's rule list, then IPv6's.
    std::vector<Rule> out;
    for (Family family : kFamilies)
        for (const auto& stored : rules_)
            if (stored.ours && stored.rule.family == family) out.push_back(stored.rule);
    return out;
}

size_t FakeKernel::element_count() const {
    size_t n = 0;
    if (table_)
        for (const auto& set : table_->sets) n += set.elements.size();
    return n;
}

bool FakeKernel::src_valid_mark(int ifindex) const {
    auto it = src_valid_mark_.find(ifindex);
    return it != src_valid_mark_.end() && it->second;
}

unsigned FakeKernel::connections() const {
    return connections(Family::V4) + connections(Family::V6);
}

unsigned FakeKernel::connections(Family family) const {
    unsigned n = 0;
    for (const auto& [key, count] : connections_)
        if (key.first == family) n += count;
    return n;
}

// --- routes and rules ---

Expected<std::vector<Route>> FakeKernel::dump_own_routes() {
    if (Status s = answer(begin(Op::DumpRoutes), "Could not dump routes: "); !s) return s;
    return own_routes();
}

Expected<std::vector<Rule>> FakeKernel::dump_own_rules() {
    if (Status s = answer(begin(Op::DumpRules), "Could not dump rules: "); !s) return s;
    return own_rules();
}

Expected<std::string> FakeKernel::foreign_default_route(Family family, uint32_t table, uint32_t metric) {
    std::string what = "Could not dump " + std::string(family_label(family)) + " routes of table " + table_name(table) + ": ";
    if (Status s = answer(begin(Op::ForeignRoute), what); !s) return s;
    auto it = routes_.find({family, table, metric});
    if (it == routes_.end() || it->second.protocol == kOurProtocol) return std::string();
    return describe_foreign(it->second.route, it->second.protocol);
}

Status FakeKernel::replace_route(const Route& route) {
    int err = begin(Op::ReplaceRoute);
    if (!err && route.nexthops.empty()) err = EINVAL;
    for (const auto& nh : route.nexthops) {
        if (!err && nh.ifindex <= 0) err = ENODEV;
        if (!err && nh.gateway && family_of(*nh.gateway) != route.family) err = EINVAL;
        // fib_check_nh() / fib6_nh_init(): "Nexthop device is not up".
        if (!err && link_down_.count(nh.ifindex) && link_down_.at(nh.ifindex)) err = ENETDOWN;
    }
    if (Status s = answer(err, "Could not replace " + describe(route) + ": "); !s) return s;
    Route stored = route;
    if (stored.nexthops.size() == 1) stored.nexthops[0].weight = 1;  // a lone nexthop has no weight
    routes_[slot_of(route)] = {stored, kOurProtocol};
    return Status::ok();
}

Status FakeKernel::send_delete_route(const Route& route) {
    int err = begin(Op::DeleteRoute);
    auto it = routes_.find(slot_of(route));
    // fib_table_delete(): the protocol and the nexthops must match too.
    bool found = it != routes_.end() && it->second.protocol == kOurProtocol && kernel_equal(it->second.route, route);
    if (!err && !found) err = ESRCH;
    if (Status s = answer(err, "Could not delete " + describe(route) + ": "); !s) return s;
    routes_.erase(it);
    return Status::ok();
}

Status FakeKernel::send_add_rule(const Rule& rule) {
    int err = begin(Op::AddRule);
    auto same = [&](const StoredRule& r) { return r.ours && kernel_equal(r.rule, rule); };
    if (!err && std::any_of(rules_.begin(), rules_.end(), same)) err = EEXIST;  // NLM_F_EXCL
    if (Status s = answer(err, "Could not add " + describe(rule) + ": "); !s) return s;
    auto after = std::find_if(rules_.begin(), rules_.end(),
                              [&](const StoredRule& r) { return r.rule.priority > rule.priority; });
    rules_.insert(after, {rule, true});
    return Status::ok();
}

Status FakeKernel::send_delete_rule(const Rule& rule) {
    int err = begin(Op::DeleteRule);
    auto it = std::find_if(rules_.begin(), rules_.end(),
                           [&](const StoredRule& r) { return r.ours && kernel_equal(r.rule, rule); });
    if (!err && it == rules_.end()) err = ENOENT;
    if (Status s = answer(err, "Could not delete " + describe(rule) + ": "); !s) return s;
    rules_.erase(it);
    return Status::ok();
}

// --- nftables ---

Status FakeKernel::apply(const nft::Plan& plan) {
    int err = begin(Op::NftApply);
    std::string what = "an nftables transaction of " + std::to_string(plan.ops.size()) + " ops";
    if (err) return answer(err, "Could not apply " + what + ": ");
    Transaction tx(table_);
    for (const auto& op : plan.ops)
        if (int refused = std::visit(tx, op)) return answer(refused, "Could not " + nft::describe(op) + ": ");
    table_ = std::move(tx.table());
    nft_ops_ += unsigned(plan.ops.size());
    restart_reply_counts(plan);
    return answer(0, "");
}

bool FakeKernel::add_set_entries(const std::string& set, const std::vector<nft::Element>& entries) {
    if (!table_) return false;
    for (auto& s : table_->sets)
        if (s.name == set) {
            s.elements.insert(s.elements.end(), entries.begin(), entries.end());
            return true;
        }
    return false;
}

Expected<bool> FakeKernel::table_exists() {
    if (Status s = answer(begin(Op::TableExists), "Could not look up table inet wanbalance: "); !s) return s;
    return table_.has_value();
}

// --- sysctl and conntrack ---

Expected<bool> FakeKernel::get_src_valid_mark(int ifindex) {
    int err = begin(Op::GetSrcValidMark);
    if (!err && ifindex <= 0) err = ENODEV;
    std::string what = "Could not read src_valid_mark of ifindex " + std::to_string(ifindex) + ": ";
    if (Status s = answer(err, what); !s) return s;
    return src_valid_mark(ifindex);
}

Status FakeKernel::set_src_valid_mark(int ifindex, bool on) {
    int err = begin(Op::SetSrcValidMark);
    if (!err && ifindex <= 0) err = ENODEV;
    std::string what = "Could not set src_valid_mark on ifindex " + std::to_string(ifindex) + ": ";
    if (Status s = answer(err, what); !s) return s;
    src_valid_mark_[ifindex] = on;
    return Status::ok();
}

Expected<Ipv6Conf> FakeKernel::get_ipv6_conf(int ifindex) {
    int err = begin(Op::GetIpv6Conf);
    if (!err && ifindex <= 0) err = ENODEV;
    std::string what = "Could not read the IPv6 settings of ifindex " + std::to_string(ifindex) + ": ";
    if (Status s = answer(err, what); !s) return s;
    auto it = ipv6_conf_.find(ifindex);
    return it == ipv6_conf_.end() ? Ipv6Conf{} : it->second;
}

// Rules written anew count from 0: the counters of every chain the plan writes rules into.
void FakeKernel::restart_reply_counts(const nft::Plan& plan) {
    auto restart = [&](const std::string& chain) {
        if (!chain.starts_with(kReplyChainPrefix)) return;
        std::string wan = chain.substr(kReplyChainPrefix.size());
        std::erase_if(reply_counts_, [&](const auto& entry) { return entry.first.first == wan; });
    };
    for (const auto& op : plan.ops) {
        if (std::holds_alternative<nft::OpReplaceTable>(op) || std::holds_alternative<nft::OpDeleteTable>(op))
            reply_counts_.clear();
        if (const auto* add = std::get_if<nft::OpAddChain>(&op)) restart(add->chain.name);
        if (const auto* del = std::get_if<nft::OpDeleteChain>(&op)) restart(del->name);
        if (const auto* rules = std::get_if<nft::OpReplaceRules>(&op)) restart(rules->chain);
    }
}

Expected<std::vector<ReplyCount>> FakeKernel::read_reply_counters() {
    if (Status s = answer(begin(Op::ReadReplyCounters), "Could not dump the rules of table inet wanbalance: "); !s)
        return s;
    std::vector<ReplyCount> out;
    for (const auto& chain : table_ ? table_->chains : std::vector<nft::Chain>{}) {
        if (!chain.name.starts_with(kReplyChainPrefix)) continue;
        const std::string wan = chain.name.substr(kReplyChainPrefix.size());
        for (const auto& rule : chain.rules) {
            bool counts = std::any_of(rule.statements.begin(), rule.statements.end(),
                                      [](const nft::Statement& s) { return std::holds_alternative<nft::Counter>(s); });
            for (Family family : kFamilies) {
                if (!counts || rule.comment != reply_counter_comment(family)) continue;
                auto it = reply_counts_.find({wan, family});
                out.push_back(ReplyCount{wan, family, it == reply_counts_.end() ? 0 : it->second});
            }
        }
    }
    // And what a test set without the table holding it (a test of the reader alone).
    for (const auto& entry : reply_counts_) {
        const auto& [wan, family] = entry.first;
        auto held = [&entry](const ReplyCount& c) { return c.wan == entry.first.first && c.family == entry.first.second; };
        if (std::none_of(out.begin(), out.end(), held)) out.push_back(ReplyCount{wan, family, entry.second});
    }
    return out;
}

Expected<unsigned> FakeKernel::delete_by_mark(Family family, uint32_t mark, uint32_t mask) {
    char what[128];
    std::snprintf(what, sizeof what, "Could not delete the %s connections marked 0x%x/0x%x: ",
                  std::string(family_label(family)).c_str(), mark, mask);
    if (Status s = answer(begin(Op::DeleteConntrack), what); !s) return s;
    unsigned deleted = 0;
    std::erase_if(connections_, [&](const auto& entry) {
        if (entry.first.first != family || (entry.first.second & mask) != mark) return false;
        deleted += entry.second;
        return true;
    });
    return deleted;
}

}  // namespace wb::test
