// x86-64 relocator. See relocator.hpp.
#include "relocator.hpp"

#include <cstring>

#include "mc/displace.hpp"

namespace lp::x86_64 {
namespace {

using mc::Flow;
using mc::Insn;
using mc::RelocStatus;

enum class Kind : uint8_t { Copy, RipMem, Jump, Jcc, LoopLike, Call, IndirectCall };

struct Item {
  Kind kind = Kind::Copy;
  const Insn *insn = nullptr;
  const uint8_t *bytes = nullptr; // original bytes
  uint32_t orig_off = 0;
  uint8_t cc = 0;            // jcc condition (low nibble)
  uint32_t op_pos = 0;       // LoopLike: position of the E0..E3 opcode; IndirectCall: of the ff
  bool internal = false;     // target inside the displaced range
  uint32_t internal_off = 0; // its orig offset
  int form = 0;              // 0 near (rel32), 1 far (absolute)
};

bool fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }
void put32le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

bool is_legacy_prefix(uint8_t b) {
  switch (b) {
  case 0x66: case 0x67: case 0x2e: case 0x3e: case 0x26: case 0x36:
  case 0x64: case 0x65: case 0xf0: case 0xf2: case 0xf3: return true;
  default: return false;
  }
}

uint32_t size_of(const Item &it) {
  const uint32_t L = it.insn->length;
  switch (it.kind) {
  case Kind::Copy:
  case Kind::RipMem: return L;
  case Kind::Jump: return it.form ? 14 : 5;
  case Kind::Jcc: return it.form ? 16 : 6;
  case Kind::LoopLike: return it.op_pos + 4 + (it.form ? 14 : 5);
  case Kind::Call: return 13 + (it.form ? 14 : 5);
  case Kind::IndirectCall: return 13 + L;
  }
  return L;
}

// Largest form of one item: a 15-byte jrcxz/loop (13 prefix bytes) + `jCC +2; jmp +14` +
// an absolute jmp (31), push + a 15-byte ff /4 (28), call (27), jcc (16).
constexpr uint32_t kMaxItemSize = 13 + 4 + 14;

// Classifies every displaced instruction; fails with Unsupported for pc-reading
// forms we cannot move.
RelocStatus classify(const mc::Displaced &d, const mc::RelocInput &in, std::vector<Item> &items,
                     std::string &why) {
  uint32_t off = 0;
  for (const Insn &insn : d.insns) {
    Item it;
    it.insn = &insn;
    it.bytes = in.code + off;
    it.orig_off = off;
    const std::string &n = insn.name;
    const uint8_t *b = it.bytes;
    const uint32_t L = insn.length;
    auto unsupported = [&](const char *what) {
      why = std::string(what) + ": '" + insn.text + "' at " + mc::hex_addr(insn.address);
      return RelocStatus::Unsupported;
    };
    if (insn.has_target) {
      if (insn.target >= in.site && insn.target < in.site + d.len) {
        it.internal = true;
        it.internal_off = uint32_t(insn.target - in.site);
        bool boundary = false;
        uint32_t o = 0;
        for (const Insn &j : d.insns) {
          if (o == it.internal_off) boundary = true;
          o += j.length;
        }
        if (!boundary) return unsupported("branch into the middle of a displaced instruction");
      }
      if (n == "JMP_1" || n == "JMP_2" || n == "JMP_4") {
        it.kind = Kind::Jump;
      } else if (n == "JCC_1" || n == "JCC_2" || n == "JCC_4") {
        it.kind = Kind::Jcc;
        // rel8: 7x ib ; rel32: 0f 8x id (prefixes such as ds/cs hints dropped).
        it.cc = (n == "JCC_1") ? uint8_t(b[L - 2] & 0x0f) : uint8_t(b[L - 5] & 0x0f);
        if (n == "JCC_2") return unsupported("16-bit jcc");
      } else if (n == "JRCXZ" || n == "JECXZ" || n == "JCXZ" || n == "LOOP" || n == "LOOPE" || n == "LOOPNE") {
        it.kind = Kind::LoopLike;
        it.op_pos = L - 2;
        if (b[it.op_pos] < 0xe0 || b[it.op_pos] > 0xe3) return unsupported("unexpected loop/jrcxz encoding");
      } else if (n == "CALL64pcrel32") {
        it.kind = Kind::Call;
      } else {
        return unsupported("pc-relative instruction we cannot move");
      }
      if (n == "JMP_2") return unsupported("16-bit jmp");
    } else if (insn.flow == Flow::IndirectCall) {
      // ff /2 (possibly with prefixes / REX): becomes push ret; ff /4.
      uint32_t p = 0;
      while (p < L && is_legacy_prefix(b[p])) ++p;
      if (p < L && (b[p] & 0xf0) == 0x40) ++p;
      if (p + 1 >= L || b[p] != 0xff || ((b[p + 1] >> 3) & 7) != 2) return unsupported("indirect call form");
      const uint8_t modrm = b[p + 1];
      const uint8_t mod = modrm >> 6, rm = modrm & 7;
      if (mod == 3 && rm == 4) return unsupported("call through rsp/r12");
      if (mod != 3 && rm == 4) {
        if (p + 2 >= L) return unsupported("indirect call form");
        const uint8_t sib = b[p + 2];
        if ((sib & 7) == 4 || ((sib >> 3) & 7) == 4)
          return unsupported("indirect call addressed off rsp (the pushed return address moves it)");
      }
      it.kind = Kind::IndirectCall;
      it.op_pos = p;
      if (insn.reads_pc && !insn.rip_relative) return unsupported("eip-relative operand");
    } else if (insn.rip_relative) {
      it.kind = Kind::RipMem;
    } else if (insn.reads_pc) {
      return unsupported("pc-relative operand we cannot rewrite");
    }
    if (insn.rip_relative && insn.mem_target >= in.site && insn.mem_target < in.site + d.len &&
        (insn.may_load || insn.may_store))
      return unsupported("accesses the displaced bytes themselves");
    items.push_back(it);
    off += L;
  }
  return RelocStatus::Ok;
}

} // namespace

mc::Relocation plan_relocation(const mc::Decoder &dec, const mc::RelocInput &in) {
  mc::Displaced d = mc::select_displaced(dec, in);
  mc::Relocation r = mc::base_relocation(d, in);
  r.status = d.status;
  r.reason = d.reason;
  if (!r.ok()) return r;
  std::vector<Item> items;
  r.status = classify(d, in, items, r.reason);
  if (!r.ok()) return r;
  r.max_code_size = uint32_t(items.size()) * kMaxItemSize + 14;
  return r;
}

mc::Relocation relocate(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest) {
  if (dec.arch() != mc::Arch::X86_64) {
    mc::Relocation r;
    r.reason = "decoder is not x86_64";
    return r;
  }
  mc::Displaced d = mc::select_displaced(dec, in);
  mc::Relocation r = mc::base_relocation(d, in);
  r.dest = dest;
  r.status = d.status;
  r.reason = d.reason;
  if (!r.ok()) return r;
  std::vector<Item> items;
  r.status = classify(d, in, items, r.reason);
  if (!r.ok()) return r;
  r.max_code_size = uint32_t(items.size()) * kMaxItemSize + 14;

  const uintptr_t back = in.site + d.len;
  const bool need_back = !d.ends_in_transfer;
  int back_form = 0;
  std::vector<uint32_t> ool(items.size() + 1);
  // Layout to a fixed point: forms only grow (near -> far), so this terminates.
  for (int iter = 0; iter < 8; ++iter) {
    uint32_t o = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      ool[i] = o;
      o += size_of(items[i]);
    }
    ool[items.size()] = o;
    bool changed = false;
    for (size_t i = 0; i < items.size(); ++i) {
      Item &it = items[i];
      if (it.form || it.internal) continue;
      if (it.kind == Kind::Jump || it.kind == Kind::Jcc || it.kind == Kind::LoopLike || it.kind == Kind::Call) {
        const uint64_t end = dest + ool[i] + size_of(it);
        if (!fits32(int64_t(it.insn->target - end))) {
          it.form = 1;
          changed = true;
        }
      }
    }
    if (need_back && !back_form && !fits32(int64_t(back - (dest + o + 5)))) {
      back_form = 1;
      changed = true;
    }
    if (!changed) break;
  }

  std::vector<uint8_t> &c = r.code;
  auto emit = [&](std::initializer_list<uint8_t> bs) { c.insert(c.end(), bs); };
  auto emit32 = [&](uint32_t v) {
    uint8_t t[4];
    put32le(t, v);
    c.insert(c.end(), t, t + 4);
  };
  auto emit64 = [&](uint64_t v) {
    emit32(uint32_t(v));
    emit32(uint32_t(v >> 32));
  };
  // jmp to `t` from the current end: near (e9 rel32) or far (ff 25 00000000; .quad t).
  auto emit_jmp = [&](uint64_t t, int form) {
    if (form == 0) {
      const uint64_t end = dest + c.size() + 5;
      emit({0xe9});
      emit32(uint32_t(int32_t(int64_t(t - end))));
    } else {
      emit({0xff, 0x25, 0, 0, 0, 0});
      r.literals.push_back(uint32_t(c.size()));
      emit64(t);
    }
  };
  auto target_of = [&](const Item &it) -> uint64_t {
    if (!it.internal) return it.insn->target;
    for (size_t j = 0; j < items.size(); ++j)
      if (items[j].orig_off == it.internal_off) return dest + ool[j];
    return it.insn->target;
  };
  auto push_ret = [&](uint64_t ret) {
    emit({0x68}); // push imm32 (sign-extended), then fix the high half
    emit32(uint32_t(ret));
    emit({0xc7, 0x44, 0x24, 0x04});
    emit32(uint32_t(ret >> 32));
  };

  for (size_t i = 0; i < items.size(); ++i) {
    const Item &it = items[i];
    const Insn &insn = *it.insn;
    const uint32_t L = insn.length;
    r.pc_map.push_back({it.orig_off, uint32_t(c.size())});
    const uint64_t orig_next = in.site + it.orig_off + L;
    switch (it.kind) {
    case Kind::Copy: c.insert(c.end(), it.bytes, it.bytes + L); break;
    case Kind::RipMem: {
      const size_t at = c.size();
      c.insert(c.end(), it.bytes, it.bytes + L);
      const int64_t nd = int64_t(insn.mem_target - (dest + at + L));
      if (!fits32(nd)) {
        r.status = RelocStatus::Range;
        r.reason = "RIP-relative operand of '" + insn.text + "' (" + mc::hex_addr(insn.mem_target) +
                   ") is beyond +-2 GiB of the copy at " + mc::hex_addr(dest);
        r.code.clear();
        r.pc_map.clear();
        return r;
      }
      put32le(&c[at + insn.disp_offset], uint32_t(int32_t(nd)));
      break;
    }
    case Kind::Jump: emit_jmp(target_of(it), it.internal ? 0 : it.form); break;
    case Kind::Jcc: {
      const uint64_t t = target_of(it);
      if (it.internal || it.form == 0) {
        const uint64_t end = dest + c.size() + 6;
        emit({0x0f, uint8_t(0x80 | it.cc)});
        emit32(uint32_t(int32_t(int64_t(t - end))));
      } else {
        emit({uint8_t(0x70 | (it.cc ^ 1)), 14}); // skip the absolute jmp when NOT taken
        emit_jmp(t, 1);
      }
      break;
    }
    case Kind::LoopLike: {
      const uint64_t t = target_of(it);
      const int form = it.internal ? 0 : it.form;
      c.insert(c.end(), it.bytes, it.bytes + it.op_pos + 1); // prefixes + opcode
      emit({2});                                              // taken -> the jmp to target
      emit({0xeb, uint8_t(form ? 14 : 5)});                   // not taken -> past it
      emit_jmp(t, form);
      break;
    }
    case Kind::Call:
      push_ret(orig_next);
      emit_jmp(target_of(it), it.internal ? 0 : it.form);
      break;
    case Kind::IndirectCall: {
      push_ret(orig_next);
      const size_t at = c.size();
      c.insert(c.end(), it.bytes, it.bytes + L);
      c[at + it.op_pos + 1] = uint8_t((c[at + it.op_pos + 1] & ~0x38) | (4 << 3)); // /2 -> /4
      if (insn.rip_relative) {
        const int64_t nd = int64_t(insn.mem_target - (dest + at + L));
        if (!fits32(nd)) {
          r.status = RelocStatus::Range;
          r.reason = "RIP-relative operand of '" + insn.text + "' is beyond +-2 GiB of the copy";
          r.code.clear();
          r.pc_map.clear();
          return r;
        }
        put32le(&c[at + insn.disp_offset], uint32_t(int32_t(nd)));
      }
      break;
    }
    }
  }
  r.jump_back_off = uint32_t(c.size());
  if (need_back) emit_jmp(back, back_form);
  r.status = RelocStatus::Ok;
  return r;
}

bool encode_site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, uint8_t *out) {
  if (displaced_len < kSiteJumpLen) return false;
  const int64_t rel = int64_t(uint64_t(target) - uint64_t(site + 5)); // wraps, no signed overflow
  if (!fits32(rel)) return false;
  out[0] = 0xe9;
  put32le(out + 1, uint32_t(int32_t(rel)));
  for (uint32_t i = 5; i < displaced_len; ++i) out[i] = 0xcc;
  return true;
}

} // namespace lp::x86_64
