// @brief Recording a training step once and replaying it without Python: the machinery
// behind dagrad.compile. It observes the scheduler's runs (Note [Run observers]).
#pragma once

#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "dagrad/graph.h"
#include "dagrad/scheduler.h"

namespace dagrad {

/// @brief A recorded sequence of effects: scheduler runs, in-place writes, .grad updates and
/// fused kernel calls (optimizer updates), in the order the traced function made them.
class Program {
 public:
  /// Checks that every .grad this program reads or writes is in the state it was in when the
  /// program was traced (same node, or none). Replay is only valid then.
  bool preconditions_hold() const;
  /// Re-executes every effect in order, reusing every buffer (the static memory plan).
  void replay();
  size_t num_events() const { return events_.size(); }
  /// @brief The recorded effects in order, for printing and drawing a compiled step: the kind
  /// ("run", "assign", "grad_set", "grad_accumulate", "grad_clear", "call") and its nodes (a
  /// run's in schedule order; the target and source of a write).
  struct Step {
    const char* kind;
    std::vector<NodePtr> nodes;
  };
  std::vector<Step> schedule() const;
  size_t num_nodes() const;

  // Recording (called by the scheduler, autodiff, assign_ and fused kernels).
  void add_run(const std::vector<Node*>& order);
  void add_assign(const NodePtr& target, const NodePtr& source);
  void add_grad_set(const NodePtr& leaf, const NodePtr& grad_node, const NodePtr& source);
  void add_grad_accumulate(const NodePtr& leaf, const NodePtr& grad_node, const NodePtr& source);
  void add_grad_clear(const NodePtr& leaf);
  void add_call(std::function<void()> call);
  void note_grad_state(const NodePtr& leaf);

 private:
  struct Event {
    enum class Kind { Run, Assign, GradSet, GradAccumulate, GradClear, Call } kind;
    std::shared_ptr<CachedRun> run;
    NodePtr a, b, c;
    std::function<void()> call;
  };
  std::vector<Event> events_;
  // The .grad each leaf must have when replay starts, from the first event that touched it:
  // a GradSet (which read or replaced it) pins it; a GradClear first makes any state fine.
  struct GradState {
    NodePtr leaf, grad;
    bool pinned;
  };
  std::unordered_map<Node*, GradState> initial_grad_;
  size_t nodes_ = 0;
};

namespace trace {
// Note [Tracing keeps the graph]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// While a Program records, the graph is not pruned after runs (realize keeps node inputs,
// backward does not free the graph), because replay re-executes those very nodes. Nodes keep
// their buffers between replays: alloc_output reuses a node's own buffer of the right size,
// so a replayed step allocates nothing (the static memory plan of a compiled step).

/// @brief Starts recording this thread's effects into `p` (one recording per thread; see
/// Note [Tracing belongs to the tracing thread]).
void begin(const std::shared_ptr<Program>& p);
void end();
bool active();
Program* current();
}  // namespace trace

}  // namespace dagrad
