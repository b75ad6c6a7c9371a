#include "audit.hpp"

#include <spdlog/spdlog.h>

#include "farm/common/channel.hpp"
#include "farm/common/util.hpp"

namespace farmd::audit {

void done(const Caller& who, std::string_view call, std::string_view what) {
  spdlog::info("farmd audit: {}: {}: {}", who.describe(), call, what);
}

void refused(const Caller& who, std::string_view call, const grpc::Status& s) {
  spdlog::warn("farmd audit: {}: {} refused: {}: {}", who.describe(), call, farm::status_code_name(s.error_code()),
               farm::clip(s.error_message(), 300));
}

}  // namespace farmd::audit
