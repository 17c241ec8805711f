// Encodes the nftables IR (rules/nft.hpp) as netlink message bodies byte for byte like nft 1.0.6
// does for the same text (same expressions, user data, attribute order), so `nft list` prints render().
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "base/status.hpp"
#include "rules/nft.hpp"

namespace wb::nft {

// Transaction-local ids (NFTA_SET_ID) of the sets created earlier in the same batch, by name.
// nft sends them so elements and lookups can find a set that is not committed yet.
using SetIds = std::map<std::string, uint32_t>;

// Each put_* writes the attributes of one message after the header `nlh` (built by the
// caller), in the order nft 1.0.6 writes them, into room the caller reserved.

// `comment` nullptr: a bare "add table" (no flags, no user data), which the kernel treats as a
// no-op for an existing table: it makes a following delete unconditional.
Status put_table(nlmsghdr* nlh, const std::string& name, const std::string* comment);
// `with_hook` false: table and name only (what delete needs).
void put_chain(nlmsghdr* nlh, const std::string& table, const Chain& chain, bool with_hook);
// A set declaration (no elements). `id` 0: none.
void put_set(nlmsghdr* nlh, const std::string& table, const Set& set, uint32_t id);
void put_set_name(nlmsghdr* nlh, const std::string& table, const std::string& name);
// DELSETELEM body without elements: empties the set ("flush set"), in nft's attribute order.
void put_set_flush(nlmsghdr* nlh, const std::string& table, const std::string& name);
// NEWSETELEM/DELSETELEM body: `elements` keys, and their verdicts when `with_data`.
Status put_elements(nlmsghdr* nlh, const std::string& table, const Set& set, std::span<const Element> elements,
                    bool with_data, uint32_t id);
// An empty `rule` (no statements, no comment) names just the chain: DELRULE then flushes it.
Status put_rule(nlmsghdr* nlh, const std::string& table, const std::string& chain, const Rule& rule,
                const SetIds& ids);

// Upper bound of the bytes one element adds inside NFTA_SET_ELEM_LIST_ELEMENTS, to split long
// element lists: that nest's length is 16 bits, so one message holds at most 64 KiB of elements.
size_t element_wire_size(const Set& set, const Element& element, bool with_data);
// Upper bound of a rule's NEWRULE payload (room to reserve: libnftnl writes without checks).
size_t rule_wire_size(const Rule& rule);

}  // namespace wb::nft
