#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace farm {

int64_t now_ms();                       // wall clock, ms since the epoch
std::string random_hex(size_t bytes);   // from /dev/urandom
std::string read_file(const std::string& path);  // throws std::runtime_error
void write_file_atomic(const std::string& path, std::string_view data);
std::string trim(std::string_view s);
std::string kernel_release();           // uname -r
std::string machine_arch();             // uname -m
std::string host_name();
// Start-up shared by farmd and farm-agent: log level and pattern, and with
// `exit_with_parent` a SIGTERM when the parent dies. False if the parent is
// already gone (the caller should exit).
bool init_service_process(const std::string& log_level, bool exit_with_parent);

}  // namespace farm
