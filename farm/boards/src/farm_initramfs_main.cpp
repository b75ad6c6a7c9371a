// farm-initramfs: writes a virtual board's initramfs (newc cpio) holding the
// board init and one job (the board-init protocol, docs/boards.md).
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "farm/boards/initramfs.hpp"

namespace {

constexpr const char* kUsage = R"(usage: farm-initramfs -o OUT.cpio --init HOST_INIT [options] [--argv ARG]... [-- ARG...]
Writes an uncompressed newc initramfs for a farm virtual board: /init (the
board init), the job's files and /job/argv, /job/env, /job/timeout. Guest
paths are absolute paths in the guest ("/job/bin/x"). No root needed.
  -o, --output FILE          the archive to write (required)
  --init HOST_FILE           the board init (/init, mode 0755; required)
  --file GUEST=HOST_FILE     add a host file (mode: the host file's), e.g.
                             --file /job/bin/patch-stress=build/.../patch-stress
  --data GUEST=TEXT          add a file holding TEXT (mode 0644)
  --dir GUEST                add a directory (0755)
  --symlink GUEST=TARGET     add a symbolic link
  --argv ARG                 append ARG to the job's argv (/job/argv); argv[0]
                             is the program's guest path (or a name in /job/bin)
  -- ARG...                  append every remaining ARG to the job's argv
  --env NAME=VALUE           add to the job's environment (/job/env)
  --timeout SECONDS          the job's timeout (/job/timeout), whole seconds
  --no-job                   write no /job/argv (init then reports an error)
Always present: /dev with /dev/console (c 5,1), /proc, /sys, /tmp, /job/bin,
/bin. Without --argv, -- or --no-job it is an error.
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "farm-initramfs: " << msg << "\n" << kUsage;
  std::exit(2);
}

// "/job/bin/x" -> "job/bin/x"; a guest path must be absolute.
std::string guest(std::string_view opt, std::string_view path) {
  if (path.empty() || path.front() != '/')
    usage_error(std::string(opt) + ": the guest path must be absolute (\"/job/bin/x\"): \"" +
                std::string(path) + "\"");
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return std::string(path);
}

std::pair<std::string, std::string> split_eq(std::string_view opt, std::string_view arg) {
  auto eq = arg.find('=');
  if (eq == std::string_view::npos || eq == 0)
    usage_error(std::string(opt) + " wants GUEST=VALUE, got \"" + std::string(arg) + "\"");
  return {std::string(arg.substr(0, eq)), std::string(arg.substr(eq + 1))};
}

}  // namespace

int main(int argc, char** argv) {
  std::string output, init;
  std::vector<std::string> job_argv, job_env;
  std::string timeout;
  bool no_job = false, have_argv = false;
  farm::boards::Initramfs fs;
  struct Pending {
    enum { file, data, dir, symlink } kind;
    std::string guest, value;
  };
  std::vector<Pending> pending;

  for (int i = 1; i < argc; i++) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view opt) -> std::string {
      if (i + 1 >= argc) usage_error(std::string(opt) + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "-o" || a == "--output") {
      output = value(a);
    } else if (a == "--init") {
      init = value(a);
    } else if (a == "--file") {
      auto [g, h] = split_eq(a, value(a));
      pending.push_back({Pending::file, guest(a, g), h});
    } else if (a == "--data") {
      auto [g, t] = split_eq(a, value(a));
      pending.push_back({Pending::data, guest(a, g), t});
    } else if (a == "--dir") {
      pending.push_back({Pending::dir, guest(a, value(a)), {}});
    } else if (a == "--symlink") {
      auto [g, t] = split_eq(a, value(a));
      pending.push_back({Pending::symlink, guest(a, g), t});
    } else if (a == "--argv") {
      job_argv.push_back(value(a));
      have_argv = true;
    } else if (a == "--env") {
      std::string e = value(a);
      if (e.find('=') == std::string::npos || e.front() == '=')
        usage_error("--env wants NAME=VALUE, got \"" + e + "\"");
      job_env.push_back(e);
    } else if (a == "--timeout") {
      timeout = value(a);
      char* end = nullptr;
      errno = 0;
      long t = std::strtol(timeout.c_str(), &end, 10);
      if (timeout.empty() || errno || *end || t < 0)
        usage_error("--timeout wants whole seconds, got \"" + timeout + "\"");
    } else if (a == "--no-job") {
      no_job = true;
    } else if (a == "--") {
      for (++i; i < argc; i++) job_argv.emplace_back(argv[i]);
      have_argv = true;
    } else {
      usage_error("unknown argument \"" + std::string(a) + "\"");
    }
  }
  if (output.empty()) usage_error("-o OUT.cpio is required");
  if (init.empty()) usage_error("--init HOST_INIT is required");
  if (no_job && have_argv) usage_error("--no-job and --argv/-- exclude each other");
  if (!no_job && job_argv.empty()) usage_error("no job: give --argv ARG... or -- ARG... (or --no-job)");

  try {
    for (const char* d : {"dev", "proc", "sys", "job", "job/bin", "bin"}) fs.add_dir(d, 0755);
    fs.add_dir("tmp", 01777);
    fs.add_char_device("dev/console", 5, 1, 0600);
    fs.add_file_from("init", init, 0755);
    for (const Pending& p : pending) {
      switch (p.kind) {
        case Pending::file: fs.add_file_from(p.guest, p.value); break;
        case Pending::data: fs.add_file(p.guest, p.value); break;
        case Pending::dir:
          if (!fs.contains(p.guest)) fs.add_dir(p.guest);
          break;
        case Pending::symlink: fs.add_symlink(p.guest, p.value); break;
      }
    }
    if (!no_job) fs.add_file("job/argv", farm::boards::Initramfs::nul_join(job_argv));
    if (!job_env.empty()) fs.add_file("job/env", farm::boards::Initramfs::nul_join(job_env));
    if (!timeout.empty()) fs.add_file("job/timeout", timeout + "\n");
    fs.write(std::filesystem::path(output));
  } catch (const farm::boards::InitramfsError& e) {
    std::cerr << "farm-initramfs: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
