#include "netlink/nft_monitor.hpp"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <vector>

#include "base/ipv4.hpp"
#include "netlink/handles.hpp"
#include "netlink/nfnl_listener.hpp"

namespace wb::nft {
namespace {

// A flushed ruleset or the daemon's own full table replacement sends one notification per
// object (1021 map elements make ~100 KiB); the kernel coalesces them into skbs of up to
// NLMSG_GOODSIZE since 5.10. Leave room for several such bursts before ENOBUFS.
constexpr int kReceiveBufferBytes = 8 << 20;
// One read takes a whole skb; bigger than any coalesced batch the kernel sends.
constexpr size_t kReadBufferBytes = 256 * 1024;
// Every table-scoped message (NEWTABLE … DELFLOWTABLE) carries the table name as attribute 1
// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, …_ELEM_LIST_TABLE, …).
constexpr uint16_t kTableAttr = 1;
constexpr uint16_t kMaxAttr = 31;

using Attrs = std::array<const nlattr*, kMaxAttr + 1>;

int keep_attr(const nlattr* attr, void* data) {
    uint16_t type = mnl_attr_get_type(attr);
    if (type <= kMaxAttr) (*static_cast<Attrs*>(data))[type] = attr;
    return MNL_CB_OK;
}

std::string str_attr(const Attrs& tb, uint16_t type) {
    const nlattr* a = tb[type];
    if (!a || mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0) return "";
    return mnl_attr_get_str(a);
}

// "delete rule from chain prerouting (handle 7)" for the log; the kernel's message types.
std::string describe_message(uint16_t type, const Attrs& tb) {
    auto named = [&](const char* verb, const char* what, uint16_t name_attr) {
        std::string name = str_attr(tb, name_attr);
        return std::string(verb) + " " + what + (name.empty() ? "" : " " + name);
    };
    switch (type) {
        case NFT_MSG_NEWTABLE: return "add table";
        case NFT_MSG_DELTABLE: return "delete table";
        case NFT_MSG_NEWCHAIN: return named("add", "chain", NFTA_CHAIN_NAME);
        case NFT_MSG_DELCHAIN: return named("delete", "chain", NFTA_CHAIN_NAME);
        case NFT_MSG_NEWRULE:
        case NFT_MSG_DELRULE: {
            std::string text = type == NFT_MSG_NEWRULE ? "add rule to chain " : "delete rule from chain ";
            text += str_attr(tb, NFTA_RULE_CHAIN);
            if (const nlattr* h = tb[NFTA_RULE_HANDLE]; h && mnl_attr_validate(h, MNL_TYPE_U64) == 0)
                text += " (handle " + std::to_string(be64toh(mnl_attr_get_u64(h))) + ")";
            return text;
        }
        case NFT_MSG_NEWSET: return named("add", "set", NFTA_SET_NAME);
        case NFT_MSG_DELSET: return named("delete", "set", NFTA_SET_NAME);
        case NFT_MSG_NEWSETELEM: return named("add elements to", "set", NFTA_SET_ELEM_LIST_SET);
        case NFT_MSG_DELSETELEM: return named("delete elements from", "set", NFTA_SET_ELEM_LIST_SET);
        case NFT_MSG_NEWOBJ: return named("add", "object", NFTA_OBJ_NAME);
        case NFT_MSG_DELOBJ: return named("delete", "object", NFTA_OBJ_NAME);
        case NFT_MSG_NEWFLOWTABLE: return named("add", "flowtable", NFTA_FLOWTABLE_NAME);
        case NFT_MSG_DELFLOWTABLE: return named("delete", "flowtable", NFTA_FLOWTABLE_NAME);
        default: return "change (message type " + std::to_string(type) + ")";
    }
}

}  // namespace

std::string ForeignChange::describe(const std::string& table) const {
    std::string who = by.empty() ? "another program" : by;
    if (messages == 0) return "nftables notifications were lost; table inet " + table + " may have been changed";
    std::string text = who + " changed table inet " + table + ": " + first;
    if (messages > 1) text += " and " + std::to_string(messages - 1) + " more changes";
    if (lost) text += " (and notifications were lost)";
    return text;
}

struct NftMonitor::Impl {
    MnlSocketPtr nl;
    uint32_t own_portid = 0;
    std::string table;
    std::vector<char> rx = std::vector<char>(kReadBufferBytes);

    // One notification: counts it into `change` when it is about our table and not our own.
    // The kernel stamps every notification of a transaction with the committing socket's port id
    // (nfnl_msg_put(skb, ctx->portid, …) in nf_tables_api.c), and ends it with NFT_MSG_NEWGEN,
    // which names the committing process.
    void apply(const nlmsghdr* nlh, ForeignChange& change, std::vector<uint32_t>& foreign_ports,
               int& first_weight) {
        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES) return;
        if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return;
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
        if (nlh->nlmsg_pid == own_portid) return;
        Attrs tb{};
        if (mnl_attr_parse(nlh, sizeof(nfgenmsg), keep_attr, &tb) < 0) return;
        if (type == NFT_MSG_NEWGEN) {
            bool ours = false;
            for (uint32_t p : foreign_ports) ours |= p == nlh->nlmsg_pid;
            if (!ours || !change.by.empty()) return;
            std::string name = str_attr(tb, NFTA_GEN_PROC_NAME);
            const nlattr* pid = tb[NFTA_GEN_PROC_PID];
            if (name.empty()) return;  // old kernels do not say
            change.by = name;
            if (pid && mnl_attr_validate(pid, MNL_TYPE_U32) == 0)
                change.by += " (pid " + std::to_string(ntohl(mnl_attr_get_u32(pid))) + ")";
            return;
        }
        if (type == NFT_MSG_TRACE) return;
        const auto* gen = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
        if (gen->nfgen_family != NFPROTO_INET || str_attr(tb, kTableAttr) != table) return;
        // The log names the biggest loss: a flushed table sends its rules' deletions first.
        int weight = type == NFT_MSG_DELTABLE ? 2 : type == NFT_MSG_DELCHAIN || type == NFT_MSG_DELSET ? 1 : 0;
        if (change.messages++ == 0 || weight > first_weight) {
            change.first = describe_message(type, tb);
            first_weight = weight;
        }
        if (foreign_ports.empty() || foreign_ports.back() != nlh->nlmsg_pid)
            foreign_ports.push_back(nlh->nlmsg_pid);
    }
};

Expected<std::unique_ptr<NftMonitor>> NftMonitor::open(uint32_t own_portid, const std::string& table) {
    auto nl = open_nfnl_listener("nftables notifications", {NFNLGRP_NFTABLES}, kReceiveBufferBytes);
    if (!nl) return nl.error();
    std::unique_ptr<NftMonitor> monitor(new NftMonitor());
    monitor->impl_ = std::make_unique<Impl>();
    monitor->impl_->nl = std::move(*nl);
    monitor->impl_->own_portid = own_portid;
    monitor->impl_->table = table;
    return monitor;
}

NftMonitor::~NftMonitor() = default;

int NftMonitor::fd() const { return mnl_socket_get_fd(impl_->nl.get()); }

Expected<ForeignChange> NftMonitor::process() {
    Impl& im = *impl_;
    ForeignChange change;
    std::vector<uint32_t> foreign_ports;
    int first_weight = 0;
    NfnlHandlers handlers{[&](const nlmsghdr* nlh) {
                              ++messages_read_;
                              im.apply(nlh, change, foreign_ports, first_weight);
                          },
                          [&] { change.lost = true; }};
    Status read = drain_nfnl(mnl_socket_get_fd(im.nl.get()), im.rx, SIZE_MAX, handlers, "nftables notifications");
    if (!read) return read;
    return change;
}

}  // namespace wb::nft
