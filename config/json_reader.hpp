// Internal to the config module: JSON text (with comments) to a document that remembers, for
// every JSON pointer, where it sits in the file, so errors from later passes sort into file order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"

namespace wb::config_detail {

using Json = nlohmann::ordered_json;  // keeps keys in file order

// Document order of a value: SAX events are numbered as they arrive, which is file order.
// `begin` is the value's first event, `end` its last (the closing bracket for containers).
struct Span {
    uint32_t begin = 0;
    uint32_t end = 0;
};

// An error with its place in document order; stable-sorting by `order` gives file order.
struct OrderedError {
    uint32_t order = 0;
    ConfigError error;
};

// Values nested deeper than this are kept only as empty placeholders of their type: nothing in
// the schema is that deep, and it keeps a file of a million '[' from costing quadratic memory.
inline constexpr size_t kMaxKeptDepth = 8;

struct JsonDocument {
    bool syntax_ok = false;
    Json root;
    std::unordered_map<std::string, Span> spans;  // JSON pointer -> order; first occurrence wins
    std::vector<OrderedError> errors;             // the syntax error, or duplicate keys

    // Order of the value at `pointer` (its begin, or its end with at_end). Unknown pointers sort last.
    uint32_t order_of(const std::string& pointer, bool at_end = false) const;
};

// Parses `text`. A syntax error yields exactly one error (empty path, "line L, column C: ...")
// and syntax_ok = false. Duplicate keys are errors at the object's path; the first value is kept.
JsonDocument read_json(std::string_view text);

// "/wans/0" + "name" -> "/wans/0/name", escaping '~' and '/' as RFC 6901 says.
std::string pointer_append(const std::string& pointer, std::string_view key);
std::string pointer_append(const std::string& pointer, size_t index);

}  // namespace wb::config_detail
