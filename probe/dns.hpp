// DNS queries as bytes for the dns probe: building one question (RFC 1035 §4.1) and telling a
// response to it apart from anything else arriving on the socket. Pure: no sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/ip.hpp"

namespace wb::dns {

inline constexpr size_t kHeaderBytes = 12;

enum class QueryType : uint16_t { A = 1, Aaaa = 28 };

// The type the dns probe asks for: A from an IPv4 server, AAAA from an IPv6 one. Any answer
// counts (even NXDOMAIN or "no such record"); the type only keeps the question natural for the
// path being probed.
QueryType query_type_for(Family server_family);

// Why `name` cannot be asked for, or nullopt (the config's rule, config/config.hpp).
std::optional<std::string> name_problem(std::string_view name);

// A standard query: `id`, RD set (a resolver then answers from its cache, or recurses), one
// question for `name` of `type`, class IN. Nullopt when name_problem() has an objection.
std::optional<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, QueryType type);

// The id of a DNS response (QR set), whatever its rcode; nullopt for a query or anything shorter
// than a header.
std::optional<uint16_t> response_id(std::span<const uint8_t> message);

}  // namespace wb::dns
