// farm/boards/src/initramfs.cpp: the newc cpio writer (see initramfs.hpp).
#include "farm/boards/initramfs.hpp"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <ostream>
#include <sstream>
#include <system_error>

namespace farm::boards {
namespace {

// Linux's initramfs unpacker rejects names longer than PATH_MAX (4096,
// including the NUL).
constexpr std::size_t kMaxPath = 4095;
constexpr std::uint32_t kPermMask = 07777;

std::string show_path(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\0') {
      out += "\\0";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

[[noreturn]] void error(std::string_view path, const std::string& why) {
  throw InitramfsError("initramfs: " + show_path(path) + ": " + why);
}

void check_mode(std::string_view path, std::uint32_t mode) {
  if (mode & ~kPermMask) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "mode %#o has bits beyond 07777 (only permission bits)", mode);
    error(path, buf);
  }
}

std::uint32_t type_bits(Initramfs::Kind kind) {
  switch (kind) {
    case Initramfs::Kind::directory: return S_IFDIR;
    case Initramfs::Kind::file: return S_IFREG;
    case Initramfs::Kind::symlink: return S_IFLNK;
    case Initramfs::Kind::char_device: return S_IFCHR;
  }
  return 0;
}

// One newc header: "070701" and 13 fields of 8 hex digits; header + name
// (with its NUL) padded to 4 bytes, then the data padded to 4 bytes.
void append_entry(std::string& out, std::uint32_t ino, std::uint32_t mode, std::uint32_t nlink,
                  std::string_view name, std::string_view data, std::uint32_t rmajor,
                  std::uint32_t rminor) {
  char hdr[111];
  std::snprintf(hdr, sizeof hdr, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino,
                mode, 0u /*uid*/, 0u /*gid*/, nlink, 0u /*mtime*/,
                static_cast<std::uint32_t>(data.size()), 0u /*devmajor*/, 0u /*devminor*/, rmajor,
                rminor, static_cast<std::uint32_t>(name.size() + 1), 0u /*check*/);
  out.append(hdr, 110);
  out.append(name);
  out.push_back('\0');
  while (out.size() % 4) out.push_back('\0');
  out.append(data);
  while (out.size() % 4) out.push_back('\0');
}

}  // namespace

void validate_archive_path(std::string_view path) {
  if (path.empty()) error(path, "empty path");
  if (path.find('\0') != std::string_view::npos) error(path, "path contains a NUL byte");
  if (path.front() == '/')
    error(path, "absolute path: archive paths are relative to the guest's root (\"job/argv\", not \"/job/argv\")");
  if (path.size() > kMaxPath) error(path.substr(0, 64), "path longer than 4095 bytes");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(start, end - start);
    if (comp.empty()) error(path, "empty path component (\"//\" or a trailing \"/\")");
    if (comp == ".") error(path, "\".\" component");
    if (comp == "..") error(path, "\"..\" component");
    start = end + 1;
  }
}

Initramfs::Entry& Initramfs::add(std::string_view path, Kind kind, std::uint32_t mode) {
  validate_archive_path(path);
  check_mode(path, mode);
  std::string p(path);
  if (auto it = index_.find(p); it != index_.end()) {
    Entry& old = entries_[it->second];
    if (old.implicit && kind == Kind::directory) {
      old.implicit = false;
      old.mode = mode;
      return old;
    }
    error(path, old.implicit ? "already a directory (a parent of an entry added before)"
                             : "added twice");
  }
  ensure_parents(p);
  index_.emplace(p, entries_.size());
  entries_.push_back(Entry{std::move(p), kind, mode, {}, 0, 0, false});
  return entries_.back();
}

void Initramfs::ensure_parents(const std::string& path) {
  for (std::size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string parent = path.substr(0, slash);
    if (auto it = index_.find(parent); it != index_.end()) {
      if (entries_[it->second].kind != Kind::directory)
        error(path, "parent " + show_path(parent) + " is not a directory");
      continue;
    }
    index_.emplace(parent, entries_.size());
    entries_.push_back(Entry{parent, Kind::directory, 0755, {}, 0, 0, true});
  }
}

void Initramfs::add_dir(std::string_view path, std::uint32_t mode) {
  add(path, Kind::directory, mode);
}

void Initramfs::add_file(std::string_view path, std::string_view data, std::uint32_t mode) {
  if (data.size() > 0xffffffffu) error(path, "file larger than 4 GiB (newc sizes are 32-bit)");
  add(path, Kind::file, mode).data.assign(data);
}

void Initramfs::add_file_from(std::string_view path, const std::filesystem::path& host_file,
                              std::optional<std::uint32_t> mode) {
  struct stat st {};
  if (::stat(host_file.c_str(), &st) != 0)
    error(path, "cannot read host file " + show_path(host_file.string()) + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    error(path, "host file " + show_path(host_file.string()) + " is not a regular file");
  std::ifstream in(host_file, std::ios::binary);
  if (!in)
    error(path, "cannot open host file " + show_path(host_file.string()) + ": " + std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) error(path, "error reading host file " + show_path(host_file.string()));
  add_file(path, data, mode.value_or(static_cast<std::uint32_t>(st.st_mode) & kPermMask));
}

void Initramfs::add_symlink(std::string_view path, std::string_view target) {
  if (target.empty()) error(path, "empty symlink target");
  if (target.find('\0') != std::string_view::npos) error(path, "symlink target contains a NUL byte");
  if (target.size() > kMaxPath) error(path, "symlink target longer than 4095 bytes");
  add(path, Kind::symlink, 0777).data.assign(target);
}

void Initramfs::add_char_device(std::string_view path, std::uint32_t major, std::uint32_t minor,
                                std::uint32_t mode) {
  Entry& e = add(path, Kind::char_device, mode);
  e.rdev_major = major;
  e.rdev_minor = minor;
}

bool Initramfs::contains(std::string_view path) const {
  return index_.count(std::string(path)) != 0;
}

std::string Initramfs::bytes() const {
  std::string out;
  std::size_t total = 0;
  for (const Entry& e : entries_) total += 128 + e.path.size() + e.data.size();
  out.reserve(total + 1024);
  std::uint32_t ino = 1;
  for (const Entry& e : entries_) {
    std::uint32_t nlink = e.kind == Kind::directory ? 2 : 1;
    append_entry(out, ino++, type_bits(e.kind) | e.mode, nlink, e.path, e.data, e.rdev_major,
                 e.rdev_minor);
  }
  append_entry(out, 0, 0, 1, "TRAILER!!!", {}, 0, 0);
  while (out.size() % 512) out.push_back('\0');
  return out;
}

void Initramfs::write(std::ostream& out) const {
  const std::string b = bytes();
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
  if (!out) throw InitramfsError("initramfs: writing the archive to a stream failed");
}

void Initramfs::write(const std::filesystem::path& file) const {
  const std::string b = bytes();
  std::filesystem::path tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw InitramfsError("initramfs: cannot create " + show_path(tmp.string()) + ": " +
                           std::strerror(errno));
    out.write(b.data(), static_cast<std::streamsize>(b.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw InitramfsError("initramfs: writing " + show_path(tmp.string()) + " failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    const std::string why = ec.message();
    std::filesystem::remove(tmp, ec);
    throw InitramfsError("initramfs: cannot rename " + show_path(tmp.string()) + " to " +
                         show_path(file.string()) + ": " + why);
  }
}

std::string Initramfs::nul_join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (s.find('\0') != std::string::npos)
      throw InitramfsError("initramfs: " + show_path(s) + ": contains a NUL byte (cannot be NUL-joined)");
    out += s;
    out.push_back('\0');
  }
  return out;
}

std::string Initramfs::nul_join(std::initializer_list<std::string_view> items) {
  std::vector<std::string> v;
  for (std::string_view s : items) v.emplace_back(s);
  return nul_join(v);
}

}  // namespace farm::boards
