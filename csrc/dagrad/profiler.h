// @brief Per-node execution records, kept in per-thread buffers; zero cost when off. The
// profiler observes the scheduler's runs (Note [Run observers]).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "dagrad/graph.h"
#include "dagrad/scheduler/observer.h"

namespace dagrad {

/// @brief One node's execution: which op, on which worker, when (ns, steady clock).
struct TraceEvent {
  uint64_t node_id;
  OpKind op;
  int32_t thread;
  int64_t start_ns;
  int64_t end_ns;
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
