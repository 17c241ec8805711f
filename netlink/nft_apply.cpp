#include "netlink/nft_apply.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <set>
#include <vector>

#include "base/ipv4.hpp"
#include "netlink/answer.hpp"
#include "netlink/handles.hpp"
#include "netlink/nft_encode.hpp"

namespace wb::nft {
namespace {

// NFTA_SET_ELEM_LIST_ELEMENTS is one attribute, and an attribute's length is 16 bits: longer
// element lists are split over several NEWSETELEM messages of the same transaction.
constexpr size_t kElementBytesPerMessage = 60000;
constexpr size_t kSmallMessageRoom = 4096;
constexpr size_t kReceiveBufferSize = 65536;
// Kernel memory per queued ack (skb truesize), generously: every message of a batch is
// acknowledged and all acks are queued before we read the first one.
constexpr int kAckRoom = 2048;

std::string table_ref(const std::string& table) { return "table inet " + table; }
const char* set_kind(const Set& set) { return set.verdict_map ? "map" : "set"; }

// One transaction being built: every message back to back in one buffer, because nfnetlink
// only treats what arrives in a single sendmsg() as one batch. For each message it keeps the
// sequence number and what it does, to name the one the kernel refuses.
class Batch {
public:
    struct Message {
        uint32_t seq;
        std::string what;  // "add chain wan_charter to table inet wanbalance"
    };

    explicit Batch(uint32_t first_seq) : begin_seq_(first_seq), seq_(first_seq) {
        nftnl_batch_begin(reserve(kSmallMessageRoom), seq_++);
        commit_marker();
    }

    // Room for one message; libnftnl writes without bounds checks, so `room` is an upper bound.
    nlmsghdr* start(uint16_t type, uint16_t flags, size_t room) {
        room_ = room;
        return nftnl_nlmsg_build_hdr(reserve(room), type, NFPROTO_INET, flags | NLM_F_ACK, seq_);
    }
    void finish(const nlmsghdr* nlh, std::string what) {
        check_room(nlh);
        messages_.push_back({seq_++, std::move(what)});
        len_ += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    void close() {
        nftnl_batch_end(reserve(kSmallMessageRoom), seq_++);
        commit_marker();
    }

    const char* data() const { return buf_.data(); }
    size_t size() const { return len_; }
    unsigned message_count() const { return unsigned(messages_.size()) + 2; }  // + begin, end
    uint32_t begin_seq() const { return begin_seq_; }
    uint32_t next_seq() const { return seq_; }
    const std::vector<Message>& messages() const { return messages_; }
    const Message* find(uint32_t seq) const {
        if (seq <= begin_seq_ || seq - begin_seq_ > messages_.size()) return nullptr;
        return &messages_[seq - begin_seq_ - 1];
    }

private:
    char* reserve(size_t room) {
        if (buf_.size() < len_ + room) buf_.resize(std::max(buf_.size() * 2, len_ + room));
        return buf_.data() + len_;
    }
    void commit_marker() {
        room_ = kSmallMessageRoom;
        check_room(reinterpret_cast<const nlmsghdr*>(buf_.data() + len_));
        len_ += NLMSG_ALIGN(reinterpret_cast<const nlmsghdr*>(buf_.data() + len_)->nlmsg_len);
    }
    // Memory past the reservation may already be overwritten: nothing sane is left to do.
    void check_room(const nlmsghdr* nlh) const {
        if (nlh->nlmsg_len > room_) {
            std::fprintf(stderr, "wanbalance: nftables message of %u bytes overran its %zu reserved\n",
                         nlh->nlmsg_len, room_);
            std::abort();
        }
    }

    std::vector<char> buf_;
    size_t len_ = 0;
    size_t room_ = 0;
    uint32_t begin_seq_;
    uint32_t seq_;
    std::vector<Message> messages_;
};

// Turns each Op into its messages (nft_diff.hpp gives the semantics).
class PlanEncoder {
public:
    explicit PlanEncoder(Batch& batch) : batch_(batch) {}

    Status operator()(const OpReplaceTable& op) {
        // "add table" first makes the delete unconditional (a no-op add for an existing
        // table); the new table then appears in the same transaction: no moment without it.
        const Table& t = op.table;
        add_table(t.name, nullptr);
        delete_table(t.name);
        ids_.clear();
        if (Status s = add_table(t.name, &t.comment); !s) return s;
        for (const Set& set : t.sets) add_set(t.name, set);
        // Chains before elements (verdict maps goto them), sets before rules (lookups).
        for (const Chain& chain : t.chains) add_chain(t.name, chain);
        for (const Set& set : t.sets)
            if (Status s = elements(t.name, set, NFT_MSG_NEWSETELEM); !s) return s;
        for (const Chain& chain : t.chains)
            for (const Rule& rule : chain.rules)
                if (Status s = add_rule(t.name, chain.name, rule); !s) return s;
        return Status::ok();
    }
    Status operator()(const OpDeleteTable& op) {
        add_table(op.name, nullptr);
        delete_table(op.name);
        ids_.clear();
        return Status::ok();
    }
    Status operator()(const OpAddChain& op) {
        add_chain(kTableName, op.chain);
        for (const Rule& rule : op.chain.rules)
            if (Status s = add_rule(kTableName, op.chain.name, rule); !s) return s;
        return Status::ok();
    }
    Status operator()(const OpDeleteChain& op) {
        flush_chain(kTableName, op.name);
        nlmsghdr* nlh = batch_.start(NFT_MSG_DELCHAIN, 0, kSmallMessageRoom);
        put_chain(nlh, kTableName, Chain{op.name, std::nullopt, {}}, false);
        batch_.finish(nlh, "delete chain " + op.name + " from " + table_ref(kTableName));
        return Status::ok();
    }
    Status operator()(const OpReplaceRules& op) {
        flush_chain(kTableName, op.chain);
        for (const Rule& rule : op.rules)
            if (Status s = add_rule(kTableName, op.chain, rule); !s) return s;
        return Status::ok();
    }
    Status operator()(const OpAddSet& op) {
        add_set(kTableName, op.set);
        return elements(kTableName, op.set, NFT_MSG_NEWSETELEM);
    }
    Status operator()(const OpDeleteSet& op) {
        nlmsghdr* nlh = batch_.start(NFT_MSG_DELSET, 0, kSmallMessageRoom);
        put_set_name(nlh, kTableName, op.name);
        batch_.finish(nlh, "delete set " + op.name + " from " + table_ref(kTableName));
        ids_.erase(op.name);
        return Status::ok();
    }
    Status operator()(const OpAddElements& op) { return elements(kTableName, op.set, NFT_MSG_NEWSETELEM); }
    Status operator()(const OpDeleteElements& op) { return elements(kTableName, op.set, NFT_MSG_DELSETELEM); }
    Status operator()(const OpFlushSet& op) {
        nlmsghdr* nlh = batch_.start(NFT_MSG_DELSETELEM, 0, kSmallMessageRoom);
        put_set_flush(nlh, kTableName, op.name);
        batch_.finish(nlh, "flush set " + op.name + " in " + table_ref(kTableName));
        return Status::ok();
    }

private:
    Status add_table(const std::string& name, const std::string* comment) {
        nlmsghdr* nlh = batch_.start(NFT_MSG_NEWTABLE, NLM_F_CREATE, kSmallMessageRoom);
        if (Status s = put_table(nlh, name, comment); !s)
            return Status::fail(s.err, table_ref(name) + ": " + s.message);
        batch_.finish(nlh, "add " + table_ref(name));
        return Status::ok();
    }
    void delete_table(const std::string& name) {
        nlmsghdr* nlh = batch_.start(NFT_MSG_DELTABLE, 0, kSmallMessageRoom);
        put_table(nlh, name, nullptr);
        batch_.finish(nlh, "delete " + table_ref(name));
    }
    void add_set(const std::string& table, const Set& set) {
        uint32_t id = next_set_id_++;
        nlmsghdr* nlh = batch_.start(NFT_MSG_NEWSET, NLM_F_CREATE, kSmallMessageRoom);
        put_set(nlh, table, set, id);
        batch_.finish(nlh, std::string("add ") + set_kind(set) + " " + set.name + " to " + table_ref(table));
        ids_[set.name] = id;
    }
    void add_chain(const std::string& table, const Chain& chain) {
        nlmsghdr* nlh = batch_.start(NFT_MSG_NEWCHAIN, NLM_F_CREATE, kSmallMessageRoom);
        put_chain(nlh, table, chain, true);
        batch_.finish(nlh, "add chain " + chain.name + " to " + table_ref(table));
    }
    // DELRULE naming only the chain deletes every rule in it.
    void flush_chain(const std::string& table, const std::string& chain) {
        nlmsghdr* nlh = batch_.start(NFT_MSG_DELRULE, 0, kSmallMessageRoom);
        put_rule(nlh, table, chain, Rule{}, ids_);
        batch_.finish(nlh, "flush chain " + chain + " in " + table_ref(table));
    }
    Status add_rule(const std::string& table, const std::string& chain, const Rule& rule) {
        nlmsghdr* nlh = batch_.start(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rule_wire_size(rule));
        if (Status s = put_rule(nlh, table, chain, rule, ids_); !s)
            return Status::fail(s.err, "chain " + chain + ": " + s.message);
        batch_.finish(nlh, "add rule `" + render(rule) + "` to chain " + chain + " in " + table_ref(table));
        return Status::ok();
    }
    Status elements(const std::string& table, const Set& set, uint16_t type) {
        const bool add = type == NFT_MSG_NEWSETELEM;
        const auto& all = set.elements;
        uint32_t id = 0;
        if (auto it = ids_.find(set.name); it != ids_.end()) id = it->second;
        size_t first = 0;
        while (first < all.size()) {
            size_t last = first, bytes = 0;
            while (last < all.size() &&
                   (last == first || bytes + element_wire_size(set, all[last], add) <= kElementBytesPerMessage))
                bytes += element_wire_size(set, all[last++], add);
            std::span<const Element> chunk(all.data() + first, last - first);
            nlmsghdr* nlh = batch_.start(type, add ? NLM_F_CREATE : 0, bytes + kSmallMessageRoom);
            if (Status s = put_elements(nlh, table, set, chunk, add, id); !s) return s;
            batch_.finish(nlh, elements_text(table, set, chunk, add));
            first = last;
        }
        return Status::ok();
    }
    static std::string elements_text(const std::string& table, const Set& set, std::span<const Element> chunk,
                                     bool add) {
        std::string what = add ? "add " : "delete ";
        if (chunk.size() == 1) {
            what += "element " + render_key(set, chunk[0].key);
            if (add && set.verdict_map) what += (chunk[0].jump ? " : jump " : " : goto ") + chunk[0].goto_chain;
        } else {
            what += std::to_string(chunk.size()) + " elements";
        }
        return what + (add ? " to " : " from ") + set_kind(set) + " " + set.name + " in " + table_ref(table);
    }

    Batch& batch_;
    SetIds ids_;
    uint32_t next_set_id_ = 1;
};

// The kernel's words for one refused message, with its extended-ack text when it sent one.
std::string ack_text(const nlmsghdr* nlh, int err) {
    std::string text = errno_text(err);
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return text;
    const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    size_t offset = sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += e->msg.nlmsg_len - sizeof(nlmsghdr);
    const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
         mnl_attr_ok(attr, int(tail - reinterpret_cast<const char*>(attr))); attr = mnl_attr_next(attr)) {
        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
            text += std::string(" (") + mnl_attr_get_str(attr) + ")";
    }
    return text;
}

}  // namespace

struct NftSocket::Impl {
    MnlSocketPtr nl;
    uint32_t seq = 0;
    std::vector<char> rx = std::vector<char>(kReceiveBufferSize);

    // Grows a socket buffer to at least `bytes`; FORCE (root) goes past net.core.*mem_max.
    void grow_buffer(int opt, int force_opt, size_t bytes) {
        int fd = mnl_socket_get_fd(nl.get());
        int current = 0;
        socklen_t len = sizeof current;
        if (getsockopt(fd, SOL_SOCKET, opt, &current, &len) == 0 && size_t(current) >= bytes) return;
        int want = int(std::min<size_t>(bytes, 1u << 30));
        if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof want) != 0)
            setsockopt(fd, SOL_SOCKET, opt, &want, sizeof want);
    }

    // Answers left over from an earlier call (acks that follow a refused batch) are dropped,
    // so they cannot fill the receive queue.
    void drain() { discard_pending(mnl_socket_get_fd(nl.get())); }

    // Reads answers; `handle` sees every message and returns false when it has what it waited for.
    Status receive(const std::function<bool(const nlmsghdr*)>& handle, const std::string& what) {
        int fd = mnl_socket_get_fd(nl.get());
        for (;;) {
            int err = wait_readable(fd, answer_deadline());
            if (err == ETIMEDOUT) return Status::fail(ETIMEDOUT, "No answer from the kernel to " + what);
            ssize_t n = err ? -1 : mnl_socket_recvfrom(nl.get(), rx.data(), rx.size());
            if (n < 0) {
                if (!err) err = errno;
                if (err == EINTR) continue;
                return Status::fail(err, "Could not read the kernel's answer to " + what + ": " + errno_text(err));
            }
            const nlmsghdr* nlh = reinterpret_cast<const nlmsghdr*>(rx.data());
            int len = int(n);
            for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
                if (!handle(nlh)) return Status::ok();
        }
    }

    // One request, its replies to `on_reply`, then the kernel's ack.
    Status request(nlmsghdr* nlh, const std::string& what, const std::function<void(const nlmsghdr*)>& on_reply) {
        nlh->nlmsg_flags |= NLM_F_ACK;
        drain();
        if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0) {
            int err = errno;
            return Status::fail(err, "Could not send " + what + ": " + errno_text(err));
        }
        int err = 0;
        std::string text;
        Status read = receive(
            [&](const nlmsghdr* m) {
                if (m->nlmsg_seq != nlh->nlmsg_seq) return true;  // a stale answer
                if (m->nlmsg_type == NLMSG_ERROR) {
                    err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
                    if (err) text = ack_text(m, err);
                    return false;
                }
                if (m->nlmsg_type == NLMSG_DONE) return false;
                on_reply(m);
                return true;
            },
            what);
        if (!read) return read;
        if (err) return Status::fail(err, "Could not " + what + ": " + text);
        return Status::ok();
    }
};

Expected<std::unique_ptr<NftSocket>> NftSocket::open() {
    MnlSocketPtr nl(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
    if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        int err = errno;
        return Status::fail(err, "Could not open a netfilter netlink socket: " + errno_text(err));
    }
    // Acks carry only the refused message's header (not its possibly 60 KiB body), plus the
    // kernel's extended-ack text when there is one.
    int on = 1;
    mnl_socket_setsockopt(nl.get(), NETLINK_CAP_ACK, &on, sizeof on);
    mnl_socket_setsockopt(nl.get(), NETLINK_EXT_ACK, &on, sizeof on);
    std::unique_ptr<NftSocket> sock(new NftSocket());
    sock->impl_ = std::make_unique<Impl>();
    sock->impl_->seq = uint32_t(std::time(nullptr));
    sock->impl_->nl = std::move(nl);
    return sock;
}

NftSocket::~NftSocket() = default;

uint32_t NftSocket::portid() const { return mnl_socket_get_portid(impl_->nl.get()); }

Status NftSocket::apply(const Plan& plan) {
    stats_ = {};
    if (plan.empty()) return Status::ok();
    Impl& im = *impl_;
    Batch batch(im.seq);
    PlanEncoder encoder(batch);
    for (const Op& op : plan.ops)
        if (Status s = std::visit(encoder, op); !s)
            return Status::fail(s.err, "Could not build nftables transaction: " + s.message);
    batch.close();
    im.seq = batch.next_seq();
    stats_.messages = batch.message_count();
    stats_.bytes = unsigned(batch.size());

    // The kernel refuses a sendmsg() larger than the socket's send buffer (EMSGSIZE).
    im.grow_buffer(SO_SNDBUF, SO_SNDBUFFORCE, batch.size() + 65536);
    im.grow_buffer(SO_RCVBUF, SO_RCVBUFFORCE, size_t(batch.message_count()) * kAckRoom + 65536);
    im.drain();
    const std::string what = "an nftables transaction of " + std::to_string(stats_.messages) + " messages";
    if (mnl_socket_sendto(im.nl.get(), batch.data(), batch.size()) < 0) {
        int err = errno;
        return Status::fail(err, "Could not send " + what + " (" + std::to_string(batch.size()) +
                                     " bytes): " + errno_text(err));
    }

    // nfnetlink answers every message (we asked with NLM_F_ACK), all before sendmsg() returns;
    // a refused message aborts the whole transaction but the kernel still answers the rest, so
    // the first refusal is the cause. A batch refused as a whole (no CAP_NET_ADMIN, a failed
    // commit) is answered once, on the begin marker's sequence number.
    std::set<uint32_t> waiting;
    for (const auto& m : batch.messages()) waiting.insert(m.seq);
    const Batch::Message* refused = nullptr;
    std::string refused_text;
    int refused_err = 0, batch_err = 0;
    std::string batch_text;
    Status read = im.receive(
        [&](const nlmsghdr* nlh) {
            if (nlh->nlmsg_type != NLMSG_ERROR) return true;
            int err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
            if (nlh->nlmsg_seq == batch.begin_seq()) {
                batch_err = err;
                batch_text = ack_text(nlh, err);
                return false;  // everything else was answered before or is never coming
            }
            const Batch::Message* m = batch.find(nlh->nlmsg_seq);
            if (!m || !waiting.erase(m->seq)) return true;  // stale, from an earlier call
            if (err && (!refused || m->seq < refused->seq)) {
                refused = m;
                refused_err = err;
                refused_text = ack_text(nlh, err);
            }
            return !waiting.empty();
        },
        what);
    if (refused) return Status::fail(refused_err, "Could not " + refused->what + ": " + refused_text);
    if (batch_err) return Status::fail(batch_err, "Could not apply " + what + ": " + batch_text);
    if (read.err == ENOBUFS)  // acks were lost: the commit may or may not have happened
        return Status::fail(ENOBUFS, read.message + " (whether it was applied is unknown)");
    return read;
}

Expected<bool> NftSocket::table_exists(const std::string& name) {
    Impl& im = *impl_;
    std::vector<char> buf(kSmallMessageRoom);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETTABLE, NFPROTO_INET, 0, im.seq++);
    put_table(nlh, name, nullptr);
    Status s = im.request(nlh, "look up " + table_ref(name), [](const nlmsghdr*) {});
    if (s.err == ENOENT) return false;
    if (!s) return s;
    return true;
}

Status NftSocket::dump(uint16_t type, const std::function<void(nlmsghdr*)>& put, const std::string& what,
                       const std::function<void(const nlmsghdr*)>& on_reply) {
    Impl& im = *impl_;
    std::vector<char> buf(kSmallMessageRoom);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, NFPROTO_INET, NLM_F_DUMP, im.seq++);
    put(nlh);
    return im.request(nlh, what, on_reply);
}

Expected<uint32_t> NftSocket::generation() {
    Impl& im = *impl_;
    std::vector<char> buf(kSmallMessageRoom);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETGEN, AF_UNSPEC, 0, im.seq++);
    std::optional<uint32_t> id;
    Status s = im.request(nlh, "read the nftables generation", [&](const nlmsghdr* m) {
        GenPtr gen(nftnl_gen_alloc());
        if (gen && nftnl_gen_nlmsg_parse(m, gen.get()) == 0 && nftnl_gen_is_set(gen.get(), NFTNL_GEN_ID))
            id = nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
    });
    if (!s) return s;
    if (!id) return Status::fail(EPROTO, "Could not read the nftables generation: no id in the kernel's answer");
    return *id;
}

}  // namespace wb::nft
