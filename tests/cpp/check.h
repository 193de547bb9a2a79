// @brief A tiny self-contained check/test-runner for the C++ test binaries (no external
// framework: the build must work offline).
//
// A CHECK that fails records the failure and lets the test go on, so one run reports every
// broken case, not only the first. A test passes when it recorded no failure and threw nothing.
// A watchdog turns a hang (a scheduler deadlock) into a failed test instead of a stuck ctest.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

namespace check {

struct State {
  std::atomic<int> failures{0};
  std::atomic<int> shown{0};  // failure lines printed in the current test
  std::atomic<int> passed{0};
  std::atomic<int> failed{0};
  std::atomic<int64_t> deadline_ns{0};  // 0: no test running
  std::mutex name_mutex;
  std::string current;
};

inline State& state() {
  static State s;
  return s;
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr int kMaxShown = 30;  // per test: enough to diagnose, not a wall of text

inline void fail(const char* file, int line, const std::string& msg) {
  state().failures.fetch_add(1);
  if (state().shown.fetch_add(1) >= kMaxShown) return;
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  std::printf("    %s:%d: %s\n", base, line, msg.c_str());
  std::fflush(stdout);
}

inline void print_summary() {
  std::printf("%d passed, %d failed\n", state().passed.load(), state().failed.load());
  std::fflush(stdout);
}

/// Starts a thread that ends the process if one test runs past its time limit.
inline void start_watchdog() {
  std::thread([] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const int64_t d = state().deadline_ns.load();
      if (d != 0 && now_ns() > d) {
        std::string name;
        {
          std::lock_guard<std::mutex> lock(state().name_mutex);
          name = state().current;
        }
        std::printf("[FAIL] %s: still running after its time limit (deadlock?)\n", name.c_str());
        state().failed.fetch_add(1);
        print_summary();
        std::_Exit(1);
      }
    }
  }).detach();
}

using TestFn = void (*)();
struct Test {
  const char* name;
  TestFn fn;
  double limit_s;  // watchdog limit
};

inline void run_test(const Test& t) {
  {
    std::lock_guard<std::mutex> lock(state().name_mutex);
    state().current = t.name;
  }
  const int before = state().failures.load();
  state().shown.store(0);
  const int64_t t0 = now_ns();
  state().deadline_ns.store(t0 + static_cast<int64_t>(t.limit_s * 1e9));
  bool threw = false;
  try {
    t.fn();
  } catch (const std::exception& e) {
    threw = true;
    std::printf("    unexpected exception (%s): %s\n", typeid(e).name(), e.what());
  } catch (...) {
    threw = true;
    std::printf("    unexpected non-std exception\n");
  }
  state().deadline_ns.store(0);
  const double secs = (now_ns() - t0) * 1e-9;
  const int failures = state().failures.load() - before;
  if (failures > kMaxShown) std::printf("    ... %d more failed checks not shown\n", failures - kMaxShown);
  const bool ok = !threw && failures == 0;
  (ok ? state().passed : state().failed).fetch_add(1);
  std::printf("[%s] %s (%.2f s)\n", ok ? "PASS" : "FAIL", t.name, secs);
  std::fflush(stdout);
}

}  // namespace check

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) ::check::fail(__FILE__, __LINE__, "CHECK(" #cond ") failed"); \
  } while (0)

#define CHECK_MSG(cond, msg)                              \
  do {                                                    \
    if (!(cond)) {                                        \
      std::ostringstream check_os_;                       \
      check_os_ << "CHECK(" #cond ") failed: " << msg;    \
      ::check::fail(__FILE__, __LINE__, check_os_.str()); \
    }                                                     \
  } while (0)

/// Records a failure with a message (stream syntax).
#define FAIL_MSG(msg)                                   \
  do {                                                  \
    std::ostringstream check_os_;                       \
    check_os_ << msg;                                   \
    ::check::fail(__FILE__, __LINE__, check_os_.str()); \
  } while (0)

/// Passes if `expr` throws `type` (or a subclass); reports any other outcome.
#define CHECK_THROWS_AS(expr, type)                                                                                \
  do {                                                                                                             \
    bool check_caught_ = false;                                                                                    \
    try {                                                                                                          \
      (void)(expr);                                                                                                \
    } catch (const type&) {                                                                                        \
      check_caught_ = true;                                                                                        \
    } catch (const std::exception& check_e_) {                                                                     \
      ::check::fail(                                                                                               \
          __FILE__, __LINE__,                                                                                      \
          std::string(#expr " threw ") + typeid(check_e_).name() + " (" + check_e_.what() + "), expected " #type); \
      check_caught_ = true;                                                                                        \
    }                                                                                                              \
    if (!check_caught_) ::check::fail(__FILE__, __LINE__, #expr " did not throw " #type);                          \
  } while (0)
