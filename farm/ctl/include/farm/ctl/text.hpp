#pragma once
// farmctl's terminal output helpers: every string a server (or a workload,
// through the server) chose is passed through term_safe() before it reaches
// a terminal, numbers are shortened by one human() rule, and tables are
// aligned by display width.
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace farm::ctl {

// Makes `s` safe to print on a terminal: C0 controls (ESC, CR, BEL, BS, ...),
// DEL and C1 controls (U+0080-U+009F, also as raw 8-bit bytes), Unicode
// bidirectional overrides/isolates and line/paragraph separators become
// visible escapes (\x1b, \r, \t, \u009b, \u202e); bytes that are not valid
// UTF-8 become \xNN. With `multiline`, '\n' and '\t' are kept (workload
// output) and a "\r\n" line ending becomes "\n"; otherwise they are escaped
// too (one-line fields: names, messages, ids). Printable text, including
// valid non-ASCII UTF-8, is unchanged.
std::string term_safe(std::string_view s, bool multiline = false);

// JSON text for a terminal, still the same JSON: a JSON library leaves DEL,
// C1 controls, bidirectional overrides and U+2028/U+2029 raw inside strings;
// they become \u escapes (which decode to the same characters). Everything
// else, including other non-ASCII text, is unchanged.
std::string json_term_safe(std::string_view json_text);

// Counts at most 3 significant digits: exact below 10,000, then truncated
// (never rounded up) with k/M/G/T/P/E: 9999, 12.3k, 100k, 1.23M, 13.8M, 5.95G.
std::string human(uint64_t n);

// Columns a UTF-8 string takes (code points; a term_safe() string has no controls).
size_t display_width(std::string_view s);
// `s` cut to at most `width` columns, ending in "..." when cut.
std::string ellipsize(std::string_view s, size_t width);

// Rows as aligned columns, two spaces apart; the last column is never padded.
// Column indices in `right` are right-aligned. Cells must already be term_safe.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::vector<size_t>& right = {});

// XML 1.0 text/attribute escaping (JUnit): & < > " ' escaped, CR as &#13;; C0
// controls other than tab/newline (not representable in XML 1.0) become '?',
// DEL and C1 controls character references (&#x9b;), bytes that are not valid
// UTF-8 '?'. The result is safe on a terminal too (`report --junit -`).
std::string xml_escape(std::string_view s);

}  // namespace farm::ctl
