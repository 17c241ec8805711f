// Internal to the config module: how config errors quote what the user wrote and suggest what
// they probably meant ("unknown key \"wieght\" (did you mean \"weight\"?)").
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/json_reader.hpp"

namespace wb::config_detail {

// A string as JSON: "198.51.100.x" with its quotes and escapes.
std::string quote(std::string_view s);

// The input as the user wrote it, one line: "3", 3.0, true, null, [], "an array", "an object".
// Long strings are shortened.
std::string describe(const Json& value);

// `"a", "b" and "c"` — for messages that list the allowed choices.
std::string quote_list(std::span<const std::string_view> words);

// The candidate closest to `word` by edit distance (a swap of neighbours counts as one edit),
// if close enough that it is probably a typo; ignores case.
std::optional<std::string_view> closest_match(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace wb::config_detail
