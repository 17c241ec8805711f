#include "netlink/conntrack.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "base/ipv4.hpp"
#include "netlink/answer.hpp"
#include "netlink/ctnetlink_parse.hpp"
#include "netlink/handles.hpp"

namespace wb {

namespace {

constexpr size_t kReceiveBufferBytes = 256 * 1024;  // ctnetlink dumps come in <= 32 KiB datagrams

using EntryHandler = std::function<void(const CtEntry&)>;

struct DumpContext {
    uint8_t family;  // AF_INET or AF_INET6: the dump's
    const EntryHandler* handler;
};

// One conntrack entry of a dump, handed to the handler. Entries of other families than the
// dump's are skipped in case the kernel did not filter them.
int on_entry(const nlmsghdr* nlh, void* data) {
    auto* ctx = static_cast<DumpContext*>(data);
    auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    if (nfg->nfgen_family != ctx->family) return MNL_CB_OK;
    (*ctx->handler)(read_ct_entry(nlh));
    return MNL_CB_OK;
}

}  // namespace

struct Conntrack::Impl {
    MnlSocketPtr sock;
    unsigned portid = 0;
    uint32_t seq = 0;
    std::vector<char> buf = std::vector<char>(kReceiveBufferBytes);

    // A ctnetlink request for one family with an optional (mark, mask) filter.
    nlmsghdr* build(uint16_t type, uint16_t flags, Family family, std::optional<std::pair<uint32_t, uint32_t>> filter) {
        nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
        nlh->nlmsg_type = uint16_t((NFNL_SUBSYS_CTNETLINK << 8) | type);
        nlh->nlmsg_flags = uint16_t(NLM_F_REQUEST | flags);
        nlh->nlmsg_seq = ++seq;
        auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfg->nfgen_family = uint8_t(family_af(family));
        // ctnetlink_del_conntrack() applies the family to a flush only when version != 0
        // (version 0 means "every family", for old conntrack tools): measured on 6.18, a
        // version-0 AF_INET flush by mark deleted the IPv6 entries with that mark too.
        // A dump (ctnetlink_dump_table()) filters by nfgen_family whatever the version.
        nfg->version = type == IPCTNL_MSG_CT_DELETE ? 1 : NFNETLINK_V0;
        nfg->res_id = 0;
        if (filter) {
            mnl_attr_put_u32(nlh, CTA_MARK, htonl(filter->first));
            mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(filter->second));
        }
        return nlh;
    }

    // Sends the request and reads until the kernel's ACK, error or end of dump; 0 or an errno
    // (ETIMEDOUT when the kernel says nothing for kAnswerTimeout).
    int transact(nlmsghdr* nlh, const EntryHandler& handler) {
        auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
        int fd = mnl_socket_get_fd(sock.get());
        discard_pending(fd);
        if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0) return errno;
        uint32_t want = nlh->nlmsg_seq;
        DumpContext ctx{nfg->nfgen_family, &handler};
        for (;;) {
            if (int err = wait_readable(fd, answer_deadline())) return err;
            ssize_t n = mnl_socket_recvfrom(sock.get(), buf.data(), buf.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno;
            }
            int rc = mnl_cb_run(buf.data(), size_t(n), want, portid, on_entry, &ctx);
            if (rc == MNL_CB_ERROR) return errno;
            if (rc == MNL_CB_STOP) return 0;
        }
    }
};

Expected<std::unique_ptr<Conntrack>> Conntrack::open() {
    std::unique_ptr<Conntrack> ct(new Conntrack);
    ct->impl_ = std::make_unique<Impl>();
    Impl& s = *ct->impl_;
    s.sock.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
    if (!s.sock) return Status::fail(errno, "Could not open a ctnetlink socket: " + errno_text(errno));
    if (mnl_socket_bind(s.sock.get(), 0, MNL_SOCKET_AUTOPID) < 0)
        return Status::fail(errno, "Could not bind the ctnetlink socket: " + errno_text(errno));
    s.portid = mnl_socket_get_portid(s.sock.get());
    s.seq = uint32_t(time(nullptr));
    return ct;
}

Conntrack::~Conntrack() = default;

bool ProbeFlows::contains(std::optional<uint16_t> icmp_id, const PacketKey& original) const {
    if (icmp_id && (icmp_ids.count(*icmp_id) || icmp_targets.count(original.dst))) return true;
    return !sockets.empty() && sockets.count({original.proto, original.dst, original.dport});
}

Expected<std::map<uint32_t, unsigned>> Conntrack::count_by_mark(uint32_t mask, const ProbeFlows& probes) {
    auto counts = count(mask, probes, {});
    if (!counts) return counts.error();
    return counts->by_mark;
}

Expected<ConnCounts> Conntrack::count(uint32_t mask, const ProbeFlows& probes,
                                      const ConnClassifier& classify) {
    // No kernel filter says "masked mark != 0": every entry is read once, one family per dump;
    // a WAN's count is its IPv4 and IPv6 connections together.
    ConnCounts counts;
    EntryHandler count = [&](const CtEntry& e) {
        if (probes.contains(e.icmp_id, e.original)) return;
        if (!(e.mark & mask) || e.closed()) return;  // an ended connection carries nothing (a drain counts down)
        ++counts.by_mark[e.mark & mask];
        if (!classify) return;
        if (auto group = classify(e.original)) ++counts.by_group[*group];
    };
    for (Family family : kFamilies) {
        if (int err = impl_->transact(impl_->build(IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, std::nullopt), count))
            return Status::fail(err, "Could not read the " + std::string(family_label(family)) +
                                         " conntrack table: " + errno_text(err));
    }
    return counts;
}

Expected<std::vector<CtEntry>> Conntrack::marked(uint32_t mask, const ProbeFlows& probes) {
    std::vector<CtEntry> out;
    EntryHandler keep = [&](const CtEntry& e) {
        if ((e.mark & mask) && !probes.contains(e.icmp_id, e.original)) out.push_back(e);
    };
    for (Family family : kFamilies) {
        if (int err = impl_->transact(impl_->build(IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, std::nullopt), keep))
            return Status::fail(err, "Could not read the " + std::string(family_label(family)) +
                                         " conntrack table: " + errno_text(err));
    }
    return out;
}

Expected<unsigned> Conntrack::delete_by_mark(Family family, uint32_t mark, uint32_t mask) {
    char what[96];
    std::snprintf(what, sizeof what, "Could not delete the %sconnections marked 0x%x/0x%x: ",
                  family == Family::V6 ? "IPv6 " : "", mark, mask);
    if (mark & ~mask) return 0u;  // no mark can match
    if (mark == 0) return Status::fail(EINVAL, std::string(what) + "mark 0 would match every unmarked connection");

    // Count first over a dump the kernel filters by mark (ctnetlink_alloc_filter()); the flush
    // below reports no number. Connections created in between are deleted but not counted.
    unsigned matching = 0;
    auto filter = std::make_pair(mark, mask);
    EntryHandler count = [&](const CtEntry& e) {
        if ((e.mark & mask) == mark) ++matching;
    };
    if (int err = impl_->transact(impl_->build(IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, filter), count))
        return Status::fail(err, std::string(what) + errno_text(err));
    if (matching == 0) return 0u;

    // A delete without a tuple is a flush; with CTA_MARK/CTA_MARK_MASK and the family it only
    // takes the matching entries of that family (ctnetlink_flush_conntrack(), checked by the tests).
    EntryHandler none = [](const CtEntry&) {};
    if (int err = impl_->transact(impl_->build(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family, filter), none))
        return Status::fail(err, std::string(what) + errno_text(err));
    return matching;
}

}  // namespace wb
