#pragma once
// Does a job carry every tag of a ListJobs / GetReport filter?
#include "farm/v1/farm.pb.h"

namespace farmd {

inline bool tags_match(const ::farm::v1::JobSpec& spec, const google::protobuf::Map<std::string, std::string>& want) {
  for (const auto& [k, v] : want) {
    auto it = spec.tags().find(k);
    if (it == spec.tags().end() || it->second != v) return false;
  }
  return true;
}

}  // namespace farmd
