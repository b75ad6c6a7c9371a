#include "farm/common/result.hpp"

#include <google/protobuf/util/json_util.h>

namespace farm {

std::optional<nlohmann::json> last_json_object(std::string_view output, std::string* raw) {
  size_t end = output.size();
  while (end > 0) {
    size_t start = output.rfind('\n', end - 1);
    start = (start == std::string_view::npos) ? 0 : start + 1;
    std::string_view line = output.substr(start, end - start);
    // trim (consoles add \r, spaces)
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    size_t lb = line.find('{');
    if (lb != std::string_view::npos && !line.empty() && line.back() == '}') {
      // a console may prefix the line with noise; try from each '{'
      for (size_t p = lb; p != std::string_view::npos; p = line.find('{', p + 1)) {
        auto j = nlohmann::json::parse(line.substr(p), nullptr, /*allow_exceptions=*/false);
        if (!j.is_discarded() && j.is_object()) {
          if (raw) *raw = std::string(line.substr(p));
          return j;
        }
      }
    }
    if (start == 0) break;
    end = start - 1;
  }
  return std::nullopt;
}

static uint64_t u64(const nlohmann::json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer()) return it->get<int64_t>() < 0 ? 0 : static_cast<uint64_t>(it->get<int64_t>());
  if (it->is_number_float()) return it->get<double>() < 0 ? 0 : static_cast<uint64_t>(it->get<double>());
  return 0;
}

void fill_result_numbers(const nlohmann::json& j, v1::JobResult* r) {
  r->set_calls(u64(j, "calls"));
  r->set_hits(u64(j, "hits"));
  r->set_batches(j.contains("batches") ? u64(j, "batches") : u64(j, "toggles"));
  r->set_syncs(u64(j, "syncs"));
  r->set_unexpected_signals(u64(j, "unexpected_signals"));
  r->set_wrong_results(u64(j, "wrong_results"));
  if (auto it = j.find("verdict"); it != j.end() && it->is_string()) r->set_verdict(it->get<std::string>());
}

void fill_progress_numbers(const nlohmann::json& j, v1::Progress* p) {
  p->set_calls(u64(j, "calls"));
  p->set_hits(u64(j, "hits"));
  p->set_batches(j.contains("batches") ? u64(j, "batches") : u64(j, "toggles"));
  if (auto it = j.find("progress"); it != j.end() && it->is_number()) p->set_fraction(it->get<double>());
}

std::string tail(std::string_view text, size_t max_lines, size_t max_bytes) {
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  size_t pos = text.size();
  size_t lines = 0;
  if (!text.empty() && text.back() == '\n') --pos;
  while (pos > 0) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string_view::npos) break;
    if (++lines >= max_lines) return std::string(text.substr(nl + 1));
    pos = nl;
  }
  return std::string(text);
}

std::string to_json(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = false;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

bool from_json(std::string_view json, google::protobuf::Message* m, std::string* error) {
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(std::string(json), m, o);
  if (!st.ok() && error) *error = std::string(st.message());
  return st.ok();
}

}  // namespace farm
