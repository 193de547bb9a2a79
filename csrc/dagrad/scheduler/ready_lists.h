// @brief The scheduler's ready lists: a Chase-Lev deque per worker, with stealing (Note [Per-worker
// ready lists]).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
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
// Each worker keeps the nodes it made ready (beyond the one it continues with) in its own
// deque and takes them back newest first, where their inputs are still in its cache. A worker
// that runs dry steals the oldest entry of another worker's deque. The deques are Chase-Lev
// work-stealing deques (Note [Chase-Lev deque]): the owner's push and take touch only its own
// deque's lines and take no lock, so a node that stays on the worker that made it ready costs
// no cross-core traffic at all, where one shared queue made half of a wavefront's nodes cross
// between cores and a lock per list cost two atomic read-modify-writes a node. The roots are
// dealt out to the deques up front in contiguous blocks (neighbouring roots often share
// children), and stay stealable.
//
// Note [Chase-Lev deque]
// ~~~~~~~~~~~~~~~~~~~~~~
// One owner pushes and takes at the bottom; any thread steals at the top (Chase and Lev, "Dynamic
// circular work-stealing deque", SPAA 2005; the C11 version of Le, Pop, Cohen and Zappa Nardelli,
// PPoPP 2013). The one subtle race is between the owner taking the last item and a thief
// stealing it: the owner first lowers `bottom`, then reads `top`; a thief reads `top`, then
// `bottom`. These four accesses must not be reordered (a store then a load: the StoreLoad order
// that x86 keeps only with a full barrier), so they are seq_cst operations, which puts them in
// one total order: either the thief sees the lowered bottom and backs off, or the owner sees
// the thief's top and both race for the item with a CAS on `top`, which exactly one wins.
// (The paper uses relaxed accesses and seq_cst fences instead; ThreadSanitizer does not model
// fences, and seq_cst accesses cost the same on x86.) A push writes the slot, then publishes
// `bottom` with a seq_cst store: a thief's seq_cst load of `bottom` that sees the new item also
// sees the slot and, through the release half, everything the pusher did before, in particular
// the parents' outputs it acquired in its acq_rel decrement of the node's pending count (Note
// [Scheduler: wait, execute, propagate]). The same seq_cst store is the "publish" half of Note
// [Idle workers spin briefly, then sleep]. Slots are relaxed atomics: a thief with a stale
// `top` may read a slot the owner is rewriting, and then loses the CAS and drops what it read.
// When the array is full the owner copies the live items into one twice the size and publishes
// it (release; a thief loads it with acquire after reading `bottom`); the old array stays
// allocated until the deque dies, as a thief may still be reading it (its live slots never
// change after the copy).
class WorkDeque {
 public:
  WorkDeque() { array_.store(grow_to(nullptr, 64, 0, 0), std::memory_order_relaxed); }

  /// Owner only: false only when the deque is empty (a stale top can only say "maybe").
  bool owner_maybe_nonempty() const {
    return bottom_.load(std::memory_order_relaxed) > top_.load(std::memory_order_relaxed);
  }

  /// Owner only.
  void push(int32_t x) {
    const int64_t b = bottom_.load(std::memory_order_relaxed);
    const int64_t t = top_.load(std::memory_order_acquire);
    Array* a = array_.load(std::memory_order_relaxed);
    if (b - t >= a->mask + 1) a = grow_to(a, 2 * (a->mask + 1), t, b);
    a->slot(b).store(x, std::memory_order_relaxed);
    bottom_.store(b + 1, std::memory_order_seq_cst);  // publish (Note [Chase-Lev deque])
  }

  /// Owner only: the newest item.
  bool take(int32_t& out) {
    const int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Array* a = array_.load(std::memory_order_relaxed);
    bottom_.store(b, std::memory_order_seq_cst);  // then read top: Note [Chase-Lev deque]
    int64_t t = top_.load(std::memory_order_seq_cst);
    if (t > b) {  // empty
      // Release, like every store to bottom: a thief that reads this value must also see the
      // items pushed before it (no release sequence runs through a plain store in C++20).
      bottom_.store(b + 1, std::memory_order_release);
      return false;
    }
    out = a->slot(b).load(std::memory_order_relaxed);
    if (t < b) return true;
    // The last item: race the thieves for it.
    const bool won = top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed);
    bottom_.store(b + 1, std::memory_order_release);
    return won;
  }

  /// Any thread: the oldest item. False when empty or when another thread took it first.
  bool steal(int32_t& out) {
    int64_t t = top_.load(std::memory_order_seq_cst);
    const int64_t b = bottom_.load(std::memory_order_seq_cst);
    if (t >= b) return false;
    Array* a = array_.load(std::memory_order_acquire);
    const int32_t x = a->slot(t).load(std::memory_order_relaxed);
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) return false;
    out = x;
    return true;
  }

  /// Items in the deque (may be stale by the time it returns).
  int64_t size(std::memory_order order = std::memory_order_relaxed) const {
    const int64_t b = bottom_.load(order), t = top_.load(order);
    return b > t ? b - t : 0;
  }

 private:
  struct Array {
    int64_t mask;
    std::unique_ptr<std::atomic<int32_t>[]> slots;
    std::atomic<int32_t>& slot(int64_t i) { return slots[static_cast<size_t>(i & mask)]; }
  };

  // Owner only (or the constructor): a new array of `size` slots holding a's items [t, b).
  Array* grow_to(Array* a, int64_t size, int64_t t, int64_t b) {
    auto next = std::make_unique<Array>();
    next->mask = size - 1;
    next->slots.reset(new std::atomic<int32_t>[static_cast<size_t>(size)]());  // a stale thief may read any slot
    for (int64_t i = t; i < b; ++i)
      next->slot(i).store(a->slot(i).load(std::memory_order_relaxed), std::memory_order_relaxed);
    Array* raw = next.get();
    arrays_.push_back(std::move(next));
    if (a) array_.store(raw, std::memory_order_release);
    return raw;
  }

  alignas(64) std::atomic<int64_t> top_{0};     // thieves' end
  alignas(64) std::atomic<int64_t> bottom_{0};  // the owner's end
  std::atomic<Array*> array_{nullptr};
  std::vector<std::unique_ptr<Array>> arrays_;  // owner only; every array, for thieves reading an old one
};

// Note [Idle workers spin briefly, then sleep]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A worker with nothing to do polls the deques for a few microseconds (cheap when work arrives
// soon, as it does in a busy graph), then blocks on a condition variable. Spinning longer
// would steal the core from another process on a machine where we may not own every core; see
// also OMP_WAIT_POLICY in python/dagrad/__init__.py. No wake-up is lost: a sleeper registers
// (seq_cst) and re-checks every deque (seq_cst loads) under the sleep mutex before it waits,
// and a pusher publishes its item (the seq_cst store of Note [Chase-Lev deque]) before it reads
// the sleeper count (seq_cst) and notifies under that mutex: in the single order of seq_cst
// operations either the sleeper's check sees the item or the pusher sees the sleeper.
class ReadyLists {
 public:
  // Note [A parallel schedule waits for its workers]
  // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  // A worker released from the team's barrier may need tens of microseconds to be scheduled
  // by the OS, long enough for the first worker to steal and run every node of a small graph.
  // Under dagrad.set_schedule("parallel"), which exists to show independent nodes running side
  // by side, a worker steals only from deques whose owner has arrived at the loop: the roots
  // dealt to each worker run on it whenever the machine gives it a core (the owner arrives
  // once the OS runs it, so nothing waits forever). The default schedule steals at once.
  ReadyLists(int workers, bool wait_for_owners)
      : lists_(static_cast<size_t>(workers)), wait_for_owners_(wait_for_owners) {}

  /// The owner of list w is in the loop (Note [A parallel schedule waits for its workers]).
  void arrive(int w) { lists_[static_cast<size_t>(w)].arrived.store(true, std::memory_order_release); }

  // Before the workers start, by the owner: it takes them from the back, so push them reversed.
  void seed(int w, const int32_t* first, const int32_t* last) {
    WorkDeque& d = lists_[static_cast<size_t>(w)].deque;
    while (last != first) d.push(*--last);
  }

  /// Owner of list w only.
  void push(int w, int32_t i) {
    lists_[static_cast<size_t>(w)].deque.push(i);
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

  /// Entries waiting in all the deques now (relaxed reads; for the profiler's counter).
  int32_t size() const {
    int64_t n = 0;
    for (const List& l : lists_) n += l.deque.size();
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
    WorkDeque deque;
  };

  bool any_work() const {
    for (const List& l : lists_)
      if (l.deque.size(std::memory_order_seq_cst) > 0) return true;
    return false;
  }

  // Own deque newest first, then the others' oldest first.
  bool try_take(int w, int32_t& out) {
    const size_t nl = lists_.size();
    // The owner knows its bottom exactly and top only grows, so an empty own deque is skipped
    // without take()'s seq_cst store to bottom (which other idle workers' size() reads).
    WorkDeque& own = lists_[static_cast<size_t>(w)].deque;
    if (own.owner_maybe_nonempty() && own.take(out)) return true;
    for (size_t k = 1; k < nl; ++k) {
      List& l = lists_[(static_cast<size_t>(w) + k) % nl];
      if (l.deque.size(std::memory_order_relaxed) == 0) continue;
      if (wait_for_owners_ && !l.arrived.load(std::memory_order_acquire)) continue;
      if (l.deque.steal(out)) return true;
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
