#include "dagrad/profiler.h"

#include <algorithm>
#include <iterator>
#include <mutex>

namespace dagrad::profiler {

namespace {
std::atomic<bool> g_enabled{false};

// Each thread appends to its own buffer. The registry lock is taken once per thread (on
// its first event) and by take_events(), which runs only while no graph is running.
struct Buffer {
  std::vector<TraceEvent> events;
};
std::mutex g_registry_mutex;
std::vector<std::shared_ptr<Buffer>>& registry() {
  static std::vector<std::shared_ptr<Buffer>> r;
  return r;
}
Buffer& local_buffer() {
  thread_local std::shared_ptr<Buffer> buf = [] {
    auto b = std::make_shared<Buffer>();
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    registry().push_back(b);
    return b;
  }();
  return *buf;
}

// Appends each computed node to the worker's own buffer (no lock on the hot path). The event's
// vectors allocate; the profiler's cost when on is measured in benchmarks/bench_profiler.py.
class ProfilerObserver final : public RunObserver {
 public:
  bool wants_nodes() const override { return true; }
  void node_done(const NodeEvent& e) override {
    const Node& n = e.node;
    TraceEvent t{n.id, n.op, n.dtype, n.is_backward, e.thread, e.ready, e.run, e.start_ns, e.end_ns, n.shape, {}, {}};
    t.inputs.reserve(n.inputs.size());
    for (const Edge& in : n.inputs) t.inputs.push_back(in.node->id);
    for (size_t i = 0; i < e.num_members; ++i) t.fused.emplace_back(e.members[i]->id, e.members[i]->op);
    local_buffer().events.push_back(std::move(t));
  }
};
ProfilerObserver g_observer;
std::mutex g_enable_mutex;

}  // namespace

void set_enabled(bool on) {
  std::lock_guard<std::mutex> lock(g_enable_mutex);
  if (on == g_enabled.load(std::memory_order_relaxed)) return;
  g_enabled.store(on, std::memory_order_relaxed);
  if (on)
    add_observer(&g_observer);
  else
    remove_observer(&g_observer);
}
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

std::vector<TraceEvent> take_events() {
  std::vector<TraceEvent> out;
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  for (auto& b : registry()) {
    std::move(b->events.begin(), b->events.end(), std::back_inserter(out));
    b->events.clear();
  }
  std::sort(out.begin(), out.end(), [](const TraceEvent& a, const TraceEvent& b) { return a.start_ns < b.start_ns; });
  return out;
}

}  // namespace dagrad::profiler
