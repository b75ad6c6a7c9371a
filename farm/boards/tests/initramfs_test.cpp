// Unit tests of the newc initramfs writer (farm/boards), label boards. The
// archives are read back by our own parser here and by Debian's cpio
// (`cpio -it`, `cpio -i`), which proves the format independently.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "farm/boards/initramfs.hpp"

namespace fs = std::filesystem;
using farm::boards::Initramfs;
using farm::boards::InitramfsError;

namespace {

struct Parsed {
  std::string name;
  std::uint32_t ino, mode, uid, gid, nlink, mtime, rmajor, rminor;
  std::string data;
};

std::uint32_t hex8(const std::string& s, std::size_t at) {
  return static_cast<std::uint32_t>(std::stoul(s.substr(at, 8), nullptr, 16));
}

// A strict newc reader: magic, 4-byte alignment, the trailer, zero padding.
std::vector<Parsed> parse(const std::string& a) {
  std::vector<Parsed> out;
  std::size_t pos = 0;
  for (;;) {
    EXPECT_EQ(pos % 4, 0u);
    if (pos + 110 > a.size()) {
      ADD_FAILURE() << "truncated header at " << pos;
      return out;
    }
    EXPECT_EQ(a.substr(pos, 6), "070701") << "at " << pos;
    Parsed p{};
    p.ino = hex8(a, pos + 6);
    p.mode = hex8(a, pos + 14);
    p.uid = hex8(a, pos + 22);
    p.gid = hex8(a, pos + 30);
    p.nlink = hex8(a, pos + 38);
    p.mtime = hex8(a, pos + 46);
    std::uint32_t size = hex8(a, pos + 54);
    p.rmajor = hex8(a, pos + 78);
    p.rminor = hex8(a, pos + 86);
    std::uint32_t namesize = hex8(a, pos + 94);
    EXPECT_EQ(hex8(a, pos + 102), 0u);  // check
    p.name = a.substr(pos + 110, namesize - 1);
    EXPECT_EQ(a[pos + 110 + namesize - 1], '\0');
    pos = (pos + 110 + namesize + 3) & ~std::size_t{3};
    p.data = a.substr(pos, size);
    pos = (pos + size + 3) & ~std::size_t{3};
    if (p.name == "TRAILER!!!") break;
    out.push_back(p);
  }
  EXPECT_EQ(a.size() % 512, 0u);
  for (std::size_t i = pos; i < a.size(); i++) EXPECT_EQ(a[i], '\0') << "padding at " << i;
  return out;
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  if (st != 0) out += "\n[exit status " + std::to_string(st) + "]";
  return out;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/farm-boards-test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(Initramfs, EmptyArchiveIsTheTrailer) {
  Initramfs fs;
  std::string a = fs.bytes();
  EXPECT_EQ(a.size(), 512u);
  EXPECT_EQ(a.substr(0, 6), "070701");
  EXPECT_TRUE(parse(a).empty());
}

TEST(Initramfs, EntriesHeadersAndOrder) {
  Initramfs fs;
  fs.add_dir("dev");
  fs.add_char_device("dev/console", 5, 1);
  fs.add_file("job/argv", Initramfs::nul_join({"/job/bin/x", "a b"}));  // job/ implied
  fs.add_symlink("bin/sh", "/job/bin/x");
  fs.add_dir("tmp", 01777);
  auto e = parse(fs.bytes());
  ASSERT_EQ(e.size(), 7u);
  std::vector<std::string> names;
  for (auto& p : e) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"dev", "dev/console", "job", "job/argv", "bin", "bin/sh", "tmp"}));
  EXPECT_EQ(e[0].mode, S_IFDIR | 0755u);
  EXPECT_EQ(e[0].nlink, 2u);
  EXPECT_EQ(e[1].mode, S_IFCHR | 0600u);
  EXPECT_EQ(e[1].rmajor, 5u);
  EXPECT_EQ(e[1].rminor, 1u);
  EXPECT_EQ(e[3].mode, S_IFREG | 0644u);
  EXPECT_EQ(e[3].data, std::string("/job/bin/x\0a b\0", 15));
  EXPECT_EQ(e[5].mode, S_IFLNK | 0777u);
  EXPECT_EQ(e[5].data, "/job/bin/x");
  EXPECT_EQ(e[6].mode, S_IFDIR | 01777u);
  for (auto& p : e) {
    EXPECT_EQ(p.uid, 0u);
    EXPECT_EQ(p.gid, 0u);
    EXPECT_EQ(p.mtime, 0u);
  }
  // Inodes are unique (the kernel links entries with equal inode and nlink > 1).
  for (std::size_t i = 0; i < e.size(); i++)
    for (std::size_t j = i + 1; j < e.size(); j++) EXPECT_NE(e[i].ino, e[j].ino);
}

TEST(Initramfs, AlignmentForEveryNameAndDataLength) {
  Initramfs fs;
  std::string names = "abcdefghij";
  for (std::size_t n = 1; n <= 8; n++) {
    std::string name = "d/" + names.substr(0, n);
    fs.add_file(name, std::string(n * 3 + 1, 'x'));
  }
  auto e = parse(fs.bytes());
  ASSERT_EQ(e.size(), 9u);
  for (std::size_t n = 1; n <= 8; n++) EXPECT_EQ(e[n].data, std::string(n * 3 + 1, 'x'));
}

TEST(Initramfs, BinaryDataAndReproducible) {
  std::string bin;
  for (int i = 0; i < 1000; i++) bin.push_back(static_cast<char>(i * 7));
  auto make = [&] {
    Initramfs fs;
    fs.add_file("bin/blob", bin, 0755);
    return fs.bytes();
  };
  std::string a = make();
  EXPECT_EQ(a, make());
  auto e = parse(a);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1].data, bin);
}

TEST(Initramfs, ExplicitDirAfterImplicitSetsItsMode) {
  Initramfs fs;
  fs.add_file("job/bin/x", "x");
  fs.add_dir("job/bin", 0700);
  auto e = parse(fs.bytes());
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[1].name, "job/bin");
  EXPECT_EQ(e[1].mode, S_IFDIR | 0700u);
  EXPECT_THROW(fs.add_dir("job/bin"), InitramfsError);  // now explicit: twice is an error
}

TEST(Initramfs, BadPathsAreErrorsThatSayWhy) {
  Initramfs fs;
  fs.add_file("job/argv", "x");
  auto why = [&](auto&& f) -> std::string {
    try {
      f();
    } catch (const InitramfsError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(why([&] { fs.add_file("/init", "x"); }).find("absolute path"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("job/../init", "x"); }).find("\"..\" component"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("./init", "x"); }).find("\".\" component"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("job//x", "x"); }).find("empty path component"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_dir("job/"); }).find("empty path component"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("", "x"); }).find("empty path"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file(std::string("a\0b", 3), "x"); }).find("NUL"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file(std::string(5000, 'a'), "x"); }).find("longer than 4095"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("job/argv", "y"); }).find("added twice"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("job", "y"); }).find("already a directory"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("job/argv/x", "y"); }).find("is not a directory"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file("m", "y", 0100644); }).find("beyond 07777"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_symlink("l", ""); }).find("empty symlink target"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file_from("h", "/nonexistent/file"); }).find("/nonexistent/file"), std::string::npos);
  EXPECT_NE(why([&] { fs.add_file_from("h", "/tmp"); }).find("not a regular file"), std::string::npos);
  EXPECT_NE(why([&] { Initramfs::nul_join({std::string("a\0b", 3)}); }).find("NUL"), std::string::npos);
  // Nothing was added by the failed calls.
  EXPECT_EQ(fs.entries().size(), 2u);
}

TEST(Initramfs, AddFileFromKeepsHostModeUnlessGiven) {
  TempDir t;
  fs::path host = t.path() / "prog";
  std::ofstream(host) << "#!/bin/sh\necho hi\n";
  ::chmod(host.c_str(), 0751);
  Initramfs fs;
  fs.add_file_from("job/bin/prog", host);
  fs.add_file_from("job/bin/prog2", host, 0700);
  auto e = parse(fs.bytes());
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[2].mode, S_IFREG | 0751u);
  EXPECT_EQ(e[2].data, "#!/bin/sh\necho hi\n");
  EXPECT_EQ(e[3].mode, S_IFREG | 0700u);
}

// Debian's cpio lists the archive: names, types, modes, owners, device numbers.
TEST(Initramfs, DebianCpioListsIt) {
  TempDir t;
  Initramfs fs;
  fs.add_dir("dev");
  fs.add_char_device("dev/console", 5, 1);
  fs.add_file("job/argv", Initramfs::nul_join({"/job/bin/x"}));
  fs.add_file("job/bin/x", "#!/bin/sh\n", 0755);
  fs.add_symlink("bin/x", "/job/bin/x");
  fs.write(t.path() / "a.cpio");
  EXPECT_FALSE(fs::exists(t.path() / "a.cpio.tmp"));
  std::string names = run(std::string(LP_CPIO) + " -it --quiet < " + (t.path() / "a.cpio").string());
  EXPECT_EQ(names, "dev\ndev/console\njob\njob/argv\njob/bin\njob/bin/x\nbin\nbin/x\n");
  std::string verbose = run(std::string(LP_CPIO) + " -itv --quiet < " + (t.path() / "a.cpio").string());
  EXPECT_NE(verbose.find("crw-------   1 root     root       5,   1"), std::string::npos) << verbose;
  EXPECT_NE(verbose.find("-rwxr-xr-x   1 root     root           10"), std::string::npos) << verbose;
  EXPECT_NE(verbose.find("bin/x -> /job/bin/x"), std::string::npos) << verbose;
  EXPECT_NE(verbose.find("drwxr-xr-x   2 root     root            0"), std::string::npos) << verbose;
}

// Debian's cpio extracts it: the files' contents, modes and the symlink.
TEST(Initramfs, DebianCpioExtractsIt) {
  TempDir t;
  std::string bin;
  for (int i = 0; i < 70001; i++) bin.push_back(static_cast<char>(i % 251));
  Initramfs fs;
  fs.add_file("job/argv", Initramfs::nul_join({"/job/bin/x", "--n", "3"}));
  fs.add_file("job/bin/x", bin, 0755);
  fs.add_file("job/timeout", "2\n", 0600);
  fs.add_symlink("bin/x", "../job/bin/x");
  fs.add_dir("tmp", 0700);
  fs.write(t.path() / "a.cpio");
  fs::create_directory(t.path() / "root");
  std::string out = run("cd " + (t.path() / "root").string() + " && " + LP_CPIO +
                        " -idm --quiet --no-absolute-filenames < ../a.cpio 2>&1");
  EXPECT_EQ(out, "");
  fs::path r = t.path() / "root";
  EXPECT_EQ(slurp(r / "job/argv"), std::string("/job/bin/x\0--n\0" "3\0", 17));
  EXPECT_EQ(slurp(r / "job/bin/x"), bin);
  EXPECT_EQ(slurp(r / "bin/x"), bin);  // through the relative symlink
  EXPECT_EQ(fs::read_symlink(r / "bin/x"), "../job/bin/x");
  struct stat st {};
  ASSERT_EQ(::stat((r / "job/bin/x").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((r / "job/timeout").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_mtime, 0);
  ASSERT_EQ(::stat((r / "tmp").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

// The CLI: the standard layout and the job files, and its usage errors.
TEST(FarmInitramfsCli, WritesTheJobLayout) {
  TempDir t;
  fs::path init = t.path() / "init";
  std::ofstream(init) << "init";
  ::chmod(init.c_str(), 0700);
  fs::path cpio = t.path() / "j.cpio";
  std::string cmd = std::string(LP_FARM_INITRAMFS) + " -o " + cpio.string() + " --init " + init.string() +
                    " --file /job/bin/hello=" + init.string() + " --env A=1 --env B=x=y --timeout 7" +
                    " --symlink /bin/hello=/job/bin/hello --data /job/note=hi --argv /job/bin/hello" +
                    " --argv 'a b' -- c 2>&1";
  EXPECT_EQ(run(cmd), "");
  Initramfs dummy;
  auto e = parse(slurp(cpio));
  std::vector<std::string> names;
  for (auto& p : e) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"dev", "proc", "sys", "job", "job/bin", "bin", "tmp", "dev/console",
                                              "init", "job/bin/hello", "bin/hello", "job/note", "job/argv",
                                              "job/env", "job/timeout"}));
  auto find = [&](const std::string& n) {
    for (auto& p : e)
      if (p.name == n) return p;
    return Parsed{};
  };
  EXPECT_EQ(find("init").mode, S_IFREG | 0755u);
  EXPECT_EQ(find("job/bin/hello").mode, S_IFREG | 0700u);
  EXPECT_EQ(find("tmp").mode, S_IFDIR | 01777u);
  EXPECT_EQ(find("job/argv").data, std::string("/job/bin/hello\0a b\0c\0", 21));
  EXPECT_EQ(find("job/env").data, std::string("A=1\0B=x=y\0", 10));
  EXPECT_EQ(find("job/timeout").data, "7\n");
  EXPECT_EQ(find("job/note").data, "hi");
}

TEST(FarmInitramfsCli, UsageErrors) {
  TempDir t;
  std::string exe = LP_FARM_INITRAMFS;
  std::string o = " -o " + (t.path() / "x.cpio").string();
  auto err = [&](const std::string& args) { return run(exe + args + " 2>&1"); };
  EXPECT_NE(err(o + " --argv x").find("--init HOST_INIT is required"), std::string::npos);
  EXPECT_NE(err(o + " --init /nonexistent --argv x").find("cannot read host file \"/nonexistent\""),
            std::string::npos);
  EXPECT_NE(err(o + " --init /bin/sh").find("no job"), std::string::npos);
  EXPECT_NE(err(o + " --init /bin/sh --file job/x=/bin/sh --argv x").find("must be absolute"), std::string::npos);
  EXPECT_NE(err(o + " --init /bin/sh --file /job/../x=/bin/sh --argv x").find("\"..\" component"),
            std::string::npos);
  EXPECT_NE(err(o + " --init /bin/sh --file /init=/bin/sh --argv x").find("added twice"), std::string::npos);
  EXPECT_NE(err(o + " --init /bin/sh --timeout 2s --argv x").find("whole seconds"), std::string::npos);
  EXPECT_NE(err(o + " --init /bin/sh --env =x --argv x").find("NAME=VALUE"), std::string::npos);
  EXPECT_NE(err(" --bogus").find("unknown argument"), std::string::npos);
  EXPECT_FALSE(fs::exists(t.path() / "x.cpio"));
}
