// JSON text to a document with the file position of every value: a SAX pass over nlohmann's
// parser that builds the tree, numbers values in file order, catches duplicate keys and turns
// the parser's syntax errors into "line L, column C: unexpected '}'" for humans.
#include "config/json_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <unordered_set>

namespace wb::config_detail {

std::string pointer_append(const std::string& pointer, std::string_view key) {
    std::string out = pointer;
    out += '/';
    for (char c : key) {
        auto u = static_cast<unsigned char>(c);
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else if (u < 0x20 || u == 0x7f) {
            // Not RFC 6901, but paths are printed: a raw control character would break the line.
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(u));
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

std::string pointer_append(const std::string& pointer, size_t index) { return pointer + '/' + std::to_string(index); }

uint32_t JsonDocument::order_of(const std::string& pointer, bool at_end) const {
    auto it = spans.find(pointer);
    if (it == spans.end()) return UINT32_MAX;
    return at_end ? it->second.end : it->second.begin;
}

namespace {

std::string quote(std::string_view s) {
    return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// ---- Syntax errors: where exactly, and in words a person editing the file understands ----

// 1-based line, and column counted in characters (UTF-8 continuation bytes do not count).
std::string line_column(std::string_view text, size_t offset) {
    offset = std::min(offset, text.size());
    size_t line = 1 + size_t(std::count(text.begin(), text.begin() + long(offset), '\n'));
    size_t line_start = 0;
    if (offset > 0) {
        size_t newline = text.rfind('\n', offset - 1);
        if (newline != std::string_view::npos) line_start = newline + 1;
    }
    size_t column = 1;
    for (size_t i = line_start; i < offset; ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) ++column;
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

bool is_word_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '+';
}

// Start of the string token whose closing quote (or bad character) is before `end`: the nearest
// quote not escaped by an odd run of backslashes. Strings cannot span lines, so this is short.
size_t string_start(std::string_view text, size_t end) {
    for (size_t i = std::min(end, text.size()); i-- > 0;) {
        if (text[i] != '"') continue;
        size_t backslashes = 0;
        while (backslashes < i && text[i - 1 - backslashes] == '\\') ++backslashes;
        if (backslashes % 2 == 0) return i;
    }
    return 0;
}

// The token that ends just before `end` (the parser reports the position after the token).
size_t token_start(std::string_view text, size_t end) {
    if (end == 0) return 0;
    char last = text[end - 1];
    if (last == '"') return string_start(text, end - 1);
    size_t start = end - 1;
    while (start > 0 && is_word_char(last) && is_word_char(text[start - 1])) --start;
    return start;
}

// A token as it appears in the file, short enough for one line: '}', "name", 3, true.
std::string show_token(std::string_view token) {
    constexpr size_t kMaxShown = 40;
    bool cut_short = token.size() > kMaxShown;
    if (cut_short) {
        size_t cut = kMaxShown;
        while (cut > 0 && (static_cast<unsigned char>(token[cut]) & 0xc0) == 0x80) --cut;  // whole UTF-8 chars
        token = token.substr(0, cut);
    }
    std::string shown;
    for (char c : token) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {  // JSON strings may hold a raw DEL; terminals should not get it
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(u));
            shown += buf;
        } else {
            shown += c;
        }
    }
    if (cut_short) return shown + "...";
    if (!token.empty() && token.front() == '"') return shown;
    return "'" + shown + "'";
}

// One character starting at `offset`: a whole UTF-8 sequence when it is one, else one byte.
std::string_view char_at(std::string_view text, size_t offset) {
    unsigned char lead = static_cast<unsigned char>(text[offset]);
    size_t len = lead < 0xc0 ? 1 : lead >= 0xf8 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (offset + len > text.size()) return text.substr(offset, 1);
    for (size_t i = 1; i < len; ++i) {
        if ((static_cast<unsigned char>(text[offset + i]) & 0xc0) != 0x80) return text.substr(offset, 1);
    }
    return text.substr(offset, len);
}

// nlohmann reports an unterminated /* comment at the end of the file; people want its start.
size_t unterminated_comment_start(std::string_view text) {
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '"') {
            for (++i; i < text.size() && text[i] != '"'; ++i) {
                if (text[i] == '\\') ++i;
            }
        } else if (text.substr(i, 2) == "//") {
            i = std::min(text.find('\n', i), text.size());
        } else if (text.substr(i, 2) == "/*") {
            size_t close = text.find("*/", i + 2);
            if (close == std::string_view::npos) return i;
            i = close + 1;
        }
    }
    return text.size();
}

struct SyntaxProblem {
    size_t offset = 0;
    std::string text;
};

// What the parser wanted instead, said the way a person would: "; expected ',' or '}'".
std::string expected_hint(std::string_view expected) {
    if (expected == "':'") return "; expected ':'";
    if (expected == "'}'") return "; expected ',' or '}'";
    if (expected == "']'") return "; expected ',' or ']'";
    if (expected == "string literal") return "; expected a key in double quotes";
    if (expected == "'[', '{', or a literal") return "; expected a value";
    return "";
}

SyntaxProblem describe_lexer_error(std::string_view text, size_t bad, std::string_view what,
                                   std::string_view expected) {
    auto has = [&](std::string_view s) { return what.find(s) != std::string_view::npos; };
    bool at_eof = bad >= text.size();
    if (has("missing closing quote")) return {string_start(text, bad), "unterminated string"};
    if (has("control character")) {
        char c = at_eof ? '\0' : text[bad];
        if (c == '\n' || c == '\r') return {bad, "line break inside a string (write \\n)"};
        if (c == '\t') return {bad, "tab inside a string (write \\t)"};
        char buf[48];
        std::snprintf(buf, sizeof buf, "control character U+%04X inside a string", unsigned(c));
        return {bad, buf};
    }
    if (has("forbidden character after backslash")) {
        char c = at_eof ? ' ' : text[bad];
        if (std::isgraph(static_cast<unsigned char>(c))) {
            return {bad - 1, "invalid escape '\\" + std::string(1, c) + "' in a string"};
        }
        return {bad - 1, "invalid escape in a string"};
    }
    if (has("'\\u' must be followed")) {
        return {text.rfind('\\', bad), "invalid \\u escape in a string (needs 4 hex digits)"};
    }
    if (has("surrogate")) return {text.rfind('\\', bad), "invalid \\u surrogate pair in a string"};
    if (has("ill-formed UTF-8")) return {bad, "invalid UTF-8 in a string"};
    if (has("invalid number")) {
        size_t start = bad;
        while (start > 0 && is_word_char(text[start - 1])) --start;
        return {start, "invalid number " + show_token(text.substr(start, bad - start))};
    }
    if (has("missing closing '*/'")) return {unterminated_comment_start(text), "unterminated /* comment"};
    if (has("expecting '/' or '*' after '/'")) {
        return {bad - 1, "unexpected '/' (comments start with // or /*)"};
    }
    if (has("invalid BOM")) return {0, "invalid byte order mark"};
    // "invalid literal": a bare word, a single quote, a stray character.
    size_t start = bad;
    while (start > 0 && std::isalpha(static_cast<unsigned char>(text[start - 1]))) --start;
    size_t end = start;
    while (end < text.size() && is_word_char(text[end])) ++end;
    if (end > start) {
        return {start, "unexpected " + show_token(text.substr(start, end - start)) + expected_hint(expected)};
    }
    if (at_eof) return {text.size(), "unexpected end of file"};
    std::string_view c = char_at(text, bad);
    if (c == "'") return {bad, "unexpected \"'\" (JSON strings need double quotes)"};
    if (c == "\u201c" || c == "\u201d") {
        return {bad, "unexpected '" + std::string(c) + "' (JSON strings need plain double quotes)"};
    }
    if (c.size() == 1 && (static_cast<unsigned char>(c[0]) < 0x20 || static_cast<unsigned char>(c[0]) >= 0x7f)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "unexpected byte 0x%02x", unsigned(static_cast<unsigned char>(c[0])));
        return {bad, buf};
    }
    return {bad, "unexpected '" + std::string(c) + "'"};
}

// `chars_read` is nlohmann's position: just past the offending token or character.
SyntaxProblem describe_syntax_error(std::string_view text, size_t chars_read, std::string_view what) {
    size_t context_at = what.find("while parsing ");
    size_t dash = what.find(" - ", context_at);
    std::string_view context, detail = what;
    if (context_at != std::string_view::npos && dash != std::string_view::npos) {
        context = what.substr(context_at + 14, dash - context_at - 14);
        detail = what.substr(dash + 3);
    }
    // The parser appends "; expected X" (after "last read: '...'" for lexer errors).
    std::string_view expected;
    size_t last_read = detail.find("; last read: '");
    size_t expected_at = detail.rfind("; expected ");
    if (expected_at != std::string_view::npos && (last_read == std::string_view::npos || expected_at > last_read)) {
        expected = detail.substr(expected_at + 11);
    }
    size_t end = std::min(chars_read, text.size() + 1);
    if (!detail.starts_with("unexpected ")) {
        return describe_lexer_error(text, end == 0 ? 0 : end - 1, detail.substr(0, last_read), expected);
    }
    if (detail.starts_with("unexpected end of input")) {
        // nlohmann stops at a NUL byte as if the file ended there.
        if (end >= 1 && end - 1 < text.size()) return {end - 1, "unexpected NUL byte"};
        return {text.size(), "unexpected end of file" + expected_hint(expected)};
    }
    end = std::min(end, text.size());
    size_t start = token_start(text, end);
    std::string_view token = text.substr(start, end - start);
    std::string message = "unexpected " + show_token(token);
    size_t before = start;
    while (before > 0 && std::isspace(static_cast<unsigned char>(text[before - 1]))) --before;
    bool after_comma = before > 0 && text[before - 1] == ',';
    if (expected == "end of input") {
        message += " after the end of the top-level value";
    } else if ((token == "}" && context == "object key") || (token == "]" && after_comma)) {
        message += " (trailing comma?)";
    } else {
        message += expected_hint(expected);
    }
    return {start, message};
}

// ---- The tree builder ----

class DocumentBuilder final : public nlohmann::json_sax<Json> {
public:
    DocumentBuilder(JsonDocument& doc, std::string_view text) : doc_(doc), text_(text) {}

    bool null() override { return scalar(Json(nullptr)); }
    bool boolean(bool v) override { return scalar(Json(v)); }
    bool number_integer(number_integer_t v) override { return scalar(Json(v)); }
    bool number_unsigned(number_unsigned_t v) override { return scalar(Json(v)); }
    bool number_float(number_float_t v, const string_t&) override { return scalar(Json(v)); }
    bool string(string_t& v) override { return scalar(Json(std::move(v))); }
    bool binary(binary_t&) override { return scalar(Json(nullptr)); }  // not produced by JSON text

    bool start_object(std::size_t) override { return open(Json::object()); }
    bool start_array(std::size_t) override { return open(Json::array()); }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }

    bool key(string_t& key) override {
        uint32_t order = next_order_++;
        Frame& top = stack_.back();
        if (top.discard) return true;
        top.key = key;
        top.duplicate = !top.keys.insert(key).second;
        if (top.duplicate) {
            doc_.errors.push_back({order, {top.pointer, "duplicate key " + quote(key)}});
        }
        return true;
    }

    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
        SyntaxProblem problem = describe_syntax_error(text_, position, ex.what());
        doc_.errors.clear();
        doc_.errors.push_back({0, {"", line_column(text_, problem.offset) + ": " + problem.text}});
        return false;
    }

private:
    struct Frame {
        Json* container = nullptr;  // null when discarding
        bool discard = false;       // children are dropped (duplicate key, or too deep)
        std::string pointer;
        size_t next_index = 0;
        std::string key;
        bool duplicate = false;
        // ordered_json looks keys up by linear search: 100k keys in one object would take
        // minutes to check and insert one by one, so duplicates are found here and values
        // appended straight to the object's underlying vector.
        std::unordered_set<std::string> keys;
    };

    // Where the next value goes, or null when it is dropped; sets `pointer` for kept values.
    Json* slot(std::string& pointer) {
        if (stack_.empty()) return &doc_.root;
        Frame& top = stack_.back();
        if (top.discard) return nullptr;
        if (top.container->is_array()) {
            pointer = pointer_append(top.pointer, top.next_index++);
            top.container->push_back(Json());
            return &top.container->back();
        }
        if (top.duplicate) return nullptr;
        pointer = pointer_append(top.pointer, top.key);
        auto& members = top.container->get_ref<Json::object_t&>();
        members.emplace_back(top.key, Json());
        return &members.back().second;
    }

    bool scalar(Json value) {
        uint32_t order = next_order_++;
        std::string pointer;
        if (Json* target = slot(pointer)) {
            *target = std::move(value);
            doc_.spans.emplace(pointer, Span{order, order});
        }
        return true;
    }

    bool open(Json empty) {
        uint32_t order = next_order_++;
        std::string pointer;
        Json* target = slot(pointer);
        if (target) {
            *target = std::move(empty);
            doc_.spans.emplace(pointer, Span{order, order});
        }
        bool too_deep = stack_.size() >= kMaxKeptDepth;
        stack_.push_back({target, target == nullptr || too_deep, std::move(pointer)});
        return true;
    }

    bool close() {
        uint32_t order = next_order_++;
        Frame& top = stack_.back();
        if (top.container) {
            auto it = doc_.spans.find(top.pointer);
            if (it != doc_.spans.end()) it->second.end = order;
        }
        stack_.pop_back();
        return true;
    }

    JsonDocument& doc_;
    std::string_view text_;
    std::vector<Frame> stack_;
    uint32_t next_order_ = 0;
};

}  // namespace

JsonDocument read_json(std::string_view text) {
    JsonDocument doc;
    DocumentBuilder builder(doc, text);
    doc.syntax_ok = Json::sax_parse(text, &builder, nlohmann::detail::input_format_t::json,
                                    /*strict=*/true, /*ignore_comments=*/true);
    // nlohmann treats a NUL byte as the end of input, so "{...}\0junk" parses: refuse it.
    if (size_t nul = text.find('\0'); doc.syntax_ok && nul != std::string_view::npos) {
        doc.syntax_ok = false;
        doc.errors.clear();
        doc.errors.push_back({0, {"", line_column(text, nul) + ": unexpected NUL byte"}});
    }
    if (!doc.syntax_ok) {
        doc.root = nullptr;
        doc.spans.clear();
    }
    return doc;
}

}  // namespace wb::config_detail
