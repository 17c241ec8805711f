#include "netlink/nft_counters.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstring>
#include <optional>
#include <string_view>

#include "netlink/handles.hpp"

namespace wb::nft {
namespace {

// The rule's chain straight from its attributes: rules of other chains are skipped without
// building a libnftnl rule (a table with policy rules holds thousands).
std::string_view chain_of(const nlmsghdr* nlh) {
    const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
         mnl_attr_ok(attr, int(tail - reinterpret_cast<const char*>(attr))); attr = mnl_attr_next(attr)) {
        if (mnl_attr_get_type(attr) == NFTA_RULE_CHAIN && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
            return mnl_attr_get_str(attr);
    }
    return {};
}

int comment_of(const nftnl_udata* attr, void* data) {
    if (nftnl_udata_type(attr) != NFTNL_UDATA_RULE_COMMENT || nftnl_udata_len(attr) == 0) return MNL_CB_OK;
    const auto* text = static_cast<const char*>(nftnl_udata_get(attr));
    *static_cast<std::string*>(data) = std::string(text, strnlen(text, nftnl_udata_len(attr)));
    return MNL_CB_OK;
}

// The first counter expression of the rule.
std::optional<RuleCounter> counter_of(nftnl_rule* rule) {
    std::optional<RuleCounter> out;
    nftnl_expr_foreach(
        rule,
        [](nftnl_expr* e, void* data) {
            auto& found = *static_cast<std::optional<RuleCounter>*>(data);
            if (found || std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") != 0) return MNL_CB_OK;
            found = RuleCounter{"", "", nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS),
                                nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES)};
            return MNL_CB_OK;
        },
        &out);
    if (!out) return out;
    out->chain = nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN);
    uint32_t len = 0;
    if (const void* udata = nftnl_rule_get_data(rule, NFTNL_RULE_USERDATA, &len))
        nftnl_udata_parse(udata, len, comment_of, &out->comment);
    return out;
}

}  // namespace

Expected<std::vector<RuleCounter>> read_rule_counters(NftSocket& sock, const std::string& table,
                                                      const std::string& chain, const std::string& chain_prefix) {
    std::vector<RuleCounter> out;
    int parse_error = 0;
    const std::string what = "dump the rules of " + (chain.empty() ? "table inet " + table : "chain " + chain);
    Status s = sock.dump(
        NFT_MSG_GETRULE,
        [&](nlmsghdr* nlh) {
            mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table.c_str());
            if (!chain.empty()) mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain.c_str());
        },
        what,
        [&](const nlmsghdr* nlh) {
            if (!chain_of(nlh).starts_with(chain_prefix)) return;
            RulePtr rule(nftnl_rule_alloc());
            if (!rule || nftnl_rule_nlmsg_parse(nlh, rule.get()) < 0) {
                parse_error = rule ? EPROTO : ENOMEM;
                return;
            }
            if (auto counter = counter_of(rule.get())) out.push_back(std::move(*counter));
        });
    if (!s) return s;
    if (parse_error) return Status::fail(parse_error, "Could not read a rule from the kernel's answer to " + what);
    return out;
}

}  // namespace wb::nft
