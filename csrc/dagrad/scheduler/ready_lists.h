// @brief The scheduler's ready lists: one per worker, with stealing (Note [Per-worker ready lists]).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define DAGRAD_CPU_RELAX() _mm_pause()
#else
#define DAGRAD_CPU_RELAX() std::this_thread::yield()
#endif

namespace dagrad::scheduler {
// Internal linkage: the one user is run.cpp, and the compiler inlines these into its loop.
namespace {

// Note [Per-worker ready lists]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Each worker keeps the nodes it made ready (beyond the one it continues with) in its own list
// and takes them back newest first, where their inputs are still in its cache. A worker that
// runs dry steals the oldest entry of another worker's list. Each list has its own small lock,
// held for a few instructions; the owner is nearly always the only one to take it, so the
// lock's cache line stays on the owner's core, where one shared queue made half of a
// wavefront's nodes cross between cores. The roots are dealt out to the lists up front in
// contiguous blocks (neighbouring roots often share children), and stay stealable.
//
// Note [Idle workers spin briefly, then sleep]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A worker with nothing to do polls the lists' sizes for a few microseconds (cheap when work
// arrives soon, as it does in a busy graph), then blocks on a condition variable. Spinning
// longer would steal the core from another process on a machine where we may not own every
// core; see also OMP_WAIT_POLICY in python/dagrad/__init__.py. No wake-up is lost: a sleeper
// registers (seq_cst) and re-checks every list under the sleep mutex before it waits, and a
// pusher publishes its item (seq_cst) before it reads the sleeper count and notifies under
// that mutex.
class ReadyLists {
 public:
  // Note [A parallel schedule waits for its workers]
  // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  // A worker released from the team's barrier may need tens of microseconds to be scheduled
  // by the OS, long enough for the first worker to steal and run every node of a small graph.
  // Under dagrad.set_schedule("parallel"), which exists to show independent nodes running side
  // by side, a worker steals only from lists whose owner has arrived at the loop: the roots
  // dealt to each worker run on it whenever the machine gives it a core (the owner arrives
  // once the OS runs it, so nothing waits forever). The default schedule steals at once.
  ReadyLists(int workers, bool wait_for_owners)
      : lists_(static_cast<size_t>(workers)), wait_for_owners_(wait_for_owners) {}

  /// The owner of list w is in the loop (Note [A parallel schedule waits for its workers]).
  void arrive(int w) { lists_[static_cast<size_t>(w)].arrived.store(true, std::memory_order_release); }

  // Before the workers start: the owner takes them from the back, so reverse them.
  void seed(int w, const int32_t* first, const int32_t* last) {
    List& l = lists_[static_cast<size_t>(w)];
    l.items.assign(std::reverse_iterator<const int32_t*>(last), std::reverse_iterator<const int32_t*>(first));
    l.size.store(static_cast<int64_t>(l.items.size()), std::memory_order_relaxed);
  }

  void push(int w, int32_t i) {
    List& l = lists_[static_cast<size_t>(w)];
    {
      std::lock_guard<std::mutex> lock(l.m);
      l.items.push_back(i);
      l.size.store(static_cast<int64_t>(l.items.size() - l.head), std::memory_order_seq_cst);
    }
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(sleep_m_);
      sleep_cv_.notify_one();
    }
  }

  bool pop(int w, int32_t& out) {
    for (int spin = 0; spin < 256; ++spin) {
      if (done_.load(std::memory_order_acquire)) return false;
      if (try_take(w, out)) return true;
      DAGRAD_CPU_RELAX();
    }
    std::unique_lock<std::mutex> lock(sleep_m_);
    for (;;) {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (done_.load(std::memory_order_seq_cst) || any_work()) {
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        if (done_.load(std::memory_order_acquire)) return false;
        lock.unlock();
        if (try_take(w, out)) return true;
        // Work is listed but not takeable yet (its owner has not arrived: Note [A parallel
        // schedule waits for its workers]), or another worker took it first: give the core
        // away, the owner may need it.
        std::this_thread::yield();
        lock.lock();
        continue;
      }
      sleep_cv_.wait(lock);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      if (done_.load(std::memory_order_acquire)) return false;
      lock.unlock();
      if (try_take(w, out)) return true;
      lock.lock();
    }
  }

  /// Entries waiting in all the lists now (relaxed reads; for the profiler's counter).
  int32_t size() const {
    int64_t n = 0;
    for (const List& l : lists_) n += std::max<int64_t>(0, l.size.load(std::memory_order_relaxed));
    return static_cast<int32_t>(n);
  }

  void finish() {
    done_.store(true, std::memory_order_seq_cst);
    std::lock_guard<std::mutex> lock(sleep_m_);
    sleep_cv_.notify_all();
  }

 private:
  struct alignas(64) List {
    std::atomic<bool> arrived{false};
    std::mutex m;
    std::vector<int32_t> items;  // live entries are items[head, size)
    size_t head = 0;
    std::atomic<int64_t> size{0};
  };

  bool any_work() const {
    for (const List& l : lists_)
      if (l.size.load(std::memory_order_seq_cst) > 0) return true;
    return false;
  }

  // Own list newest first, then the others' oldest first.
  bool try_take(int w, int32_t& out) {
    const size_t nl = lists_.size();
    for (size_t k = 0; k < nl; ++k) {
      List& l = lists_[(static_cast<size_t>(w) + k) % nl];
      if (l.size.load(std::memory_order_acquire) <= 0) continue;
      if (k != 0 && wait_for_owners_ && !l.arrived.load(std::memory_order_acquire)) continue;
      std::lock_guard<std::mutex> lock(l.m);
      if (l.head == l.items.size()) continue;
      if (k == 0) {
        out = l.items.back();
        l.items.pop_back();
      } else {
        out = l.items[l.head++];
      }
      if (l.head == l.items.size()) {
        l.items.clear();
        l.head = 0;
      }
      l.size.store(static_cast<int64_t>(l.items.size() - l.head), std::memory_order_release);
      return true;
    }
    return false;
  }

  std::vector<List> lists_;
  std::mutex sleep_m_;
  std::condition_variable sleep_cv_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> done_{false};
  const bool wait_for_owners_;
};

}  // namespace
}  // namespace dagrad::scheduler
