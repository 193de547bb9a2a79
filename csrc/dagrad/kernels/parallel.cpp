// The one thread budget (Note [Thread budget], Note [Thread cap]).
#include "dagrad/kernels/parallel.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

namespace dagrad {

namespace {

// Note [Thread cap]
// ~~~~~~~~~~~~~~~~~
// A run opens one OpenMP team of the budget's size, so the budget is a number of OS threads:
// 65536 of them crashed, 8192 made a tiny backward take 20 s. The budget is capped at
// max(64, cores): room to test determinism at 8 threads on a 2-core machine, and every core of
// a large one. set_num_threads and DAGRAD_NUM_THREADS follow the same rule and both raise
// ValueError beyond it (the variable when the budget is first read, which dagrad's import does).
int check_threads(long long n, const char* who) {
  const long long cap = max_threads();
  if (n < 1 || n > cap)
    throw ValueError(std::string(who) + ": expected a number of threads in [1, " + std::to_string(cap) +
                     "] (at most max(64, the " + std::to_string(omp_get_num_procs()) + " cores)), got " +
                     std::to_string(n));
  return static_cast<int>(n);
}

int default_threads() {
  if (const char* env = std::getenv("DAGRAD_NUM_THREADS")) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(env, &end, 10);
    if (end == env || *end != '\0' || errno == ERANGE)
      throw ValueError(std::string("DAGRAD_NUM_THREADS: expected a positive integer, got '") + env + "'");
    return check_threads(v, "DAGRAD_NUM_THREADS");
  }
  return std::max(1, omp_get_num_procs());
}

std::atomic<int> g_num_threads{0};  // 0: not read yet (the environment is read on first use)

}  // namespace

int max_threads() { return std::max(64, omp_get_num_procs()); }

void set_num_threads(long long n) {
  g_num_threads.store(check_threads(n, "set_num_threads"), std::memory_order_relaxed);
}

int get_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  // Racing first readers compute the same value; see Note [Thread cap].
  int expected = 0;
  const int v = default_threads();
  g_num_threads.compare_exchange_strong(expected, v, std::memory_order_relaxed);
  return g_num_threads.load(std::memory_order_relaxed);
}

}  // namespace dagrad
