// farm/boards/include/farm/boards/initramfs.hpp: writes the initramfs of a
// virtual board: an uncompressed "newc" cpio archive (the format Linux
// unpacks into its rootfs; Documentation/driver-api/early-userspace/
// buffer-format.rst), made in memory without root: every entry is owned by
// uid/gid 0, has mtime 0 and the mode given here, whatever the host files
// are. The same calls give the same bytes.
//
//   farm::boards::Initramfs fs;
//   fs.add_file_from("init", "build/host/boards/init-riscv64", 0755);
//   fs.add_file_from("job/bin/patch-stress", host_binary);   // job/, job/bin/ implied
//   fs.add_file("job/argv", farm::boards::Initramfs::nul_join({"/job/bin/patch-stress", "--seed", "1"}));
//   fs.write("job.cpio");
//
// Paths are archive paths, relative to the guest's root ("job/argv" is
// /job/argv in the guest): not absolute, no empty, "." or ".." component,
// no NUL, at most 4095 bytes, each added once. A missing parent directory is
// added (mode 0755) before its first child; add_dir() on such a directory
// later only sets its mode. Every error is a farm::boards::InitramfsError
// whose message names the path and the reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace farm::boards {

class InitramfsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Initramfs {
 public:
  enum class Kind : std::uint8_t { directory, file, symlink, char_device };

  struct Entry {
    std::string path;    // archive path ("job/bin/x")
    Kind kind;
    std::uint32_t mode;  // permission bits only (07777); the type is from kind
    std::string data;    // file contents, or the symlink's target
    std::uint32_t rdev_major = 0;
    std::uint32_t rdev_minor = 0;
    bool implicit = false;  // a parent directory nobody added explicitly
  };

  // A directory (mode: permission bits).
  void add_dir(std::string_view path, std::uint32_t mode = 0755);
  // A regular file holding `data` (any bytes).
  void add_file(std::string_view path, std::string_view data, std::uint32_t mode = 0644);
  // A regular file with the contents of `host_file`, read now; mode: the host
  // file's permission bits unless given.
  void add_file_from(std::string_view path, const std::filesystem::path& host_file,
                     std::optional<std::uint32_t> mode = std::nullopt);
  // A symbolic link to `target` (taken as is: it may be absolute, it is not
  // required to exist).
  void add_symlink(std::string_view path, std::string_view target);
  // A character device node (e.g. "dev/console", 5, 1): the kernel creates it
  // while unpacking, so no root is needed here.
  void add_char_device(std::string_view path, std::uint32_t major, std::uint32_t minor,
                       std::uint32_t mode = 0600);

  bool contains(std::string_view path) const;
  // The entries in archive order (parents before children).
  const std::vector<Entry>& entries() const { return entries_; }

  // The archive: every entry, then the TRAILER!!! entry, zero-padded to a
  // multiple of 512 bytes.
  std::string bytes() const;
  void write(std::ostream& out) const;
  // Writes `file` atomically (a temporary next to it, then rename).
  void write(const std::filesystem::path& file) const;

  // Strings joined with a NUL after each one: the format of /job/argv and
  // /job/env of the board-init protocol.
  static std::string nul_join(const std::vector<std::string>& items);
  static std::string nul_join(std::initializer_list<std::string_view> items);

 private:
  Entry& add(std::string_view path, Kind kind, std::uint32_t mode);
  void ensure_parents(const std::string& path);

  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// Checks an archive path; throws InitramfsError naming the problem.
void validate_archive_path(std::string_view path);

}  // namespace farm::boards
