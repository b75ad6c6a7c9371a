// The agent's process runner: output streaming, exit status, timeouts that
// kill the whole process group, cancellation, exec failures.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "farm_test_util.hpp"

using farm::agent::Cancel;
using farm::agent::ProcSpec;
using farm::agent::run_process;
using namespace std::chrono_literals;

TEST(FarmProcess, CapturesOutputAndExitCode) {
  ProcSpec ps;
  ps.argv = {"/bin/sh", "-c", "echo out1; echo err1 >&2; echo \"$FOO\"; exit 3"};
  ps.env["FOO"] = "bar";
  std::string streamed;
  auto r = run_process(ps, [&](std::string_view s, std::string_view d) { streamed += std::string(s) + ":" + std::string(d); },
                       nullptr);
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out1\nbar\n");
  EXPECT_EQ(r.err, "err1\n");
  EXPECT_NE(streamed.find("stdout:out1"), std::string::npos);
  EXPECT_NE(streamed.find("stderr:err1"), std::string::npos);
}

TEST(FarmProcess, ExecFailureIsReported) {
  ProcSpec ps;
  ps.argv = {"/nonexistent/farm-binary"};
  auto r = run_process(ps, nullptr, nullptr);
  EXPECT_FALSE(r.started);
  EXPECT_NE(r.error.find("No such file"), std::string::npos) << r.error;
}

TEST(FarmProcess, TimeoutKillsTheWholeGroup) {
  farmtest::TempDir d;
  ProcSpec ps;
  // A grandchild that ignores SIGTERM must not survive the timeout.
  std::string inner = "trap '' TERM; echo $$ > " + (d / "gc.pid") + "; exec sleep 100";
  ps.argv = {"/bin/sh", "-c", "/bin/sh -c " + farm::agent::shell_quote(inner) + " & sleep 100"};
  ps.timeout = 300ms;
  ps.kill_grace = 300ms;
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_process(ps, nullptr, nullptr);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(took, 5s);
  pid_t gc = 0;
  std::ifstream f(d / "gc.pid");
  f >> gc;
  ASSERT_GT(gc, 0);
  EXPECT_TRUE(farmtest::wait_until([&] { return !farmtest::process_alive(gc); }, 3s)) << "grandchild " << gc;
}

TEST(FarmProcess, ExitKillsLeftoverGroupMembers) {
  ProcSpec ps;
  ps.argv = {"/bin/sh", "-c", "sleep 100 & echo started"};
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_process(ps, nullptr, nullptr);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(FarmProcess, CancelFromAnotherThread) {
  ProcSpec ps;
  ps.argv = {"/bin/sh", "-c", "echo ready; exec sleep 100"};
  Cancel c;
  std::atomic<bool> ready{false};
  std::thread t([&] {
    farmtest::wait_until([&] { return ready.load(); }, 5s);
    c.cancel("test");
  });
  auto r = run_process(ps, [&](std::string_view, std::string_view d) { if (d.find("ready") != std::string_view::npos) ready = true; },
                       &c);
  t.join();
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.term_signal, SIGTERM);
  EXPECT_EQ(c.reason(), "test");
}

TEST(FarmProcess, CancelledBeforeStartStopsImmediately) {
  ProcSpec ps;
  ps.argv = {"/bin/sleep", "100"};
  Cancel c;
  c.cancel("early");
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_process(ps, nullptr, &c);
  EXPECT_TRUE(r.cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(FarmProcess, ShellQuote) {
  EXPECT_EQ(farm::agent::shell_quote("abc-1.2"), "abc-1.2");
  EXPECT_EQ(farm::agent::shell_quote("a b"), "'a b'");
  EXPECT_EQ(farm::agent::shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(farm::agent::shell_quote(""), "''");
  auto r = farmtest::run({"/bin/sh", "-c", "printf %s " + farm::agent::shell_quote("x'y \"$HOME\" z")});
  EXPECT_EQ(r.out, "x'y \"$HOME\" z");
}
