#include "farm/ctl/text.hpp"

#include <algorithm>
#include <cstdio>

namespace farm::ctl {

namespace {

// Decodes one UTF-8 sequence at s[i]. Returns its length (1-4) and sets *cp,
// or 0 if the bytes there are not valid UTF-8 (overlong forms, surrogates and
// code points above U+10FFFF are invalid).
size_t decode(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) len = 2, v = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) len = 3, v = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) len = 4, v = c & 0x07, min = 0x10000;
  else return 0;
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

void hex_byte(std::string& o, unsigned char c) {
  char b[8];
  std::snprintf(b, sizeof b, "\\x%02x", c);
  o += b;
}

// Code points that change how a terminal shows what follows (besides C0/C1).
bool format_control(uint32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) ||  // LRE RLE PDF LRO RLO
         (cp >= 0x2066 && cp <= 0x2069) ||  // LRI RLI FSI PDI
         cp == 0x200E || cp == 0x200F ||    // LRM RLM
         cp == 0x2028 || cp == 0x2029 ||    // line / paragraph separator
         cp == 0x061C || cp == 0xFEFF;      // ALM, BOM / zero-width no-break space
}

}  // namespace

// "\\uXXXX" for a code point a terminal would act on (C1 controls, bidi and
// other format controls): visible in text, and the same character in JSON.
static void u_escape(std::string& o, uint32_t cp) {
  char b[12];
  std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(cp));
  o += b;
}

std::string term_safe(std::string_view s, bool multiline) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t len = decode(s, i, &cp);
    if (len == 0) {  // not UTF-8: a raw 0x9b is CSI on an 8-bit terminal
      hex_byte(o, static_cast<unsigned char>(s[i]));
      ++i;
      continue;
    }
    if (cp < 0x20 || cp == 0x7F) {
      if (multiline && (cp == '\n' || cp == '\t')) o += static_cast<char>(cp);
      else if (multiline && cp == '\r' && i + 1 < s.size() && s[i + 1] == '\n') { /* CRLF -> LF */ }
      else if (cp == '\n') o += "\\n";
      else if (cp == '\r') o += "\\r";
      else if (cp == '\t') o += "\\t";
      else hex_byte(o, static_cast<unsigned char>(cp));
    } else if ((cp >= 0x80 && cp <= 0x9F) || format_control(cp)) {
      u_escape(o, cp);
    } else {
      o.append(s.data() + i, len);
    }
    i += len;
  }
  return o;
}

std::string json_term_safe(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t len = decode(s, i, &cp);
    if (len == 0) {  // (JSON libraries never emit invalid UTF-8)
      o += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || format_control(cp)) {
      u_escape(o, cp);
    } else {
      o.append(s.data() + i, len);
    }
    i += len;
  }
  return o;
}

std::string human(uint64_t n) {
  if (n < 10'000) return std::to_string(n);
  static const char units[] = "kMGTPE";
  uint64_t scale = 1000;
  int u = 0;
  while (u < 5 && n / scale >= 1000) scale *= 1000, ++u;
  uint64_t whole = n / scale;
  // 3 significant digits, truncated: 12.3k, 123k, 1.23M.
  uint64_t frac_digits = whole >= 100 ? 0 : whole >= 10 ? 1 : 2;
  uint64_t div = frac_digits == 0 ? scale : frac_digits == 1 ? scale / 10 : scale / 100;
  uint64_t frac = (n / div) % (frac_digits == 1 ? 10 : 100);
  std::string r = std::to_string(whole);
  if (frac_digits && frac) {
    std::string f = std::to_string(frac);
    if (frac_digits == 2 && frac < 10) f = "0" + f;
    while (!f.empty() && f.back() == '0') f.pop_back();
    r += "." + f;
  }
  return r + units[u];
}

size_t display_width(std::string_view s) {
  size_t w = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++w;
  return w;
}

std::string ellipsize(std::string_view s, size_t width) {
  if (display_width(s) <= width) return std::string(s);
  size_t keep = width > 3 ? width - 3 : 0, cols = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (cols == keep) break;
      ++cols;
    }
  }
  return std::string(s.substr(0, i)) + std::string("...").substr(0, std::min<size_t>(3, width));
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::vector<size_t>& right) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], display_width(r[i]));
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      bool last = i + 1 == r.size();
      std::string pad(w[i] - display_width(r[i]), ' ');
      bool ra = std::find(right.begin(), right.end(), i) != right.end();
      line += ra ? pad + r[i] : r[i] + (last ? "" : pad);
      if (!last) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
}

std::string xml_escape(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t len = decode(s, i, &cp);
    if (len == 0) {
      r += '?';
      ++i;
      continue;
    }
    switch (cp) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      case '\'': r += "&apos;"; break;
      case '\t': case '\n': r += static_cast<char>(cp); break;
      case '\r': r += "&#13;"; break;  // kept by XML parsers (a raw CR is normalised away), inert on a terminal
      default:
        if (cp < 0x20 || cp == 0xFFFE || cp == 0xFFFF) r += '?';  // not representable in XML 1.0
        else if (cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || format_control(cp)) {
          char b[16];
          std::snprintf(b, sizeof b, "&#x%x;", static_cast<unsigned>(cp));
          r += b;
        } else {
          r.append(s.data() + i, len);
        }
    }
    i += len;
  }
  return r;
}

}  // namespace farm::ctl
