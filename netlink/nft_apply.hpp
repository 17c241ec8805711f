// Sends nftables changes to the kernel with libnftnl + libmnl: one Plan = one batch = one
// transaction (all or nothing). Also answers the few questions the daemon asks about its table.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/noncopyable.hpp"
#include "base/status.hpp"
#include "rules/nft_diff.hpp"

namespace wb::nft {

struct ApplyStats {
    unsigned messages = 0;  // netlink messages in the last batch, begin/end markers included
    unsigned bytes = 0;
};

class NftSocket : NonCopyable {
public:
    // Opens a NETLINK_NETFILTER socket in the current network namespace.
    static Expected<std::unique_ptr<NftSocket>> open();
    ~NftSocket();

    // Applies every op in order as ONE transaction. An empty plan sends nothing.
    // On failure nothing changed in the kernel; the Status names the op the kernel refused and
    // its words, e.g. "Could not add chain wan_charter: No such file or directory".
    Status apply(const Plan& plan);

    // Whether `table inet NAME` exists.
    Expected<bool> table_exists(const std::string& name = kTableName);

    // The kernel's generation id (bumps on every committed nftables transaction, ours or not).
    Expected<uint32_t> generation();

    // One dump request of `type` (NFT_MSG_GETRULE …, family inet): `put` writes its filter
    // attributes after the header, `on_reply` sees every answer until NLMSG_DONE. `what`
    // names it in errors: "Could not dump the rules of chain x: …".
    Status dump(uint16_t type, const std::function<void(nlmsghdr*)>& put, const std::string& what,
                const std::function<void(const nlmsghdr*)>& on_reply);

    const ApplyStats& last_stats() const { return stats_; }

    // The socket's netlink port id: the kernel stamps it on the notifications of our changes.
    uint32_t portid() const;

private:
    NftSocket() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    ApplyStats stats_;
};

}  // namespace wb::nft
