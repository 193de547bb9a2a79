// @brief The one thread budget, and parallel_for for kernels, obeying it.
#pragma once

#include <omp.h>

#include <algorithm>
#include <exception>
#include <mutex>

#include "dagrad/common.h"

namespace dagrad {

/// @brief Threads used by runs and kernels, in [1, max_threads()]; ValueError otherwise.
/// Default: $DAGRAD_NUM_THREADS or the core count. See Note [Thread cap].
void set_num_threads(long long n);
int get_num_threads();
/// @brief The cap on the thread budget: max(64, cores).
int max_threads();

// Note [Thread budget]
// ~~~~~~~~~~~~~~~~~~~~
// dagrad has one budget of get_num_threads() threads, spent in one of two ways, never both:
//  * Several nodes ready at once: the scheduler runs them on its workers inside one
//    `omp parallel` region, one node per thread, and every kernel runs serially on its
//    range. A kernel called there sees omp_in_parallel() and does not open a region of its
//    own, so there is no nested oversubscription.
//  * A run with no two nodes ready at once (a chain, such as most of an MLP step) executes
//    on the calling thread alone, and a kernel with enough work splits its range over the
//    whole budget.
//  * Tiny kernels (less than two grains of work) always run inline.
// Splits are along independent output elements (rows of a matmul, elements of an
// elementwise op), so every output value is computed by the same instructions in the same
// order whatever the split: results are bitwise identical at any thread count. Reductions
// are not split, for the same reason.
// Note [ThreadSanitizer and OpenMP]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// GNU libgomp synchronises its team with futexes and atomics that ThreadSanitizer does not see
// (it is not built with TSan), so every `omp parallel` region of a g++ build reports false
// races between the region's start and the workers. The TSan stage (.ci/tsan) therefore builds
// with clang-14 and LLVM's libomp, whose runtime tells TSan about its barriers and task
// handoffs, runs with ignore_noninstrumented_modules=1, and the bar is zero reports at 2, 4
// and 8 threads.
template <class F>
void parallel_for(int64_t n, int64_t grain, const F& f) {
  const int threads = get_num_threads();
  grain = std::max<int64_t>(grain, 1);
  if (threads <= 1 || n < 2 * grain || omp_in_parallel()) {
    if (n > 0) f(int64_t(0), n);
    return;
  }
  const int chunks = static_cast<int>(std::min<int64_t>(threads, n / grain));
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel num_threads(chunks)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    try {
      if (begin < end) f(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace dagrad
