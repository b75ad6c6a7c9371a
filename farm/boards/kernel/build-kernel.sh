#!/usr/bin/env bash
# farm/boards/kernel/build-kernel.sh: builds one board kernel from Debian's
# linux-source tarball, tinyconfig + config fragments, and keeps the result in
# a content-addressed cache so that building it again (in this build tree or
# any other) costs a hash and a copy. Run at build time by the CMake targets
# board-kernel-rv64gc / board-kernel-rv64g (farm/boards/CMakeLists.txt); never
# at configure time.
#
# usage: build-kernel.sh --name NAME --arch ARCH --cross PREFIX --tarball TAR
#          --fragment FILE [--fragment FILE ...] --target MAKE_TARGET
#          --image PATH_IN_OBJ --out FILE [--config-out FILE]
#          [--cache-dir DIR] [--jobs N] [--work-dir DIR] [--keep-work]
#          [--no-rvc]
#   --name       the board's name (for messages and the manifest)
#   --arch       the kernel's ARCH= (riscv)
#   --cross      CROSS_COMPILE= prefix (riscv64-linux-gnu-)
#   --tarball    Debian's /usr/src/linux-source-6.1.tar.xz
#   --fragment   config fragment merged over tinyconfig, in the order given;
#                every option in it must be set so in the final .config
#   --target     the make target (Image)
#   --image      the built file, relative to the object dir (arch/riscv/boot/Image)
#   --out        where the kernel image is copied
#   --config-out where the final .config is copied (optional)
#   --cache-dir  the cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/libpatch/boards)
#   --jobs       make -j (default: nproc)
#   --work-dir   where the tarball is extracted and built (default: a directory
#                next to --out); removed after a successful build unless --keep-work
#   --no-rvc     check that vmlinux holds no compressed (2-byte) instruction
# Exit status 0 with --out written, non-zero with a message otherwise.
set -euo pipefail
prog=build-kernel.sh
die() { echo "${prog}: error: $*" >&2; exit 1; }

name="" arch="" cross="" tarball="" target="" image="" out="" config_out=""
cache_dir="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/libpatch/boards"
jobs=$(nproc) work="" keep_work=0 no_rvc=0
fragments=()
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=$2; shift ;;
    --arch) arch=$2; shift ;;
    --cross) cross=$2; shift ;;
    --tarball) tarball=$2; shift ;;
    --fragment) fragments+=("$2"); shift ;;
    --target) target=$2; shift ;;
    --image) image=$2; shift ;;
    --out) out=$2; shift ;;
    --config-out) config_out=$2; shift ;;
    --cache-dir) [ -n "$2" ] && cache_dir=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --work-dir) work=$2; shift ;;
    --keep-work) keep_work=1 ;;
    --no-rvc) no_rvc=1 ;;
    -h|--help) sed -n '8,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
for v in name arch cross tarball target image out; do
  [ -n "${!v}" ] || die "--${v} is required (see --help)"
done
[ ${#fragments[@]} -gt 0 ] || die "at least one --fragment is required"
[ -f "$tarball" ] || die "no kernel source tarball at ${tarball} (Debian package linux-source-6.1: bash ci/install-deps)"
for f in "${fragments[@]}"; do [ -f "$f" ] || die "no config fragment ${f}"; done
command -v "${cross}gcc" >/dev/null || die "no cross compiler ${cross}gcc (bash ci/install-deps)"
for tool in make flex bison bc xz tar; do
  command -v "$tool" >/dev/null || die "${tool} is missing (bash ci/install-deps)"
done

t0=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f s'; }

# ---- the cache key -----------------------------------------------------------
# The hash covers everything that decides the bytes of the Image, and nothing
# else (no path, no time of day), so that equal inputs hit the cache from any
# build tree or checkout:
#  - the tarball's content (sha256; ~0.4 s for Debian's 138 MB): a new Debian
#    kernel source (linux-source-6.1 upgrade) is a new kernel;
#  - each fragment's content, in order (a changed option must rebuild; the
#    order matters to merge_config.sh when two fragments set one option);
#  - the cross compiler's and the linker's versions (gcc/binutils upgrades
#    change the code; the kernel's Kconfig also probes the compiler, so the
#    same fragment may give another .config);
#  - this script's content (it holds the build recipe: the make invocations,
#    the checks);
#  - ARCH, the make target, the image path and --no-rvc (another board).
# The host's make/flex/bison only build tools that generate the same files,
# so they are left out.
key_file=$(mktemp)
trap 'rm -f "$key_file"' EXIT
{
  echo "build-kernel cache key v1"
  echo "arch=${arch} target=${target} image=${image} no_rvc=${no_rvc}"
  echo "tarball=$(sha256sum < "$tarball" | cut -d' ' -f1)"
  for f in "${fragments[@]}"; do
    echo "fragment $(basename "$f") $(sha256sum < "$f" | cut -d' ' -f1)"
  done
  echo "gcc=$("${cross}gcc" --version | head -n1)"
  echo "ld=$("${cross}ld" --version | head -n1)"
  echo "script=$(sha256sum < "$0" | cut -d' ' -f1)"
} > "$key_file"
hash=$(sha256sum < "$key_file" | cut -c1-32)
entry="${cache_dir}/${hash}"

deliver() {
  mkdir -p "$(dirname "$out")"
  cp -f "${entry}/image" "${out}.tmp.$$" && mv -f "${out}.tmp.$$" "$out"
  if [ -n "$config_out" ]; then
    mkdir -p "$(dirname "$config_out")"
    cp -f "${entry}/config" "$config_out"
  fi
}

if [ -f "${entry}/done" ]; then
  deliver
  echo "${prog}: ${name}: cache hit ${entry} ($(elapsed))"
  exit 0
fi

mkdir -p "$cache_dir"
# One build per key at a time (two build trees building the same kernel):
# the second waits and then finds the first one's result.
exec 9> "${cache_dir}/${hash}.lock"
flock 9
if [ -f "${entry}/done" ]; then
  deliver
  echo "${prog}: ${name}: cache hit ${entry} after waiting for another build ($(elapsed))"
  exit 0
fi

# ---- the build -----------------------------------------------------------------
[ -n "$work" ] || work="$(dirname "$out")/${name}.kernel-work"
rm -rf "$work"
mkdir -p "$work/src" "$work/obj"
log="$work/build.log"
echo "${prog}: ${name}: cache miss (key ${hash}), building in ${work}; log ${log}"
fail() {
  echo "${prog}: error: ${name}: $*" >&2
  if [ -f "$log" ]; then echo "--- last lines of ${log}:" >&2; tail -n 40 "$log" >&2; fi
  exit 1
}
tar -xJf "$tarball" -C "$work/src" --strip-components=1 || fail "cannot extract ${tarball}"
echo "${prog}: ${name}: extracted ($(elapsed))"
# The build's user, host and time are fixed so that equal inputs give the
# same bytes (they are in the kernel's version string, `uname -v`).
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970" KBUILD_BUILD_USER=libpatch \
       KBUILD_BUILD_HOST=farm-boards KBUILD_BUILD_VERSION=1
kmake() { make -C "$work/src" O="$work/obj" ARCH="$arch" CROSS_COMPILE="$cross" "$@" >> "$log" 2>&1; }
kmake tinyconfig || fail "make tinyconfig failed"
( cd "$work/obj" && ARCH="$arch" CROSS_COMPILE="$cross" \
    "$work/src/scripts/kconfig/merge_config.sh" -m -O "$work/obj" "$work/obj/.config" "${fragments[@]}" ) \
  >> "$log" 2>&1 || fail "merge_config.sh failed"
kmake olddefconfig || fail "make olddefconfig failed"

# Every option of the fragments must be set exactly so in the final .config:
# kconfig drops, without an error, an option whose dependencies are not met
# (merge_config.sh only warns, in its output). When fragments disagree the
# later one wins, as in merge_config.sh.
config="$work/obj/.config"
declare -A want=() want_from=()
order=()
for f in "${fragments[@]}"; do
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      CONFIG_*=n|"# CONFIG_"*" is not set")
        opt=${line#\# }; opt=${opt%%=*}; opt=${opt%% *}; val=n ;;
      CONFIG_*=*)
        opt=${line%%=*}; val=${line#*=} ;;
      *) continue ;;
    esac
    [ -n "${want[$opt]+x}" ] || order+=("$opt")
    want[$opt]=$val
    want_from[$opt]=${f##*/}
  done < "$f"
done
dropped=()
for opt in "${order[@]}"; do
  val=${want[$opt]}
  got=$(grep -E "^${opt}=" "$config" | head -n1 || true)
  if [ "$val" = n ]; then
    [ -z "$got" ] || dropped+=("${opt}: wanted not set (${want_from[$opt]}), got ${got}")
  elif [ "$got" != "${opt}=${val}" ]; then
    if [ -z "$got" ] && grep -qx "# ${opt} is not set" "$config"; then got="not set"; fi
    dropped+=("${opt}: wanted ${val} (${want_from[$opt]}), got ${got:-nothing (not offered: unmet dependencies)}")
  fi
done
if [ ${#dropped[@]} -gt 0 ]; then
  printf '%s: error: %s: kconfig did not keep %d option(s) of the fragments:\n' "$prog" "$name" ${#dropped[@]} >&2
  printf '  %s\n' "${dropped[@]}" >&2
  exit 1
fi
echo "${prog}: ${name}: .config has every fragment option; make ${target} -j${jobs} ($(elapsed))"

kmake -j"$jobs" "$target" || fail "make ${target} failed"
[ -f "$work/obj/$image" ] || fail "make ${target} did not produce ${image}"

if [ "$no_rvc" = 1 ]; then
  # objdump prints each instruction's encoding: 4 hex digits = 2 bytes =
  # compressed. Halfwords it cannot decode (".2byte": data in .text, e.g. the
  # Image header of head.S) are not instructions. (The kernel builds with
  # -mno-riscv-attribute, so the objects carry no arch attribute to check.)
  ncomp=$("${cross}objdump" -d "$work/obj/vmlinux" |
          awk -F'\t' '$2 ~ /^[0-9a-f][0-9a-f][0-9a-f][0-9a-f] *$/ && $3 !~ /^\.2byte/ {n++} END {print n+0}')
  [ "$ncomp" = 0 ] || fail "vmlinux holds ${ncomp} compressed instructions"
  echo "${prog}: ${name}: no compressed instruction in vmlinux (objdump -d)"
fi

tmp_entry="${entry}.tmp.$$"
rm -rf "$tmp_entry"
mkdir -p "$tmp_entry"
cp "$work/obj/$image" "$tmp_entry/image"
cp "$config" "$tmp_entry/config"
cp "$work/obj/System.map" "$tmp_entry/System.map"
cp "$work/obj/vmlinux" "$tmp_entry/vmlinux"
cp "$key_file" "$tmp_entry/key"
{
  echo "name=${name}"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(elapsed)"
  echo "image=${image} $(stat -c %s "$work/obj/$image") bytes"
} > "$tmp_entry/manifest"
touch "$tmp_entry/done"
rm -rf "$entry"
mv "$tmp_entry" "$entry"
deliver
[ "$keep_work" = 1 ] || rm -rf "$work"
echo "${prog}: ${name}: built and cached in ${entry} ($(elapsed))"
