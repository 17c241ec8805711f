// Owning pointers (base/handle.hpp) to the libmnl and libnftnl objects netlink/ creates: one
// home for which free function goes with which type.
#pragma once

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "base/handle.hpp"

namespace wb {

using MnlSocketPtr = Handle<mnl_socket, mnl_socket_close>;

namespace nft {

using GenPtr = Handle<nftnl_gen, nftnl_gen_free>;
using TablePtr = Handle<nftnl_table, nftnl_table_free>;
using ChainPtr = Handle<nftnl_chain, nftnl_chain_free>;
using SetPtr = Handle<nftnl_set, nftnl_set_free>;
using RulePtr = Handle<nftnl_rule, nftnl_rule_free>;
using ExprPtr = Handle<nftnl_expr, nftnl_expr_free>;
using ElemPtr = Handle<nftnl_set_elem, nftnl_set_elem_free>;
using UdataPtr = Handle<nftnl_udata_buf, nftnl_udata_buf_free>;

}  // namespace nft
}  // namespace wb
