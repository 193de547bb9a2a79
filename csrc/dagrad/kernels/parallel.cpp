// The one thread budget (Note [Thread budget], Note [Thread cap]).
#include "dagrad/kernels/parallel.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

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
std::atomic<bool> g_forked_child{false};

// Note [Fork]
// ~~~~~~~~~~~
// fork() copies only the calling thread. GNU libgomp's thread pool does not survive it: a
// child that opens an OpenMP region after its parent ran one waits forever for workers that
// do not exist (a DataLoader worker running backward hung this way). Each layer that holds
// process-wide state registers a pthread_atfork child handler:
//  * here, the thread budget becomes 1 for good: the child runs every graph serially and no
//    kernel opens a region (Note [Thread budget]); set_num_threads keeps it at 1 there;
//  * graph.cpp, common.cpp, scheduler/run.cpp and profiler.cpp construct their mutexes anew,
//    since a thread of the parent may have held one at the fork and will never release it in
//    the child (only the forking thread exists there, and it held none: dagrad takes no lock
//    across a return to Python).
void after_fork_in_child() {
  g_forked_child.store(true, std::memory_order_relaxed);
  g_num_threads.store(1, std::memory_order_relaxed);
}
#if defined(__unix__) || defined(__APPLE__)
const int g_atfork = pthread_atfork(nullptr, nullptr, &after_fork_in_child);
#endif

}  // namespace

int max_threads() { return std::max(64, omp_get_num_procs()); }

void set_num_threads(long long n) {
  const int v = check_threads(n, "set_num_threads");
  // Note [Fork]: a forked child has no OpenMP pool to run on; it stays serial.
  g_num_threads.store(g_forked_child.load(std::memory_order_relaxed) ? 1 : v, std::memory_order_relaxed);
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
