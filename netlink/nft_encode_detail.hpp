// Pieces the nftables encoders share (netlink/nft_encode*.cpp); not an interface.
#pragma once

#include <linux/netfilter/nf_tables.h>
#include <net/if.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/status.hpp"

namespace wb::nft::detail {

constexpr size_t kMarkSize = sizeof(uint32_t);
constexpr size_t kMaxKeySize = NFT_REG32_COUNT * sizeof(uint32_t);  // NFT_DATA_VALUE_MAXLEN

// Allocation failure is as fatal here as a failed `new`.
template <class T>
T* must(T* p) {
    if (!p) {
        std::fputs("wanbalance: out of memory building nftables objects\n", stderr);
        std::abort();
    }
    return p;
}

inline size_t align4(size_t n) { return (n + 3) & ~size_t(3); }

struct KeyBytes {
    std::array<uint8_t, kMaxKeySize> data{};
    uint32_t len = 0;
};

// Interface names travel as IFNAMSIZ bytes, NUL padded; marks and buckets as host-order u32.
inline Expected<KeyBytes> ifname_bytes(const std::string& name, const std::string& where) {
    if (name.empty() || name.size() >= IFNAMSIZ)
        return Status::fail(EINVAL, where + ": \"" + name + "\" is not a valid interface name");
    KeyBytes k;
    std::memcpy(k.data.data(), name.data(), name.size());
    k.len = IFNAMSIZ;
    return k;
}

}  // namespace wb::nft::detail
