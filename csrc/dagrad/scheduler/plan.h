// @brief Run planning: collecting a run's pending nodes in topological order, recording their
// edges and costing them for a parallel run.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dagrad/fusion.h"
#include "dagrad/graph.h"
#include "dagrad/scheduler/observer.h"

namespace dagrad::scheduler {

/// @brief One run: its nodes, its fusion decisions and, for a parallel run, its parent lists,
/// costs and child lists. Arrays are reused from one run to the next (PooledRun).
struct Run {
  // Topological, parents first. A node's slot may dangle once the node has run: releasing
  // inputs (Note [Inputs are released as soon as a node has run]) can free an earlier node.
  std::vector<Node*> order;
  struct Frame {
    Node* node;
    uint32_t next;    // next input to visit
    int32_t parents;  // pending parents seen so far
  };
  std::vector<Frame> stack;     // collect()'s DFS
  bool release_inputs = false;  // see Note [Inputs are released as soon as a node has run]
  uint64_t mark = 0;
  uint64_t seq = 0;     // the run's sequence number (RunStats::run)
  fusion::Plan fusion;  // Note [Elementwise fusion]
  // Whether two nodes could ever be ready at once (a second root, or a node feeding two in-run
  // edges): set by collect(); without it the run is serial.
  bool has_fanout = false;
  // What a parallel run needs, filled only once it is known to need them (Note [Measured node
  // cost] in run.cpp): in-run parents as run indices (node i's are
  // parent_index[parent_begin[i], parent_begin[i + 1]); duplicates kept: x * x has x twice).
  // A replayed run records every node when it is made (recorded); a realized run records only
  // the nodes it has not run yet, when the pool is about to take them (record_rest()).
  bool recorded = false;
  std::vector<int32_t> parent_begin;
  std::vector<int32_t> parent_index;
  std::vector<int32_t> roots;  // recorded nodes with no recorded parent
  // Filled by plan_costs(), for the nodes from where it was asked to start:
  std::vector<double> crit;  // costliest path ending at each node
  double total_cost = 0;     // sum of node costs
  double critical_cost = 0;  // costliest path
  double split_cost = 0;     // the part of total_cost in kernels that split over threads
  // Filled by link_children(), for the pool:
  std::vector<int32_t> indegree;    // in-run parents of each node
  std::vector<int32_t> child_head;  // first edge of each node's child list, or -1
  std::vector<int32_t> edge_child;  // per in-run edge: the child ...
  std::vector<int32_t> edge_next;   // ... and the next edge of the same parent, or -1
  // The observers of this run that want per-node events (Note [Run observers]); read once
  // when the run starts.
  std::vector<RunObserver*> node_observers;

  void clear() {
    order.clear();
    stack.clear();
    parent_begin.clear();
    parent_index.clear();
    roots.clear();
    crit.clear();
    indegree.clear();
    child_head.clear();
    edge_child.clear();
    edge_next.clear();
    fusion.clear();
    node_observers.clear();
    release_inputs = recorded = has_fanout = false;
    mark = seq = 0;
    total_cost = critical_cost = split_cost = 0;
  }
};

/// @brief Adds the pending nodes `targets` depend on to `run.order`, parents first, marking
/// them with `mark` and setting their run_index; sets run.has_fanout.
void collect(const std::vector<Tensor>& targets, uint64_t mark, Run& run);

/// @brief Rough work of a node, in the scheduler's cost unit (Note [Serial or parallel run]).
/// Reads the node's inputs: call it before they are released.
double node_cost(const Node& n);

/// @brief Records node n's in-run parents (those carrying `mark`, whose run_index is set),
/// reading them from its inputs. n must be the next node of the run (run_index == the number
/// recorded so far).
void record(Run& run, const Node* n, uint64_t mark);

/// @brief Records the in-run parents of order[first, n) among order[first, n), from their
/// inputs (the nodes before `first` have run and count as done); with `costs`, also does what
/// plan_costs(run, first) does, in the same pass.
void record_rest(Run& run, size_t first, bool costs);

/// @brief Costs of the recorded nodes from `first` on (those before it have run): total,
/// critical path and the part in kernels that split. Reads the nodes, which must still have
/// their inputs.
void plan_costs(Run& run, size_t first);

/// @brief The child lists and in-run parent counts of the recorded run.
void link_children(Run& run);

/// @brief A Run taken from a small pool, so a run's arrays are reused from one realize to the
/// next (a pool, not a single object: a custom op may realize from inside a run). Guarded by
/// graph_mutex().
struct PooledRun {
  std::unique_ptr<Run> run;
  PooledRun();
  ~PooledRun();
  PooledRun(const PooledRun&) = delete;
  PooledRun& operator=(const PooledRun&) = delete;
};

}  // namespace dagrad::scheduler
