// The virtual-board executor (vboard.hpp): deploy, power on, boot, console,
// result, power off — for a QEMU virtual board by default, for a physical
// board through the operator's templates.
#include "farm/agent/vboard.hpp"

#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "farm/agent/policy.hpp"
#include "farm/agent/process.hpp"
#include "farm/agent/serial.hpp"
#include "farm/boards/initramfs.hpp"
#include "farm/common/result.hpp"
#include "farm/common/util.hpp"

namespace farm::agent {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void config_error(const std::string& m) { throw std::invalid_argument(m); }

bool charset_ok(std::string_view s, const char* extra) {
  for (unsigned char c : s)
    if (!std::isalnum(c) && !std::strchr(extra, c)) return false;
  return true;
}

// Characters of a value substituted into a shell template: a path, a name or
// a number (no quote, no $, no backquote, no space, no glob, no newline).
constexpr const char* kValueChars = "/._+,:=@%-";

std::string seconds_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", s);
  return b;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* p = std::getenv("PATH");
  std::string path = p ? p : "/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t c = path.find(':', pos);
    std::string dir = path.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    if (dir.empty()) dir = ".";
    std::string cand = dir + "/" + name;
    struct stat st {};
    if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(cand.c_str(), X_OK) == 0) return cand;
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return "";
}

v1::JobResult infra(const std::string& msg, const std::string& tail = {}) {
  v1::JobResult r;
  r.set_outcome(v1::OUTCOME_INFRA_ERROR);
  r.set_message(msg);
  r.set_exit_code(-1);
  if (!tail.empty()) r.set_log_tail(farm::tail(tail, 40, 8192));
  return r;
}

const std::set<std::string>& placeholders() {
  static const std::set<std::string> p = {"kernel", "initrd", "deploy_dir", "board", "job_id", "attempt", "append"};
  return p;
}

// Walks a template: calls lit(text) for literal text and ph(name) for each
// placeholder; throws std::invalid_argument (prefixed by `option`) when a
// placeholder is unknown or quoted, or a brace is unmatched.
template <class Lit, class Ph>
void walk_template(const std::string& option, const std::string& t, Lit lit, Ph ph) {
  enum { none, single, dbl } q = none;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '{' || c == '}') {
      if (i + 1 < t.size() && t[i + 1] == c) {  // "{{" / "}}": a literal brace
        lit(std::string(1, c));
        ++i;
        continue;
      }
      if (c == '}') config_error(option + ": unmatched '}' at offset " + std::to_string(i) + " (write '}}' for a brace)");
      size_t close = t.find('}', i + 1);
      if (close == std::string::npos)
        config_error(option + ": unmatched '{' at offset " + std::to_string(i) + " (write '{{' for a brace)");
      std::string name = t.substr(i + 1, close - i - 1);
      if (!placeholders().count(name))
        config_error(option + ": unknown placeholder {" + printable(name, 40) +
                     "} (known: {kernel} {initrd} {deploy_dir} {board} {job_id} {attempt} {append})");
      if (q != none)
        config_error(option + ": placeholder {" + name + "} inside quotes; write it unquoted, the agent quotes the value");
      ph(name);
      i = close;
      continue;
    }
    // Quote state, for the check above (sh rules: \ escapes outside '...').
    if (q == none && c == '\\' && i + 1 < t.size()) {
      lit(t.substr(i, 2));
      ++i;
      continue;
    }
    if (q == dbl && c == '\\' && i + 1 < t.size()) {
      lit(t.substr(i, 2));
      ++i;
      continue;
    }
    if (c == '\'' && q != dbl) q = q == single ? none : single;
    else if (c == '"' && q != single) q = q == dbl ? none : dbl;
    lit(std::string(1, c));
  }
  if (q != none) config_error(option + ": unterminated quote");
}

// ---------------------------------------------------------------- ELF

std::string elf_problem(const std::string& path, const std::string& arch) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "cannot open it: " + std::string(std::strerror(errno));
  Elf64_Ehdr eh{};
  if (!f.read(reinterpret_cast<char*>(&eh), sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return "not an ELF file";
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return "not a 64-bit little-endian ELF file";
  const std::map<std::string, uint16_t> machines = {{"riscv64", EM_RISCV}, {"aarch64", EM_AARCH64}, {"x86_64", EM_X86_64}};
  auto m = machines.find(arch);
  if (m != machines.end() && eh.e_machine != m->second)
    return "an ELF file for machine " + std::to_string(eh.e_machine) + ", not " + arch + " (" +
           std::to_string(m->second) + ")";
  if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) return "not an executable";
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    f.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
    if (!f.read(reinterpret_cast<char*>(&ph), sizeof ph)) return "truncated program headers";
    if (ph.p_type == PT_INTERP)
      return "dynamically linked (it has a PT_INTERP); the board's initramfs has no dynamic loader: link it -static";
  }
  return {};
}

// ---------------------------------------------------------------- console

// The board's console as it arrives: split into lines, the board init's
// markers found, the job's output (between BEGIN and END) kept.
class ConsoleWatch {
 public:
  static constexpr size_t kBootLogBytes = 64 << 10;
  static constexpr size_t kJobOutBytes = 1 << 20;

  std::mutex mu;
  std::condition_variable cv;
  // state of the current boot (reset() before each power on)
  std::string boot_log, job_out, line;
  size_t total = 0;
  bool begin = false, end = false;
  std::string end_field;               // rc=N | signal=N | timeout
  std::optional<std::string> init_error, panic;
  Clock::time_point begin_at{}, end_at{};
  bool gone = false;                   // the power-on process (qemu) exited
  ProcResult gone_result;
  bool cancelled = false;              // the job was cancelled

  void reset() {
    std::lock_guard lk(mu);
    boot_log.clear();
    job_out.clear();
    line.clear();
    total = 0;
    begin = end = false;
    end_field.clear();
    init_error.reset();
    panic.reset();
    gone = false;
    gone_result = ProcResult{};
  }

  void feed(std::string_view d) {
    {
      std::lock_guard lk(mu);
      total += d.size();
      for (char c : d) {
        if (c == '\n') {
          take_line();
          continue;
        }
        line.push_back(c);
        if (line.size() > 65536) take_line();
      }
    }
    cv.notify_all();
  }

  void set_gone(const ProcResult& p) {
    {
      std::lock_guard lk(mu);
      if (!line.empty()) take_line();
      gone = true;
      gone_result = p;
    }
    cv.notify_all();
  }

  void set_cancelled() {
    {
      std::lock_guard lk(mu);
      cancelled = true;
    }
    cv.notify_all();
  }

  // Waits until pred() (called under the lock), cancellation or the deadline.
  template <class Pred>
  void wait(Clock::time_point deadline, Pred pred) {
    std::unique_lock lk(mu);
    cv.wait_until(lk, deadline, [&] { return cancelled || pred(); });
  }

 private:
  static void keep(std::string& buf, std::string_view s, size_t max) {
    buf.append(s);
    buf.push_back('\n');
    if (buf.size() > max * 2) buf.erase(0, buf.size() - max);
  }

  void take_line() {
    std::string l;
    l.swap(line);
    while (!l.empty() && (l.back() == '\r')) l.pop_back();
    static const std::regex end_re("===FARM-BOARD-END (rc=[0-9]+|signal=[0-9]+|timeout)===");
    static const std::regex err_re("===FARM-BOARD-ERROR (.*)===");
    bool marker = l.find("===FARM-BOARD-") != std::string::npos;
    if (!begin) {
      keep(boot_log, l, kBootLogBytes);
      if (l.find(kBoardBegin) != std::string::npos) {
        begin = true;
        begin_at = Clock::now();
      } else if (std::smatch m; marker && std::regex_search(l, m, err_re)) {
        init_error = m[1].str();
      }
    } else if (!end) {
      std::smatch m;
      if (marker && std::regex_search(l, m, end_re)) {
        end = true;
        end_field = m[1].str();
        end_at = Clock::now();
        // Anything the job printed before the marker on the same line.
        std::string before = l.substr(0, static_cast<size_t>(m.position(0)));
        if (!before.empty()) keep(job_out, before, kJobOutBytes);
        return;
      }
      keep(job_out, l, kJobOutBytes);
    }
    if (!panic && l.find("Kernel panic - not syncing") != std::string::npos) panic = farm::clip(l, 300);
  }
};

}  // namespace

// ---------------------------------------------------------------- description

BoardDescription load_board_description(const std::string& file, const std::string& boards_dir) {
  std::string text;
  try {
    text = farm::read_file(file);
  } catch (const std::exception& e) {
    config_error(std::string("--board: ") + e.what());
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) config_error("--board " + file + ": not a JSON object");
  auto where = [&](const char* k) { return "--board " + file + ": \"" + std::string(k) + "\""; };
  auto str = [&](const char* k, bool required) -> std::string {
    if (!j.contains(k) || j[k].is_null()) {
      if (required) config_error(where(k) + " is required");
      return "";
    }
    if (!j[k].is_string()) config_error(where(k) + " must be a string");
    std::string v = j[k].get<std::string>();
    if (v.find('\0') != std::string::npos) config_error(where(k) + " contains a NUL byte");
    return v;
  };
  BoardDescription b;
  b.file = fs::absolute(file).lexically_normal().string();
  fs::path dir = boards_dir.empty() ? fs::path(b.file).parent_path() : fs::absolute(boards_dir).lexically_normal();
  b.name = str("name", true);
  if (!is_safe_name(b.name)) config_error(where("name") + " must be 1-64 of [A-Za-z0-9._-], got " + printable(b.name));
  b.description = str("description", false);
  b.arch = str("arch", true);
  if (!is_safe_name(b.arch)) config_error(where("arch") + " is not an architecture name");
  b.isa = str("isa", false);
  if (!b.isa.empty() && !is_safe_name(b.isa)) config_error(where("isa") + " is not an ISA name");
  if (j.contains("usable")) {
    if (!j["usable"].is_boolean()) config_error(where("usable") + " must be true or false");
    b.usable = j["usable"].get<bool>();
  }
  for (const char* k : {"usable_reason", "unusable_reason", "why"})
    if (b.unusable_reason.empty()) b.unusable_reason = str(k, false);
  // The qemu fields are needed by the default power-on only (a physical
  // board's description may leave them out; VBoardExecutor checks).
  b.qemu = str("qemu", false);
  if (!b.qemu.empty() && (b.qemu[0] == '-' || !charset_ok(b.qemu, "/._+-")))
    config_error(where("qemu") + " must be a program name or path of [A-Za-z0-9/._+-], got " + printable(b.qemu));
  auto word = [&](const char* k, bool required, const char* extra) {
    std::string v = str(k, required);
    if (!v.empty() && (v[0] == '-' || !charset_ok(v, extra)))
      config_error(where(k) + " must be of [A-Za-z0-9" + extra + "] (not starting with '-'), got " + printable(v));
    return v;
  };
  b.machine = word("machine", false, ",=._+-");
  b.cpu = word("cpu", false, ",=._+-");
  b.accel = word("accel", false, ",=._+-");
  b.memory = str("memory", false);
  static const std::regex mem_re("[0-9]{1,6}[KMG]?");
  if (!b.memory.empty() && !std::regex_match(b.memory, mem_re))
    config_error(where("memory") + " must be like 256M or 1G, got " + printable(b.memory));
  if (j.contains("smp")) {
    if (!j["smp"].is_number_unsigned() || j["smp"].get<uint64_t>() < 1 || j["smp"].get<uint64_t>() > rules::kMaxSmp)
      config_error(where("smp") + " must be a number of harts in 1.." + std::to_string(rules::kMaxSmp));
    b.smp = j["smp"].get<uint32_t>();
  }
  b.bios = str("bios", false);
  if (!b.bios.empty() && b.bios != "default" && b.bios != "none") {
    if (!charset_ok(b.bios, "/._+-") || b.bios[0] == '-') config_error(where("bios") + ": default, none or a file name");
    b.bios = (dir / b.bios).lexically_normal().string();
  }
  if (j.contains("qemu_args")) {
    if (!j["qemu_args"].is_array()) config_error(where("qemu_args") + " must be an array of strings");
    for (const auto& a : j["qemu_args"]) {
      if (!a.is_string() || a.get<std::string>().empty() || a.get<std::string>().find('\0') != std::string::npos)
        config_error(where("qemu_args") + " must hold non-empty strings");
      b.qemu_args.push_back(a.get<std::string>());
    }
  }
  auto artifact = [&](const char* k) {
    std::string v = str(k, true);
    if (v.empty() || !charset_ok(v, "/._+-") || v[0] == '-') config_error(where(k) + " must be a file name of [A-Za-z0-9/._+-]");
    return (dir / v).lexically_normal().string();
  };
  b.kernel = artifact("kernel");
  b.init = artifact("init");
  b.kernel_target = str("kernel_target", false);
  b.init_target = str("init_target", false);
  b.append = str("append", false);
  if (b.append.size() > 1024 || !charset_ok(b.append, " =._,:+/-"))
    config_error(where("append") + " must be at most 1024 of [A-Za-z0-9 =._,:+/-]");
  b.console = str("console", false);
  if (j.contains("boot_timeout")) {
    if (!j["boot_timeout"].is_number_unsigned() || j["boot_timeout"].get<uint64_t>() < 1 ||
        j["boot_timeout"].get<uint64_t>() > 3600)
      config_error(where("boot_timeout") + " must be seconds in 1..3600");
    b.boot_timeout_s = j["boot_timeout"].get<uint32_t>();
  }
  // The kernel's release, from the .config the boards build copies next to it.
  fs::path cfg = fs::path(b.kernel).replace_extension(".config");
  std::ifstream cf(cfg);
  static const std::regex rel_re("^# Linux/\\S+ (\\S+) Kernel Configuration");
  for (std::string l; cf && std::getline(cf, l);) {
    std::smatch m;
    if (std::regex_search(l, m, rel_re)) {
      b.kernel_release = m[1].str();
      break;
    }
    if (l.rfind("#", 0) != 0 && !l.empty()) break;
  }
  return b;
}

void check_template(const std::string& option, const std::string& tmpl) {
  if (tmpl.empty()) config_error(option + ": empty command");
  if (tmpl.size() > 4096) config_error(option + ": longer than 4096 bytes");
  if (tmpl.find('\0') != std::string::npos) config_error(option + ": contains a NUL byte");
  walk_template(option, tmpl, [](const std::string&) {}, [](const std::string&) {});
}

std::string expand_template(const std::string& tmpl, const std::map<std::string, std::string>& values) {
  std::string out;
  walk_template("template", tmpl, [&](const std::string& s) { out += s; },
                [&](const std::string& name) {
                  auto it = values.find(name);
                  if (it == values.end() || it->second.empty())
                    config_error("{" + name + "} has no value for this command");
                  const std::string& v = it->second;
                  bool ok = name == "append" ? charset_ok(v, " =._,:+/-") : charset_ok(v, kValueChars);
                  if (!ok || v[0] == '-')
                    config_error("{" + name + "} = '" + printable(v, 120) + "' has characters outside [A-Za-z0-9" +
                                 (name == "append" ? std::string(" =._,:+/-") : std::string(kValueChars)) +
                                 "]; it is not substituted into a shell command");
                  out += shell_quote(v);
                });
  return out;
}

std::string guest_binary_problem(const std::string& path, const std::string& arch) { return elf_problem(path, arch); }

// ---------------------------------------------------------------- executor

struct VBoardExecutor::Impl {
  explicit Impl(const ExecutorConfig& c) : policy(c, CommandHost::remote) {}
  Policy policy;
  enum class Console { stdio, serial, command } console = Console::stdio;
  std::string console_arg;   // serial device or command template
  std::string qemu;          // resolved emulator
  uint32_t boot_timeout_s = 60;
};

VBoardExecutor::VBoardExecutor(ExecutorConfig cfg) : cfg_(std::move(cfg)) {
  const VBoardConfig& v = cfg_.vboard;
  if (v.board.empty()) config_error("the vboard executor needs --board FILE (a board description, farm/boards/boards/*.json)");
  board_ = load_board_description(v.board, v.boards_dir);
  if (!board_.usable)
    config_error("board " + board_.name + " (" + board_.file + ") is marked \"usable\": false" +
                 (board_.unusable_reason.empty() ? std::string() : ": " + board_.unusable_reason));
  if (!cfg_.arch.empty() && cfg_.arch != board_.arch)
    config_error("--arch " + cfg_.arch + " does not match board " + board_.name + " (arch " + board_.arch + ")");
  // Operator overrides of the description.
  if (v.smp) {
    if (v.smp > rules::kMaxSmp) config_error("--smp must be in 1.." + std::to_string(rules::kMaxSmp));
    board_.smp = v.smp;
  }
  static const std::regex mem_re("[0-9]{1,6}[KMG]?");
  if (!v.memory.empty()) {
    if (!std::regex_match(v.memory, mem_re)) config_error("--memory must be like 256M or 1G, got " + printable(v.memory));
    board_.memory = v.memory;
  }
  if (!v.cpu.empty()) {
    if (v.cpu[0] == '-' || !charset_ok(v.cpu, ",=._+-")) config_error("--qemu-cpu must be of [A-Za-z0-9,=._+-]");
    board_.cpu = v.cpu;
  }
  impl_ = std::make_unique<Impl>(cfg_);
  auto& im = *impl_;
  im.boot_timeout_s = v.boot_timeout_s ? v.boot_timeout_s : board_.boot_timeout_s;
  if (im.boot_timeout_s > 3600) config_error("--boot-timeout must be at most 3600 s");
  if (v.boot_retries > 5) config_error("--boot-retries must be in 0..5");
  if (v.power_cmd_timeout_s < 1 || v.power_cmd_timeout_s > 3600) config_error("power command timeout must be 1..3600 s");

  // Artifacts: they are the operator's build; a missing one says how to build it.
  auto need = [&](const std::string& path, const std::string& what, const std::string& target) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::access(path.c_str(), R_OK) != 0)
      config_error(what + " " + path + " of board " + board_.name + " is missing or unreadable" +
                   (target.empty() ? std::string()
                                   : "; build it: cmake --build BUILD --target " + target + " (or --target boards)"));
  };
  need(board_.kernel, "kernel", board_.kernel_target);
  need(board_.init, "board init", board_.init_target);
  if (auto why = elf_problem(board_.init, board_.arch); !why.empty())
    config_error("board init " + board_.init + ": " + why);
  if (!board_.bios.empty() && board_.bios != "default" && board_.bios != "none") need(board_.bios, "bios", "");

  // The workload: the operator's patch-stress for this board, static, the board's arch.
  if (!im.policy.runs_patch_stress())
    config_error("the vboard executor needs --patch-stress PATH (a static " + board_.arch +
                 " patch-stress; it is copied into each job's initramfs)");
  for (const auto& [key, path] : im.policy.binaries())
    if (auto why = elf_problem(path, board_.arch); !why.empty())
      config_error((key == "patch-stress" ? std::string("--patch-stress ") : "--binary " + key + "=") + path + ": " + why);
  if (cfg_.allow_command)
    config_error("--allow-command: the vboard executor runs patch-stress only (no Command workloads, no extra_args)");

  // Console and power.
  const std::string& c = v.console;
  if (c.empty() || c == "stdio") {
    im.console = Impl::Console::stdio;
  } else if (c.rfind("serial:", 0) == 0) {
    im.console = Impl::Console::serial;
    im.console_arg = c.substr(7);
    struct stat st {};
    if (im.console_arg.empty() || im.console_arg[0] != '/') config_error("--console serial:DEVICE needs an absolute device path");
    if (::stat(im.console_arg.c_str(), &st) != 0 || !S_ISCHR(st.st_mode))
      config_error("--console " + printable(c) + ": not a character device");
    if (v.console_baud < 50 || v.console_baud > 4000000) config_error("--console-baud must be in 50..4000000");
  } else if (c.rfind("command:", 0) == 0) {
    im.console = Impl::Console::command;
    im.console_arg = c.substr(8);
    check_template("--console command:", im.console_arg);
  } else {
    config_error("--console must be stdio, serial:DEVICE or command:TEMPLATE, got '" + printable(c) + "'");
  }
  if (!v.power_on_cmd.empty()) check_template("--power-on", v.power_on_cmd);
  if (!v.power_off_cmd.empty()) check_template("--power-off", v.power_off_cmd);
  if (!v.deploy_cmd.empty()) check_template("--deploy", v.deploy_cmd);
  if (im.console != Impl::Console::stdio && v.power_on_cmd.empty())
    config_error("--console " + printable(c) + " needs --power-on: the default power-on (qemu) has its console on its stdio");
  if (im.console != Impl::Console::stdio && v.power_off_cmd.empty())
    config_error("--power-on with a separate console needs --power-off (the board is switched off after each job and to "
                 "power-cycle it)");
  if (!v.power_off_cmd.empty() && v.power_on_cmd.empty())
    config_error("--power-off without --power-on: the default power-on (qemu) is powered off by stopping it");
  if (v.power_on_cmd.empty()) {
    // The default power-on: the description's qemu command.
    for (auto [field, value] : {std::pair{"qemu", &board_.qemu}, std::pair{"machine", &board_.machine},
                                std::pair{"memory", &board_.memory}})
      if (value->empty() && !(std::string(field) == "qemu" && !cfg_.qemu.empty()))
        config_error("board " + board_.name + " (" + board_.file + "): \"" + field +
                     "\" is required for the default power-on (qemu); a physical board needs --power-on");
    std::string q = cfg_.qemu.empty() ? board_.qemu : cfg_.qemu;
    im.qemu = find_in_path(q);
    if (im.qemu.empty())
      config_error("board " + board_.name + ": " + q + " not found" +
                   (q.find('/') == std::string::npos ? " in PATH (Debian: qemu-system-misc / qemu-system-arm)" : ""));
  }
  if (!v.deploy_dir.empty()) {
    if (v.deploy_dir[0] != '/' || !charset_ok(v.deploy_dir, "/._+-"))
      config_error("--deploy-dir must be an absolute path of [A-Za-z0-9/._+-]");
    std::error_code ec;
    fs::create_directories(v.deploy_dir, ec);
    if (!fs::is_directory(v.deploy_dir) || ::access(v.deploy_dir.c_str(), W_OK) != 0)
      config_error("--deploy-dir " + v.deploy_dir + ": not a writable directory");
  }
}

VBoardExecutor::~VBoardExecutor() = default;

std::vector<std::string> VBoardExecutor::workloads() const { return {"patch-stress"}; }

void VBoardExecutor::describe(v1::Capabilities& caps) const {
  if (caps.arch().empty()) caps.set_arch(board_.arch);
  if (caps.isa().empty() && !board_.isa.empty()) caps.set_isa(board_.isa);
  if (caps.cores() == 0) caps.set_cores(board_.smp);
  if (caps.kernel().empty()) caps.set_kernel(board_.kernel_release.empty() ? "linux" : board_.kernel_release);
  if (!caps.labels().count("board")) (*caps.mutable_labels())["board"] = board_.name;
}

std::vector<std::string> VBoardExecutor::qemu_argv(const std::string& initrd) const {
  const auto& b = board_;
  std::vector<std::string> a{impl_ && !impl_->qemu.empty() ? impl_->qemu : b.qemu, "-M", b.machine};
  if (!b.cpu.empty()) a.insert(a.end(), {"-cpu", b.cpu});
  a.insert(a.end(), {"-smp", std::to_string(b.smp), "-m", b.memory});
  if (!b.bios.empty()) a.insert(a.end(), {"-bios", b.bios});
  if (!b.accel.empty()) a.insert(a.end(), {"-accel", b.accel});
  a.insert(a.end(), b.qemu_args.begin(), b.qemu_args.end());
  for (const char* must : {"-nographic", "-no-reboot"})
    if (std::find(a.begin(), a.end(), must) == a.end()) a.push_back(must);
  a.insert(a.end(), {"-kernel", b.kernel, "-initrd", initrd});
  if (!b.append.empty()) a.insert(a.end(), {"-append", b.append});
  a.insert(a.end(), cfg_.qemu_args.begin(), cfg_.qemu_args.end());  // the operator's --qemu-arg
  return a;
}

v1::JobResult VBoardExecutor::run(JobContext& ctx) {
  auto refuse = [&](const std::string& why) {
    spdlog::warn("farm-agent {}: job {} attempt {}: {}", ctx.worker, ctx.job_id, ctx.attempt, why);
    ctx.note(why);
    return refused_result(why);
  };
  if (auto bad = job_id_problem(ctx.job_id); !bad.empty()) return refuse(bad);
  auto adm = impl_->policy.admit(ctx);
  if (!adm) return refuse(adm.refusal);
  const Admitted& a = *adm.job;
  if (a.kind != Admitted::Kind::patch_stress)
    return refuse("refused: board " + board_.name + " runs patch-stress jobs (a bare-metal image or a command is not "
                  "deployed to a Linux board)");
  GuestJob g;
  g.files["/job/bin/patch-stress"] = a.program;  // the operator's binary (Policy), never the job's
  g.argv = {"/job/bin/patch-stress"};
  g.argv.insert(g.argv.end(), a.args.begin(), a.args.end());
  g.env = {{"FARM_JOB_ID", ctx.job_id}, {"FARM_ATTEMPT", std::to_string(ctx.attempt)},
           {"FARM_SEED", std::to_string(ctx.spec.seed())}};
  g.timeout_s = ctx.spec.timeout_s() ? ctx.spec.timeout_s() : 600;
  g.require_json = true;
  return run_guest(ctx, g);
}

v1::JobResult VBoardExecutor::health_check(JobContext& ctx) {
  GuestJob g;
  const auto& bins = impl_->policy.binaries();
  g.files["/job/bin/patch-stress"] = bins.begin()->second;
  g.argv = {"/job/bin/patch-stress", "--help"};
  g.timeout_s = 60;
  g.require_json = false;
  return run_guest(ctx, g);
}

v1::JobResult VBoardExecutor::run_guest(JobContext& ctx, const GuestJob& job) {
  const VBoardConfig& v = cfg_.vboard;
  auto& im = *impl_;
  const auto t_start = Clock::now();

  // ---------------------------------------------------------------- deploy
  if (job.argv.empty() || job.argv[0].empty() || job.argv[0][0] != '/')
    return infra("deploy: the guest argv[0] must be an absolute guest path");
  std::string dep_dir;
  if (v.deploy_dir.empty()) {
    dep_dir = ctx.work_dir;
  } else {
    if (!is_safe_name(ctx.job_id, rules::kMaxJobIdBytes)) return infra("deploy: job id is not a safe name");
    dep_dir = v.deploy_dir + "/" + ctx.job_id + "-" + std::to_string(ctx.attempt);
  }
  if (dep_dir.empty()) return infra("deploy: no work directory for this attempt");
  std::error_code ec;
  fs::create_directories(dep_dir, ec);
  if (ec) return infra("deploy: cannot create " + dep_dir + ": " + ec.message());
  struct RemoveDeployDir {
    std::string dir;
    ~RemoveDeployDir() {
      std::error_code e;
      if (!dir.empty()) fs::remove_all(dir, e);
    }
  } remove_deploy{v.deploy_dir.empty() ? std::string() : dep_dir};
  const std::string initrd = (fs::path(dep_dir) / "initramfs.cpio").string();
  size_t initrd_bytes = 0;
  try {
    farm::boards::Initramfs rd;
    for (const char* d : {"dev", "proc", "sys", "job", "job/bin", "bin"}) rd.add_dir(d, 0755);
    rd.add_dir("tmp", 01777);
    rd.add_char_device("dev/console", 5, 1, 0600);
    rd.add_file_from("init", board_.init, 0755);
    for (const auto& [guest, host] : job.files) {
      if (guest.rfind("/job/", 0) != 0) return infra("deploy: guest file " + guest + " is not under /job/");
      rd.add_file_from(guest.substr(1), host, 0755);
    }
    for (const auto& a : job.argv)
      if (a.find('\0') != std::string::npos) return infra("deploy: an argument contains a NUL byte");
    rd.add_file("job/argv", farm::boards::Initramfs::nul_join(job.argv));
    std::vector<std::string> env;
    for (const auto& [k, val] : job.env) {
      if (k.empty() || !charset_ok(k, "_") || std::isdigit(static_cast<unsigned char>(k[0])) ||
          val.find('\0') != std::string::npos)
        return infra("deploy: bad environment variable " + printable(k));
      env.push_back(k + "=" + val);
    }
    if (!env.empty()) rd.add_file("job/env", farm::boards::Initramfs::nul_join(env));
    rd.add_file("job/timeout", std::to_string(job.timeout_s) + "\n");
    std::string bytes = rd.bytes();
    initrd_bytes = bytes.size();
    farm::write_file_atomic(initrd, bytes);
  } catch (const std::exception& e) {
    return infra(std::string("deploy: cannot write the initramfs: ") + e.what());
  }
  {
    std::string files;
    for (const auto& [guest, host] : job.files) files += ", " + guest + " = " + host;
    ctx.note("deploy: " + initrd + " (" + std::to_string(initrd_bytes / 1024) + " KiB): /init = " + board_.init + files +
             "; /job/argv: " + printable(shell_join(job.argv), 400) + "; /job/timeout " +
             std::to_string(job.timeout_s) + " s; kernel " + board_.kernel);
  }

  // Values for the operator's templates (checked and quoted by expand_template).
  std::map<std::string, std::string> values = {{"kernel", board_.kernel},      {"initrd", initrd},
                                               {"deploy_dir", dep_dir},        {"board", board_.name},
                                               {"job_id", ctx.job_id},         {"attempt", std::to_string(ctx.attempt)},
                                               {"append", board_.append}};
  auto template_env = [&](std::string step, const std::string& reason) {
    std::replace(step.begin(), step.end(), ' ', '-');  // FARM_STEP: deploy, power-on, power-off, console
    return std::map<std::string, std::string>{
        {"FARM_BOARD", board_.name},    {"FARM_JOB_ID", ctx.job_id},     {"FARM_ATTEMPT", std::to_string(ctx.attempt)},
        {"FARM_KERNEL", board_.kernel}, {"FARM_INITRD", initrd},         {"FARM_DEPLOY_DIR", dep_dir},
        {"FARM_APPEND", board_.append}, {"FARM_STEP", step},             {"FARM_REASON", printable(reason, 400)}};
  };
  // Runs a template to completion; "" if it exited 0, else why not.
  auto run_template = [&](const std::string& step, const std::string& tmpl, const std::string& reason) -> std::string {
    std::string cmd;
    try {
      cmd = expand_template(tmpl, values);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    ProcSpec ps;
    ps.argv = {"/bin/sh", "-c", cmd};
    ps.env = template_env(step, reason);
    ps.cwd = dep_dir;
    ps.timeout = std::chrono::seconds(v.power_cmd_timeout_s);
    ps.kill_grace = cfg_.kill_grace;
    ctx.note(step + ": $ " + cmd);
    auto p = run_process(ps, [&](std::string_view, std::string_view d) { if (ctx.output) ctx.output("agent", d); },
                         nullptr);
    if (!p.started) return p.error;
    if (p.timed_out) return "timed out after " + std::to_string(v.power_cmd_timeout_s) + " s";
    if (p.exit_code != 0)
      return "exit " + (p.term_signal ? "signal " + std::to_string(p.term_signal) : std::to_string(p.exit_code)) +
             (p.err.empty() ? std::string() : ": " + farm::tail(p.err, 3, 400));
    return {};
  };
  if (!v.deploy_cmd.empty()) {
    if (auto why = run_template("deploy", v.deploy_cmd, "deploy"); !why.empty())
      return infra("deploy: the deploy command failed: " + why);
  }

  // ---------------------------------------------------------------- power, console
  ConsoleWatch watch;
  int cancel_sub = -1;
  if (ctx.cancel) cancel_sub = ctx.cancel->subscribe([&watch] { watch.set_cancelled(); });
  struct Unsub {
    Cancel* c;
    int h;
    ~Unsub() {
      if (c && h >= 0) c->unsubscribe(h);
    }
  } unsub{ctx.cancel, cancel_sub};

  auto on_console = [&](std::string_view d) {
    watch.feed(d);
    if (ctx.output) ctx.output("serial", d);
  };

  // The power-on process when it is the board (stdio console) or the console command.
  struct Running {
    Cancel stop;
    std::thread th;
    void halt() {
      stop.cancel("power off");
      if (th.joinable()) th.join();
    }
    ~Running() { halt(); }
  };
  std::unique_ptr<Running> board_proc, console_proc;
  std::unique_ptr<SerialConsole> serial;
  const auto max_life = std::chrono::seconds(im.boot_timeout_s) * (v.boot_retries + 1) +
                        std::chrono::seconds(job.timeout_s) + std::chrono::milliseconds(v.end_grace_ms) +
                        std::chrono::milliseconds(v.poweroff_wait_ms) + 120s;

  auto start_console = [&]() -> std::string {
    if (im.console == Impl::Console::serial) {
      serial = std::make_unique<SerialConsole>(im.console_arg, v.console_baud, on_console);
      std::string err;
      if (!serial->start(&err)) {
        serial.reset();
        return "cannot open the serial console: " + err;
      }
      ctx.note("console: serial " + im.console_arg + " at " + std::to_string(v.console_baud) + " baud");
    } else if (im.console == Impl::Console::command) {
      std::string cmd;
      try {
        cmd = expand_template(im.console_arg, values);
      } catch (const std::invalid_argument& e) {
        return std::string("console command: ") + e.what();
      }
      ctx.note("console: $ " + cmd);
      console_proc = std::make_unique<Running>();
      ProcSpec ps;
      ps.argv = {"/bin/sh", "-c", cmd};
      ps.env = template_env("console", "console");
      ps.cwd = dep_dir;
      ps.timeout = max_life;
      ps.kill_grace = cfg_.kill_grace;
      auto* r = console_proc.get();
      r->th = std::thread([ps, r, &on_console, &ctx] {
        auto p = run_process(ps, [&](std::string_view st, std::string_view d) {
          if (st == "stdout") on_console(d);
          else if (ctx.output) ctx.output("stderr", d);
        }, &r->stop);
        if (!p.cancelled) ctx.note("console: the console command ended (exit " + std::to_string(p.exit_code) + ")");
      });
    } else {
      ctx.note("console: the power-on command's stdio (" + std::string(v.power_on_cmd.empty() ? "qemu -nographic" : "--power-on") + ")");
    }
    return {};
  };
  auto stop_console = [&] {
    if (serial) {
      serial->stop();
      serial.reset();
    }
    if (console_proc) {
      std::this_thread::sleep_for(200ms);  // the last bytes in flight
      console_proc->halt();
      console_proc.reset();
    }
  };
  auto power_on = [&]() -> std::string {
    if (im.console == Impl::Console::stdio) {
      ProcSpec ps;
      if (v.power_on_cmd.empty()) {
        ps.argv = qemu_argv(initrd);
        ctx.note("power on: $ " + shell_join(ps.argv));
      } else {
        std::string cmd;
        try {
          cmd = expand_template(v.power_on_cmd, values);
        } catch (const std::invalid_argument& e) {
          return e.what();
        }
        ps.argv = {"/bin/sh", "-c", cmd};
        ps.env = template_env("power-on", "power on");
        ctx.note("power on: $ " + cmd);
      }
      ps.cwd = dep_dir;
      ps.timeout = max_life;  // a safety net; the steps below stop it much earlier
      ps.kill_grace = cfg_.kill_grace;
      board_proc = std::make_unique<Running>();
      auto* r = board_proc.get();
      r->th = std::thread([ps, r, &watch, &on_console, &ctx] {
        auto p = run_process(ps, [&](std::string_view st, std::string_view d) {
          if (st == "stdout") on_console(d);
          else if (ctx.output) ctx.output("stderr", d);
        }, &r->stop);
        watch.set_gone(p);
      });
      return {};
    }
    return run_template("power on", v.power_on_cmd, "power on");
  };
  // Power off: the operator's command, and the power-on process stopped.
  auto power_off = [&](const std::string& reason) {
    bool was_running = false;
    {
      std::lock_guard lk(watch.mu);
      was_running = board_proc && !watch.gone;
    }
    if (!v.power_off_cmd.empty()) {
      if (auto why = run_template("power off", v.power_off_cmd, reason); !why.empty())
        ctx.note("power off: the power-off command failed: " + why);
    }
    if (board_proc) {
      if (was_running) ctx.note("power off (" + reason + "): stopping " + (v.power_on_cmd.empty() ? "qemu" : "the power-on command"));
      board_proc->halt();
      board_proc.reset();
    } else if (v.power_off_cmd.empty()) {
      ctx.note("power off (" + reason + ")");
    }
    stop_console();
  };

  // ---------------------------------------------------------------- boot
  const uint32_t boots = v.boot_retries + 1;
  double boot_s = 0;
  for (uint32_t boot = 1;; ++boot) {
    watch.reset();
    if (auto why = start_console(); !why.empty()) {
      power_off("console failed");
      return infra("console: " + why + " (step console)");
    }
    const auto t_on = Clock::now();
    if (auto why = power_on(); !why.empty()) {
      power_off("power on failed");
      if (boot < boots) {
        ctx.note("power on failed: " + why + "; power-cycling, boot " + std::to_string(boot + 1) + " of " + std::to_string(boots));
        continue;
      }
      return infra("power on: " + why + " (step power-on, " + std::to_string(boots) + " attempt(s))");
    }
    watch.wait(t_on + std::chrono::seconds(im.boot_timeout_s),
               [&] { return watch.begin || watch.init_error || watch.gone || watch.panic; });
    std::string reason;
    bool retry = true;
    {
      std::lock_guard lk(watch.mu);
      if (watch.cancelled) reason = "cancelled";
      else if (watch.begin) reason = "";
      else if (watch.init_error) {
        reason = "the board init failed: " + *watch.init_error;
        retry = false;
      } else if (watch.panic) {
        reason = "kernel panic before the job started: " + *watch.panic;
      } else if (watch.gone) {
        const auto& p = watch.gone_result;
        reason = !p.started ? "the power-on command did not start: " + p.error
                            : std::string(v.power_on_cmd.empty() ? "qemu" : "the power-on command") + " exited (" +
                                  (p.term_signal ? "signal " + std::to_string(p.term_signal)
                                                 : "status " + std::to_string(p.exit_code)) +
                                  ") before " + kBoardBegin + (p.err.empty() ? "" : ": " + farm::tail(p.err, 3, 400));
      } else {
        reason = std::string("no ") + kBoardBegin + " within " + std::to_string(im.boot_timeout_s) + " s" +
                 (watch.total == 0 ? " (nothing at all on the console: the firmware or the kernel did not start)" : "");
      }
    }
    if (reason == "cancelled") {
      power_off("cancelled");
      v1::JobResult r;
      r.set_outcome(v1::OUTCOME_CANCELLED);
      r.set_message("cancelled during the boot (step boot)");
      return r;
    }
    if (reason.empty()) {
      boot_s = since(t_on);
      break;
    }
    std::string log;
    {
      std::lock_guard lk(watch.mu);
      log = watch.boot_log;
    }
    power_off("boot failed");
    if (retry && boot < boots) {
      ctx.note("boot failed: " + reason + "; power cycle: booting again (" + std::to_string(boot + 1) + " of " +
               std::to_string(boots) + ")");
      continue;
    }
    return infra("boot: " + reason + " (step boot; " + std::to_string(boot) + " boot(s)" +
                     (boot > 1 ? ", power-cycled " + std::to_string(boot - 1) + " time(s)" : std::string()) + ")",
                 log);
  }
  ctx.note("boot: " + std::string(kBoardBegin) + " after " + seconds_text(boot_s) + " s; the job runs (timeout " +
           std::to_string(job.timeout_s) + " s)");

  // ---------------------------------------------------------------- run: console until END
  Clock::time_point begin_at;
  {
    std::lock_guard lk(watch.mu);
    begin_at = watch.begin_at;
  }
  const auto deadline = begin_at + std::chrono::seconds(job.timeout_s) + std::chrono::milliseconds(v.end_grace_ms);
  watch.wait(deadline, [&] { return watch.end || watch.gone || watch.panic; });
  {
    // A kernel panic: give the console 2 s for the rest of the report (with
    // panic=1 and -no-reboot qemu exits by itself), then power off.
    std::unique_lock lk(watch.mu);
    if (watch.panic && !watch.end && !watch.gone)
      watch.cv.wait_for(lk, 2s, [&] { return watch.gone; });
  }
  bool end, gone, cancelled;
  std::string end_field;
  std::optional<std::string> panic;
  ProcResult gone_result;
  {
    std::lock_guard lk(watch.mu);
    end = watch.end;
    gone = watch.gone;
    cancelled = watch.cancelled && !watch.end;
    end_field = watch.end_field;
    panic = watch.panic;
    gone = gone || (panic && !end);  // a panicked board is gone, whether or not qemu has exited yet
    gone_result = watch.gone_result;
  }
  double job_s = 0;
  if (end) {
    {
      std::lock_guard lk(watch.mu);
      job_s = std::chrono::duration<double>(watch.end_at - watch.begin_at).count();
    }
    ctx.note("result: ===FARM-BOARD-END " + end_field + "=== after " + seconds_text(job_s) + " s");
    // The board init powers the board off after END: qemu exits by itself.
    if (board_proc) {
      watch.wait(Clock::now() + std::chrono::milliseconds(v.poweroff_wait_ms), [&] { return watch.gone; });
      bool off;
      {
        std::lock_guard lk(watch.mu);
        off = watch.gone;
      }
      if (off) ctx.note("power off: the board powered itself off");
    }
    power_off("job ended");
  } else {
    job_s = since(begin_at);
    power_off(cancelled ? "cancelled" : gone ? "board stopped" : "job timed out");
  }

  // ---------------------------------------------------------------- result
  ProcResult pr;
  pr.started = true;
  pr.duration_s = job_s;
  {
    std::lock_guard lk(watch.mu);
    pr.out = watch.job_out;
  }
  std::string step_note;
  if (end) {
    if (end_field == "timeout") {
      pr.timed_out = true;
      pr.duration_s = job.timeout_s;
    } else if (end_field.rfind("signal=", 0) == 0) {
      pr.term_signal = std::atoi(end_field.c_str() + 7);
    } else {
      pr.exit_code = std::atoi(end_field.c_str() + 3);
    }
  } else if (cancelled) {
    pr.cancelled = true;
  } else if (!gone) {
    pr.timed_out = true;
  }
  v1::JobResult r = result_from_process(pr, job.require_json);
  if (end) {
    if (end_field == "timeout")
      r.set_message("timed out after " + std::to_string(job.timeout_s) +
                    " s: the board init killed the job (END timeout); board powered off");
    else if (pr.term_signal)
      r.set_message(r.message() + " in the guest (END " + end_field + ")");
  } else if (cancelled) {
    r.set_outcome(v1::OUTCOME_CANCELLED);
    r.set_message("cancelled while the job ran (step console); board powered off");
  } else if (!gone) {
    r.set_outcome(v1::OUTCOME_TIMEOUT);
    r.set_message("timed out after " + seconds_text(job_s) + " s: no ===FARM-BOARD-END=== (step console: the board "
                  "hung?); board powered off");
  } else {
    // The board stopped during the job without an END marker.
    std::string tail_src;
    {
      std::lock_guard lk(watch.mu);
      tail_src = watch.job_out;
    }
    r.set_log_tail(farm::tail(tail_src + gone_result.err, 40, 8192));
    if (panic) {
      r.set_outcome(v1::OUTCOME_FAIL);
      r.set_message("kernel panic during the job (step console, no END marker): " + *panic);
    } else if (gone_result.exit_code == 0) {
      r.set_outcome(v1::OUTCOME_FAIL);
      r.set_message("the board powered off during the job without an END marker (step console)");
    } else {
      r.set_outcome(v1::OUTCOME_INFRA_ERROR);
      r.set_message(std::string(v.power_on_cmd.empty() ? "qemu" : "the power-on command") + " died during the job (" +
                    (gone_result.term_signal ? "signal " + std::to_string(gone_result.term_signal)
                                             : "status " + std::to_string(gone_result.exit_code)) +
                    ", step console)" + (gone_result.err.empty() ? "" : ": " + farm::tail(gone_result.err, 3, 400)));
    }
  }
  if (r.outcome() == v1::OUTCOME_PASS)
    r.set_message("pass (board " + board_.name + ": boot " + seconds_text(boot_s) + " s, job " + seconds_text(job_s) + " s)");
  ctx.note("result: " + r.message() + " (" + seconds_text(since(t_start)) + " s in all)");
  return r;
}

}  // namespace farm::agent
