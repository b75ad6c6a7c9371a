// Built-in RV64GC decoder (no LLVM): the riscv64 cross builds, where Debian has
// no riscv64 LLVM libraries. See mc/decoder_impl.hpp; registered as the riscv64
// target's built-in decoder (mc_target.cpp).
//
// It must agree with LLVM 16's riscv64 disassembler (features +m,+a,+f,+d,+c,
// optionally -c) on every encoding: the relocators and the boundary checks see
// the same instructions whichever engine a build has. So the tables below are
// LLVM's, not the ISA manual's: the same opcode names, the same set of decodable
// encodings (e.g. LLVM takes c.lui rd, 0 and decodes the privileged mret, sret,
// uret, dret, wfi, sfence.vma), the same may_load/may_store.
// tests/mc/builtin_decoder_test.cpp compares both engines pattern by pattern.
//
// The text is plain GNU-style assembly with ABI register names and absolute
// branch targets; compressed instructions print as what they expand to, the
// way objdump shows them (c.addi a0,1 -> "addi a0, a0, 1", c.j -> "j 0x1010").
#include "decoder.hpp"

#include "mc/decoder_impl.hpp"

#include <array>
#include <cstdio>
#include <vector>

namespace lp::mc {

namespace {

// --- bit fields -------------------------------------------------------------

constexpr uint32_t bits(uint32_t w, unsigned hi, unsigned lo) { return (w >> lo) & ((2u << (hi - lo)) - 1); }
constexpr uint32_t bit(uint32_t w, unsigned i) { return (w >> i) & 1; }
// Sign-extends the low n bits of v.
constexpr int64_t sext(uint64_t v, unsigned n) { return int64_t(v << (64 - n)) >> (64 - n); }

// Immediates of the 32-bit formats.
int64_t imm_i(uint32_t w) { return sext(w >> 20, 12); }
int64_t imm_s(uint32_t w) { return sext(bits(w, 31, 25) << 5 | bits(w, 11, 7), 12); }
int64_t imm_b(uint32_t w) {
  return sext(bit(w, 31) << 12 | bit(w, 7) << 11 | bits(w, 30, 25) << 5 | bits(w, 11, 8) << 1, 13);
}
int64_t imm_u(uint32_t w) { return w >> 12; } // the 20-bit field, unsigned, as LLVM's uimm20
int64_t imm_j(uint32_t w) {
  return sext(bit(w, 31) << 20 | bits(w, 19, 12) << 12 | bit(w, 20) << 11 | bits(w, 30, 21) << 1, 21);
}

// --- extensions ---------------------------------------------------------------

enum Ext : uint8_t { kI, kM, kA, kF, kD, kC, kZicsr, kZifencei, kNumExt };
constexpr uint32_t X(Ext e) { return 1u << e; }
constexpr const char *kExtNames[kNumExt] = {"i", "m", "a", "f", "d", "c", "zicsr", "zifencei"};

// --- instruction tables -----------------------------------------------------

// What the LLVM engine's riscv64 rules (decoder_llvm.cpp) report beyond name/length: control flow
// and the pc-relative operand fields.
enum class Ctl : uint8_t { None, Auipc, Jal, Jalr, Branch, CBranch, CJ, CJr, CJalr, Trap };

enum Flag : uint8_t {
  kLoad = 1,  // LLVM mayLoad (sc too)
  kStore = 2, // LLVM mayStore
  kRm = 4,    // has a rounding-mode operand (funct3): 5 and 6 do not decode
  kAqRl = 8,  // atomic: bits 26:25 are aq/rl, spelled in name and mnemonic
};

// Operand layout in the text, one letter per operand (other characters are
// copied, ',' becomes ", "):
//   d s t    x registers rd, rs1, rs2         D S T R  f registers rd, rs1, rs2, rs3
//   i        immediate, decimal                h        shift amount
//   u        20-bit upper immediate, hex       b        branch target (address + imm), hex
//   c        csr                               z        5-bit csr immediate (the rs1 field)
//   p q      fence predecessor / successor     m        ", rm" unless dynamic
struct Op {
  uint32_t mask, match; // 32-bit encodings: (w & mask) == match; compressed: unused
  const char *name;     // LLVM's opcode name
  const char *mn;       // mnemonic
  const char *ops;      // operand layout
  uint32_t req;         // required extensions (all of them)
  uint8_t flags = 0;
  Ctl ctl = Ctl::None;
};

constexpr uint32_t I = X(kI), M = X(kM), A = X(kA), F = X(kF), D = X(kD) | X(kF), CSR = X(kZicsr);
constexpr uint8_t LD = kLoad, ST = kStore, RM = kRm;

// RV64 IMAFD + Zicsr + Zifencei and the privileged instructions LLVM decodes.
// First match wins: fully fixed encodings come before the patterns they are
// carved out of (unimp = csrrw zero, cycle, zero).
const Op kOps32[] = {
    {0x0000007f, 0x00000037, "LUI", "lui", "d,u", I},
    {0x0000007f, 0x00000017, "AUIPC", "auipc", "d,u", I, 0, Ctl::Auipc},
    {0x0000007f, 0x0000006f, "JAL", "jal", "d,b", I, 0, Ctl::Jal},
    {0x0000707f, 0x00000067, "JALR", "jalr", "d,i(s)", I, 0, Ctl::Jalr},
    {0x0000707f, 0x00000063, "BEQ", "beq", "s,t,b", I, 0, Ctl::Branch},
    {0x0000707f, 0x00001063, "BNE", "bne", "s,t,b", I, 0, Ctl::Branch},
    {0x0000707f, 0x00004063, "BLT", "blt", "s,t,b", I, 0, Ctl::Branch},
    {0x0000707f, 0x00005063, "BGE", "bge", "s,t,b", I, 0, Ctl::Branch},
    {0x0000707f, 0x00006063, "BLTU", "bltu", "s,t,b", I, 0, Ctl::Branch},
    {0x0000707f, 0x00007063, "BGEU", "bgeu", "s,t,b", I, 0, Ctl::Branch},
    {0x0000707f, 0x00000003, "LB", "lb", "d,i(s)", I, LD},
    {0x0000707f, 0x00001003, "LH", "lh", "d,i(s)", I, LD},
    {0x0000707f, 0x00002003, "LW", "lw", "d,i(s)", I, LD},
    {0x0000707f, 0x00003003, "LD", "ld", "d,i(s)", I, LD},
    {0x0000707f, 0x00004003, "LBU", "lbu", "d,i(s)", I, LD},
    {0x0000707f, 0x00005003, "LHU", "lhu", "d,i(s)", I, LD},
    {0x0000707f, 0x00006003, "LWU", "lwu", "d,i(s)", I, LD},
    {0x0000707f, 0x00000023, "SB", "sb", "t,i(s)", I, ST},
    {0x0000707f, 0x00001023, "SH", "sh", "t,i(s)", I, ST},
    {0x0000707f, 0x00002023, "SW", "sw", "t,i(s)", I, ST},
    {0x0000707f, 0x00003023, "SD", "sd", "t,i(s)", I, ST},
    {0x0000707f, 0x00000013, "ADDI", "addi", "d,s,i", I},
    {0x0000707f, 0x00002013, "SLTI", "slti", "d,s,i", I},
    {0x0000707f, 0x00003013, "SLTIU", "sltiu", "d,s,i", I},
    {0x0000707f, 0x00004013, "XORI", "xori", "d,s,i", I},
    {0x0000707f, 0x00006013, "ORI", "ori", "d,s,i", I},
    {0x0000707f, 0x00007013, "ANDI", "andi", "d,s,i", I},
    {0xfc00707f, 0x00001013, "SLLI", "slli", "d,s,h", I}, // RV64: 6-bit shamt
    {0xfc00707f, 0x00005013, "SRLI", "srli", "d,s,h", I},
    {0xfc00707f, 0x40005013, "SRAI", "srai", "d,s,h", I},
    {0x0000707f, 0x0000001b, "ADDIW", "addiw", "d,s,i", I},
    {0xfe00707f, 0x0000101b, "SLLIW", "slliw", "d,s,h", I}, // shamt bit 5 must be 0
    {0xfe00707f, 0x0000501b, "SRLIW", "srliw", "d,s,h", I},
    {0xfe00707f, 0x4000501b, "SRAIW", "sraiw", "d,s,h", I},
    {0xfe00707f, 0x00000033, "ADD", "add", "d,s,t", I},
    {0xfe00707f, 0x40000033, "SUB", "sub", "d,s,t", I},
    {0xfe00707f, 0x00001033, "SLL", "sll", "d,s,t", I},
    {0xfe00707f, 0x00002033, "SLT", "slt", "d,s,t", I},
    {0xfe00707f, 0x00003033, "SLTU", "sltu", "d,s,t", I},
    {0xfe00707f, 0x00004033, "XOR", "xor", "d,s,t", I},
    {0xfe00707f, 0x00005033, "SRL", "srl", "d,s,t", I},
    {0xfe00707f, 0x40005033, "SRA", "sra", "d,s,t", I},
    {0xfe00707f, 0x00006033, "OR", "or", "d,s,t", I},
    {0xfe00707f, 0x00007033, "AND", "and", "d,s,t", I},
    {0xfe00707f, 0x0000003b, "ADDW", "addw", "d,s,t", I},
    {0xfe00707f, 0x4000003b, "SUBW", "subw", "d,s,t", I},
    {0xfe00707f, 0x0000103b, "SLLW", "sllw", "d,s,t", I},
    {0xfe00707f, 0x0000503b, "SRLW", "srlw", "d,s,t", I},
    {0xfe00707f, 0x4000503b, "SRAW", "sraw", "d,s,t", I},
    // fence: fm must be 0 except for fence.tso; rd and rs1 must be zero.
    {0xffffffff, 0x8330000f, "FENCE_TSO", "fence.tso", "", I},
    {0xf00fffff, 0x0000000f, "FENCE", "fence", "p,q", I},
    {0xffffffff, 0x0000100f, "FENCE_I", "fence.i", "", X(kZifencei)},
    {0xffffffff, 0x00000073, "ECALL", "ecall", "", I},
    {0xffffffff, 0x00100073, "EBREAK", "ebreak", "", I, 0, Ctl::Trap},
    {0xffffffff, 0x00200073, "URET", "uret", "", I},
    {0xffffffff, 0x10200073, "SRET", "sret", "", I},
    {0xffffffff, 0x30200073, "MRET", "mret", "", I},
    {0xffffffff, 0x7b200073, "DRET", "dret", "", I},
    {0xffffffff, 0x10500073, "WFI", "wfi", "", I},
    {0xfe007fff, 0x12000073, "SFENCE_VMA", "sfence.vma", "s,t", I},
    {0xffffffff, 0xc0001073, "UNIMP", "unimp", "", I, 0, Ctl::Trap},
    {0x0000707f, 0x00001073, "CSRRW", "csrrw", "d,c,s", CSR},
    {0x0000707f, 0x00002073, "CSRRS", "csrrs", "d,c,s", CSR},
    {0x0000707f, 0x00003073, "CSRRC", "csrrc", "d,c,s", CSR},
    {0x0000707f, 0x00005073, "CSRRWI", "csrrwi", "d,c,z", CSR},
    {0x0000707f, 0x00006073, "CSRRSI", "csrrsi", "d,c,z", CSR},
    {0x0000707f, 0x00007073, "CSRRCI", "csrrci", "d,c,z", CSR},

    {0xfe00707f, 0x02000033, "MUL", "mul", "d,s,t", M},
    {0xfe00707f, 0x02001033, "MULH", "mulh", "d,s,t", M},
    {0xfe00707f, 0x02002033, "MULHSU", "mulhsu", "d,s,t", M},
    {0xfe00707f, 0x02003033, "MULHU", "mulhu", "d,s,t", M},
    {0xfe00707f, 0x02004033, "DIV", "div", "d,s,t", M},
    {0xfe00707f, 0x02005033, "DIVU", "divu", "d,s,t", M},
    {0xfe00707f, 0x02006033, "REM", "rem", "d,s,t", M},
    {0xfe00707f, 0x02007033, "REMU", "remu", "d,s,t", M},
    {0xfe00707f, 0x0200003b, "MULW", "mulw", "d,s,t", M},
    {0xfe00707f, 0x0200403b, "DIVW", "divw", "d,s,t", M},
    {0xfe00707f, 0x0200503b, "DIVUW", "divuw", "d,s,t", M},
    {0xfe00707f, 0x0200603b, "REMW", "remw", "d,s,t", M},
    {0xfe00707f, 0x0200703b, "REMUW", "remuw", "d,s,t", M},

    // Atomics: the mask leaves out aq/rl (kAqRl adds "_AQ", "_RL", "_AQ_RL").
    {0xf9f0707f, 0x1000202f, "LR_W", "lr.w", "d,(s)", A, LD | kAqRl},
    {0xf800707f, 0x1800202f, "SC_W", "sc.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x0800202f, "AMOSWAP_W", "amoswap.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x0000202f, "AMOADD_W", "amoadd.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x2000202f, "AMOXOR_W", "amoxor.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x6000202f, "AMOAND_W", "amoand.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x4000202f, "AMOOR_W", "amoor.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x8000202f, "AMOMIN_W", "amomin.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0xa000202f, "AMOMAX_W", "amomax.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0xc000202f, "AMOMINU_W", "amominu.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0xe000202f, "AMOMAXU_W", "amomaxu.w", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf9f0707f, 0x1000302f, "LR_D", "lr.d", "d,(s)", A, LD | kAqRl},
    {0xf800707f, 0x1800302f, "SC_D", "sc.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x0800302f, "AMOSWAP_D", "amoswap.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x0000302f, "AMOADD_D", "amoadd.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x2000302f, "AMOXOR_D", "amoxor.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x6000302f, "AMOAND_D", "amoand.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x4000302f, "AMOOR_D", "amoor.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0x8000302f, "AMOMIN_D", "amomin.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0xa000302f, "AMOMAX_D", "amomax.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0xc000302f, "AMOMINU_D", "amominu.d", "d,t,(s)", A, LD | ST | kAqRl},
    {0xf800707f, 0xe000302f, "AMOMAXU_D", "amomaxu.d", "d,t,(s)", A, LD | ST | kAqRl},

    // F and D. fmt (bits 26:25) 00 = S, 01 = D; H and Q are not enabled.
    {0x0000707f, 0x00002007, "FLW", "flw", "D,i(s)", F, LD},
    {0x0000707f, 0x00002027, "FSW", "fsw", "T,i(s)", F, ST},
    {0x0600007f, 0x00000043, "FMADD_S", "fmadd.s", "D,S,T,Rm", F, RM},
    {0x0600007f, 0x00000047, "FMSUB_S", "fmsub.s", "D,S,T,Rm", F, RM},
    {0x0600007f, 0x0000004b, "FNMSUB_S", "fnmsub.s", "D,S,T,Rm", F, RM},
    {0x0600007f, 0x0000004f, "FNMADD_S", "fnmadd.s", "D,S,T,Rm", F, RM},
    {0xfe00007f, 0x00000053, "FADD_S", "fadd.s", "D,S,Tm", F, RM},
    {0xfe00007f, 0x08000053, "FSUB_S", "fsub.s", "D,S,Tm", F, RM},
    {0xfe00007f, 0x10000053, "FMUL_S", "fmul.s", "D,S,Tm", F, RM},
    {0xfe00007f, 0x18000053, "FDIV_S", "fdiv.s", "D,S,Tm", F, RM},
    {0xfff0007f, 0x58000053, "FSQRT_S", "fsqrt.s", "D,Sm", F, RM},
    {0xfe00707f, 0x20000053, "FSGNJ_S", "fsgnj.s", "D,S,T", F},
    {0xfe00707f, 0x20001053, "FSGNJN_S", "fsgnjn.s", "D,S,T", F},
    {0xfe00707f, 0x20002053, "FSGNJX_S", "fsgnjx.s", "D,S,T", F},
    {0xfe00707f, 0x28000053, "FMIN_S", "fmin.s", "D,S,T", F},
    {0xfe00707f, 0x28001053, "FMAX_S", "fmax.s", "D,S,T", F},
    {0xfff0007f, 0xc0000053, "FCVT_W_S", "fcvt.w.s", "d,Sm", F, RM},
    {0xfff0007f, 0xc0100053, "FCVT_WU_S", "fcvt.wu.s", "d,Sm", F, RM},
    {0xfff0007f, 0xc0200053, "FCVT_L_S", "fcvt.l.s", "d,Sm", F, RM},
    {0xfff0007f, 0xc0300053, "FCVT_LU_S", "fcvt.lu.s", "d,Sm", F, RM},
    {0xfff0707f, 0xe0000053, "FMV_X_W", "fmv.x.w", "d,S", F},
    {0xfe00707f, 0xa0002053, "FEQ_S", "feq.s", "d,S,T", F},
    {0xfe00707f, 0xa0001053, "FLT_S", "flt.s", "d,S,T", F},
    {0xfe00707f, 0xa0000053, "FLE_S", "fle.s", "d,S,T", F},
    {0xfff0707f, 0xe0001053, "FCLASS_S", "fclass.s", "d,S", F},
    {0xfff0007f, 0xd0000053, "FCVT_S_W", "fcvt.s.w", "D,sm", F, RM},
    {0xfff0007f, 0xd0100053, "FCVT_S_WU", "fcvt.s.wu", "D,sm", F, RM},
    {0xfff0007f, 0xd0200053, "FCVT_S_L", "fcvt.s.l", "D,sm", F, RM},
    {0xfff0007f, 0xd0300053, "FCVT_S_LU", "fcvt.s.lu", "D,sm", F, RM},
    {0xfff0707f, 0xf0000053, "FMV_W_X", "fmv.w.x", "D,s", F},

    {0x0000707f, 0x00003007, "FLD", "fld", "D,i(s)", D, LD},
    {0x0000707f, 0x00003027, "FSD", "fsd", "T,i(s)", D, ST},
    {0x0600007f, 0x02000043, "FMADD_D", "fmadd.d", "D,S,T,Rm", D, RM},
    {0x0600007f, 0x02000047, "FMSUB_D", "fmsub.d", "D,S,T,Rm", D, RM},
    {0x0600007f, 0x0200004b, "FNMSUB_D", "fnmsub.d", "D,S,T,Rm", D, RM},
    {0x0600007f, 0x0200004f, "FNMADD_D", "fnmadd.d", "D,S,T,Rm", D, RM},
    {0xfe00007f, 0x02000053, "FADD_D", "fadd.d", "D,S,Tm", D, RM},
    {0xfe00007f, 0x0a000053, "FSUB_D", "fsub.d", "D,S,Tm", D, RM},
    {0xfe00007f, 0x12000053, "FMUL_D", "fmul.d", "D,S,Tm", D, RM},
    {0xfe00007f, 0x1a000053, "FDIV_D", "fdiv.d", "D,S,Tm", D, RM},
    {0xfff0007f, 0x5a000053, "FSQRT_D", "fsqrt.d", "D,Sm", D, RM},
    {0xfe00707f, 0x22000053, "FSGNJ_D", "fsgnj.d", "D,S,T", D},
    {0xfe00707f, 0x22001053, "FSGNJN_D", "fsgnjn.d", "D,S,T", D},
    {0xfe00707f, 0x22002053, "FSGNJX_D", "fsgnjx.d", "D,S,T", D},
    {0xfe00707f, 0x2a000053, "FMIN_D", "fmin.d", "D,S,T", D},
    {0xfe00707f, 0x2a001053, "FMAX_D", "fmax.d", "D,S,T", D},
    {0xfff0007f, 0x40100053, "FCVT_S_D", "fcvt.s.d", "D,Sm", D, RM},
    {0xfff0707f, 0x42000053, "FCVT_D_S", "fcvt.d.s", "D,S", D}, // exact: no rounding
    {0xfe00707f, 0xa2002053, "FEQ_D", "feq.d", "d,S,T", D},
    {0xfe00707f, 0xa2001053, "FLT_D", "flt.d", "d,S,T", D},
    {0xfe00707f, 0xa2000053, "FLE_D", "fle.d", "d,S,T", D},
    {0xfff0707f, 0xe2001053, "FCLASS_D", "fclass.d", "d,S", D},
    {0xfff0007f, 0xc2000053, "FCVT_W_D", "fcvt.w.d", "d,Sm", D, RM},
    {0xfff0007f, 0xc2100053, "FCVT_WU_D", "fcvt.wu.d", "d,Sm", D, RM},
    {0xfff0007f, 0xc2200053, "FCVT_L_D", "fcvt.l.d", "d,Sm", D, RM},
    {0xfff0007f, 0xc2300053, "FCVT_LU_D", "fcvt.lu.d", "d,Sm", D, RM},
    {0xfff0707f, 0xd2000053, "FCVT_D_W", "fcvt.d.w", "D,s", D}, // exact: no rounding
    {0xfff0707f, 0xd2100053, "FCVT_D_WU", "fcvt.d.wu", "D,s", D},
    {0xfff0007f, 0xd2200053, "FCVT_D_L", "fcvt.d.l", "D,sm", D, RM},
    {0xfff0007f, 0xd2300053, "FCVT_D_LU", "fcvt.d.lu", "D,sm", D, RM},
    {0xfff0707f, 0xe2000053, "FMV_X_D", "fmv.x.d", "d,S", D},
    {0xfff0707f, 0xf2000053, "FMV_D_X", "fmv.d.x", "D,s", D},
};

// The compressed instructions valid on RV64 (c.jal, c.flw, c.fsw, c.flwsp and
// c.fswsp are RV32 only), with LLVM's hint encodings (rd = x0 and the like) as
// the separate opcodes LLVM has for them. decode16 picks the entry by index, so
// kOps16 lists them in C16 order.
enum C16 : uint8_t {
  cUnimp, cAddi4spn, cFld, cLw, cLd, cFsd, cSw, cSd,
  cNop, cNopHint, cAddi, cAddiw, cLi, cLiHint, cAddi16sp, cLui, cLuiHint,
  cSrli, cSrli64Hint, cSrai, cSrai64Hint, cAndi, cSub, cXor, cOr, cAnd, cSubw, cAddw,
  cJ, cBeqz, cBnez,
  cSlli, cSlliHint, cSlli64Hint, cFldsp, cLwsp, cLdsp, cJr, cMv, cMvHint, cEbreak, cJalr, cAdd, cAddHint,
  cFsdsp, cSwsp, cSdsp, cNumC16
};

constexpr uint32_t C = X(kC), CD = X(kC) | D;

const Op kOps16[cNumC16] = {
    {0, 0, "C_UNIMP", "unimp", "", C, 0, Ctl::Trap},
    {0, 0, "C_ADDI4SPN", "addi", "d,s,i", C},
    {0, 0, "C_FLD", "fld", "D,i(s)", CD, LD},
    {0, 0, "C_LW", "lw", "d,i(s)", C, LD},
    {0, 0, "C_LD", "ld", "d,i(s)", C, LD},
    {0, 0, "C_FSD", "fsd", "T,i(s)", CD, ST},
    {0, 0, "C_SW", "sw", "t,i(s)", C, ST},
    {0, 0, "C_SD", "sd", "t,i(s)", C, ST},
    {0, 0, "C_NOP", "nop", "", C},
    {0, 0, "C_NOP_HINT", "c.nop", "i", C},
    {0, 0, "C_ADDI", "addi", "d,s,i", C},
    {0, 0, "C_ADDIW", "addiw", "d,s,i", C},
    {0, 0, "C_LI", "li", "d,i", C},
    {0, 0, "C_LI_HINT", "c.li", "d,i", C},
    {0, 0, "C_ADDI16SP", "addi", "d,s,i", C},
    {0, 0, "C_LUI", "lui", "d,u", C},
    {0, 0, "C_LUI_HINT", "c.lui", "d,u", C},
    {0, 0, "C_SRLI", "srli", "d,s,h", C},
    {0, 0, "C_SRLI64_HINT", "c.srli64", "d", C},
    {0, 0, "C_SRAI", "srai", "d,s,h", C},
    {0, 0, "C_SRAI64_HINT", "c.srai64", "d", C},
    {0, 0, "C_ANDI", "andi", "d,s,i", C},
    {0, 0, "C_SUB", "sub", "d,s,t", C},
    {0, 0, "C_XOR", "xor", "d,s,t", C},
    {0, 0, "C_OR", "or", "d,s,t", C},
    {0, 0, "C_AND", "and", "d,s,t", C},
    {0, 0, "C_SUBW", "subw", "d,s,t", C},
    {0, 0, "C_ADDW", "addw", "d,s,t", C},
    {0, 0, "C_J", "j", "b", C, 0, Ctl::CJ},
    {0, 0, "C_BEQZ", "beqz", "s,b", C, 0, Ctl::CBranch},
    {0, 0, "C_BNEZ", "bnez", "s,b", C, 0, Ctl::CBranch},
    {0, 0, "C_SLLI", "slli", "d,s,h", C},
    {0, 0, "C_SLLI_HINT", "c.slli", "d,h", C},
    {0, 0, "C_SLLI64_HINT", "c.slli64", "d", C},
    {0, 0, "C_FLDSP", "fld", "D,i(s)", CD, LD},
    {0, 0, "C_LWSP", "lw", "d,i(s)", C, LD},
    {0, 0, "C_LDSP", "ld", "d,i(s)", C, LD},
    {0, 0, "C_JR", "jr", "s", C, 0, Ctl::CJr},
    {0, 0, "C_MV", "mv", "d,t", C},
    {0, 0, "C_MV_HINT", "c.mv", "d,t", C},
    {0, 0, "C_EBREAK", "ebreak", "", C, 0, Ctl::Trap},
    {0, 0, "C_JALR", "jalr", "s", C, 0, Ctl::CJalr},
    {0, 0, "C_ADD", "add", "d,s,t", C},
    {0, 0, "C_ADD_HINT", "c.add", "d,t", C},
    {0, 0, "C_FSDSP", "fsd", "T,i(s)", CD, ST},
    {0, 0, "C_SWSP", "sw", "t,i(s)", C, ST},
    {0, 0, "C_SDSP", "sd", "t,i(s)", C, ST},
};

// One decoded instruction before it becomes an Insn.
struct Decoded {
  const Op *op = nullptr;
  unsigned opcode = 0;
  int rd = 0, rs1 = 0, rs2 = 0, rs3 = 0;
  int64_t imm = 0;
  unsigned rm = 7;   // rounding mode operand (7 = dyn)
  unsigned aqrl = 0; // atomics: bit 1 aq, bit 0 rl
};

// --- 32-bit -----------------------------------------------------------------

// kOps32 indices by major opcode (bits 6:2), in table order.
const std::array<std::vector<uint16_t>, 32> &ops32_by_major() {
  static const auto idx = [] {
    std::array<std::vector<uint16_t>, 32> v;
    for (size_t i = 0; i < std::size(kOps32); ++i) v[bits(kOps32[i].match, 6, 2)].push_back(uint16_t(i));
    return v;
  }();
  return idx;
}

bool decode32(uint32_t w, uint32_t ext, Decoded *d) {
  for (uint16_t i : ops32_by_major()[bits(w, 6, 2)]) {
    const Op &op = kOps32[i];
    if ((w & op.mask) != op.match || (op.req & ext) != op.req) continue;
    d->op = &op;
    d->rd = int(bits(w, 11, 7));
    d->rs1 = int(bits(w, 19, 15));
    d->rs2 = int(bits(w, 24, 20));
    d->rs3 = int(bits(w, 31, 27));
    d->rm = bits(w, 14, 12);
    if ((op.flags & kRm) && (d->rm == 5 || d->rm == 6)) return false; // reserved rounding modes
    if (op.flags & kAqRl) d->aqrl = bits(w, 26, 25);
    d->opcode = unsigned(i) << 2 | d->aqrl;
    switch (bits(w, 6, 0)) {
    case 0x23: case 0x27: d->imm = imm_s(w); break; // stores
    case 0x63: d->imm = imm_b(w); break;
    case 0x37: case 0x17: d->imm = imm_u(w); break;
    case 0x6f: d->imm = imm_j(w); break;
    default: d->imm = imm_i(w); break; // csr, fence and shamt live in this field too
    }
    return true;
  }
  return false;
}

// --- 16-bit -----------------------------------------------------------------

// Compressed immediates: the scattered bits, gathered (names as in the spec).
uint32_t c_uimm_w(uint32_t h) { return bits(h, 12, 10) << 3 | bit(h, 6) << 2 | bit(h, 5) << 6; }  // c.lw/c.sw
uint32_t c_uimm_d(uint32_t h) { return bits(h, 12, 10) << 3 | bits(h, 6, 5) << 6; }            // c.ld/c.sd/c.fld
int64_t c_imm6(uint32_t h) { return sext(bit(h, 12) << 5 | bits(h, 6, 2), 6); }                // CI
uint32_t c_shamt(uint32_t h) { return bit(h, 12) << 5 | bits(h, 6, 2); }
int64_t c_branch(uint32_t h) {
  return sext(bit(h, 12) << 8 | bits(h, 6, 5) << 6 | bit(h, 2) << 5 | bits(h, 11, 10) << 3 | bits(h, 4, 3) << 1, 9);
}
int64_t c_jump(uint32_t h) {
  return sext(bit(h, 12) << 11 | bit(h, 8) << 10 | bits(h, 10, 9) << 8 | bit(h, 6) << 7 | bit(h, 7) << 6 |
                  bit(h, 2) << 5 | bit(h, 11) << 4 | bits(h, 5, 3) << 1,
              12);
}

bool decode16(uint32_t h, uint32_t ext, Decoded *d) {
  const unsigned f3 = bits(h, 15, 13);
  const int r = int(bits(h, 11, 7)), r2 = int(bits(h, 6, 2));       // full register fields
  const int rp = int(bits(h, 9, 7)) + 8, rp2 = int(bits(h, 4, 2)) + 8; // x8..x15 fields
  C16 k = cNumC16;
  // Operands default to the register-register form rd = rs1 = r, rs2 = r2.
  d->rd = d->rs1 = r;
  d->rs2 = r2;
  auto mem = [&](C16 kind, int base, int reg, int64_t off, bool store) {
    k = kind;
    d->rs1 = base;
    d->imm = off;
    (store ? d->rs2 : d->rd) = reg;
  };
  switch (bits(h, 1, 0) << 3 | f3) {
  // quadrant 0
  case 0: { // c.addi4spn; the all-zero halfword is c.unimp
    const uint32_t nz = bits(h, 12, 11) << 4 | bits(h, 10, 7) << 6 | bit(h, 6) << 2 | bit(h, 5) << 3;
    if (h == 0) {
      k = cUnimp;
    } else if (nz) { // nzuimm 0 is reserved
      k = cAddi4spn;
      d->rd = rp2;
      d->rs1 = 2;
      d->imm = nz;
    }
    break;
  }
  case 1: mem(cFld, rp, rp2, c_uimm_d(h), false); break;
  case 2: mem(cLw, rp, rp2, c_uimm_w(h), false); break;
  case 3: mem(cLd, rp, rp2, c_uimm_d(h), false); break;
  case 5: mem(cFsd, rp, rp2, c_uimm_d(h), true); break;
  case 6: mem(cSw, rp, rp2, c_uimm_w(h), true); break;
  case 7: mem(cSd, rp, rp2, c_uimm_d(h), true); break;
  // quadrant 1
  case 8 + 0:
    d->imm = c_imm6(h);
    k = r ? cAddi : d->imm ? cNopHint : cNop;
    break;
  case 8 + 1:
    d->imm = c_imm6(h);
    if (r) k = cAddiw; // rd = 0 is reserved
    break;
  case 8 + 2:
    d->imm = c_imm6(h);
    k = r ? cLi : cLiHint;
    break;
  case 8 + 3:
    if (r == 2) { // c.addi16sp
      d->imm = sext(bit(h, 12) << 9 | bits(h, 4, 3) << 7 | bit(h, 5) << 6 | bit(h, 2) << 5 | bit(h, 6) << 4, 10);
      if (d->imm) k = cAddi16sp; // imm 0 is reserved
    } else { // c.lui: LLVM 16 takes imm 0 too
      k = r ? cLui : cLuiHint;
      d->imm = c_imm6(h) & 0xfffff;
    }
    break;
  case 8 + 4:
    d->rd = d->rs1 = rp;
    d->rs2 = rp2;
    switch (bits(h, 11, 10)) {
    case 0:
      d->imm = c_shamt(h);
      k = d->imm ? cSrli : cSrli64Hint;
      break;
    case 1:
      d->imm = c_shamt(h);
      k = d->imm ? cSrai : cSrai64Hint;
      break;
    case 2:
      d->imm = c_imm6(h);
      k = cAndi;
      break;
    case 3: { // bit 12 set with bits 6:5 = 10 / 11 is reserved
      static constexpr C16 kAlu[8] = {cSub, cXor, cOr, cAnd, cSubw, cAddw, cNumC16, cNumC16};
      k = kAlu[bit(h, 12) << 2 | bits(h, 6, 5)];
      break;
    }
    }
    break;
  case 8 + 5:
    k = cJ;
    d->imm = c_jump(h);
    break;
  case 8 + 6:
  case 8 + 7:
    k = f3 == 6 ? cBeqz : cBnez;
    d->rs1 = rp;
    d->imm = c_branch(h);
    break;
  // quadrant 2
  case 16 + 0:
    d->imm = c_shamt(h);
    k = !d->imm ? cSlli64Hint : r ? cSlli : cSlliHint;
    break;
  case 16 + 1: mem(cFldsp, 2, r, bit(h, 12) << 5 | bits(h, 6, 5) << 3 | bits(h, 4, 2) << 6, false); break;
  case 16 + 2: // rd = 0 is reserved (also for c.ldsp)
    if (r) mem(cLwsp, 2, r, bit(h, 12) << 5 | bits(h, 6, 4) << 2 | bits(h, 3, 2) << 6, false);
    break;
  case 16 + 3:
    if (r) mem(cLdsp, 2, r, bit(h, 12) << 5 | bits(h, 6, 5) << 3 | bits(h, 4, 2) << 6, false);
    break;
  case 16 + 4:
    if (!bit(h, 12)) {
      if (r2) k = r ? cMv : cMvHint;
      else if (r) k = cJr; // c.jr zero is reserved
    } else {
      if (r2) k = r ? cAdd : cAddHint;
      else k = r ? cJalr : cEbreak;
    }
    break;
  case 16 + 5: mem(cFsdsp, 2, r2, bits(h, 12, 10) << 3 | bits(h, 9, 7) << 6, true); break;
  case 16 + 6: mem(cSwsp, 2, r2, bits(h, 12, 9) << 2 | bits(h, 8, 7) << 6, true); break;
  case 16 + 7: mem(cSdsp, 2, r2, bits(h, 12, 10) << 3 | bits(h, 9, 7) << 6, true); break;
  default: break; // case 4 (quadrant 0, funct3 100) is reserved
  }
  if (k == cNumC16 || (kOps16[k].req & ext) != kOps16[k].req) return false;
  d->op = &kOps16[k];
  d->opcode = 0x10000u + k;
  return true;
}

// --- text -------------------------------------------------------------------

constexpr const char *kXNames[32] = {"zero", "ra", "sp",  "gp",  "tp", "t0", "t1", "t2", "s0", "s1", "a0",
                                     "a1",   "a2", "a3",  "a4",  "a5", "a6", "a7", "s2", "s3", "s4", "s5",
                                     "s6",   "s7", "s8",  "s9",  "s10", "s11", "t3", "t4", "t5", "t6"};
constexpr const char *kFNames[32] = {"ft0", "ft1", "ft2",  "ft3",  "ft4", "ft5", "ft6",  "ft7",
                                     "fs0", "fs1", "fa0",  "fa1",  "fa2", "fa3", "fa4",  "fa5",
                                     "fa6", "fa7", "fs2",  "fs3",  "fs4", "fs5", "fs6",  "fs7",
                                     "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11"};
constexpr const char *kRmNames[8] = {"rne", "rtz", "rdn", "rup", "rmm", "?", "?", "dyn"};

std::string csr_name(uint32_t csr) {
  switch (csr) {
  case 0x001: return "fflags";
  case 0x002: return "frm";
  case 0x003: return "fcsr";
  case 0xc00: return "cycle";
  case 0xc01: return "time";
  case 0xc02: return "instret";
  }
  char b[8];
  std::snprintf(b, sizeof b, "0x%03x", unsigned(csr));
  return b;
}

std::string fence_set(unsigned s) { // iorw bits, high to low
  std::string r;
  for (int i = 3; i >= 0; --i)
    if (s >> i & 1) r += "iorw"[3 - i];
  return r.empty() ? "0" : r;
}

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

std::string format(const Decoded &d, uint64_t address) {
  std::string s = d.op->mn;
  static constexpr const char *kAqRlSuffix[4] = {"", ".rl", ".aq", ".aqrl"};
  s += kAqRlSuffix[d.aqrl];
  if (*d.op->ops) s += ' ';
  for (const char *p = d.op->ops; *p; ++p) {
    switch (*p) {
    case 'd': s += kXNames[d.rd]; break;
    case 's': s += kXNames[d.rs1]; break;
    case 't': s += kXNames[d.rs2]; break;
    case 'D': s += kFNames[d.rd]; break;
    case 'S': s += kFNames[d.rs1]; break;
    case 'T': s += kFNames[d.rs2]; break;
    case 'R': s += kFNames[d.rs3]; break;
    case 'i': s += std::to_string(d.imm); break;
    case 'h': s += std::to_string(d.imm & 0x3f); break;
    case 'u': s += hex(uint64_t(d.imm)); break;
    case 'b': s += hex(address + uint64_t(d.imm)); break;
    case 'c': s += csr_name(uint32_t(d.imm) & 0xfff); break;
    case 'z': s += std::to_string(d.rs1); break;
    case 'p': s += fence_set(unsigned(d.imm) >> 4 & 15); break;
    case 'q': s += fence_set(unsigned(d.imm) & 15); break;
    case 'm':
      if (d.rm != 7) s += std::string(", ") + kRmNames[d.rm];
      break;
    case ',': s += ", "; break;
    default: s += *p; break;
    }
  }
  return s;
}

// --- the engine ---------------------------------------------------------------

struct BuiltinImpl final : Decoder::Impl {
  uint32_t ext = 0; // X(kI) | ... of the enabled extensions

  bool decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const override {
    if (size < 2) return false;
    Decoded d;
    uint32_t len;
    if ((bytes[0] & 3) != 3) {
      len = 2;
      if (!decode16(uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8, ext, &d)) return false;
    } else {
      // Low bits 11: 32-bit, or a longer encoding (bits 4:2 = 111), none of
      // which exists in RV64GC: those simply match no table entry.
      len = 4;
      if (size < 4) return false;
      const uint32_t w = uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 | uint32_t(bytes[2]) << 16 |
                         uint32_t(bytes[3]) << 24;
      if (!decode32(w, ext, &d)) return false;
    }
    const Op &op = *d.op;
    out->valid = true;
    out->length = len;
    out->compressed = len == 2;
    out->opcode = d.opcode;
    out->name = op.name;
    static constexpr const char *kAqRlName[4] = {"", "_RL", "_AQ", "_AQ_RL"};
    out->name += kAqRlName[d.aqrl];
    out->may_load = op.flags & kLoad;
    out->may_store = op.flags & kStore;
    if (with_text) {
      out->text = format(d, address);
      out->mnemonic = out->text.substr(0, out->text.find(' '));
    }
    fill_control(op.ctl, d, address, out);
    fill_gprs(op, d, out);
    return true;
  }

  // Integer registers read and written, as LLVM's operand lists have them (the
  // liveness scan for the far site jump relies on these): the layout's x
  // operands, plus what the layout does not show -- c.jalr writes ra, and the
  // *64 shift hints keep rd as a tied (read) operand.
  static void fill_gprs(const Op &op, const Decoded &d, Insn *out) {
    auto mark = [](uint32_t *mask, int reg) {
      if (reg > 0) *mask |= 1u << reg;
    };
    for (const char *p = op.ops; *p; ++p) {
      if (*p == 'd') mark(&out->gpr_written, d.rd);
      if (*p == 's') mark(&out->gpr_read, d.rs1);
      if (*p == 't') mark(&out->gpr_read, d.rs2);
    }
    if (op.ctl == Ctl::CJalr) mark(&out->gpr_written, 1);
    const std::string_view n(op.name);
    if (n.size() > 7 && n.substr(n.size() - 7) == "64_HINT") mark(&out->gpr_read, d.rd);
  }

  // Mirrors LlvmImpl::fill_riscv plus evaluateBranch: which instructions get
  // rd/rs1/rs2/imm, reads_pc, a flow and a target.
  static void fill_control(Ctl ctl, const Decoded &d, uint64_t address, Insn *out) {
    constexpr int kRa = 1;
    auto direct = [&](Flow f) {
      out->flow = f;
      out->reads_pc = true;
      out->has_target = true;
      out->target = address + uint64_t(d.imm); // wraps like the hardware
      out->imm = d.imm;
    };
    switch (ctl) {
    case Ctl::None: break;
    case Ctl::Auipc:
      out->rd = d.rd;
      out->imm = d.imm;
      out->reads_pc = true;
      break;
    case Ctl::Jal:
      out->rd = d.rd;
      direct(d.rd == 0 ? Flow::Jump : Flow::Call);
      break;
    case Ctl::Jalr:
      out->rd = d.rd;
      out->rs1 = d.rs1;
      out->imm = d.imm;
      if (d.rd == 0) {
        out->flow = d.rs1 == kRa && d.imm == 0 ? Flow::Return : Flow::IndirectJump;
      } else {
        out->flow = Flow::IndirectCall;
        out->reads_pc = true; // the link value
      }
      break;
    case Ctl::Branch:
      out->rs1 = d.rs1;
      out->rs2 = d.rs2;
      direct(Flow::CondBranch);
      break;
    case Ctl::CBranch:
      out->rs1 = d.rs1;
      out->rs2 = 0;
      direct(Flow::CondBranch);
      break;
    case Ctl::CJ:
      out->rd = 0;
      direct(Flow::Jump);
      break;
    case Ctl::CJr:
      out->rd = 0;
      out->rs1 = d.rs1;
      out->flow = d.rs1 == kRa ? Flow::Return : Flow::IndirectJump;
      break;
    case Ctl::CJalr:
      out->rd = kRa;
      out->rs1 = d.rs1;
      out->reads_pc = true;
      out->flow = Flow::IndirectCall;
      break;
    case Ctl::Trap: out->flow = Flow::Trap; break;
    }
  }
};

// Applies "+x,-y,..." to `ext` in order, with the dependencies: d needs f (as
// LLVM has it: +d turns f on, -f turns d off) and f needs zicsr.
bool parse_features(std::string_view features, uint32_t *ext, std::string *error) {
  static constexpr uint32_t kImplied[kNumExt] = {0, 0, 0, X(kZicsr), X(kF) | X(kZicsr), 0, 0, 0};
  while (!features.empty()) {
    const size_t comma = features.find(',');
    const std::string_view tok = features.substr(0, comma);
    features = comma == std::string_view::npos ? std::string_view() : features.substr(comma + 1);
    if (tok.empty()) continue;
    int e = -1;
    for (int i = 0; i < kNumExt; ++i)
      if (i != kI && tok.substr(1) == kExtNames[i]) e = i;
    if ((tok[0] != '+' && tok[0] != '-') || e < 0) {
      if (error)
        *error = "lp::mc: unknown feature '" + std::string(tok) +
                 "' for the built-in decoder (want +x or -x, x in m, a, f, d, c, zicsr, zifencei)";
      return false;
    }
    if (tok[0] == '+') {
      *ext |= X(Ext(e)) | kImplied[e];
    } else {
      *ext &= ~X(Ext(e));
      for (int i = 0; i < kNumExt; ++i) // whatever needs e goes too
        if (kImplied[i] & X(Ext(e))) *ext &= ~X(Ext(i));
    }
  }
  return true;
}

} // namespace

} // namespace lp::mc

namespace lp::riscv64 {

using namespace lp::mc;

std::unique_ptr<Decoder::Impl> make_builtin_decoder(std::string_view features, std::string *error) {
  uint32_t ext = (1u << kNumExt) - 1; // rv64gc
  if (!parse_features(features, &ext, error)) return nullptr;
  auto im = std::make_unique<BuiltinImpl>();
  im->arch = Arch::RISCV64;
  im->features = std::string(features);
  im->ext = ext;
  im->has_c = ext & X(kC);
  return im;
}

} // namespace lp::riscv64
