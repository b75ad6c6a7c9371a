// Encoders, decoders, sled recognition, normalised form, hart decisions.
#include <gtest/gtest.h>

#include "encoding.hpp"
#include "hwprobe.hpp"

namespace rv = lp::riscv64;

TEST(Rv64Encoding, KnownWords) {
  // Cross-checked against GNU as (riscv64-linux-gnu-as / objdump).
  EXPECT_EQ(rv::enc_addi(2, 2, -528), 0xdf010113u);   // addi sp, sp, -528
  EXPECT_EQ(rv::enc_sd(1, 2, 8), 0x00113423u);        // sd ra, 8(sp)
  EXPECT_EQ(rv::enc_ld(1, 2, 8), 0x00813083u);        // ld ra, 8(sp)
  EXPECT_EQ(rv::enc_fsd(31, 2, 504), 0x1ff13c27u);    // fsd ft11, 504(sp)
  EXPECT_EQ(rv::enc_fld(0, 2, 256), 0x10013007u);     // fld ft0, 256(sp)
  EXPECT_EQ(rv::enc_csrrs(6, 3, 0), 0x00302373u);     // frcsr t1
  EXPECT_EQ(rv::enc_csrrw(0, 3, 6), 0x00331073u);     // fscsr t1
  EXPECT_EQ(rv::enc_lui(28, 1), 0x00001e37u);         // lui t3, 1
  EXPECT_EQ(rv::enc_add(28, 28, 4), 0x004e0e33u);     // add t3, t3, tp
  EXPECT_EQ(rv::enc_andi(2, 2, -16), 0xff017113u);    // andi sp, sp, -16
  EXPECT_EQ(rv::enc_jal(0, 8), 0x0080006fu);          // j .+8
  EXPECT_EQ(rv::enc_jal(5, 0x1000), 0x000012efu);     // jal t0, .+4096
  EXPECT_EQ(rv::enc_jalr(0, 5, -4), 0xffc28067u);     // jalr x0, -4(t0)
  EXPECT_EQ(rv::enc_auipc(5, 0x40000), 0x40000297u);  // auipc t0, 0x40000
}

TEST(Rv64Encoding, JalRoundTrip) {
  for (int32_t off : {-1048576, -4096, -2, 2, 4, 8, 2046, 2048, 4094, 1048574}) {
    unsigned rd = 0;
    int32_t got = 0;
    ASSERT_TRUE(rv::decode_jal(rv::enc_jal(5, off), &rd, &got));
    EXPECT_EQ(rd, 5u);
    EXPECT_EQ(got, off);
  }
  unsigned rd;
  int32_t off;
  EXPECT_FALSE(rv::decode_jal(rv::kNop, &rd, &off));
}

TEST(Rv64Encoding, SplitPcrel) {
  for (int64_t d : {int64_t(0), int64_t(1), int64_t(2047), int64_t(2048), int64_t(-2048), int64_t(-2049),
                    int64_t(0x7ffff7ff), int64_t(-0x80000000LL), int64_t(-0x80000800LL), int64_t(123456789)}) {
    int32_t hi, lo;
    ASSERT_TRUE(rv::split_pcrel(d, &hi, &lo)) << d;
    EXPECT_TRUE(rv::fits12(lo));
    EXPECT_EQ(int64_t(hi) * 4096 + lo, d);
  }
  int32_t hi, lo;
  EXPECT_FALSE(rv::split_pcrel(0x7ffff800LL, &hi, &lo));
  EXPECT_FALSE(rv::split_pcrel(-0x80000801LL, &hi, &lo));
}

TEST(Rv64Encoding, SledsAndNormalisedForm) {
  uint8_t b[32];
  for (rv::Ilen ilen : {rv::Ilen::C16, rv::Ilen::G32}) {
    for (uint32_t len : {4u, 8u, 12u, 16u}) {
      rv::fill_nops(b, len, ilen);
      rv::Ilen got;
      EXPECT_EQ(rv::sled_units(b, len, &got) * uint32_t(got), len);
      EXPECT_EQ(got, ilen);
      EXPECT_EQ(rv::skip_len(b, len, &got), 0u);
      EXPECT_TRUE(rv::inner_entry(b, len) == (len > uint32_t(ilen)));
      if (len > uint32_t(ilen)) {
        rv::encode_skip(len, ilen, b);
        EXPECT_EQ(rv::skip_len(b, 32, &got), len);
        if (len > 4) {
          EXPECT_EQ(got, ilen);
        }
        EXPECT_FALSE(rv::inner_entry(b, len));
        EXPECT_EQ(rv::sled_units(b, len, &got), 0u); // not a raw sled any more
      }
    }
  }
  // A j to the end followed by something that is not nops is not a site.
  rv::encode_skip(8, rv::Ilen::G32, b);
  rv::put32(b + 4, rv::enc_addi(10, 10, 1));
  EXPECT_EQ(rv::skip_len(b, 32, nullptr), 0u);
  // Jump forms.
  rv::Ilen ilen = rv::Ilen::C16;
  ASSERT_EQ(rv::encode_entry_call(0x10000, 0x10800, 8, ilen, b), rv::CallError::Ok);
  EXPECT_FALSE(rv::inner_entry(b, 8)); // jal t0: one instruction
  ASSERT_EQ(rv::encode_entry_call(0x10000, 0x50010000, 8, ilen, b), rv::CallError::Ok);
  EXPECT_TRUE(rv::inner_entry(b, 8)); // auipc t0 ; jalr t0: a boundary at +4
  EXPECT_EQ(rv::encode_entry_call(0x10000, 0x50010000, 4, ilen, b), rv::CallError::TooShort);
  EXPECT_EQ(rv::encode_entry_call(0x10000, 0x10000 + (3ll << 31), 8, ilen, b), rv::CallError::Range);
}

TEST(Rv64Hart, Decisions) {
  using rv::HartSource;
  const uint64_t hwcap_gc = 0x112d, hwcap_g = 0x1129;
  // riscv_hwprobe wins when the kernel has it.
  auto h = rv::decide_hart(0, 0, 1u << 1, hwcap_g);
  EXPECT_TRUE(h.has_c);
  EXPECT_EQ(h.source, HartSource::Hwprobe);
  h = rv::decide_hart(0, 0, 1u << 0, hwcap_gc);
  EXPECT_FALSE(h.has_c);
  // ENOSYS (qemu-user 7.2, kernels < 6.4): AT_HWCAP.
  h = rv::decide_hart(-1, 38, 0, hwcap_gc);
  EXPECT_TRUE(h.has_c);
  EXPECT_EQ(h.source, HartSource::Hwcap);
  EXPECT_EQ(h.hwprobe_errno, 38);
  h = rv::decide_hart(-1, 38, 0, hwcap_g);
  EXPECT_FALSE(h.has_c);
  // Nothing known: assume C (the 2-byte trap is a trap on both kinds of hart for
  // 4-byte aligned code, and the only one for C code).
  h = rv::decide_hart(-1, 38, 0, 0);
  EXPECT_TRUE(h.has_c);
  EXPECT_EQ(h.source, HartSource::Assumed);
}
