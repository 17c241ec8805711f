// Watches nftables change notifications (NFNLGRP_NFTABLES) and reports changes to wanbalance's
// own table that another program made: `nft flush ruleset`, a deleted rule, chain or map element.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/noncopyable.hpp"
#include "base/status.hpp"
#include "rules/nft.hpp"

namespace wb::nft {

// What one process() call saw of other programs' changes to the watched table.
struct ForeignChange {
    unsigned messages = 0;       // notifications about the table not sent from the daemon's socket
    bool lost = false;           // notifications were lost (ENOBUFS): anything may have happened
    std::string first;           // the first such change, e.g. "delete chain wan_charter"
    std::string by;              // who committed it, e.g. "nft (pid 1234)", when the kernel said
    bool any() const { return messages > 0 || lost; }
    // One line for the log: "nft (pid 1234) changed table inet wanbalance: delete chain wan_charter
    // and 3 more changes".
    std::string describe(const std::string& table = kTableName) const;
};

class NftMonitor : NonCopyable {
public:
    // Subscribes to nftables notifications in the current network namespace. Changes sent from
    // the netlink socket with port id `own_portid` (the daemon's NftSocket) are its own and are
    // not reported.
    static Expected<std::unique_ptr<NftMonitor>> open(uint32_t own_portid, const std::string& table = kTableName);
    ~NftMonitor();

    int fd() const;
    // Reads every pending notification without blocking. A burst (a flushed ruleset sends one
    // message per object) comes back as one ForeignChange.
    Expected<ForeignChange> process();

    // Every notification read so far, own ones included (for tests and benchmarks).
    unsigned long messages_read() const { return messages_read_; }

private:
    NftMonitor() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    unsigned long messages_read_ = 0;
};

}  // namespace wb::nft
