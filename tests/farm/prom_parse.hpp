#pragma once
// A Prometheus text-format (0.0.4) parser for the farm tests: checks every
// line by the format's rules (GoogleTest expectations) and returns the
// samples, with the HELP and TYPE of each family.
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace farmtest {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> type, help;
  std::vector<Sample> samples;
};

// Prometheus text format 0.0.4: "# HELP name text", "# TYPE name type", then
// "name{l="v",...} value" lines; label values escape \ " and newline.
inline Exposition parse(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const size_t sp = rest.find(' ');
      EXPECT_NE(sp, std::string::npos) << line;
      const std::string n = rest.substr(0, sp);
      EXPECT_TRUE(std::regex_match(n, name_re)) << line;
      (line[2] == 'H' ? e.help : e.type)[n] = rest.substr(sp + 1);
      continue;
    }
    EXPECT_NE(line[0], '#') << "an unknown comment: " << line;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    EXPECT_TRUE(std::regex_match(s.name, name_re)) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        const std::string k = line.substr(i, eq - i);
        EXPECT_TRUE(std::regex_match(k, std::regex("[a-zA-Z_][a-zA-Z0-9_]*"))) << line;
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string v;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            v += line[j] == 'n' ? '\n' : line[j];
          } else {
            v += line[j];
          }
        }
        s.labels[k] = v;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;
    }
    EXPECT_EQ(line[i], ' ') << line;
    s.value = std::stod(line.substr(i + 1));
    e.samples.push_back(s);
  }
  return e;
}

inline std::vector<Sample> samples_of(const Exposition& e, const std::string& name) {
  std::vector<Sample> out;
  for (const auto& s : e.samples)
    if (s.name == name) out.push_back(s);
  return out;
}

// The value of the one sample `name` with exactly these labels (NaN if none).
inline double sample_value(const Exposition& e, const std::string& name, const std::map<std::string, std::string>& labels = {}) {
  for (const auto& s : e.samples)
    if (s.name == name && s.labels == labels) return s.value;
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace farmtest
