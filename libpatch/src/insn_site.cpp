#include "insn_site.hpp"

#include <cstring>

#include "libpatch/patch.h"
#include "mc/relocate.hpp"
#include "mc/target.hpp"
#include "patcher.hpp"
#include "platform/linux/symbols.hpp"

namespace lp {
namespace {

mc::Decoder *decoder(lp_patcher &p) {
  if (!p.mc_decoder) {
    mc::initialize_host_target();
    std::string err;
    p.mc_decoder = std::shared_ptr<void>(mc::Decoder::create(p.backend->arch(), p.backend->decoder_features(), &err).release(),
                                         [](void *d) { delete static_cast<mc::Decoder *>(d); });
  }
  return static_cast<mc::Decoder *>(p.mc_decoder.get());
}

void take_map(const mc::Relocation &r, uintptr_t ool, InsnSite &s) {
  s.ool = ool;
  s.multi = r.boundaries.size() > 1;
  s.map.clear();
  for (const auto &e : r.pc_map) s.map.push_back({e.orig_off, e.ool_off});
}

// A jump probe: trampoline code, then the OOL copy, then the data words.
// `far`: the site jump uses in.scratch_reg and may reach as far as an entry
// site's call; otherwise it must clobber nothing (Backend::insn_reach).
int prepare_jump(lp_patcher &p, lp_probe &pr, const mc::Decoder &dec, mc::RelocInput in, bool far) {
  const Backend &b = *p.backend;
  mc::Relocation plan = mc::plan_relocation(dec, in);
  if (!plan.ok()) return plan.lp_error();
  const int64_t reach = far ? b.reach() : b.insn_reach();
  const size_t code_max = b.insn_trampoline_max() + plan.max_code_size;
  const size_t data_off = (code_max + 15) & ~size_t(15);
  const size_t size = data_off + sizeof(TrampolineData);
  Slot slot;
  if (int rc = p.pool->allocate(in.site, plan.displaced_len, &slot, size, reach); rc != 0) return rc;
  TrampolineSpec spec;
  spec.site = in.site;
  spec.site_len = plan.displaced_len;
  spec.data = slot.rx + data_off;
  spec.tls_depth = p.tls_depth_offset;
  size_t tcode = 0;
  // A replacement's site jumps to a redirect stub instead (the displaced
  // prologue after it is the callable original); a probe's to the trampoline.
  const bool replace = pr.kind == ProbeKind::Replace;
  int rc = replace ? b.emit_redirect_stub(slot.rw, slot.rx, spec.data, &tcode)
                   : b.emit_insn_trampoline(slot.rw, slot.rx, spec, &tcode);
  mc::Relocation r;
  if (rc == 0) {
    r = mc::relocate(dec, in, slot.rx + tcode);
    if (!r.ok()) rc = r.lp_error();
    else if (tcode + r.code.size() > data_off) rc = LP_ERELOC;
  }
  auto insn = std::make_unique<InsnSite>();
  insn->jump_bytes.resize(r.ok() ? r.displaced_len : 0);
  if (rc == 0 && !mc::encode_site_jump(dec.arch(), in.site, slot.rx, r.displaced_len, far ? in.scratch_reg : 0,
                                       insn->jump_bytes.data()))
    rc = LP_ERANGE;
  if (rc != 0) {
    p.pool->retire(slot, p.generation);
    return rc;
  }
  std::memcpy(slot.rw + tcode, r.code.data(), r.code.size());
  b.publish_code(slot.rx, tcode + r.code.size());
  TrampolineData d;
  d.handler = pr.handler;
  d.user = pr.user;
  std::memcpy(slot.rw + data_off, &d, sizeof d);
  if (replace) {
    std::memcpy(slot.rw + data_off, &pr.replacement, sizeof pr.replacement);
    pr.original_fn = slot.rx + tcode;
  }
  take_map(r, slot.rx + tcode, *insn);
  if (far) {
    // Between `auipc rX` and `jalr x0, lo(rX)`: the jalr would enter the trampoline.
    insn->far = true;
    insn->jump_evac_base = slot.rx;
    insn->jump_map.push_back({mc::site_jump_len(dec.arch(), false), 0});
  }
  pr.shape.addr = in.site;
  pr.shape.len = r.displaced_len;
  pr.shape.unit = 0;
  pr.shape.entry_sled = false;
  pr.tramp = slot;
  pr.jump = true;
  pr.insn = std::move(insn);
  return 0;
}

// A trap probe: the trap replaces the first instruction, which runs from a
// one-instruction OOL copy when the handler returns. The copy's exits (the jump
// back, a branch or jump target) must reach from it: where the backend's short
// jump does not (RISC-V: jal, +-1 MiB, and no register is free), the copy may
// live anywhere and leaves through exit traps instead (a second trap per hit).
int prepare_trap(lp_patcher &p, lp_probe &pr, const mc::Decoder &dec, mc::RelocInput in) {
  in.min_len = 1;
  mc::Relocation plan = mc::plan_relocation(dec, in);
  if (!plan.ok()) return plan.lp_error();
  Slot slot;
  int rc = p.pool->allocate(in.site, plan.displaced_len, &slot, plan.max_code_size, p.backend->insn_reach());
  if (rc == LP_ERANGE && p.backend->insn_reach() < p.backend->reach()) {
    in.trap_exits = true;
    rc = p.pool->allocate(in.site, plan.displaced_len, &slot, plan.max_code_size);
  }
  if (rc != 0) return rc;
  mc::Relocation r = mc::relocate(dec, in, slot.rx);
  if (!r.ok() || r.code.size() > slot.size) {
    p.pool->retire(slot, p.generation);
    return r.ok() ? LP_ERELOC : r.lp_error();
  }
  std::memcpy(slot.rw, r.code.data(), r.code.size());
  p.backend->publish_code(slot.rx, r.code.size());
  auto insn = std::make_unique<InsnSite>();
  take_map(r, slot.rx, *insn);
  insn->ool_slot = slot;
  if (pr.kind == ProbeKind::Replace) pr.original_fn = slot.rx; // the first instruction, then back
  for (const mc::ExitTrap &e : r.exits) insn->exits.push_back({slot.rx + e.pc, e.target});
  pr.shape.addr = in.site;
  pr.shape.len = r.displaced_len;
  pr.shape.unit = 0;
  pr.shape.entry_sled = false;
  pr.jump = false;
  pr.insn = std::move(insn);
  return 0;
}

} // namespace

int prepare_insn_probe(lp_patcher &p, lp_probe &pr, uintptr_t addr) {
  // No decoder for this ISA in this build: no instruction sites at all.
  const mc::Decoder *dec = decoder(p);
  if (!dec) return LP_ENOTSUP;
  linux_platform::Symbol sym;
  // The boundary check decodes from the start of the containing function; an
  // address no symbol covers cannot be checked, so it is refused.
  if (linux_platform::symbol_containing(addr, &sym) != 0 || sym.size == 0) return LP_EBOUNDARY;
  mc::RelocInput in;
  in.site = addr;
  in.code = reinterpret_cast<const uint8_t *>(addr);
  in.avail = sym.addr + sym.size - addr;
  in.min_len = mc::site_jump_len(dec->arch());
  in.func_start = sym.addr;
  in.func_code = reinterpret_cast<const uint8_t *>(sym.addr);
  in.func_size = sym.size;
  if (!dec->is_boundary(sym.addr, sym.size, addr))
    return LP_EBOUNDARY;
  int rc = LP_ENOTSUP;
  if (p.opt.policy != LP_PROBE_TRAP) {
    rc = prepare_jump(p, pr, *dec, in, false);
    // Out of the short jump's reach: the far form, if a register is free.
    const uint32_t far_len = mc::site_jump_len(dec->arch(), true);
    if (rc == LP_ERANGE && far_len > in.min_len) {
      mc::RelocInput fin = in;
      fin.min_len = far_len;
      const mc::Relocation plan = mc::plan_relocation(*dec, fin);
      if (plan.ok()) {
        fin.scratch_reg = mc::find_scratch(*dec, fin, plan.displaced_len);
        // (If the far form fails too, the short jump's LP_ERANGE is the reason.)
        if (fin.scratch_reg != 0 && prepare_jump(p, pr, *dec, fin, true) == 0) rc = 0;
      }
    }
    // The displaced range must not reach into another probe's site.
    if (rc == 0 && p.overlaps(pr.shape.addr, pr.shape.len)) {
      p.pool->retire(pr.tramp, p.generation);
      pr.tramp = Slot{};
      pr.insn.reset();
      rc = LP_EEXIST;
    }
    if (rc == 0 || p.opt.policy == LP_PROBE_JUMP || rc == LP_EBOUNDARY) return rc;
  }
  // The jump did not fit (too short, out of range, not relocatable): a trap
  // probe displaces only the first instruction.
  int trc = prepare_trap(p, pr, *dec, in);
  if (trc == 0 && p.overlaps(pr.shape.addr, pr.shape.len)) {
    p.pool->retire(pr.insn->ool_slot, p.generation);
    pr.insn.reset();
    trc = LP_EEXIST;
  }
  // Neither fits: another probe's site in the way is the reason that matters;
  // otherwise why the jump did not fit (the trap's reason when none was tried).
  if (trc == 0) {
    pr.fallback = p.opt.policy == LP_PROBE_TRAP ? 0 : rc; // why not a jump (lp_probe_fallback)
    return 0;
  }
  if (trc == LP_EEXIST || rc == LP_ENOTSUP) return trc;
  return rc;
}

} // namespace lp
