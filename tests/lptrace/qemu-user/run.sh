#!/usr/bin/env bash
# lptrace on programs of a cross build under qemu-user (label lptrace; the
# riscv64-gc, riscv64-g and aarch64 builds, tests/lptrace/<arch>): the host's
# lptrace runs dynamically linked programs of ARCH as
# qemu-ARCH -L /usr/ARCH-linux-gnu with this build's agent.
# usage: run.sh ARCH TEST LPTRACE AGENT WORKLOAD LIBC_CALLS STATIC SCRATCH
#   ARCH      riscv64 | aarch64
#   TEST      the ctest name, lptrace.<label>.<case>; CASE is its last part:
#             counts | exits | fork | libc | exec | record | patterns | ctl | bad
#   LPTRACE   the HOST lptrace (build/host/tools/lptrace/lptrace)
#   AGENT     this build's libpatch-trace.so (for ARCH)
#   WORKLOAD  tests/lptrace/workload.c built for ARCH, dynamically linked
#   LIBC_CALLS  libc_calls.c (Debian's ARCH glibc called a known number of times; exec)
#   STATIC    a statically linked ARCH program (patch-stress)
# The reports are checked exactly (JSON, read with python3). Exit 0 pass, 1 fail.
set -u -o pipefail
arch=$1 test_name=$2 lptrace=$3 agent=$4 workload=$5 libc_calls=$6 static=$7 scratch=$8
case_name=${test_name##*.}
fail() { echo "$test_name: FAIL: $*" >&2; exit 1; }
# Per ARCH: the loader its programs name; the other arch lptrace runs under
# qemu-user and its ELF machine number; ARCH's 32-bit sibling's name and
# machine number (an ELFCLASS32 file).
case $arch in
riscv64) loader=/lib/ld-linux-riscv64-lp64d.so.1 other=aarch64 other_em=183 m32=243 name32=riscv32 ;;
aarch64) loader=/lib/ld-linux-aarch64.so.1 other=riscv64 other_em=243 m32=40 name32=arm ;;
*) echo "run.sh: unknown arch '$arch'" >&2; exit 2 ;;
esac
qemu=qemu-$arch sysroot=/usr/$arch-linux-gnu agent_var=LPTRACE_AGENT_${arch^^}
[[ -x $lptrace ]] ||
  fail "no host lptrace at $lptrace: build the host preset first (cmake --preset host && cmake --build --preset host; .ci/run does), or point -DLP_HOST_LPTRACE=PATH at one"
command -v "$qemu" >/dev/null || fail "$qemu missing (Debian: qemu-user)"
# check FILE EXPR..., expect STATUS REGEX ARGS...
source "$(dirname "${BASH_SOURCE[0]}")/.."/lib.sh || exit 1
rm -rf "$scratch" && mkdir -p "$scratch" || exit 1
cd "$scratch" || exit 1
wl_name=$(basename "$workload")
four='("wl_sled_add", "wl_sled_twice", "wl_plain_mul", "wl_plain_square")'

case $case_name in
counts | exits)
  flag=()
  [[ $case_name == exits ]] && flag=(--exit)
  "$lptrace" run --agent "$agent" "${flag[@]}" --json -o r.json -f 'main:wl_*' -- "$workload" 4 1000 >out.txt 2>err.txt ||
    fail "lptrace or the workload failed: $(cat out.txt err.txt r.json 2>/dev/null)"
  grep -qx "workload: 4 threads x 1000 calls, 0 wrong" out.txt || fail "the workload saw wrong results: $(cat out.txt)"
  # The guest's own view: its executable (qemu's /proc/self/exe), its pid.
  check r.json 'len(procs) == 1' 'procs[0]["failed"] == []' 'procs[0]["matched"] == 4' \
    "procs[0]['program'] == '$workload'" \
    "all(fn(procs[0], n)['calls'] == 4000 and fn(procs[0], n)['object'] == '$wl_name' for n in $four)" \
    'all(fn(procs[0], n)["kind"] == "jump" for n in ("wl_sled_add", "wl_sled_twice"))'
  check r.json '[len(t["functions"]) for t in procs[0]["threads"] if t["functions"]] == [4, 4, 4, 4]' \
    'all(f["calls"] == 1000 for t in procs[0]["threads"] for f in t["functions"])'
  if [[ $case_name == exits ]]; then
    check r.json 'all(f["exits"] == f["calls"] for f in procs[0]["functions"])' \
      'all(0 < f["p50_ns"] <= f["p99_ns"] <= f["max_ns"] for f in procs[0]["functions"])' \
      'fn(procs[0], "wl_sled_twice")["total_ns"] >= fn(procs[0], "wl_sled_add")["total_ns"]' \
      'fn(procs[0], "wl_plain_square")["total_ns"] >= fn(procs[0], "wl_plain_mul")["total_ns"]'
  fi
  # The table, as a user sees it.
  "$lptrace" run --agent "$agent" "${flag[@]}" -f 'main:wl_sled_add' -- "$workload" 2 10 >/dev/null 2>t.txt ||
    fail "lptrace (table) failed: $(cat t.txt)"
  grep -Eq "^  $wl_name:wl_sled_add +20( |$)" t.txt || fail "no '$wl_name:wl_sled_add 20' row: $(cat t.txt)"
  ;;
fork)
  # The agent from $LPTRACE_AGENT_<ARCH> this time. A fork child under
  # qemu-user is a qemu fork: its agent reports separately, its own counts.
  env "$agent_var=$agent" "$lptrace" run --json -o r.json -f 'main:wl_plain_mul' -- "$workload" 1 10 fork >out.txt ||
    fail "lptrace or the workload failed: $(cat out.txt r.json 2>/dev/null)"
  grep -qx "workload: 1 threads x 10 calls, 0 wrong" out.txt || fail "the workload saw wrong results: $(cat out.txt)"
  # The parent (10 calls through wl_plain_square), the exit() child (7), and
  # the _exit() child (5) from an agent that hooks _exit (its reports have
  # "dlopen_rescans"; the agent before that wrote no report at _exit).
  check r.json 'sorted(fn(p, "wl_plain_mul")["calls"] for p in procs) == ([5, 7, 10] if "dlopen_rescans" in procs[0] else [7, 10])' \
    'len(set(p["pid"] for p in procs)) == len(procs)'
  ;;
libc)
  # Debian's cross glibc ($sysroot/lib/libc.so.6, no sleds):
  # opendir/readdir, a known number of calls, with exits. The directories are
  # under the scratch directory: qemu -L would show a guest the sysroot's
  # /lib, /usr/lib... instead of the host's.
  mkdir -p d1 d2/sub d3 && touch d1/a d2/b d2/c d3/{e,f,g,h} || exit 1
  dirs=("$PWD/d1" "$PWD/d2" "$PWD/d3")
  entries=$(python3 -c 'import os, sys; print(sum(len(os.listdir(d)) + 2 for d in sys.argv[1:]))' "${dirs[@]}")
  "$lptrace" run --agent "$agent" --exit --json -o r.json -f 'libc.so*:opendir' -f 'libc.so*:readdir' \
    -f 'nothing_is_called_this' -- "$libc_calls" dirs "${dirs[@]}" >out.txt || fail "lptrace libc_calls failed: $(cat out.txt r.json)"
  grep -qx "dirs: 3 directories, $entries entries" out.txt || fail "libc_calls printed: $(cat out.txt)"
  check r.json 'len(procs) == 1' "fn(procs[0], 'opendir')['calls'] == 3 and fn(procs[0], 'opendir')['exits'] == 3" \
    "fn(procs[0], 'readdir')['calls'] == $((entries + 3)) and fn(procs[0], 'readdir')['exits'] == $((entries + 3))" \
    "all(fn(procs[0], n)['object'] == 'libc.so.6' for n in ('opendir', 'readdir'))" \
    'procs[0]["unmatched"] == ["nothing_is_called_this"]' 'procs[0]["failed"] == []'
  ;;
exec)
  # exec from inside qemu-user: qemu hands execve() to the host kernel. An
  # ARCH program cannot run there without binfmt_misc (ENOEXEC); a host
  # program runs natively, untraced (the host loader refuses the ARCH agent
  # the guest's LD_PRELOAD names).
  "$lptrace" run --agent "$agent" --json -o r.json -f 'libc.so*:opendir' -- "$libc_calls" exec "$workload" 1 1 >out.txt 2>err.txt ||
    fail "lptrace libc_calls exec failed: $(cat out.txt err.txt r.json)"
  grep -qx "exec $workload: Exec format error" out.txt || fail "the $arch exec did not fail with ENOEXEC: $(cat out.txt)"
  grep -qx "child: exit 3" out.txt || fail "$(cat out.txt)"
  check r.json 'len(procs) == 2' 'sorted(fn(p, "opendir")["calls"] for p in procs) == [0, 1]' \
    "all(p['program'] == '$libc_calls' for p in procs)"
  "$lptrace" run --agent "$agent" --json -o r2.json -f 'libc.so*:opendir' -- "$libc_calls" exec /bin/echo native-echo >out2.txt 2>err2.txt ||
    fail "lptrace libc_calls exec /bin/echo failed: $(cat out2.txt err2.txt)"
  grep -qx "native-echo" out2.txt || fail "the host's echo did not run: $(cat out2.txt)"
  grep -qx "child: exit 0" out2.txt || fail "$(cat out2.txt)"
  grep -q "from LD_PRELOAD cannot be preloaded" err2.txt || fail "the host loader did not refuse the $arch agent: $(cat err2.txt)"
  # The parent's report; the fork child's, if the agent writes one at
  # execve (it is the same image until the exec succeeds): 0 calls. None from echo.
  check r2.json 'sorted(fn(p, "opendir")["calls"] for p in procs) in ([1], [0, 1])' \
    "all(p['program'] == '$libc_calls' for p in procs)"
  ;;
record)
  "$lptrace" run --agent "$agent" --exit --record t.json -f 'main:wl_*' -- "$workload" 2 100 >out.txt 2>rep.txt ||
    fail "lptrace --record failed: $(cat rep.txt)"
  grep -q "800 events written to t.json" rep.txt || fail "not 800 events: $(cat rep.txt)"
  python3 - t.json <<'PY2' || fail "t.json: not the events expected (above)"
import json, sys, collections
t = json.load(open(sys.argv[1]))
xs = [e for e in t["traceEvents"] if e["ph"] == "X"]
assert len(xs) == 800 and t["otherData"]["dropped_events"] == 0, (len(xs), t["otherData"])
per = collections.Counter((e["tid"], e["name"].split(":")[1]) for e in xs)
assert sorted(per.values()) == [100] * 8, per
assert all(e["dur"] >= 0 for e in xs)
PY2
  ;;
patterns)
  # Several -f (LPTRACE_FUNCS is one pattern per line: the newlines pass
  # qemu's -E unchanged) and a glob with a ',' (qemu splits -E at commas:
  # lptrace passes that value in qemu's environment instead).
  "$lptrace" run --agent "$agent" --json -o r.json -f 'main:wl_sled_[a,]dd' -f 'main:wl_plain_mul' -f 'main:wl_plain_square' \
    -- "$workload" 2 50 >out.txt 2>err.txt || fail "lptrace failed: $(cat err.txt out.txt)"
  check r.json 'len(procs) == 1' 'procs[0]["matched"] == 3' 'fn(procs[0], "wl_sled_twice") is None' \
    'all(fn(procs[0], n)["calls"] == 100 for n in ("wl_sled_add", "wl_plain_mul", "wl_plain_square"))' \
    'procs[0]["patterns"] == ["main:wl_sled_[a,]dd", "main:wl_plain_mul", "main:wl_plain_square"]'
  ;;
ctl)
  # lptrace ctl talks to the agent in the guest: the guest's pid is qemu's.
  "$lptrace" run --agent "$agent" -o run-report.txt -f 'main:wl_sled_add' -- "$workload" 2 0 >wl.out &
  bg=$!
  trap 'kill -TERM $bg 2>/dev/null; wait $bg 2>/dev/null' EXIT
  for _ in $(seq 1000); do grep -qx ready wl.out 2>/dev/null && break; sleep 0.01; done
  grep -qx ready wl.out || fail "the workload did not start"
  wpid=$(awk '{print $1}' /proc/"$bg"/task/"$bg"/children)
  [[ -n $wpid ]] || fail "no workload process"
  [[ $(readlink /proc/"$wpid"/exe) == */$qemu ]] || fail "lptrace's child is not $qemu: $(readlink /proc/"$wpid"/exe)"
  "$lptrace" ctl "$wpid" enable 'main:wl_plain_*' --exit >en.json || fail "ctl enable failed"
  python3 -c "import json,sys; r=json.load(open('en.json')); sys.exit(0 if r['ok'] and r['probed'] == 2 else 1)" ||
    fail "ctl enable: $(cat en.json)"
  sleep 0.5
  "$lptrace" ctl "$wpid" stats --json 2>s1.json || fail "ctl stats failed"
  check s1.json 'len(procs) == 1' "procs[0]['pid'] == $wpid" \
    'all(fn(procs[0], n)["calls"] > 0 for n in ("wl_sled_add", "wl_plain_mul", "wl_plain_square"))'
  # attach to a program under qemu-user that lptrace did not start: refused
  # (the agent would be loaded into qemu itself), the program untouched.
  "$qemu" -L "$sysroot" "$workload" 1 0 >plain.out &
  qpid=$!
  for _ in $(seq 1000); do grep -qx ready plain.out 2>/dev/null && break; sleep 0.01; done
  grep -qx ready plain.out || fail "the plain qemu workload did not start"
  "$lptrace" attach "$qpid" -f 'main:wl_*' --duration 0.2 2>q.err && fail "attach to a qemu-user process succeeded"
  grep -q "emulating another machine's program" q.err || fail "attach to qemu: no clear refusal: $(cat q.err)"
  kill -TERM "$qpid"
  wait "$qpid" || fail "the plain qemu workload exited $? after the refused attach"
  grep -q "0 wrong" plain.out || fail "the plain qemu workload saw wrong results: $(cat plain.out)"
  kill -TERM "$wpid"
  wait "$bg"
  rc=$?
  trap - EXIT
  [[ $rc -eq 0 ]] || fail "the workload under lptrace run exited $rc: $(cat wl.out run-report.txt)"
  grep -q "0 wrong" wl.out || fail "the workload saw wrong results: $(cat wl.out)"
  grep -q "$wl_name:wl_plain_mul" run-report.txt || fail "the final report lacks the function enabled by ctl: $(cat run-report.txt)"
  ;;
bad)
  host_agent=$(dirname "$lptrace")/libpatch-trace.so
  # A static program: no loader, no LD_PRELOAD.
  expect 2 "statically linked $arch program \(no PT_INTERP\).*LD_PRELOAD cannot load the agent" \
    run --agent "$agent" -f 'main:*' -- "$static" --threads 1
  # No qemu-ARCH in PATH (lptrace and the program named by path).
  env PATH=/nonexistent "$lptrace" run --agent "$agent" -f 'main:wl_*' -- "$workload" 1 1 >o.txt 2>e.txt
  [[ $? -eq 2 ]] && grep -q "$arch program: it runs under $qemu (no binfmt_misc is used), which is not in PATH" e.txt ||
    fail "$qemu not in PATH: $(cat e.txt)"
  # Agents of the wrong machine, both ways.
  expect 2 "is built for x86-64, but .* is built for $arch: the agent must be built for the program's machine \(build/$arch[-a-z0-9]*/tools/lptrace/libpatch-trace.so\)" \
    run --agent "$host_agent" -f 'main:wl_*' -- "$workload" 1 1
  expect 2 "is built for $arch, but (/usr)?/bin/true is built for x86-64" run --agent "$agent" -f x -- true
  expect 2 "not an ELF shared object" run --agent /etc/passwd -f 'main:wl_*' -- "$workload" 1 1
  expect 2 "^lptrace: --agent /nonexistent/agent.so: No such file" run --agent /nonexistent/agent.so -f x -- "$workload" 1 1
  # No ARCH agent anywhere (no --agent, no $LPTRACE_AGENT_<ARCH>, none installed next to lptrace).
  env -u "$agent_var" "$lptrace" run -f 'main:wl_*' -- "$workload" 1 1 >o.txt 2>e.txt
  [[ $? -eq 2 ]] && grep -Eq "is built for $arch and no $arch agent was found: pass --agent build/$arch[-a-z0-9]*/tools/lptrace/libpatch-trace.so \(built by the .*, set $agent_var" e.txt ||
    fail "no agent: $(cat e.txt)"
  env "$agent_var=/nonexistent/agent.so" "$lptrace" run -f x -- "$workload" 1 1 >o.txt 2>e.txt
  [[ $? -eq 2 ]] && grep -q "$agent_var=/nonexistent/agent.so: No such file" e.txt || fail "$agent_var: $(cat e.txt)"
  # A sysroot without the program's loader.
  expect 2 "needs the loader $loader, which is not in the $arch sysroot /nonexistent" \
    run --agent "$agent" --sysroot /nonexistent -f x -- "$workload" 1 1
  # The workload's header made the other qemu-user machine (this agent is
  # the wrong one: the message names the right one), a machine lptrace does
  # not run (ppc64) and ARCH's 32-bit sibling.
  python3 - "$workload" "$other_em" "$m32" <<'PY' || fail "cannot make the foreign ELF files"
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
o = bytearray(b); o[18:20] = struct.pack("<H", int(sys.argv[2]))
open("other-prog", "wb").write(o)
p = bytearray(b); p[18:20] = struct.pack("<H", 21)        # EM_PPC64
open("ppc64-prog", "wb").write(p)
r = bytearray(b[:64]); r[4] = 1; r[18:20] = struct.pack("<H", int(sys.argv[3]))   # ELFCLASS32
open("prog32", "wb").write(r)
PY
  chmod +x other-prog ppc64-prog prog32
  expect 2 "the agent --agent .* is built for $arch, but ./other-prog is built for $other: the agent must be built for the program's machine \(build/$other[-a-z0-9]*/tools/lptrace/libpatch-trace.so\)" \
    run --agent "$agent" -f x -- ./other-prog
  expect 2 "ppc64-prog is built for ppc64: lptrace runs x86-64 programs natively and riscv64 and aarch64 ones under qemu-riscv64 and qemu-aarch64, nothing else" \
    run --agent "$agent" -f x -- ./ppc64-prog
  expect 2 "prog32 is built for $name32: lptrace runs" run --agent "$agent" -f x -- ./prog32
  # A pattern error is still said first, and a missing program as before.
  expect 2 "more than one ':'" run --agent "$agent" -f 'a:b:c' -- "$workload" 1 1
  expect 127 "cannot run /nonexistent/program: No such file" run --agent "$agent" -f x -- /nonexistent/program
  ;;
*)
  echo "run.sh: unknown case '$case_name'" >&2
  exit 2
  ;;
esac
echo "$test_name: PASS"
