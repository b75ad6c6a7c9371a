#include "mc_target.hpp"

#include "decoder.hpp"
#include "liveness.hpp"
#include "relocator.hpp"

namespace lp::riscv64 {
namespace {

constinit const mc::Target kTarget = {
    mc::Arch::RISCV64, "riscv64", {"rv64", nullptr, nullptr}, kSiteJalLen, kSiteFarLen,
    &make_builtin_decoder, &plan_relocation, &relocate, &encode_site_jump, &dead_register,
};

} // namespace

const mc::Target &mc_target() { return kTarget; }

} // namespace lp::riscv64
