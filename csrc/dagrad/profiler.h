// @brief Per-node execution records, kept in per-thread buffers; zero cost when off. The
// profiler observes the scheduler's runs (Note [Run observers]).
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "dagrad/graph.h"
#include "dagrad/scheduler/observer.h"

namespace dagrad {

/// @brief One node's execution: which op, on which worker, when (ns, steady clock), in which
/// pass and run, what it read and which fused members it computed.
struct TraceEvent {
  uint64_t node_id;
  OpKind op;
  DType dtype;
  bool backward;  // a gradient node (Node::is_backward)
  int32_t thread;
  int32_t ready;  // ready-list length when it started on the pool; -1 in a serial run
  uint64_t run;
  int64_t start_ns;
  int64_t end_ns;
  Shape shape;
  std::vector<uint64_t> inputs;                    // input node ids
  std::vector<std::pair<uint64_t, OpKind>> fused;  // members computed inside it
};

namespace profiler {
/// @brief Starts or stops recording.
void set_enabled(bool on);
bool enabled();
/// @brief Moves every recorded event out of the per-thread buffers, sorted by start time.
std::vector<TraceEvent> take_events();
/// @brief Nanoseconds on the clock the events use.
inline int64_t now_ns() { return dagrad::now_ns(); }
}  // namespace profiler

}  // namespace dagrad
