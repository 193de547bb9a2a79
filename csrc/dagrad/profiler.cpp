#include "dagrad/profiler.h"

#include <algorithm>
#include <chrono>
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
}  // namespace

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void record(const TraceEvent& e) { local_buffer().events.push_back(e); }

std::vector<TraceEvent> take_events() {
  std::vector<TraceEvent> out;
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  for (auto& b : registry()) {
    out.insert(out.end(), b->events.begin(), b->events.end());
    b->events.clear();
  }
  std::sort(out.begin(), out.end(),
            [](const TraceEvent& a, const TraceEvent& b) { return a.start_ns < b.start_ns; });
  return out;
}

}  // namespace dagrad::profiler
