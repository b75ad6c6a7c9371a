#!/usr/bin/env bash
# Consumer tests of an INSTALLED libpatch (tests/consumers/CMakeLists.txt adds
# one ctest test per case, label `consumer`). Each run installs the build tree
# (component libpatch) into its own scratch prefix, then builds a real program
# against that install -- at test time -- runs it and checks exact results.
#
# usage: run.sh CASE --build DIR --scratch DIR --cc CC [--cxx CXX] [--cmake CMAKE]
#               [--source DIR] [--expect-mc 0|1]
#   CASE       pkgconfig.shared | pkgconfig.static | find_package | constructor.shared |
#              constructor.static | preload | readline | exports | no_dynamic_init |
#              calls.readme | calls.doc (the docs' call-probe examples, verbatim) |
#              outsider.replace | outsider.calls (glibc's opendir/readdir replaced / call-probed
#              under Debian's ls)
#   --build    the libpatch build tree to install (targets patch, patch_static built)
#   --scratch  this test's own scratch directory (wiped first; under the build tree)
#   --cc/--cxx the C / C++ compilers; --cmake the cmake binary
#   --source   the libpatch source tree (installed metadata must not point into it)
#   --expect-mc 1: the build has instruction sites (LLVM MC): the tracer checks one
# Exit status: 0 pass, 1 fail, 77 skip (a Debian package the case needs is missing).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/src
case_name=${1:-}
[[ -n $case_name ]] && shift
build= scratch= cc=cc cxx=c++ cmake=cmake source_dir= expect_mc=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2 ;;
    --scratch) scratch=$2 ;;
    --cc) cc=$2 ;;
    --cxx) cxx=$2 ;;
    --cmake) cmake=$2 ;;
    --source) source_dir=$2 ;;
    --expect-mc) expect_mc=$2 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift 2
done
if [[ -z $case_name || -z $build || -z $scratch ]]; then
  sed -n '2,20p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi

fail() {
  echo "consumer.$case_name: FAIL: $*" >&2
  exit 1
}
skip() {
  echo "consumer.$case_name: SKIP: $*" >&2
  exit 77
}

# step "what" cmd...: runs cmd, its output to a log; on failure prints the
# command, its exit status and its output, and fails naming "what".
nstep=0
step() {
  local what=$1 log rc
  shift
  log=$scratch/step$((++nstep)).log
  echo "+ $*"
  "$@" >"$log" 2>&1
  rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "---- exit status $rc, output of: $*" >&2
    cat "$log" >&2
    echo "----" >&2
    fail "$what"
  fi
}
last_log() { cat "$scratch/step$nstep.log"; }

# Nothing from the caller's environment may redirect what we test.
unset LD_LIBRARY_PATH LD_PRELOAD PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR CMAKE_PREFIX_PATH libpatch_DIR CFLAGS CXXFLAGS LDFLAGS

[[ -f $build/cmake_install.cmake ]] || fail "$build is not a configured build tree (no cmake_install.cmake)"
build=$(realpath "$build")
[[ -n $source_dir ]] && source_dir=$(realpath "$source_dir")
# The scratch directory is wiped: only ever one inside the build tree.
case $(realpath -m "$scratch") in
  "$build"/?*) ;;
  *) fail "--scratch $scratch is not inside the build tree $build" ;;
esac
rm -rf "$scratch" && mkdir -p "$scratch" || fail "cannot create the scratch directory $scratch"
scratch=$(realpath "$scratch")
prefix=$scratch/prefix
libdir=$prefix/lib

# ---------------------------------------------------------------------------
# The install, into this test's own prefix. cmake --install rewrites the build
# tree's install_manifest_libpatch.txt: concurrent tests (ctest -j) take turns.
install_libpatch() {
  local lock
  lock=$(dirname "$scratch")/install.lock
  if command -v flock >/dev/null; then
    step "cmake --install $build --component libpatch into $prefix" \
      flock "$lock" "$cmake" --install "$build" --prefix "$prefix" --component libpatch
  else
    step "cmake --install $build --component libpatch into $prefix" \
      "$cmake" --install "$build" --prefix "$prefix" --component libpatch
  fi
  echo "installed into $prefix:"
  (cd "$prefix" && find . \( -type f -o -type l \) | sort | sed 's/^/  /')
}
need() {
  local f
  for f in "$@"; do
    [[ -e $prefix/$f ]] || fail "the install does not contain $f (expected under $prefix; see the listing above)"
  done
}

# Installed metadata (.pc, CMake package files) must be relocatable and
# self-contained: no path of the build tree, the source tree or the prefix.
check_metadata_paths() {
  local f bad=0
  for f in "$@"; do
    if grep -nF "$prefix" "$f"; then
      echo "$f hardcodes the install prefix $prefix (not relocatable)" >&2
      bad=1
    fi
    if grep -nF "$build" "$f"; then
      echo "$f references the build tree $build" >&2
      bad=1
    fi
    if [[ -n $source_dir ]] && grep -nF "$source_dir/" "$f"; then
      echo "$f references the source tree $source_dir" >&2
      bad=1
    fi
  done
  [[ $bad -eq 0 ]] || fail "installed metadata is not relocatable / points outside the install (see above)"
}

use_pkgconfig() {
  need lib/pkgconfig/libpatch.pc
  export PKG_CONFIG_PATH=$libdir/pkgconfig
  command -v pkg-config >/dev/null || skip "pkg-config not installed (Debian package pkg-config)"
  step "pkg-config cannot use $libdir/pkgconfig/libpatch.pc" pkg-config --print-errors --exists libpatch
  local got
  got=$(pkg-config --variable=pcfiledir libpatch)
  [[ $(realpath "$got") == "$libdir/pkgconfig" ]] || fail "pkg-config found libpatch.pc in $got, not in the test prefix"
  got=$(pkg-config --variable=prefix libpatch)
  [[ -d $got && $(realpath "$got") == "$prefix" ]] ||
    fail "libpatch.pc: prefix=$got does not resolve to the install prefix $prefix (want prefix=\${pcfiledir}/../..)"
  got=$(pkg-config --variable=includedir libpatch)
  [[ -d $got && $(realpath "$got") == "$prefix/include" ]] || fail "libpatch.pc: includedir=$got is not $prefix/include"
  check_metadata_paths "$libdir/pkgconfig/libpatch.pc"
  echo "libpatch.pc:"
  sed 's/^/  /' "$libdir/pkgconfig/libpatch.pc"
}

# needed BINARY: its DT_NEEDED entries, one a line.
needed() { readelf -dW "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'; }
expect_needs_libpatch() {
  needed "$1" | grep -qx 'libpatch.so.0' ||
    fail "$1 does not NEED libpatch.so.0; readelf -d: $(readelf -dW "$1" | grep -E 'NEEDED|SONAME' | tr -s ' ')"
}
expect_not_needs_libpatch() {
  if needed "$1" | grep -q '^libpatch'; then
    fail "$1 NEEDs $(needed "$1" | grep '^libpatch'), but must not be linked against libpatch.so"
  fi
}
expect_fully_static() {
  local d
  d=$(readelf -dW "$1" 2>&1)
  if ! grep -q 'There is no dynamic section' <<<"$d"; then
    [[ -z $(needed "$1") ]] || fail "$1 is not static: it NEEDs $(needed "$1" | tr '\n' ' ')"
  fi
  if readelf -lW "$1" | grep -q 'INTERP'; then
    fail "$1 is not static: it has a PT_INTERP (program interpreter)"
  fi
  echo "$1: readelf -d: $(head -2 <<<"$d" | tr -s '\n' ' ')"
}

# run_prog "what" BINARY [args]: runs it, prints its output; fails on a
# non-zero exit. Its stdout+stderr are left in $scratch/run.out.
run_prog() {
  local what=$1 rc
  shift
  echo "+ $*"
  "$@" >"$scratch/run.out" 2>&1
  rc=$?
  cat "$scratch/run.out"
  [[ $rc -eq 77 ]] && skip "$what: the program reported a missing prerequisite (see above)"
  [[ $rc -eq 0 ]] || fail "$what: $1 exited with status $rc (output above)"
}
expect_output() {
  grep -qxF "$1" "$scratch/run.out" || fail "the program did not print the line '$1' (output above)"
}

cflags_common=(-O2 -g -Wall -Wextra -I"$src")

# ---------------------------------------------------------------------------
case $case_name in
pkgconfig.shared)
  install_libpatch
  need lib/libpatch.so lib/libpatch.so.0
  use_pkgconfig
  flags=$(pkg-config --cflags --libs libpatch)
  echo "pkg-config --cflags --libs libpatch: $flags"
  # LLVM is inside libpatch.so: a shared link must not pull it (it belongs in Libs.private).
  if grep -qiE 'llvm' <<<"$flags"; then
    fail "pkg-config --libs libpatch (shared link) names LLVM: $flags"
  fi
  step "compiling tracer.c against the installed libpatch.so with pkg-config" \
    "$cc" "${cflags_common[@]}" "$src/tracer.c" -o "$scratch/tracer" $flags -Wl,-rpath,"$libdir"
  expect_needs_libpatch "$scratch/tracer"
  export LPC_LIBDIR=$libdir LPC_EXPECT_MC=$expect_mc
  run_prog "the shared pkg-config tracer" "$scratch/tracer"
  expect_output "work: hits=1000"
  expect_output "tracer: ok"
  ;;

pkgconfig.static)
  install_libpatch
  need lib/libpatch.a
  use_pkgconfig
  flags=$(pkg-config --static --cflags --libs libpatch)
  echo "pkg-config --static --cflags --libs libpatch: $flags"
  step "fully static link of tracer.c with \$(pkg-config --static --cflags --libs libpatch) (is Libs.private complete?)" \
    "$cc" -static -DLPC_STATIC=1 "${cflags_common[@]}" "$src/tracer.c" -o "$scratch/tracer_static" $flags
  grep -i warning "$scratch/step$nstep.log" || true
  expect_fully_static "$scratch/tracer_static"
  export LPC_EXPECT_MC=$expect_mc
  run_prog "the fully static pkg-config tracer" "$scratch/tracer_static"
  expect_output "work: hits=1000"
  expect_output "tracer: ok"
  ;;

find_package)
  install_libpatch
  need lib/libpatch.so lib/libpatch.a lib/cmake/libpatch
  check_metadata_paths "$libdir"/cmake/libpatch/*.cmake
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  step "configuring the find_package(libpatch) consumer project against $prefix" \
    "$cmake" -S "$here/find_package" -B "$scratch/consumer" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
    -DLPC_EXPECT_PREFIX="$prefix" -DLPC_SRC="$src"
  step "building the find_package(libpatch) consumer project" "$cmake" --build "$scratch/consumer" --verbose
  expect_not_needs_libpatch "$scratch/consumer/c_static"
  expect_needs_libpatch "$scratch/consumer/cxx_shared"
  export LPC_LIBDIR=$libdir
  run_prog "C consumer linked with libpatch::patch_static" "$scratch/consumer/c_static"
  expect_output "c_static: hits=321 ok"
  run_prog "C++ consumer (libpatch::Patcher) linked with libpatch::patch" "$scratch/consumer/cxx_shared"
  expect_output "cxx_shared: hits=123 ok"
  ;;

constructor.shared)
  install_libpatch
  need lib/libpatch.so
  use_pkgconfig
  step "compiling ctor.c against the installed libpatch.so" \
    "$cc" "${cflags_common[@]}" "$src/ctor.c" -o "$scratch/ctor" $(pkg-config --cflags --libs libpatch) -Wl,-rpath,"$libdir"
  expect_needs_libpatch "$scratch/ctor"
  export LPC_LIBDIR=$libdir
  run_prog "libpatch used from a constructor (shared)" "$scratch/ctor"
  expect_output "ctor: f=38 g=5"
  expect_output "ctor: ok"
  ;;

constructor.static)
  install_libpatch
  need lib/libpatch.a
  use_pkgconfig
  step "fully static link of ctor.c with \$(pkg-config --static --cflags --libs libpatch)" \
    "$cc" -static -DLPC_STATIC=1 "${cflags_common[@]}" "$src/ctor.c" -o "$scratch/ctor_static" \
    $(pkg-config --static --cflags --libs libpatch)
  expect_fully_static "$scratch/ctor_static"
  run_prog "libpatch used from a constructor (static)" "$scratch/ctor_static"
  expect_output "ctor: f=38 g=5"
  expect_output "ctor: ok"
  ;;

preload)
  install_libpatch
  need lib/libpatch.so
  use_pkgconfig
  step "compiling the plain main program (no libpatch, -fpatchable-function-entry=5)" \
    "$cc" -O2 -g -Wall -pthread -fpatchable-function-entry=5 "$src/preload_app.c" -o "$scratch/app"
  expect_not_needs_libpatch "$scratch/app"
  step "building the LD_PRELOAD library against the installed libpatch.so" \
    "$cc" "${cflags_common[@]}" -shared -fPIC "$src/preload.c" -o "$scratch/lp_preload.so" \
    $(pkg-config --cflags --libs libpatch) -Wl,-rpath,"$libdir"
  expect_needs_libpatch "$scratch/lp_preload.so"
  echo "+ $scratch/app  (baseline, no preload)"
  "$scratch/app" >"$scratch/base.out" 2>"$scratch/base.err" || fail "the main program alone failed: $(cat "$scratch/base.err")"
  cat "$scratch/base.out"
  echo "+ LD_PRELOAD=$scratch/lp_preload.so $scratch/app"
  LPC_LIBDIR=$libdir LD_PRELOAD=$scratch/lp_preload.so "$scratch/app" >"$scratch/pre.out" 2>"$scratch/pre.err"
  rc=$?
  echo "stdout:"; cat "$scratch/pre.out"
  echo "stderr:"; cat "$scratch/pre.err"
  [[ $rc -eq 0 ]] || fail "the main program under LD_PRELOAD=lp_preload.so exited with status $rc"
  cmp -s "$scratch/base.out" "$scratch/pre.out" ||
    fail "the program's own output changed under the preload: $(diff "$scratch/base.out" "$scratch/pre.out" | tr '\n' ' ')"
  grep -qxF "lp-preload: f=1000 g=7" "$scratch/pre.err" ||
    fail "the preload library did not count f=1000 g=7: $(grep lp-preload "$scratch/pre.err" || echo 'no lp-preload line')"
  if grep -q 'FAIL' "$scratch/pre.err"; then
    fail "the preload library reported failures: $(grep FAIL "$scratch/pre.err" | tr '\n' ' ')"
  fi
  ;;

readline)
  install_libpatch
  need lib/libpatch.so
  use_pkgconfig
  step "compiling rl.c against the installed libpatch.so" \
    "$cc" "${cflags_common[@]}" "$src/rl.c" -o "$scratch/rl" $(pkg-config --cflags --libs libpatch) -ldl -Wl,-rpath,"$libdir"
  expect_needs_libpatch "$scratch/rl"
  echo "NEEDED of rl: $(needed "$scratch/rl" | tr '\n' ' ')"
  echo "+ printf 'hello\\n' | $scratch/rl"
  printf 'hello\n' | LPC_LIBDIR=$libdir TERM=dumb INPUTRC=/dev/null "$scratch/rl" >"$scratch/run.out" 2>&1
  rc=$?
  cat "$scratch/run.out"
  [[ $rc -eq 77 ]] && skip "libreadline.so.8 (Debian package libreadline8) is not installed"
  [[ $rc -eq 0 ]] || fail "rl (GNU readline dlopened next to libpatch.so) exited with status $rc (output above)"
  expect_output "readline: [hello]"
  expect_output "tick: hits=100"
  expect_output "rl: ok"
  ;;

exports)
  install_libpatch
  need lib/libpatch.so lib/libpatch.so.0 lib/libpatch.so.0.1.0
  so=$libdir/libpatch.so.0
  errors=()
  [[ $(realpath "$so") == "$libdir/libpatch.so.0.1.0" ]] ||
    errors+=("libpatch.so.0 resolves to $(realpath "$so"), not libpatch.so.0.1.0")
  soname=$(readelf -dW "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
  echo "SONAME: ${soname:-none}"
  [[ $soname == libpatch.so.0 ]] || errors+=("SONAME of libpatch.so.0 is '${soname:-none}', expected libpatch.so.0")
  echo "NEEDED: $(needed "$so" | tr '\n' ' ')"
  # LLVM is linked in statically and hidden: neither it nor its dependencies are NEEDED...
  deps=$(needed "$so" | grep -E '^(libLLVM|libedit|libz3|libicu|libxml2)' || true)
  [[ -z $deps ]] || errors+=("libpatch.so.0 NEEDs $(tr '\n' ' ' <<<"$deps")(LLVM must be linked statically)")
  # ...and nothing of LLVM is left undefined, to be resolved at run time.
  step "nm -D --undefined-only $so" nm -D --undefined-only "$so"
  llvm_undef=$(last_log | awk '{print $NF}' | grep -E '^_ZN?K?4llvm|^LLVM' || true)
  [[ -z $llvm_undef ]] ||
    errors+=("libpatch.so.0 leaves $(wc -l <<<"$llvm_undef") LLVM symbol(s) undefined, e.g. $(head -3 <<<"$llvm_undef" | tr '\n' ' ')")
  # ...and every symbol it leaves undefined is found in the libraries it NEEDs
  # (an executable link checks that: --no-allow-shlib-undefined).
  printf '#include <libpatch/patch.h>\nint main(void) { return lp_arch() == 0; }\n' >"$scratch/linkcheck.c"
  "$cc" -I"$prefix/include" "$scratch/linkcheck.c" -o "$scratch/linkcheck" -L"$libdir" -lpatch \
    -Wl,--no-allow-shlib-undefined >"$scratch/linkcheck.log" 2>&1
  if [[ $? -ne 0 ]]; then
    cat "$scratch/linkcheck.log" >&2
    unres=$(sed -n "s/.*undefined reference to \`\(.*\)'.*/\1/p" "$scratch/linkcheck.log" | sort -u)
    errors+=("a program linked against libpatch.so.0 fails: $(wc -l <<<"$unres") symbol(s) libpatch.so.0 uses are in none of its NEEDED libraries: $(tr '\n' ' ' <<<"$unres")")
  fi
  # The exports: "ADDR TYPE NAME[@[@]VERSION]"; absolute symbols (type A) are version nodes.
  step "nm -D --defined-only $so" nm -D --defined-only "$so"
  offenders=$(last_log | awk '{ t = $(NF-1); n = $NF; sub(/@.*/, "", n);
                                if (t != "A" && n !~ /^lp_/) print "  " t " " $NF }')
  nexports=$(last_log | awk '$(NF-1) != "A"' | wc -l)
  nlp=$(last_log | awk '$(NF-1) != "A" && $NF ~ /^lp_/' | wc -l)
  echo "defined dynamic symbols: $nexports ($nlp lp_*)"
  [[ $nlp -gt 0 ]] || errors+=("nm -D finds no lp_* symbol defined in $so")
  if [[ -n $offenders ]]; then
    echo "defined dynamic symbols of libpatch.so.0 not starting with lp_ ($(wc -l <<<"$offenders")):" >&2
    echo "$offenders" >&2
    errors+=("libpatch.so.0 exports $(wc -l <<<"$offenders") symbol(s) outside the C API (lp_*), listed above")
  fi
  # The lp_* exports are exactly the functions the installed C headers declare.
  declared=$(printf '#include <libpatch/patch.h>\n#include <libpatch/regs.h>\n' |
    "$cc" -E -P -I"$prefix/include" -x c - | grep -oE '\blp_[A-Za-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:](]*$//' | sort -u)
  exported=$(last_log | awk '$(NF-1) != "A" { n = $NF; sub(/@.*/, "", n); if (n ~ /^lp_/) print n }' | sort -u)
  echo "functions declared by patch.h/regs.h: $(wc -l <<<"$declared")"
  missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
  extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
  [[ -z $missing ]] || errors+=("declared in the installed headers but not exported: $(tr '\n' ' ' <<<"$missing")")
  [[ -z $extra ]] || errors+=("lp_* symbols exported but not part of the C API (not declared in patch.h/regs.h): $(tr '\n' ' ' <<<"$extra")")
  if [[ ${#errors[@]} -gt 0 ]]; then
    printf '  %s\n' "${errors[@]}" >&2
    fail "${#errors[@]} problem(s) with the exports of libpatch.so.0 (listed above)"
  fi
  ;;

no_dynamic_init)
  install_libpatch
  need lib/libpatch.a
  ar=$libdir/libpatch.a
  step "readelf -SW $ar" readelf -SW "$ar"
  # Per member ("File: .../libpatch.a(x.o)"), any .init_array/.ctors/.preinit_array
  # section (also .init_array.NNNNN) with a non-zero size is a dynamic initialiser.
  report=$(last_log | awk '
    /^File: / { file = $2; sub(/.*\//, "", file); members++; next }
    /^ *\[ *[0-9]+\]/ {
      line = $0; sub(/^ *\[ *[0-9]+\] */, "", line); split(line, f, / +/)
      name = f[1]; size = f[5]
      if (name ~ /^\.(init_array|ctors|preinit_array)(\.[0-9]+)?$/ && size !~ /^0+$/)
        print file " " name " size 0x" size
    }
    END { print "members " members + 0 }')
  members=$(sed -n 's/^members //p' <<<"$report")
  offenders=$(grep -v '^members ' <<<"$report" || true)
  echo "libpatch.a: $members member(s) inspected"
  [[ $members -gt 0 ]] || fail "readelf -SW found no members in $ar"
  if [[ -n $offenders ]]; then
    echo "objects of libpatch.a with dynamic initialisers:" >&2
    sed 's/^/  /' <<<"$offenders" >&2
    # Name the initialiser functions the compiler generated (_GLOBAL__sub_I_<tu>).
    echo "their initialiser functions (nm):" >&2
    nm -A "$ar" 2>/dev/null | grep -E '_GLOBAL__(sub_)?I_' | sed 's|^.*/||; s/^/  /' >&2
    fail "$(wc -l <<<"$offenders") object(s) in libpatch.a have a non-empty .init_array/.ctors (dynamically initialised globals: unsafe from a constructor), listed above"
  fi
  ;;

outsider.calls | outsider.replace)
  # A program nobody here wrote: Debian's ls, with glibc's own opendir and
  # readdir (no sleds: instruction sites at their entries) under call probes
  # (outsider.calls: every entry has its exit; the exits see one DIR per
  # opendir, one entry per readdir and one NULL per directory) or replaced by
  # counting wrappers that call the originals through their relocated
  # prologues (outsider.replace). Output identical, counts exact.
  [[ $expect_mc == 1 ]] || skip "this build has no instruction sites (no decoder): these need an entry sled"
  what=${case_name#outsider.}
  install_libpatch
  need lib/libpatch.so
  use_pkgconfig
  step "building the LD_PRELOAD library against the installed libpatch.so" \
    "$cc" "${cflags_common[@]}" -shared -fPIC "$src/${what}_preload.c" -o "$scratch/$what.so" \
    $(pkg-config --cflags --libs libpatch) -Wl,-rpath,"$libdir"
  dirs=(/ /usr /etc)
  entries=0
  for d in "${dirs[@]}"; do entries=$((entries + $(ls -a1 "$d" | wc -l))); done
  n=${#dirs[@]}
  echo "+ ls ${dirs[*]}  (baseline)"
  ls "${dirs[@]}" >"$scratch/base.out" 2>&1 || fail "ls alone failed"
  echo "+ LD_PRELOAD=$scratch/$what.so ls ${dirs[*]}"
  LD_PRELOAD=$scratch/$what.so ls "${dirs[@]}" >"$scratch/pre.out" 2>"$scratch/pre.err"
  rc=$?
  cat "$scratch/pre.err"
  [[ $rc -eq 0 ]] || fail "ls under ${what}_preload.so exited with status $rc"
  cmp -s "$scratch/base.out" "$scratch/pre.out" ||
    fail "ls printed something else under ${what}_preload.so: $(diff "$scratch/base.out" "$scratch/pre.out" | head -5 | tr '\n' ' ')"
  if [[ $what == calls ]]; then
    want="calls-preload: opendir $n/$n ok $n, readdir $((entries + n))/$((entries + n)) entries $entries end $n"
  else
    want="replace-preload: opendir=$n readdir=$entries"
  fi
  grep -qxF "$want" "$scratch/pre.err" || fail "expected '$want'"
  ;;

calls.readme | calls.doc)
  # The documentation's call-probe examples, run verbatim (docs/calls.md), the
  # way a reader who followed the README's install step runs them: libpatch in
  # $HOME/libpatch.
  [[ -n $source_dir ]] || fail "--source is needed to find the documentation"
  install_libpatch
  use_pkgconfig
  unset PKG_CONFIG_PATH
  export HOME=$scratch/home
  mkdir -p "$HOME" && ln -s "$prefix" "$HOME/libpatch"
  if [[ $case_name == calls.readme ]]; then
    doc=$source_dir/README.md marker=readme-calls
    want='^sum_to: 1000 calls, 0 wrong results, mean latency [0-9]+ ns \(sum 166666500\)$'
  else
    doc=$source_dir/docs/calls.md marker=calls-md-inject
    want='^open_device\(2\)=2 open_device\(3\)=-5 checksum\(1\)=39$'
  fi
  step "the $marker block of $doc" bash "$source_dir/tests/farm/scripts/run-doc-block.sh" "$doc" "$marker" "$build" 120
  last_log
  last_log | grep -Eq "$want" || fail "the $marker block did not print a line matching: $want"
  if [[ $case_name == calls.doc ]]; then
    last_log | grep -qx 'original checksum(1)=38' || fail "lp_probe_original did not run the original"
    last_log | grep -qx 'open_device(3)=3 checksum(1)=38' || fail "disabling did not restore both functions"
  fi
  ;;

*)
  echo "run.sh: unknown case '$case_name'" >&2
  exit 2
  ;;
esac
echo "consumer.$case_name: PASS"
