#include "dagrad/trace.h"

#include <cstring>

#include <atomic>
#include <mutex>

namespace dagrad {

// Note [Tracing belongs to the tracing thread]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A trace records what one thread's function does: the recording is thread-local, so another
// thread's .item(), .grad = or dropout is not "inside a function being traced", and its runs
// are neither recorded nor kept from freeing their graph. Recording holds no lock across the
// user's function (Note [No thread waits for a dagrad lock holding the GIL]); each run it
// records takes the graph lock as any run does. Replay, by contrast, runs under the graph lock
// from start to end, so the replay flag (graph.h's replaying(), read by the run's workers in
// alloc_output and the version check) is guarded by that lock and needs no thread-local copy.
// The trace hears of runs as a RunObserver (Note [Run observers]), registered while any thread
// records; its answers are about the calling thread's recording only.
namespace {
thread_local std::shared_ptr<Program> t_recording;

class TraceObserver final : public RunObserver {
 public:
  bool keeps_graph() const override { return t_recording != nullptr; }  // Note [Tracing keeps the graph]
  void run_done(const std::vector<Node*>& order, const RunStats&) override {
    if (t_recording) t_recording->add_run(order);
  }
};
TraceObserver g_observer;
std::mutex g_recorders_mutex;
int g_recorders = 0;  // threads recording now; guarded by g_recorders_mutex

void copy_value(const Node& from, Node& to) {
  const size_t bytes = static_cast<size_t>(to.numel()) * itemsize(to.dtype);
  if (bytes) std::memcpy(to.storage->data(), from.storage->data(), bytes);
  to.storage->version.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

namespace trace {
void begin(const std::shared_ptr<Program>& p) {
  if (t_recording) throw RuntimeError("compile: a traced function cannot trace another (nested dagrad.compile)");
  std::lock_guard<std::mutex> lock(g_recorders_mutex);
  if (g_recorders++ == 0) add_observer(&g_observer);
  t_recording = p;
}
void end() {
  if (!t_recording) return;
  t_recording.reset();
  std::lock_guard<std::mutex> lock(g_recorders_mutex);
  if (--g_recorders == 0) remove_observer(&g_observer);
}
bool active() { return t_recording != nullptr; }
Program* current() { return t_recording.get(); }
}  // namespace trace

void Program::add_run(const std::vector<Node*>& order) {
  Event e{Event::Kind::Run, std::make_shared<CachedRun>(order), nullptr, nullptr, nullptr, {}};
  nodes_ += order.size();
  events_.push_back(std::move(e));
}
void Program::add_assign(const NodePtr& target, const NodePtr& source) {
  events_.push_back(Event{Event::Kind::Assign, nullptr, target, source, nullptr, {}});
}
void Program::note_grad_state(const NodePtr& leaf) {
  if (!initial_grad_.count(leaf.get())) initial_grad_[leaf.get()] = GradState{leaf, leaf->grad, true};
}
void Program::add_grad_set(const NodePtr& leaf, const NodePtr& grad_node, const NodePtr& source) {
  events_.push_back(Event{Event::Kind::GradSet, nullptr, leaf, grad_node, source, {}});
}
void Program::add_grad_accumulate(const NodePtr& leaf, const NodePtr& grad_node, const NodePtr& source) {
  events_.push_back(Event{Event::Kind::GradAccumulate, nullptr, leaf, grad_node, source, {}});
}
void Program::add_grad_clear(const NodePtr& leaf) {
  if (!initial_grad_.count(leaf.get())) initial_grad_[leaf.get()] = GradState{leaf, nullptr, false};
  events_.push_back(Event{Event::Kind::GradClear, nullptr, leaf, nullptr, nullptr, {}});
}
void Program::add_call(std::function<void()> call) {
  events_.push_back(Event{Event::Kind::Call, nullptr, nullptr, nullptr, nullptr, std::move(call)});
}
size_t Program::num_nodes() const { return nodes_; }

std::vector<Program::Step> Program::schedule() const {
  std::vector<Step> out;
  for (const Event& e : events_) {
    switch (e.kind) {
      case Event::Kind::Run: out.push_back({"run", e.run->nodes()}); break;
      case Event::Kind::Assign: out.push_back({"assign", {e.a, e.b}}); break;
      case Event::Kind::GradSet: out.push_back({"grad_set", {e.a, e.b}}); break;
      case Event::Kind::GradAccumulate: out.push_back({"grad_accumulate", {e.a, e.b}}); break;
      case Event::Kind::GradClear: out.push_back({"grad_clear", {e.a}}); break;
      case Event::Kind::Call: out.push_back({"call", {}}); break;
    }
  }
  return out;
}

bool Program::preconditions_hold() const {
  for (const auto& [raw, state] : initial_grad_)
    if (state.pinned && state.leaf->grad != state.grad) return false;
  return true;
}

void Program::replay() {
  GraphLock lock;
  ReplayScope replay;
  for (const Event& e : events_) {
    switch (e.kind) {
      case Event::Kind::Run: e.run->execute(); break;
      case Event::Kind::Assign: copy_value(*e.b, *e.a); break;
      case Event::Kind::GradSet:
        copy_value(*e.c, *e.b);
        e.a->grad = e.b;
        break;
      case Event::Kind::GradAccumulate:
        accumulate_grad(*e.b, *e.c);
        e.a->grad = e.b;
        break;
      case Event::Kind::GradClear: e.a->grad.reset(); break;
      case Event::Kind::Call: e.call(); break;
    }
  }
}

}  // namespace dagrad
