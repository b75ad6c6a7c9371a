#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace farm {

int64_t now_ms();                       // wall clock, ms since the epoch
std::string random_hex(size_t bytes);   // from /dev/urandom
// Throws std::runtime_error("cannot read PATH: <strerror>"); a directory is an error.
std::string read_file(const std::string& path);
void write_file_atomic(const std::string& path, std::string_view data);
std::string trim(std::string_view s);
std::string kernel_release();           // uname -r
std::string machine_arch();             // uname -m
std::string host_name();
// `s` safe to echo in a message or a log line: at most `max` characters
// (then an ellipsis), control characters as \xNN. Never echo unbounded input.
std::string clip(std::string_view s, size_t max = 64);
// trace|debug|info|warn|warning|error|err|critical|off
bool valid_log_level(std::string_view level);
// Start-up shared by farmd and farm-agent: log level and pattern, and with
// `exit_with_parent` a SIGTERM when the parent dies. False if the parent is
// already gone or the log level is unknown (printed on stderr); the caller
// should exit with status 1.
bool init_service_process(const std::string& log_level, bool exit_with_parent);

}  // namespace farm
