// The built-in A64 decoder (decoder.cpp): aarch64 decoding without LLVM, for the
// aarch64 cross build (Debian 12 ships no arm64 LLVM libraries to link against
// a cross toolchain). Registered as the aarch64 target's built-in decoder
// (mc_target.cpp); on the host it is held to LLVM MC 16's AArch64 disassembler
// with every extension enabled ("+all", the features decoder_llvm.cpp gives
// LLVM) by tests/mc/builtin_decoder_aarch64_test.cpp.
//
// It is NOT a full A64 decoder. It decodes exactly what the relocator and the
// core act on, and sorts every other word into a block, checking validity
// exactly in the integer blocks. What it promises, word by word (every A64
// instruction is one 32-bit little-endian word; fewer than 4 bytes never
// decode; the address need not be aligned, as with LLVM):
//
// 1. Exact classes: the same validity as LLVM, LLVM's opcode name, and the same
//    flow, has_target/target, reads_pc, mem_target, rd/rs1/rs2/imm, cond,
//    test_bit, exclusive, may_load and may_store (mc/decoder.hpp says what each
//    field holds for A64):
//      b, bl                          B BL
//      b.cond, bc.cond                Bcc BCcc (0x55xxxxxx, o1 = 1, is rejected)
//      cbz, cbnz, tbz, tbnz           CBZW CBZX CBNZW CBNZX TBZW TBZX TBNZW TBNZX
//      branch (register)              BR BLR RET BRAA BRAAZ BRAB BRABZ BLRAA BLRAAZ
//        0xd6000000-0xd7ffffff        BLRAB BLRABZ RETAA RETAB ERET ERETAA ERETAB DRPS;
//                                     every other word there is rejected
//      exception generation           SVC HVC SMC BRK HLT TCANCEL DCPS1 DCPS2 DCPS3;
//        0xd4000000-0xd4ffffff        every other word there is rejected
//      udf                            UDF (0x0000xxxx)
//      adr, adrp                      ADR ADRP
//      load register (literal)        LDRWl LDRXl LDRSWl LDRSl LDRDl LDRQl PRFMl
//                                     (opc 11 with V = 1 is rejected)
//      load/store exclusive, ordered, compare-and-swap (bits 29:24 = 001000):
//                                     LDXR* LDAXR* STXR* STLXR* LDXP* LDAXP* STXP* STLXP*
//                                     LDAR* STLR* LDLAR* STLLR* CAS* CASP*, with LLVM's
//                                     checks (ldxr/ldar/stlr: Rs = Rt2 = 31; ldxp:
//                                     Rt != Rt2; cas: Rt2 = 31; casp: Rs, Rt even)
//    Flow: b Jump; bl Call; b.cond (al and nv too), bc.cond, cb*, tb* CondBranch;
//    br, bra* IndirectJump; blr, blra* IndirectCall; ret, reta* Return; brk,
//    hlt, udf and what is UNDEFINED at EL0 (hvc, smc, dcps*, eret*, drps) Trap;
//    everything else None.
// 2. Exactly rejected (LLVM rejects every one of them too): the reserved block
//    (bits 31,28:25 = 0,0000) except udf; bits 28:25 = 0001 and 0011; in the
//    branch/system block, bits 31:29 = 011 or 111, and 0xd5800000-0xd5ffffff.
// 3. Blocks: every other word belongs to a block. A block word the decoder
//    accepts is VALID, Flow::None, reads no pc, has no target and is not
//    exclusive; may_load = may_store = false (not known); rd/rs1/rs2 = -1; its
//    name is the block's and its text ".inst 0x<word>". The blocks (bits 28:25 = op0):
//      A64_DP_IMM      op0 = 100x, except adr/adrp        validity exact
//      A64_DP_REG      op0 = x101                         validity exact
//      A64_SYSTEM      0xd5000000-0xd57fffff (hints incl.  validity exact
//                      nop, bti, pac*/aut*; barriers, PSTATE, sys/sysl,
//                      msr/mrs, sysp, msrr/mrrs, wfet/wfit, tstart/ttest/tcommit)
//      A64_LOAD_STORE  op0 = x1x0, except the literal     every word valid
//                      and exclusive classes
//      A64_SIMD_FP     op0 = x111                         every word valid
//      A64_SVE         op0 = 0010                         every word valid
//      A64_SME         bit 31 = 1, op0 = 0000             every word valid
//    "Validity exact": the decoder accepts a word of the block exactly when
//    LLVM decodes it (the Arm ARM's class tables with LLVM's reserved-value
//    checks: logical-immediate masks, the sf/N/imm6 rules, the 45 words of the
//    system block LLVM rejects, sysp/msrr/mrrs pair registers).
//    "Every word valid": the decoder does NOT check allocation there, and calls
//    valid the words LLVM rejects (unallocated or reserved encodings: 35% to
//    86% of random words, by block; the test prints the counts). That is the
//    one way it disagrees with LLVM. It is safe for its users: no word of these
//    blocks reads the pc, branches, or is a load/store exclusive (A64 has no
//    other pc-relative encodings; MOPS cpy*/set* sequences do not read the pc
//    either), so the relocator copies such a word unchanged, and a copied
//    UNDEFINED word raises the same SIGILL as the original, only from the
//    copy's address. Boundaries need no decode at all (fixed 4-byte words:
//    Decoder::fixed_insn_len()).
//
// Text: plain GNU-style assembly for the exact classes (absolute targets in
// hex, "ret" for ret x30, no aliases beyond that); ".inst 0x..." for blocks.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mc/decoder_impl.hpp"

namespace lp::aarch64 {

// features: "" or "+all" (both mean: every encoding above, the built-in
// decoder has no feature gates). Anything else: nullptr + *error.
std::unique_ptr<mc::Decoder::Impl> make_builtin_decoder(std::string_view features, std::string *error);

} // namespace lp::aarch64
