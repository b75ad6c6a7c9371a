#pragma once
// Protobuf messages as the store keeps them (serialized blobs).
#include <string>

namespace farmd {

template <class M>
std::string ser(const M& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

}  // namespace farmd
