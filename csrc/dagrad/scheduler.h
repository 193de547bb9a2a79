// @brief The parallel scheduler: computes pending nodes, independent ones at the same time.
// Split by role, as Taskflow splits its graph, executor and queue: run planning
// (scheduler/plan.h), the ready lists (scheduler/ready_lists.h), execution
// (scheduler/run.cpp) and the observers views hook in through (scheduler/observer.h).
#pragma once

#include <memory>
#include <vector>

#include "dagrad/fusion.h"
#include "dagrad/graph.h"
#include "dagrad/kernels/parallel.h"  // the thread budget: set_num_threads, get_num_threads
#include "dagrad/scheduler/observer.h"

namespace dagrad {

/// @brief Computes the values of `targets` and every pending node they depend on, in one run.
///
/// Throws the first exception any node raised; nodes that finished keep their values, the
/// others stay pending, and the graph stays usable.
void realize(const std::vector<Tensor>& targets);

/// @brief Elementwise fusion on or off (Note [Elementwise fusion]; fusion::set_enabled).
inline void set_fusion_enabled(bool enabled) { fusion::set_enabled(enabled); }
inline bool fusion_enabled() { return fusion::enabled(); }

/// @brief What the last run did (RunStats in scheduler/observer.h).
RunStats last_run_stats();

/// @brief A fresh visit mark for a walk made while holding the graph lock (GraphLock).
uint64_t next_mark();

/// @brief A run of nodes with its edges and schedule computed once, executed many times
/// (compile's replay, Note [Tracing keeps the graph]).
class CachedRun {
 public:
  explicit CachedRun(const std::vector<Node*>& order);
  void execute() const;
  /// The run's nodes in schedule order.
  const std::vector<NodePtr>& nodes() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dagrad
