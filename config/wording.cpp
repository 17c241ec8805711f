// Quoting and did-you-mean for config errors.
#include "config/wording.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace wb::config_detail {

std::string quote(std::string_view s) {
    std::string out = Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
    // JSON leaves DEL unescaped; a terminal should not get it raw.
    for (size_t at = out.find('\x7f'); at != std::string::npos; at = out.find('\x7f', at))
        out.replace(at, 1, "\\u007f");
    return out;
}

std::string describe(const Json& value) {
    constexpr size_t kMaxStringBytes = 60;
    switch (value.type()) {
    case Json::value_t::array:
        return value.empty() ? "[]" : "an array";
    case Json::value_t::object:
        return value.empty() ? "{}" : "an object";
    case Json::value_t::string: {
        const std::string& s = value.get_ref<const std::string&>();
        if (s.size() <= kMaxStringBytes) return quote(s);
        size_t cut = kMaxStringBytes;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;  // whole UTF-8 chars
        std::string shown = quote(s.substr(0, cut));
        shown.insert(shown.size() - 1, "...");
        return shown;
    }
    default:
        return value.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
}

std::string quote_list(std::span<const std::string_view> words) {
    std::string out;
    for (size_t i = 0; i < words.size(); ++i) {
        if (i > 0) out += i + 1 == words.size() ? " and " : ", ";
        out += quote(words[i]);
    }
    return out;
}

namespace {

// Optimal string alignment distance: Levenshtein plus transposition of adjacent characters,
// because "wieght" for "weight" is one slip of the fingers, not two.
size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::optional<std::string_view> closest_match(std::string_view word, std::span<const std::string_view> candidates) {
    constexpr size_t kMaxCompared = 64;  // nobody's typo of a 20-letter key is 64 letters long
    if (word.empty() || word.size() > kMaxCompared) return std::nullopt;
    std::string lower = lowercase(word);
    std::optional<std::string_view> best;
    size_t best_distance = SIZE_MAX;
    for (std::string_view candidate : candidates) {
        size_t allowed = candidate.size() <= 4 ? 1 : candidate.size() <= 8 ? 2 : 3;
        size_t distance = edit_distance(lower, candidate);
        if (distance <= allowed && distance < word.size() && distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best;
}

}  // namespace wb::config_detail
