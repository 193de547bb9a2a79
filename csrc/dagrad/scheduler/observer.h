// @brief The one way views of a run (the profiler, compile's trace, the graph views) hear
// about it: observers the scheduler calls at fixed points. See Note [Run observers].
#pragma once

#include <cstdint>
#include <vector>

#include "dagrad/graph.h"

namespace dagrad {

/// @brief What the last run did (for tests and the profiler).
struct RunStats {
  int64_t nodes = 0;       // nodes computed
  int threads_used = 0;    // threads that computed at least one node
  bool parallel = false;   // whether the run used the worker pool
  int64_t fused = 0;       // nodes computed inside a fused group (Note [Elementwise fusion])
  int64_t peak_bytes = 0;  // the most bytes of tensor buffers alive at once during the run
  uint64_t run = 0;        // the run's sequence number
};

/// @brief One executed node, as observers see it (node_done).
struct NodeEvent {
  const Node& node;
  int thread;        // the worker's index in its run (0 in a serial run)
  int64_t start_ns;  // on now_ns's clock
  int64_t end_ns;
  int32_t ready;  // nodes waiting in the ready lists when it started on the pool; -1 if serial
  uint64_t run;   // the run's sequence number (RunStats::run)
  // The members of a fused group computed inside this node, other than itself, parents first.
  const Node* const* members;
  size_t num_members;
};

/// @brief How runs use the worker pool: "auto" decides by cost (Note [Serial or parallel run]);
/// "parallel" sends every run with two independent nodes to the pool; "serial" never does.
/// The results are the same bits in every mode.
enum class Schedule : uint8_t { Auto, Parallel, Serial };
void set_schedule(Schedule s);
Schedule get_schedule();

// Note [Run observers]
// ~~~~~~~~~~~~~~~~~~~~
// The scheduler knows nothing of the profiler, of compile's trace or of the graph views; each
// registers a RunObserver, and the scheduler calls every registered one at three points:
//  * keeps_graph(), once per run on the thread that starts it, before the run is collected: an
//    observer that answers true (a trace recording on this thread) keeps the run's graph as it
//    is, with no input released and no fusion (Note [Tracing keeps the graph]);
//  * node_done(), on the worker that computed a node, with the thread's index in the run, the
//    node's start and end on now_ns's clock, the ready lists' length when it started and, for
//    the root of a fused group, the members computed inside it; only for observers whose
//    wants_nodes() was true when the run started;
//  * run_done(), once per successful run, on the starting thread, under the graph lock.
// The set of observers is read once per run (under its own mutex, skipped while it is empty),
// so a run with no observer pays one relaxed load, and a node pays one plain bool test. An
// observer is registered and removed by its owner and must outlive its registration; a
// removal waits for no run, so the owner removes it only while no run can be calling it (the
// profiler takes its events between runs: Note [One run at a time]).
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual bool keeps_graph() const { return false; }
  virtual bool wants_nodes() const { return false; }
  virtual void node_done(const NodeEvent& e) {}
  virtual void run_done(const std::vector<Node*>& order, const RunStats& stats) {}
};

/// @brief Registers `o` (not owned); a second registration of the same observer is a no-op.
void add_observer(RunObserver* o);
void remove_observer(RunObserver* o);

/// @brief Nanoseconds on the steady clock that node_done's times use.
int64_t now_ns();

}  // namespace dagrad
