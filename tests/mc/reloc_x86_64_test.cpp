// x86-64 relocator: emitted bytes decode to the expected instructions/targets,
// precise errors, and native differential execution of the sample functions with
// the site jumping to the relocated copy at every instruction boundary.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>

#include "mc/decoder.hpp"
#include "samples.hpp"
#include "x86_64/relocator.hpp"

using namespace lp;
using mc::Flow;
using mc::RelocStatus;

namespace {

const samples::Blob &blob() { return *samples::blob("x86_64"); }
const samples::SampleFn &fn(const char *name) {
  for (size_t i = 0; i < blob().nfns; ++i)
    if (!std::strcmp(blob().fns[i].name, name)) return blob().fns[i];
  throw std::runtime_error(name);
}

struct Fixture : ::testing::Test {
  std::unique_ptr<mc::Decoder> dec = mc::Decoder::create("x86_64");
  uintptr_t base = 0x400000; // where the blob pretends to live

  mc::RelocInput input(const char *f, uint32_t off) {
    const auto &s = fn(f);
    mc::RelocInput in;
    in.site = base + s.offset + off;
    in.code = blob().code + s.offset + off;
    in.avail = s.size - off;
    in.min_len = x86_64::kSiteJumpLen;
    in.func_start = base + s.offset;
    in.func_code = blob().code + s.offset;
    in.func_size = s.size;
    return in;
  }
  std::vector<mc::Insn> decode_all(const mc::Relocation &r) {
    std::vector<mc::Insn> v;
    size_t off = 0, lit = 0;
    while (off < r.code.size()) {
      if (lit < r.literals.size() && r.literals[lit] == off) {
        off += 8;
        ++lit;
        continue;
      }
      mc::Insn i = dec->decode(r.code.data() + off, r.code.size() - off, r.dest + off);
      EXPECT_TRUE(i.valid) << "undecodable OOL byte at +" << off;
      if (!i.valid) break;
      v.push_back(i);
      off += i.length;
    }
    return v;
  }
};

} // namespace

TEST_F(Fixture, RipRelativeRewritten) {
  // x_pcrel+1: mov rbp,rsp; mov eax,[rip+x_data]  (3 + 6 = 9 bytes)
  auto in = input("x_pcrel", 1);
  const uintptr_t dest = base + 0x7000000;
  auto r = x86_64::relocate(*dec, in, dest);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.displaced_len, 9u);
  EXPECT_EQ(r.boundaries, (std::vector<uint32_t>{0, 3}));
  ASSERT_EQ(r.pc_map.size(), 2u);
  EXPECT_EQ(r.map_pc(in.site + 3), dest + 3);
  auto v = decode_all(r);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_TRUE(v[1].rip_relative);
  EXPECT_EQ(v[1].mem_target, base + fn("x_data").offset);
  EXPECT_EQ(v[2].flow, Flow::Jump);
  EXPECT_EQ(v[2].target, in.site + 9);
  EXPECT_LE(r.code.size(), x86_64::plan_relocation(*dec, in).max_code_size);
}

TEST_F(Fixture, JccWidenedAndCallKeepsReturnAddress) {
  // x_pcrel+0xc: je rel8 (2) + call rel32 (5)
  auto in = input("x_pcrel", 0xc);
  const uintptr_t dest = base + 0x10000;
  auto r = x86_64::relocate(*dec, in, dest);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.displaced_len, 7u);
  auto v = decode_all(r);
  // jcc rel32; push imm32; mov dword [rsp+4], imm32; jmp rel32 (callee); jmp back
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0].name, "JCC_4");
  EXPECT_EQ(v[0].target, base + 0x16);
  EXPECT_EQ(v[1].name, "PUSH64i32");
  EXPECT_EQ(v[3].flow, Flow::Jump);
  EXPECT_EQ(v[3].target, base + fn("x_twice").offset);
  // The pushed return address is the original next instruction (site + 7).
  const uint8_t *p = r.code.data() + v[0].length;
  uint32_t lo, hi;
  std::memcpy(&lo, p + 1, 4);
  std::memcpy(&hi, p + 5 + 4, 4);
  EXPECT_EQ((uint64_t(hi) << 32) | lo, in.site + 7);
  EXPECT_EQ(v[4].target, in.site + 7);
}

TEST_F(Fixture, FarDestinationUsesAbsoluteJumps) {
  auto in = input("x_pcrel", 0xc); // je + call: no rip-relative data
  const uintptr_t dest = base + 0x300000000ull;
  auto r = x86_64::relocate(*dec, in, dest);
  ASSERT_TRUE(r.ok()) << r.reason;
  auto v = decode_all(r);
  // inverted jcc over jmp [rip+0]; .quad; push; mov; jmp [rip+0]; .quad; jmp [rip+0]; .quad
  ASSERT_GE(v.size(), 2u);
  EXPECT_EQ(v[0].name, "JCC_1");
  EXPECT_EQ(r.code[0], 0x75); // jne (inverted je)
  EXPECT_EQ(r.code[1], 14);
  EXPECT_EQ(r.code[2], 0xff);
  EXPECT_EQ(r.code[3], 0x25);
  uint64_t t;
  std::memcpy(&t, &r.code[8], 8);
  EXPECT_EQ(t, base + 0x16);
  EXPECT_LE(r.code.size(), x86_64::plan_relocation(*dec, in).max_code_size);
}

TEST_F(Fixture, RipRelativeOutOfRange) {
  auto in = input("x_pcrel", 1);
  auto r = x86_64::relocate(*dec, in, base + 0x300000000ull);
  EXPECT_EQ(r.status, RelocStatus::Range);
  EXPECT_EQ(r.lp_error(), -6); // LP_ERANGE
}

TEST_F(Fixture, TooShortBeforeRet) {
  auto r = x86_64::relocate(*dec, input("x_pcrel", 0x24), base + 0x10000); // add; pop; ret
  EXPECT_EQ(r.status, RelocStatus::TooShort) << r.reason;
  EXPECT_EQ(r.lp_error(), -5); // LP_ETOOSHORT
  auto j = x86_64::relocate(*dec, input("x_pcrel", 0x20), base + 0x10000); // jmp rel8
  EXPECT_EQ(j.status, RelocStatus::TooShort) << j.reason;
  auto e = x86_64::relocate(*dec, input("x_short", 5), base + 0x10000); // ret at the end
  EXPECT_EQ(e.status, RelocStatus::TooShort);
}

TEST_F(Fixture, TrapProbeCopiesOneInstruction) {
  // min_len 1 (a trap probe): exactly the first instruction, even a ret.
  auto in = input("x_short", 5);
  in.min_len = 1;
  auto r = x86_64::relocate(*dec, in, base + 0x10000);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.displaced_len, 1u);
  EXPECT_TRUE(r.ends_in_control_transfer);
  EXPECT_EQ(r.code, (std::vector<uint8_t>{0xc3}));
  auto in2 = input("x_loop", 5); // jrcxz at a branch target: fine for one instruction
  in2.min_len = 1;
  auto r2 = x86_64::relocate(*dec, in2, base + 0x10000);
  EXPECT_TRUE(r2.ok()) << r2.reason;
  EXPECT_EQ(r2.displaced_len, 2u);
}

TEST_F(Fixture, FunctionEndIsTooShort) {
  auto in = input("x_twice", 0); // lea (3) + ret: ret before 5 bytes
  auto r = x86_64::relocate(*dec, in, base + 0x10000);
  EXPECT_EQ(r.status, RelocStatus::TooShort) << r.reason;
}

TEST_F(Fixture, BranchTargetInside) {
  // x_loop+5: jrcxz (2) + add (3); the jne at +0xd targets +7 (inside).
  auto r = x86_64::relocate(*dec, input("x_loop", 5), base + 0x10000);
  EXPECT_EQ(r.status, RelocStatus::BranchTarget) << r.reason;
  EXPECT_EQ(r.lp_error(), -5);
  EXPECT_NE(r.reason.find("targets"), std::string::npos);
}

TEST_F(Fixture, NotBoundary) {
  auto r = x86_64::relocate(*dec, input("x_pcrel", 2), base + 0x10000);
  EXPECT_EQ(r.status, RelocStatus::NotBoundary);
  EXPECT_EQ(r.lp_error(), -4); // LP_EBOUNDARY
}

TEST_F(Fixture, CallInsideTheRange) {
  // x_calls+0x12: call rdx (2) + add (2) + pop (1): the call is not last.
  auto r = x86_64::relocate(*dec, input("x_calls", 0x12), base + 0x10000);
  EXPECT_EQ(r.status, RelocStatus::CallInside) << r.reason;
}

TEST_F(Fixture, IndirectCallRipRelative) {
  // x_calls+1: mov ebx, edi (2) + call [rip+x_fptr] (6)
  auto in = input("x_calls", 1);
  auto r = x86_64::relocate(*dec, in, base + 0x20000);
  ASSERT_TRUE(r.ok()) << r.reason;
  auto v = decode_all(r);
  ASSERT_EQ(v.size(), 5u); // mov; push; mov [rsp+4]; jmp [rip+x]; (no jump back needed? yes: call falls through)
  EXPECT_EQ(v[3].flow, Flow::IndirectJump);
  EXPECT_TRUE(v[3].rip_relative);
  EXPECT_EQ(v[3].mem_target, base + fn("x_data").offset + 0x10);
  EXPECT_EQ(v[4].target, in.site + 8);
}

TEST_F(Fixture, LoopLikeRel8) {
  // x_loop+2: mov rcx, rdi (3) + jrcxz (2)
  auto in = input("x_loop", 2);
  in.func_code = nullptr; // jrcxz's own target check only
  auto r = x86_64::relocate(*dec, in, base + 0x30000);
  ASSERT_TRUE(r.ok()) << r.reason;
  auto v = decode_all(r);
  ASSERT_EQ(v.size(), 5u); // mov; jrcxz +2; jmp +5; jmp target; jmp back
  EXPECT_EQ(v[1].target, r.dest + 3 + 2 + 2); // taken: over `jmp +5` to the jmp to the target
  EXPECT_EQ(v[3].target, in.site + 3 + 2 + 8);
  EXPECT_EQ(v[4].target, in.site + 5);
}

TEST_F(Fixture, InternalBranchRedirected) {
  // A loop entirely inside the displaced range: dec ecx; jne -4 (to the dec); nop3
  const uint8_t code[] = {0xff, 0xc9, 0x75, 0xfc, 0x0f, 0x1f, 0x00, 0xc3};
  mc::RelocInput in;
  in.site = 0x5000;
  in.code = code;
  in.avail = sizeof code;
  in.min_len = 5;
  in.func_start = 0x5000;
  in.func_code = code;
  in.func_size = sizeof code;
  auto r = x86_64::relocate(*dec, in, 0x9000);
  ASSERT_TRUE(r.ok()) << r.reason;
  auto v = decode_all(r);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[1].target, 0x9000u); // into the copy, not the overwritten original
}

// --- native differential execution --------------------------------------------
namespace {
struct Exec {
  uint8_t *mem = nullptr;
  size_t size = 1 << 20;
  Exec() {
    void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mem = p == MAP_FAILED ? nullptr : static_cast<uint8_t *>(p);
  }
  ~Exec() {
    if (mem) munmap(mem, size);
  }
  void load() {
    std::memset(mem, 0xcc, size);
    std::memcpy(mem, blob().code, blob().size);
    const uint64_t twice = reinterpret_cast<uint64_t>(mem + fn("x_twice").offset);
    std::memcpy(mem + fn("x_data").offset + 0x10, &twice, 8); // x_fptr
  }
  template <class F> F at(const char *name) { return reinterpret_cast<F>(mem + fn(name).offset); }
};

long run_all(Exec &e) {
  long acc = 0;
  for (int a : {0, 1, 5, -3}) acc = acc * 31 + e.at<int (*)(int)>("x_pcrel")(a);
  for (long n : {0L, 1L, 10L}) acc = acc * 31 + e.at<long (*)(long)>("x_loop")(n);
  for (int a : {0, 2, 9}) acc = acc * 31 + e.at<int (*)(int)>("x_calls")(a);
  acc = acc * 31 + e.at<int (*)()>("x_short")();
  return acc;
}
} // namespace

TEST_F(Fixture, NativeDifferentialEveryBoundary) {
  Exec e;
  ASSERT_NE(e.mem, nullptr);
  // A second mapping more than 2 GiB away: copies there need the absolute forms.
  uint8_t *far_mem = nullptr;
  for (uint64_t delta : {0x300000000ull, 0x500000000ull, 0x100000000000ull}) {
    void *hint = e.mem + delta;
    void *p = mmap(hint, 1 << 20, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) continue;
    const int64_t d = int64_t(reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(e.mem));
    if (d > (int64_t(1) << 32) || d < -(int64_t(1) << 32)) {
      far_mem = static_cast<uint8_t *>(p);
      break;
    }
    munmap(p, 1 << 20);
  }
  e.load();
  const long want = run_all(e);
  int relocated = 0, refused = 0, relocated_far = 0;
  for (const char *f : {"x_pcrel", "x_loop", "x_calls", "x_short", "x_twice"}) {
    const auto &s = fn(f);
    std::vector<uint64_t> bounds;
    ASSERT_TRUE(dec->boundaries(blob().code + s.offset, s.size, 0, &bounds));
    for (int far = 0; far < 2; ++far) {
      if (far && !far_mem) continue;
      for (uint64_t off : bounds) {
        e.load();
        const uintptr_t fbase = reinterpret_cast<uintptr_t>(e.mem) + s.offset;
        mc::RelocInput in;
        in.site = fbase + off;
        in.code = e.mem + s.offset + off;
        in.avail = s.size - off;
        in.min_len = 5;
        in.func_start = fbase;
        in.func_code = e.mem + s.offset;
        in.func_size = s.size;
        const uintptr_t dest = reinterpret_cast<uintptr_t>(far ? far_mem : e.mem + 0x80000) + 64 * off;
        auto r = x86_64::relocate(*dec, in, dest);
        if (!r.ok()) {
          // Far copies of rip-relative data accesses are out of range; nothing else.
          if (far) {
            EXPECT_TRUE(r.status == RelocStatus::Range || !x86_64::relocate(*dec, in, fbase + 0x80000).ok())
                << f << "+" << off << ": " << r.reason;
          } else {
            ++refused;
          }
          continue;
        }
        EXPECT_LE(r.code.size(), x86_64::plan_relocation(*dec, in).max_code_size);
        (far ? relocated_far : relocated)++;
        std::memcpy(reinterpret_cast<void *>(dest), r.code.data(), r.code.size());
        uintptr_t jump_to = dest;
        if (far) { // a near stub: jmp [rip+0]; .quad dest (the trampoline's job in libpatch)
          uint8_t *stub = e.mem + 0xc0000 + 16 * off;
          stub[0] = 0xff, stub[1] = 0x25, stub[2] = stub[3] = stub[4] = stub[5] = 0;
          std::memcpy(stub + 6, &dest, 8);
          jump_to = reinterpret_cast<uintptr_t>(stub);
        }
        uint8_t jump[32];
        ASSERT_TRUE(x86_64::encode_site_jump(in.site, jump_to, r.displaced_len, jump));
        std::memcpy(e.mem + s.offset + off, jump, r.displaced_len);
        __builtin___clear_cache(reinterpret_cast<char *>(e.mem), reinterpret_cast<char *>(e.mem + e.size));
        EXPECT_EQ(run_all(e), want) << f << "+" << off << (far ? " (far copy)" : "");
      }
    }
  }
  if (far_mem) munmap(far_mem, 1 << 20);
  EXPECT_GE(relocated, 15);
  EXPECT_GE(refused, 5);
  if (far_mem) {
    EXPECT_GE(relocated_far, 8);
  }
  std::printf("relocated %d sites near, %d far; %d refused\n", relocated, relocated_far, refused);
}
