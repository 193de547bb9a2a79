// @brief The parallel scheduler: computes pending nodes, independent ones at the same time.
#pragma once

#include <mutex>
#include <vector>

#include "dagrad/graph.h"

namespace dagrad {

/// @brief Computes the values of `targets` and every pending node they depend on, in one run.
///
/// Throws the first exception any node raised; nodes that finished keep their values, the
/// others stay pending, and the graph stays usable.
void realize(const std::vector<Tensor>& targets);

/// @brief Threads used by runs and kernels, in [1, max_threads()]; ValueError otherwise.
/// Default: $DAGRAD_NUM_THREADS or the core count. See Note [Thread cap].
void set_num_threads(long long n);
int get_num_threads();
/// @brief The cap on the thread budget: max(64, cores).
int max_threads();

/// @brief Elementwise fusion on or off (on by default; Note [Elementwise fusion]). Results are
/// the same bits either way; off is for tests and benchmarks that compare the two.
void set_fusion_enabled(bool enabled);
bool fusion_enabled();

/// @brief Throws RuntimeError if input i of n was modified in place after n was recorded.
void check_input_version(const Node& n, size_t i);

/// @brief What the last run did (for tests and the profiler).
struct RunStats {
  int64_t nodes = 0;        // nodes computed
  int threads_used = 0;     // threads that computed at least one node
  bool parallel = false;    // whether the run used the worker pool
  int64_t fused = 0;        // nodes computed inside a fused group (Note [Elementwise fusion])
};
RunStats last_run_stats();

}  // namespace dagrad

namespace dagrad {
// Internal: a fresh visit mark for a walk made while holding the graph lock (GraphLock).
uint64_t next_mark();
}  // namespace dagrad
