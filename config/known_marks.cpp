// The marks other software puts on packets and connections. wanbalance owns only the bits of
// mark_mask, but its fwmark rules and its by_mark map match `mark & mask == value`: a WAN whose
// value equals another program's mark under the mask would route that program's traffic (and
// flush it on failover). Allocation skips these values while it can; explicit marks may not use
// them (config/resolve.cpp).
#include "base/format.hpp"
#include "config/validate.hpp"
#include "config/wording.hpp"

namespace wb::config_detail {

namespace {

constexpr KnownMark kKnownMarks[] = {
    // wg-quick(8) marks the tunnel's own UDP packets with its routing table's number: 51820
    // unless that table is taken (`wg set IFACE fwmark $table`, wg-quick/linux.bash).
    {0xca6c, "WireGuard", "wg-quick", "packets"},
    // Tailscale on Linux, mask 0xff0000: tsconst.LinuxSubnetRouteMarkNum and LinuxBypassMarkNum
    // (util/linuxfw/linuxfw.go).
    {0x40000, "Tailscale", "subnet routes", "packets"},
    {0x80000, "Tailscale", "bypass", "packets"},
    // kube-proxy: KUBE-MARK-MASQ (--iptables-masquerade-bit=14) and KUBE-MARK-DROP (bit 15).
    {0x4000, "kube-proxy", "masquerade", "packets"},
    {0x8000, "kube-proxy", "drop", "packets"},
    // Mullvad VPN (talpid-core): TUNNEL_FW_MARK ("mole") on traffic that bypasses the tunnel,
    // and split_tunnel::MARK, the conntrack mark of excluded applications' connections.
    {0x6d6f6c65, "Mullvad", "tunnel bypass", "packets"},
    {0xf41, "Mullvad", "split tunnelling", "connections"},
};

}  // namespace

std::span<const KnownMark> known_marks() { return kKnownMarks; }

const KnownMark* known_mark_matching(uint32_t value, uint32_t mask) {
    if (value == 0) return nullptr;  // 0 is "unmarked", never a WAN's value
    for (const KnownMark& known : kKnownMarks) {
        if ((known.mark & mask) == value) return &known;
    }
    return nullptr;
}

std::string known_mark_phrase(const KnownMark& known, uint32_t mask) {
    return "the mark " + std::string(known.software) + " (" + std::string(known.use) + ", " + hex(known.mark) +
           ") puts on its " + std::string(known.marked) + " under mark_mask " + quote(hex(mask));
}

}  // namespace wb::config_detail
