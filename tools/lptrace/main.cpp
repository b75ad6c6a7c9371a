// lptrace: a function tracer built on libpatch.
//   lptrace run [-f PATTERN]... [--exit] [--per-thread] [--json] [-o FILE] [--record TRACE [--ring N]]
//               [--interval S] [--agent SO] [--sysroot DIR] -- PROGRAM ARGS...
//   lptrace attach PID -f PATTERN... [--exit] [--duration S] [--keep] [--json] [-o FILE] [--record TRACE [--ring N]]
//   lptrace detach PID
//   lptrace ctl PID enable|disable PATTERN [--exit] | stats [--json]
// `run` starts PROGRAM with libpatch-trace.so preloaded (tools/lptrace/agent),
// which probes every function the patterns select while the program runs, and
// prints per process what it saw when the program ends. `attach` loads the
// agent into a running process (inject.hpp), probes, waits, prints, and
// removes every probe again; `ctl` talks to the agent of a traced process.
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "agent/ctl_protocol.hpp"
#include "agent/functions.hpp"
#include "ctl_client.hpp"
#include "inject.hpp"
#include "report.hpp"

namespace {

volatile sig_atomic_t g_child = 0;

void forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

std::string self_dir() {
  char buf[4096];
  const ssize_t r = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (r <= 0) return ".";
  return std::filesystem::path(std::string(buf, size_t(r))).parent_path().string();
}

// The agent: $LPTRACE_AGENT, else next to lptrace (the build tree), else
// ../lib/libpatch-trace.so (an install).
std::string find_agent(std::string *why) {
  if (const char *e = std::getenv("LPTRACE_AGENT"); e && *e) {
    if (access(e, R_OK) == 0) return std::filesystem::absolute(e).string();
    *why = std::string("LPTRACE_AGENT=") + e + ": " + std::strerror(errno);
    return "";
  }
  const std::string dir = self_dir();
  for (const std::string &c : {dir + "/libpatch-trace.so", dir + "/../lib/libpatch-trace.so"})
    if (access(c.c_str(), R_OK) == 0) return std::filesystem::canonical(c).string();
  *why = "libpatch-trace.so not found next to lptrace (" + dir + ") nor in " + dir + "/../lib (set LPTRACE_AGENT)";
  return "";
}

// ---- run: foreign programs (riscv64, aarch64 under qemu-user) ----
// `run` reads PROGRAM's ELF header: a program of this host's machine runs
// natively with the agent in LD_PRELOAD (above); a riscv64 or aarch64 one on
// a host of another machine runs as
//   qemu-ARCH -L SYSROOT -0 PROGRAM -E LD_PRELOAD=AGENT -E LPTRACE_...=... PATH ARGS...
// with an agent of its machine (the riscv64 and aarch64 presets build one).
// Without binfmt_misc that is the only way to start it, and it keeps the
// foreign agent out of the host's LD_PRELOAD (qemu's own x86-64 loader would
// refuse it) and the environment lptrace adds in the guest's. What cannot
// work there: a static program (no PT_INTERP: no loader reads LD_PRELOAD,
// refused), programs the guest exec()s (qemu-user hands execve to the host
// kernel, which cannot run a foreign ELF without binfmt_misc: ENOEXEC),
// attach (inject.cpp is x86-64 ptrace code, and the tracee would be qemu).
#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
#elif defined(__riscv) && __riscv_xlen == 64
constexpr uint16_t kHostMachine = EM_RISCV;
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
#else
#error "lptrace: unknown host machine"
#endif

// The machines `run` starts under qemu-user (64-bit little-endian programs of
// a machine other than the host's). `name` names the emulator (qemu-NAME).
struct Foreign {
  uint16_t machine;
  const char *name;       // riscv64: qemu-riscv64
  const char *agent_env;  // the agent's variable (after --agent)
  const char *triplet;    // /usr/TRIPLET: the default sysroot; ../lib/TRIPLET next to lptrace: an install's agent
  const char *built;      // where a build of this project puts the agent
  const char *presets;    // which presets build it
  const char *libc;       // Debian's package of the sysroot
};
constexpr Foreign kForeign[] = {
    {EM_RISCV, "riscv64", "LPTRACE_AGENT_RISCV64", "riscv64-linux-gnu",
     "build/riscv64-gc/tools/lptrace/libpatch-trace.so", "the riscv64-gc and riscv64-g presets", "libc6-riscv64-cross"},
    {EM_AARCH64, "aarch64", "LPTRACE_AGENT_AARCH64", "aarch64-linux-gnu",
     "build/aarch64/tools/lptrace/libpatch-trace.so", "the aarch64 preset", "libc6-arm64-cross"},
};

struct ElfInfo {
  bool elf = false; // false: not an ELF file (a script, ...): run as today
  bool is64 = false;
  bool little = false;
  uint16_t type = 0, machine = 0;
  bool dynamic = false; // has PT_INTERP: a loader that reads LD_PRELOAD
  std::string interp;
};

// False if PATH cannot be read; a short or foreign file is just not an ELF.
bool read_elf(const std::string &path, ElfInfo *out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ElfInfo e;
  unsigned char id[EI_NIDENT] = {};
  if (pread(fd, id, sizeof id, 0) == ssize_t(sizeof id) && std::memcmp(id, ELFMAG, SELFMAG) == 0 &&
      (id[EI_CLASS] == ELFCLASS32 || id[EI_CLASS] == ELFCLASS64)) {
    e.elf = true;
    e.is64 = id[EI_CLASS] == ELFCLASS64;
    e.little = id[EI_DATA] == ELFDATA2LSB;
    uint64_t phoff = 0;
    unsigned phnum = 0, phentsize = 0;
    if (e.is64) {
      Elf64_Ehdr h{};
      if (pread(fd, &h, sizeof h, 0) == ssize_t(sizeof h))
        e.type = h.e_type, e.machine = h.e_machine, phoff = h.e_phoff, phnum = h.e_phnum, phentsize = h.e_phentsize;
    } else {
      Elf32_Ehdr h{};
      if (pread(fd, &h, sizeof h, 0) == ssize_t(sizeof h))
        e.type = h.e_type, e.machine = h.e_machine, phoff = h.e_phoff, phnum = h.e_phnum, phentsize = h.e_phentsize;
    }
    // The program headers of a 64-bit little-endian file (every one run or
    // loaded here): PT_INTERP.
    if (e.is64 && e.little && phentsize == sizeof(Elf64_Phdr))
      for (unsigned i = 0; i < phnum && i < 4096; ++i) {
        Elf64_Phdr ph{};
        if (pread(fd, &ph, sizeof ph, off_t(phoff + uint64_t(i) * sizeof ph)) != ssize_t(sizeof ph)) break;
        if (ph.p_type != PT_INTERP) continue;
        e.dynamic = true;
        std::string s(size_t(std::min<uint64_t>(ph.p_filesz, 4096)), '\0');
        if (pread(fd, s.data(), s.size(), off_t(ph.p_offset)) == ssize_t(s.size())) e.interp = s.c_str();
        break;
      }
  }
  close(fd);
  *out = e;
  return true;
}

std::string machine_name(const ElfInfo &e) {
  switch (e.machine) {
  case EM_X86_64: return e.is64 ? "x86-64" : "x32";
  case EM_386: return "i386";
  case EM_RISCV: return e.is64 ? "riscv64" : "riscv32";
  case EM_AARCH64: return "aarch64";
  case EM_ARM: return "arm";
  case EM_PPC64: return "ppc64";
  default: return "ELF machine " + std::to_string(e.machine);
  }
}

// The qemu-user machine `e` runs under, nullptr if none (the host's own
// machine runs natively).
const Foreign *foreign_for(const ElfInfo &e) {
  if (!e.is64 || !e.little || e.machine == kHostMachine) return nullptr;
  for (const Foreign &f : kForeign)
    if (f.machine == e.machine) return &f;
  return nullptr;
}

// "riscv64 and aarch64 ones under qemu-riscv64 and qemu-aarch64": what runs
// under qemu-user on this host.
std::string foreign_summary() {
  std::string names, qemus;
  size_t n = 0;
  for (const Foreign &f : kForeign) {
    if (f.machine == kHostMachine) continue;
    const char *sep = n == 0 ? "" : " and ";
    names += sep + std::string(f.name);
    qemus += sep + std::string("qemu-") + f.name;
    ++n;
  }
  return names + " ones under " + qemus;
}

// execvp's search: NAME with a '/' as it is, else the first executable
// regular file NAME in $PATH. "" if there is none.
std::string resolve_in_path(const std::string &name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return name;
  const char *p = std::getenv("PATH");
  const std::string path = p ? p : "/bin:/usr/bin";
  for (size_t at = 0; at <= path.size();) {
    const size_t colon = std::min(path.find(':', at), path.size());
    const std::string dir = colon > at ? path.substr(at, colon - at) : ".";
    const std::string c = dir + "/" + name;
    struct stat st {};
    if (stat(c.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(c.c_str(), X_OK) == 0) return c;
    at = colon + 1;
  }
  return "";
}

// The agent for a program of `prog`'s machine: --agent (any machine), else
// the native agent (find_agent) or, for a foreign machine, its
// $LPTRACE_AGENT_<ARCH>, else ../lib/<triplet>/libpatch-trace.so next to
// lptrace (an install). The file must be a shared object of the program's
// machine (`check`: the program is an ELF file lptrace could read).
std::string find_agent_for(const ElfInfo &prog, const std::string &name, const std::string &opt, bool check,
                           std::string *why) {
  std::string agent, from;
  const std::string mach = machine_name(prog);
  const Foreign *f = foreign_for(prog);
  if (!opt.empty()) {
    if (access(opt.c_str(), R_OK) != 0) {
      *why = "--agent " + opt + ": " + std::strerror(errno);
      return "";
    }
    agent = std::filesystem::absolute(opt).string();
    from = "--agent ";
  } else if (!f) {
    agent = find_agent(why);
    if (agent.empty()) return "";
  } else if (const char *e = std::getenv(f->agent_env); e && *e) {
    from = std::string(f->agent_env) + "=";
    if (access(e, R_OK) != 0) {
      *why = from + e + ": " + std::strerror(errno);
      return "";
    }
    agent = std::filesystem::absolute(e).string();
  } else {
    const std::string c = self_dir() + "/../lib/" + f->triplet + "/libpatch-trace.so";
    if (access(c.c_str(), R_OK) != 0) {
      *why = name + " is built for " + mach + " and no " + mach + " agent was found: pass --agent " + f->built +
             " (built by " + f->presets + "), set " + f->agent_env + ", or install it as " + c;
      return "";
    }
    agent = std::filesystem::canonical(c).string();
  }
  ElfInfo a;
  if (!check) return agent;
  if (!read_elf(agent, &a) || !a.elf || a.type != ET_DYN) {
    *why = "the agent " + from + agent + " is not an ELF shared object";
    return "";
  }
  if (a.machine != prog.machine || a.is64 != prog.is64) {
    *why = "the agent " + from + agent + " is built for " + machine_name(a) + ", but " + name + " is built for " +
           mach + ": the agent must be built for the program's machine" +
           (f ? std::string(" (") + f->built + ")" : std::string());
    return "";
  }
  return agent;
}

// --interval: one live line per tick on a terminal (calls/s of the busiest
// functions of the traced process, from its agent's stats), nothing when
// stderr is not a terminal.
struct Live {
  double interval = 0;
  std::map<std::string, uint64_t> last;
  void tick(pid_t pid, double dt) {
    nlohmann::json reply;
    std::string why;
    if (!lptrace::ctl_request(pid, "stats", &reply, &why)) return;
    std::vector<std::pair<double, std::string>> rates;
    for (const auto &f : reply["report"].value("functions", nlohmann::json::array())) {
      const std::string name = f.value("name", "?");
      const uint64_t calls = f.value("calls", 0ull);
      const uint64_t before = last.count(name) ? last[name] : 0;
      last[name] = calls;
      if (calls > before) rates.emplace_back(double(calls - before) / dt, name);
    }
    std::sort(rates.rbegin(), rates.rend());
    std::string line = "lptrace: ";
    for (size_t i = 0; i < rates.size() && i < 4; ++i)
      line += fmt::format("{}{} {:.0f}/s", i ? ", " : "", rates[i].second, rates[i].first);
    if (rates.empty()) line += "no calls";
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  }
};

// Every -f pattern well-formed, else the first error said.
bool patterns_ok(const std::vector<std::string> &patterns) {
  for (const std::string &p : patterns) {
    lptrace::Pattern pat;
    std::string why;
    if (!lptrace::parse_pattern(p, &pat, &why)) {
      std::fprintf(stderr, "lptrace: bad -f pattern: %s\n", why.c_str());
      return false;
    }
  }
  return true;
}

int run(const std::vector<std::string> &patterns, bool exits, bool json, bool per_thread, const std::string &out_file,
        const std::string &record, uint64_t ring, double interval, const std::string &agent_opt,
        const std::string &sysroot, const std::vector<std::string> &cmd) {
  if (!patterns_ok(patterns)) return 2;
  // PROGRAM's machine: natively, or a riscv64 / aarch64 program under
  // qemu-riscv64 / qemu-aarch64. A file that is not there or not an ELF file
  // (a script) runs as today.
  const std::string prog_path = resolve_in_path(cmd[0]);
  ElfInfo prog;
  const bool known = !prog_path.empty() && read_elf(prog_path, &prog) && prog.elf;
  if (!known) {
    prog = ElfInfo{};
    prog.elf = prog.is64 = prog.little = true;
    prog.machine = kHostMachine;
  }
  ElfInfo host;
  host.is64 = true;
  host.machine = kHostMachine;
  const bool native = prog.is64 && prog.machine == kHostMachine;
  const Foreign *foreign = native ? nullptr : foreign_for(prog);
  const bool qemu = foreign != nullptr;
  if (!native && !qemu) {
    std::fprintf(stderr, "lptrace: %s is built for %s: lptrace runs %s programs natively and %s, nothing else\n",
                 prog_path.c_str(), machine_name(prog).c_str(), machine_name(host).c_str(), foreign_summary().c_str());
    return 2;
  }
  std::string why;
  const std::string agent = find_agent_for(prog, prog_path, agent_opt, known, &why);
  if (agent.empty()) {
    std::fprintf(stderr, "lptrace: %s\n", why.c_str());
    return 2;
  }
  std::string qemu_path;
  // --sysroot, else Debian's cross libc of the program's machine.
  const std::string root = !sysroot.empty() ? sysroot : qemu ? std::string("/usr/") + foreign->triplet : "";
  if (qemu) {
    const char *arch = foreign->name;
    const std::string qemu_name = std::string("qemu-") + arch;
    if (!prog.dynamic) {
      std::fprintf(stderr,
                   "lptrace: %s is a statically linked %s program (no PT_INTERP): no dynamic loader runs in it, "
                   "so LD_PRELOAD cannot load the agent; link it without -static\n",
                   prog_path.c_str(), arch);
      return 2;
    }
    qemu_path = resolve_in_path(qemu_name);
    if (qemu_path.empty()) {
      std::fprintf(stderr,
                   "lptrace: %s is a%s %s program: it runs under %s (no binfmt_misc is used), which is not "
                   "in PATH (Debian: apt-get install qemu-user)\n",
                   prog_path.c_str(), arch[0] == 'a' ? "n" : "", arch, qemu_name.c_str());
      return 2;
    }
    struct stat st {};
    const std::string loader = root + prog.interp;
    if (stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || access(loader.c_str(), R_OK) != 0) {
      std::fprintf(stderr,
                   "lptrace: %s needs the loader %s, which is not in the %s sysroot %s (--sysroot DIR; Debian: "
                   "apt-get install %s)\n",
                   prog_path.c_str(), prog.interp.c_str(), arch, root.c_str(), foreign->libc);
      return 2;
    }
    // qemu-user splits every -E argument at commas (getsubopt style); the
    // agent's path goes there (not into the host's LD_PRELOAD: qemu's own
    // loader would try to preload a foreign object).
    if (agent.find(',') != std::string::npos) {
      std::fprintf(stderr, "lptrace: the agent's path %s holds a ',': %s -E cannot pass it\n", agent.c_str(),
                   qemu_name.c_str());
      return 2;
    }
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "lptrace-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    std::fprintf(stderr, "lptrace: cannot create a directory for the reports: %s\n", std::strerror(errno));
    return 1;
  }
  const std::string dir = tmpl;
  std::string funcs;
  for (const std::string &p : patterns) funcs += p + "\n";
  std::string preload = agent;
  if (const char *old = std::getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;

  // The guest's environment under qemu: -E VAR=VALUE each (newlines pass
  // unchanged, LPTRACE_FUNCS holds one pattern per line). A value with a ','
  // (a glob like '[a,b]*', a TMPDIR) cannot go through -E: it is put in
  // qemu's own environment instead, which qemu-user gives the guest as its
  // initial environment (qemu reads no LPTRACE_* variable itself).
  std::vector<std::pair<std::string, std::string>> guest_env{
      {"LPTRACE_FUNCS", funcs}, {"LPTRACE_OUT", dir + "/report"}, {"LPTRACE_EXIT", exits ? "1" : "0"}};
  if (!record.empty()) guest_env.emplace_back("LPTRACE_RECORD", std::to_string(ring));
  std::vector<std::string> qemu_argv, qemu_env;
  if (qemu) {
    // LPTRACE_QEMU=1: the agent's cue that it runs under qemu-user, whose
    // 7.2 aborts when a fork child of a multi-threaded guest creates a thread
    // (plugins/core.c: qemu_plugin_vcpu_init_hook: assertion failed).
    qemu_argv = {qemu_path, "-L", root, "-0", cmd[0], "-E", "LD_PRELOAD=" + agent, "-E", "LPTRACE_QEMU=1"};
    for (const auto &[k, v] : guest_env) {
      if (v.find(',') != std::string::npos) {
        qemu_env.push_back(k);
        continue;
      }
      qemu_argv.push_back("-E");
      qemu_argv.push_back(k + "=" + v);
    }
    qemu_argv.push_back(prog_path);
    qemu_argv.insert(qemu_argv.end(), cmd.begin() + 1, cmd.end());
  }
  const std::string &exec_name = qemu ? qemu_path : cmd[0];

  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return 1;
  const pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "lptrace: fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    close(ready[0]);
    std::vector<char *> argv;
    if (qemu) {
      for (const auto &[k, v] : guest_env)
        if (std::find(qemu_env.begin(), qemu_env.end(), k) != qemu_env.end()) setenv(k.c_str(), v.c_str(), 1);
      for (const std::string &a : qemu_argv) argv.push_back(const_cast<char *>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
    } else {
      setenv("LD_PRELOAD", preload.c_str(), 1);
      for (const auto &[k, v] : guest_env) setenv(k.c_str(), v.c_str(), 1);
      for (const std::string &a : cmd) argv.push_back(const_cast<char *>(a.c_str()));
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
    }
    const int e = errno;
    (void)!write(ready[1], &e, sizeof e);
    _exit(127);
  }
  close(ready[1]);
  g_child = pid;
  struct sigaction sa {};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int exec_errno = 0;
  const bool exec_failed = read(ready[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
  close(ready[0]);
  int status = 0;
  Live live;
  live.interval = !exec_failed && isatty(2) ? interval : 0;
  bool printed_live = false;
  if (live.interval > 0) {
    auto t = std::chrono::steady_clock::now();
    for (;;) {
      const pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR)) break;
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count() >= live.interval) {
        const auto now = std::chrono::steady_clock::now();
        live.tick(pid, std::chrono::duration<double>(now - t).count());
        t = now;
        printed_live = true;
      }
      usleep(20000);
    }
    if (printed_live) std::fprintf(stderr, "\r\033[K");
  } else {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (exec_failed) {
    std::fprintf(stderr, "lptrace: cannot run %s: %s\n", exec_name.c_str(), std::strerror(exec_errno));
    std::filesystem::remove_all(dir);
    return 127;
  }
  std::string read_why;
  const auto reports = lptrace::read_reports(dir, "report", &read_why);
  long recorded = -2;
  if (!record.empty()) recorded = lptrace::write_trace(dir, "report", reports, record, &read_why);
  std::filesystem::remove_all(dir);
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::string text = json ? lptrace::format_json(reports) : lptrace::format_table(reports, per_thread);
  // Notes follow a table; with --json they go to stderr (the JSON stays JSON).
  std::string notes;
  if (recorded >= 0) notes += "lptrace: " + std::to_string(recorded) + " events written to " + record + "\n";
  if (!read_why.empty()) notes += "lptrace: " + read_why;
  if (WIFSIGNALED(status))
    notes += "lptrace: " + cmd[0] + " died of signal " + std::to_string(WTERMSIG(status)) +
            (reports.empty() ? ": no report (the agent reports at exit, _exit, exec and SIGINT/SIGTERM/SIGHUP left at their "
                               "default; not at SIGKILL or a crash)"
                             : "") + "\n";
  else if (reports.empty())
    notes += "lptrace: no report from " + cmd[0] + " (it did not load the agent: a static program, or LD_PRELOAD removed)\n";
  FILE *out = stderr;
  if (!out_file.empty()) {
    out = std::fopen(out_file.c_str(), "we");
    if (!out) {
      std::fprintf(stderr, "lptrace: cannot write %s: %s\n", out_file.c_str(), std::strerror(errno));
      return rc ? rc : 1;
    }
  }
  if (json) std::fwrite(notes.data(), 1, notes.size(), stderr);
  else text += notes;
  std::fwrite(text.data(), 1, text.size(), out);
  if (out != stderr) std::fclose(out);
  return rc;
}


volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

int print_report(const nlohmann::json &report, bool json, const std::string &out_file) {
  const std::vector<nlohmann::json> reports{report};
  const std::string text = json ? lptrace::format_json(reports) : lptrace::format_table(reports);
  FILE *out = stderr;
  if (!out_file.empty() && !(out = std::fopen(out_file.c_str(), "we"))) {
    std::fprintf(stderr, "lptrace: cannot write %s: %s\n", out_file.c_str(), std::strerror(errno));
    return 1;
  }
  std::fwrite(text.data(), 1, text.size(), out);
  if (out != stderr) std::fclose(out);
  return 0;
}

bool process_alive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

int attach(pid_t pid, const std::vector<std::string> &patterns, bool exits, double duration, bool keep, bool json,
           const std::string &out_file, const std::string &record, uint64_t ring) {
  if (!patterns_ok(patterns)) return 2;
  if (pid <= 0 || !process_alive(pid)) {
    std::fprintf(stderr, "lptrace: no process %d\n", int(pid));
    return 1;
  }
  nlohmann::json reply;
  std::string why;
  if (!lptrace::ctl_request(pid, "stats", &reply, &why)) {
    // A program under qemu-user: the agent would be loaded into qemu itself.
    char exe[4096];
    const ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), exe, sizeof exe - 1);
    if (n > 0 && std::filesystem::path(std::string(exe, size_t(n))).filename().string().rfind("qemu-", 0) == 0) {
      std::fprintf(stderr,
                   "lptrace: process %d is %.*s, emulating another machine's program: the agent would load into qemu "
                   "itself; start the program with `lptrace run` (then `lptrace ctl %d ...` works)\n",
                   int(pid), int(n), exe, int(pid));
      return 1;
    }
    // No agent there yet: load one. The marker tells it it was attached.
    std::string agent = find_agent(&why);
    if (agent.empty()) {
      std::fprintf(stderr, "lptrace: %s\n", why.c_str());
      return 2;
    }
    const std::string dir = lptrace::ctl_dir(), marker = lptrace::attach_marker_path(pid);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "lptrace: cannot create %s: %s\n", dir.c_str(), std::strerror(errno));
      return 1;
    }
    const int mfd = open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (mfd < 0) {
      std::fprintf(stderr, "lptrace: cannot create %s: %s\n", marker.c_str(), std::strerror(errno));
      return 1;
    }
    close(mfd);
    if (lptrace::inject_agent(pid, agent, &why) != 0) {
      unlink(marker.c_str());
      std::fprintf(stderr, "lptrace: cannot attach to %d: %s\n", int(pid), why.c_str());
      return 1;
    }
    bool up = false;
    for (int i = 0; i < 500 && !up; ++i) {
      up = lptrace::ctl_request(pid, "stats", &reply, &why);
      if (!up) usleep(10000);
    }
    unlink(marker.c_str());
    if (!up) {
      std::fprintf(stderr, "lptrace: the agent loaded into %d does not answer: %s\n", int(pid), why.c_str());
      return 1;
    }
  }
  // --record: the rings first, so every probed call from the first batch on is kept.
  if (!record.empty() && !lptrace::ctl_request(pid, "record " + std::to_string(ring), &reply, &why)) {
    std::fprintf(stderr, "lptrace: record: %s\n", why.c_str());
    return 1;
  }
  for (const std::string &p : patterns) {
    if (!lptrace::ctl_request(pid, "enable " + p + (exits ? " exit" : ""), &reply, &why)) {
      std::fprintf(stderr, "lptrace: enable %s: %s\n", p.c_str(), why.c_str());
      return 1;
    }
    std::fprintf(stderr, "lptrace: %d: %s: %d matched, %d probed, %d failed\n", int(pid), p.c_str(),
                 reply.value("matched", 0), reply.value("probed", 0), reply.value("failed", 0));
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  while (!g_stop && process_alive(pid) &&
         (duration <= 0 || std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < duration))
    usleep(20000);
  if (!process_alive(pid)) {
    std::fprintf(stderr, "lptrace: process %d ended\n", int(pid));
    return 0;
  }
  if (!lptrace::ctl_request(pid, keep ? "stats" : "detach", &reply, &why)) {
    std::fprintf(stderr, "lptrace: %s: %s\n", keep ? "stats" : "detach", why.c_str());
    return 1;
  }
  if (!record.empty()) {
    // The detach's reply carries the events (read after the last handler
    // ran); with --keep they are asked for.
    nlohmann::json events = reply.contains("events") ? reply["events"] : nlohmann::json();
    nlohmann::json ev_reply;
    if (!events.is_object() && lptrace::ctl_request(pid, "events", &ev_reply, &why)) events = ev_reply["events"];
    std::string twhy;
    const long n = lptrace::write_trace({reply["report"]}, {events}, record, &twhy);
    if (n < 0) {
      std::fprintf(stderr, "lptrace: %s", twhy.c_str());
      return 1;
    }
    std::fprintf(stderr, "lptrace: %ld events written to %s\n", n, record.c_str());
  }
  return print_report(reply["report"], json, out_file);
}

int ctl(pid_t pid, const std::string &verb, const std::string &pattern, bool exits, bool json) {
  std::string line;
  if (verb == "stats" || verb == "detach") {
    line = verb;
  } else if (verb == "enable" || verb == "disable") {
    lptrace::Pattern pat;
    std::string why;
    if (pattern.empty() || !lptrace::parse_pattern(pattern, &pat, &why)) {
      std::fprintf(stderr, "lptrace: ctl %s needs a PATTERN%s\n", verb.c_str(), why.empty() ? "" : (": " + why).c_str());
      return 2;
    }
    line = verb + " " + pattern + (exits && verb == "enable" ? " exit" : "");
  } else {
    std::fprintf(stderr, "lptrace: unknown ctl request '%s' (enable, disable, stats)\n", verb.c_str());
    return 2;
  }
  nlohmann::json reply;
  std::string why;
  if (!lptrace::ctl_request(pid, line, &reply, &why)) {
    std::fprintf(stderr, "lptrace: %s\n", why.c_str());
    return 1;
  }
  if (reply.contains("report")) return print_report(reply["report"], json, "");
  std::printf("%s\n", reply.dump().c_str());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"lptrace: a function tracer built on libpatch (live probes, no stopped threads)"};
  app.require_subcommand(1);
  auto *r = app.add_subcommand("run", "run PROGRAM with the functions PATTERN selects probed");
  std::vector<std::string> patterns, cmd;
  bool exits = false, json = false;
  std::string out_file;
  r->add_option("-f,--function", patterns,
                "[OBJECT:]FUNCTION glob (fnmatch), e.g. 'opendir', 'libc.so*:read*', 'main:lua_*'; repeatable")
      ->required();
  r->add_flag("--exit", exits, "also probe returns: latency total / mean / p50 / p99 / max");
  r->add_flag("--json", json, "the report as JSON");
  bool per_thread = false;
  r->add_flag("--per-thread", per_thread, "also a table per thread");
  r->add_option("-o,--output", out_file, "write the report to FILE (default: stderr)");
  std::string record;
  uint64_t ring = 100000;
  r->add_option("--record", record, "write the calls as a Chrome trace-event / Perfetto JSON file");
  double interval = 0;
  r->add_option("--interval", interval, "on a terminal, a live line every S seconds: calls/s of the busiest functions")
      ->check(CLI::PositiveNumber);
  r->add_option("--ring", ring, "--record: the last N events of each thread are kept (default 100000)")
      ->check(CLI::Range(uint64_t(1), uint64_t(100000000)));
  std::string agent_opt, sysroot;
  r->add_option("--agent", agent_opt,
                "the agent to preload (libpatch-trace.so built for PROGRAM's machine; a riscv64 PROGRAM runs under "
                "qemu-riscv64 with build/riscv64-gc/tools/lptrace/libpatch-trace.so, or $LPTRACE_AGENT_RISCV64; an "
                "aarch64 one under qemu-aarch64 with build/aarch64/tools/lptrace/libpatch-trace.so, or "
                "$LPTRACE_AGENT_AARCH64)");
  r->add_option("--sysroot", sysroot,
                "a riscv64 or aarch64 PROGRAM: qemu-ARCH -L DIR, its libraries' root (default: Debian's cross libc, "
                "/usr/riscv64-linux-gnu or /usr/aarch64-linux-gnu)");
  r->add_option("command", cmd, "-- PROGRAM ARGS...")->required();
  r->positionals_at_end();

  auto *at = app.add_subcommand("attach", "probe a running process (loads the agent with ptrace + dlopen)");
  int pid = 0;
  double duration = 0;
  bool keep = false;
  at->add_option("pid", pid, "the process")->required();
  at->add_option("-f,--function", patterns, "[OBJECT:]FUNCTION glob; repeatable")->required();
  at->add_flag("--exit", exits, "also probe returns (latency)");
  at->add_option("--duration", duration, "seconds to trace (default: until Ctrl-C / SIGTERM)")
      ->check(CLI::PositiveNumber);
  at->add_flag("--keep", keep, "leave the probes in (lptrace detach PID removes them)");
  at->add_flag("--json", json, "the report as JSON");
  at->add_option("-o,--output", out_file, "write the report to FILE (default: stderr)");
  std::string at_record;
  uint64_t at_ring = 100000;
  at->add_option("--record", at_record, "write the calls as a Chrome trace-event / Perfetto JSON file");
  at->add_option("--ring", at_ring, "--record: the last N events of each thread are kept (default 100000)")
      ->check(CLI::Range(uint64_t(1), uint64_t(100000000)));

  auto *dt = app.add_subcommand("detach", "remove every probe of lptrace's agent from a process (one batch)");
  dt->add_option("pid", pid, "the process")->required();

  auto *ct = app.add_subcommand("ctl", "change or read the probes of a traced process");
  std::string verb, pattern;
  ct->add_option("pid", pid, "the process")->required();
  ct->add_option("request", verb, "enable | disable | stats")->required();
  ct->add_option("pattern", pattern, "[OBJECT:]FUNCTION glob (enable, disable)");
  ct->add_flag("--exit", exits, "enable: also probe returns");
  ct->add_flag("--json", json, "stats: as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*r) return run(patterns, exits, json, per_thread, out_file, record, ring, interval, agent_opt, sysroot, cmd);
  if (*at) return attach(pid_t(pid), patterns, exits, duration, keep, json, out_file, at_record, at_ring);
  if (*dt) return ctl(pid_t(pid), "detach", "", false, false);
  return ctl(pid_t(pid), verb, pattern, exits, json);
}
