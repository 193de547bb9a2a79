// Execution: a built run goes serially or to the worker pool; realize, the one entry point
// that computes values. Planning is in plan.cpp, the ready lists in ready_lists.h.
//
// Note [Scheduler: wait, execute, propagate]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A node's life in a run is wait, execute, propagate. realize() collects the pending nodes its
// targets depend on (plan.cpp: collect, with fusion decisions as nodes are emitted), then runs
// them: serially in topological order, or, once the nodes have shown they are worth it (Note
// [Measured node cost]) and the costs say so (Note [Serial or parallel run]), on the worker pool,
// with the edges of the nodes left recorded then. On the pool each node has an atomic count of
// unfinished parents. A worker executes a node, then decrements each child's count; the decrement
// is acq_rel so that the child's worker, which sees the count reach zero, also sees every parent's
// output written. The first child that becomes ready continues on the same thread (no queue round
// trip, warm cache); the others go to the worker's ready deque (Note [Per-worker ready lists]).
// The first exception is stored, the run is cancelled, every worker leaves the loop, and the
// caller rethrows it after the parallel region (no exception may cross an OpenMP region boundary).
// Views of the run (the profiler, compile's trace) hear about it only through observers (Note [Run
// observers]).
#include "dagrad/scheduler.h"

#include <omp.h>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <string>

#include "dagrad/fusion.h"
#include "dagrad/ops.h"
#include "dagrad/scheduler/plan.h"
#include "dagrad/scheduler/ready_lists.h"

namespace dagrad {

// Note [One run at a time]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// A run writes node scratch fields (mark, run_index) and node storage. Runs are therefore
// serialised by one process-wide (recursive: backward realizes from inside its own lock)
// mutex. Parallelism lives inside a run, across its independent nodes, not across runs.

namespace {
uint64_t g_mark = 0;  // guarded by graph_mutex()
uint64_t g_runs = 0;  // runs started, guarded by graph_mutex()
std::atomic<Schedule> g_schedule{Schedule::Auto};
RunStats g_last_stats;  // guarded by graph_mutex()

// ---- observers (Note [Run observers]) ----------------------------------------------------------
std::mutex g_observers_mutex;
std::vector<RunObserver*> g_observers;  // guarded by g_observers_mutex
std::atomic<int> g_observer_count{0};
// Note [Fork]: the child's observer lock, fresh.
void observers_after_fork_in_child() { new (&g_observers_mutex) std::mutex(); }
#if defined(__unix__) || defined(__APPLE__)
const int g_observers_atfork = pthread_atfork(nullptr, nullptr, &observers_after_fork_in_child);
#endif

// The observers registered when a run starts.
class ObserverSnapshot {
 public:
  ObserverSnapshot() {
    if (g_observer_count.load(std::memory_order_acquire) == 0) return;
    std::lock_guard<std::mutex> lock(g_observers_mutex);
    list_ = g_observers;
  }
  bool keeps_graph() const {
    for (RunObserver* o : list_)
      if (o->keeps_graph()) return true;
    return false;
  }
  void node_observers(std::vector<RunObserver*>& out) const {
    out.clear();
    for (RunObserver* o : list_)
      if (o->wants_nodes()) out.push_back(o);
  }
  void run_done(const std::vector<Node*>& order, const RunStats& stats) const {
    for (RunObserver* o : list_) o->run_done(order, stats);
  }

 private:
  std::vector<RunObserver*> list_;
};
}  // namespace

void add_observer(RunObserver* o) {
  std::lock_guard<std::mutex> lock(g_observers_mutex);
  if (std::find(g_observers.begin(), g_observers.end(), o) != g_observers.end()) return;
  g_observers.push_back(o);
  g_observer_count.store(static_cast<int>(g_observers.size()), std::memory_order_release);
}

void remove_observer(RunObserver* o) {
  std::lock_guard<std::mutex> lock(g_observers_mutex);
  g_observers.erase(std::remove(g_observers.begin(), g_observers.end(), o), g_observers.end());
  g_observer_count.store(static_cast<int>(g_observers.size()), std::memory_order_release);
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t next_mark() { return ++g_mark; }

void set_schedule(Schedule s) { g_schedule.store(s, std::memory_order_relaxed); }
Schedule get_schedule() { return g_schedule.load(std::memory_order_relaxed); }

RunStats last_run_stats() {
  GraphLock lock;
  return g_last_stats;
}

namespace scheduler {
namespace {

// Note [Which versions a run checks]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Only inputs that already had a value when the run started (they do not carry the run's
// mark) can have been written in place since the edge was made. An input computed by this run
// got its storage and base_version from the run itself, and nothing writes a storage in place
// during a run, so its check would always pass: skipping it saves a cache miss on the input's
// storage per edge.
void check_versions(const Node& n, uint64_t mark) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (n.inputs[i].node->mark != mark) check_input_version(n, i);
}

void notify_node(const Run& run, const Node& n, int thread, int64_t t0, int32_t ready, bool group) {
  const int64_t t1 = now_ns();
  thread_local std::vector<const Node*> members;  // a worker's, reused: no allocation per event
  members.clear();
  if (group) fusion::group_members(n, run.fusion.flags.data(), run.mark, members);
  const NodeEvent e{n, thread, t0, t1, ready, run.seq, members.data(), members.size()};
  for (RunObserver* o : run.node_observers) o->node_done(e);
}

// What executing a node needs from its run, read once per worker into its own stack frame
// (nodes' bodies are opaque calls, so fields read through the shared Run would be reloaded
// from it for every node).
struct Exec {
  const Run& run;
  uint64_t mark;
  // A replayed program rewrites inputs and parameters in place by design; its edges were
  // checked when it was recorded.
  bool check_versions;
  bool observed;  // some observer wants node events (Note [Run observers])
  explicit Exec(const Run& r)
      : run(r), mark(r.mark), check_versions(!replaying()), observed(!r.node_observers.empty()) {}
};

inline void execute(Node& n, const Exec& x, int thread, int32_t ready = -1) {
  if (x.check_versions) check_versions(n, x.mark);
  if (n.numel() == 0) {
    // Nothing to compute. Kernels are not asked to handle empty outputs, whose other dims may
    // multiply past int64 (only the element count is bounded) and whose inputs need no reading.
    alloc_output(n);
    n.base_version = n.storage->version.load(std::memory_order_relaxed);
    return;
  }
  const int64_t t0 = x.observed ? now_ns() : 0;
  try {
    op_info(n.op).forward(n);
  } catch (...) {
    // A kernel may throw after allocating its output (gather checks its indices then): the
    // node must stay pending, not look computed with a buffer it never filled.
    n.storage.reset();
    if (anomaly_enabled()) {  // Note [Anomaly mode]: the line that recorded the failing op
      const std::string site = node_site(n);
      if (!site.empty())
        rethrow_with_context(" (anomaly mode: '" + std::string(op_name(n.op)) + "' was recorded at " + site + ")");
    }
    throw;
  }
  if (x.observed) notify_node(x.run, n, thread, t0, ready, false);
  n.base_version = n.storage->version.load(std::memory_order_relaxed);
}

// The root of a fused group computes the whole group (Note [Elementwise fusion]).
inline void execute_group(Node& n, const Exec& x, int thread, int32_t ready = -1) {
  const int64_t t0 = x.observed ? now_ns() : 0;
  fusion::run_group(n, x.run.fusion.flags.data(), x.mark);
  if (x.observed) notify_node(x.run, n, thread, t0, ready, true);
  n.base_version = n.storage->version.load(std::memory_order_relaxed);
}

// Note [Inputs are released as soon as a node has run]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A computed node that no gradient will flow through never reads its inputs again, so it
// drops its edges right after its forward ran, on the thread that ran it: an intermediate
// that only graph edges held is freed (its buffer back to the pool) at its last use, in the
// middle of the run, not at the end. This is safe because everything a later node of the run
// reads is an ancestor it holds through its own edges, the targets are held by the caller,
// and the scheduler never touches a node that has run again (serial runs walk `order`
// forwards; parallel runs find children through the run's own edge lists). A node freed here
// may be freed on a worker thread: its block goes to that thread's node free list (Note [Node
// pool]), its buffer to the buffer pool (Note [Buffer pool], under its own mutex), and no
// Python state is touched. Not while tracing: a recorded program replays the graph as it was
// (Note [Tracing keeps the graph]).
inline void release_inputs(Node& n) {
  if (!n.requires_grad || n.op == OpKind::Detach) n.inputs.clear();
}

// The pool half of Note [Scheduler: wait, execute, propagate].
// `seeds` are the nodes ready at the start, `count` the nodes left to run.
void run_parallel(Run& run, std::vector<std::atomic<int32_t>>& pending, const std::vector<int32_t>& seeds, size_t count,
                  int threads, RunStats& stats) {
  ReadyLists lists(threads, get_schedule() == Schedule::Parallel);
  // Every worker reads `cancelled` once per node and writes `remaining` when it runs out of
  // continuation work: each on a cache line of its own, so that neither the other one nor the
  // frame's other locals move a line between cores for every node.
  alignas(64) std::atomic<int64_t> remaining{static_cast<int64_t>(count)};
  alignas(64) std::atomic<bool> cancelled{false};
  alignas(64) std::mutex err_mutex;
  std::exception_ptr first_error;
  std::atomic<int> threads_used{0};

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const Exec x(run);
    const uint8_t* const fuse_flags = run.fusion.any ? run.fusion.flags.data() : nullptr;
    const size_t nr = seeds.size();
    // Nothing may leave the region as an exception (std::terminate): a failure to grow a deque
    // cancels the run like a failing node.
    auto fail = [&] {
      {
        std::lock_guard<std::mutex> lock(err_mutex);
        if (!first_error) first_error = std::current_exception();
      }
      cancelled.store(true, std::memory_order_relaxed);
      lists.finish();
    };
    try {
      lists.seed(tid, seeds.data() + nr * tid / nt, seeds.data() + nr * (tid + 1) / nt);
    } catch (...) {
      fail();
    }
#pragma omp barrier
    lists.arrive(tid);
    int64_t done_here = 0, unflushed = 0;
    int32_t cur = -1;
    for (;;) {
      if (cur < 0 && !lists.pop(tid, cur)) break;
      if (cancelled.load(std::memory_order_relaxed)) break;
      const uint8_t fflags = fuse_flags ? fuse_flags[cur] : 0;
      const int32_t ready = x.observed ? lists.size() : -1;
      try {
        if (fflags & fusion::kAbsorbed) {
          // computed by its group's root; its inputs stay for the root to read
        } else if (fflags & fusion::kHasMembers) {
          execute_group(*run.order[cur], x, tid, ready);
        } else {
          execute(*run.order[cur], x, tid, ready);
        }
      } catch (...) {
        fail();
        break;
      }
      ++done_here;
      ++unflushed;
      // Children are found through the run's edge lists, not through the node, so its inputs
      // may go now.
      if (run.release_inputs && !(fflags & fusion::kAbsorbed)) release_inputs(*run.order[cur]);
      int32_t next = -1;
      try {
        for (int32_t k = run.child_head[cur]; k >= 0; k = run.edge_next[k]) {
          int32_t c = run.edge_child[k];
          if (pending[c].fetch_sub(1, std::memory_order_acq_rel) == 1) {
            if (next < 0)
              next = c;
            else
              lists.push(tid, c);
          }
        }
      } catch (...) {  // a deque could not grow
        fail();
        break;
      }
      // Note [Counting finished nodes]: a worker adds its finished nodes to the shared count
      // only when it runs out of continuation work, not once per node (a per-node atomic on
      // one shared line ping-pongs between cores). The count reaches zero exactly when the
      // last node is done: every other worker flushed before it went looking for work, and a
      // worker still in a continuation has a node left to run.
      if (next < 0 && remaining.fetch_sub(unflushed, std::memory_order_acq_rel) == unflushed) lists.finish();
      if (next < 0) unflushed = 0;
      cur = next;
    }
    if (done_here) threads_used.fetch_add(1, std::memory_order_relaxed);
  }
  stats.threads_used = threads_used.load();
  if (first_error) std::rethrow_exception(first_error);
}

// Runs order[begin, end) on the calling thread, in order (parents first).
void run_serial(const Run& run, size_t begin, size_t end) {
  const Exec x(run);
  if (run.fusion.any) {
    for (size_t i = begin; i < end; ++i) {
      const uint8_t f = run.fusion.flags[i];
      if (f & fusion::kAbsorbed) continue;  // computed by its group's root
      Node* node = run.order[i];
      if (f & fusion::kHasMembers)
        execute_group(*node, x, 0);
      else
        execute(*node, x, 0);
      if (run.release_inputs) release_inputs(*node);
    }
  } else if (run.release_inputs) {
    for (size_t i = begin; i < end; ++i) {
      execute(*run.order[i], x, 0);
      release_inputs(*run.order[i]);
    }
  } else {
    for (size_t i = begin; i < end; ++i) execute(*run.order[i], x, 0);
  }
}

// Note [Measured node cost]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Node costs are estimates (elements, flops, or whatever a custom op declares), while the pool
// costs real time per node: atomics per edge, a ready deque, and a cache line crossing between
// cores for most handoffs, some 50-150 ns a node on this host's 2 cores. A run of nodes cheaper
// than that is slower on two threads than on one (issue #14: 0.75-0.99x with empty nodes),
// whatever the estimate said; so is a run that pays for planning a pool it then does not use
// (recording parent lists during the walk cost ~15% of the walk, costing and linking every node
// another ~12% of an empty-node run). So a run that could go to the pool starts on the calling
// thread, in order, with nothing recorded for the pool, and times itself in windows of kWindow
// nodes: while the nodes are small (each under kSmallCost) and fast (a window's mean under
// kMinPoolNodeNs) it stays there, and ends there, having paid nothing for the pool. kMinPoolNodeNs
// is several times the pool's cost per node: on a host whose other core is busy the pool loses
// most (0.3-0.6x with empty nodes, measured), and there nodes that only miss the cache look slow
// (the random wide graph's empty nodes measured 250-400 ns; with a 250 ns bound they went to the
// pool at 0.62x). At the first large node, or after two slow windows in a row (two, so that one
// window stretched by the OS taking the core away does not count), the rest of the run is recorded
// (record_rest in plan.cpp: the nodes not run yet, and their edges among themselves), costed and
// planned as Note [Serial or parallel run] says, and may go to the pool. Runs of large nodes see
// their first node and stop watching at once. Fused groups are kept as planned when the pool takes
// over a started run (splitting a join then could leave a member that the serial part skipped
// uncomputed; Note [Fusion keeps parallel branches] only serves speed). Either way the results are
// the same bits.
constexpr double kSmallCost = 1e4, kMinPoolNodeNs = 500;
constexpr size_t kWindow = 32;

// Runs the run on the calling thread while its nodes are small and fast (Note [Measured node
// cost]). Returns the number of nodes it ran, all of them when the run is done.
size_t run_watched(const Run& run) {
  const Exec x(run);
  const size_t n = run.order.size();
  const uint8_t* const fuse_flags = run.fusion.any ? run.fusion.flags.data() : nullptr;
  int64_t t = now_ns();
  int slow = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t f = fuse_flags ? fuse_flags[i] : 0;
    if (!(f & fusion::kAbsorbed)) {  // absorbed: computed by its group's root
      Node* node = run.order[i];
      // A fused GEMM epilogue's root carries its absorbed product's work (Note [GEMM epilogue fusion]).
      const double cost = node_cost(*node) + ((f & fusion::kGemmRoot) ? node_cost(*node->inputs[0].node) : 0.0);
      if (cost >= kSmallCost) return i;  // before its inputs are released
      if (f & fusion::kHasMembers)
        execute_group(*node, x, 0);
      else
        execute(*node, x, 0);
      if (run.release_inputs) release_inputs(*node);
    }
    if ((i + 1) % kWindow == 0) {
      const int64_t t1 = now_ns();
      slow = t1 - t >= static_cast<int64_t>(kWindow * kMinPoolNodeNs) ? slow + 1 : 0;
      if (slow == 2) return i + 1;
      t = t1;
    }
  }
  return n;
}

// Executes a built run: serially in topological order when no two nodes can be ready at once
// or the nodes are too small to share, else on the worker pool. Rethrows the first error after
// every worker has stopped.
void execute_run(Run& run, RunStats& stats) {
  const size_t n = run.order.size();
  stats.nodes = static_cast<int64_t>(n);
  stats.run = run.seq;
  stats.threads_used = 1;
  const int threads = get_num_threads();
  const Schedule mode = get_schedule();
  const bool can = threads > 1 && run.has_fanout;
  if (!can || mode == Schedule::Serial) {
    stats.fused = run.fusion.fused;
    run_serial(run, 0, n);
    return;
  }
  // Note [Measured node cost]: small nodes must prove they are worth the pool.
  const size_t done = mode == Schedule::Auto ? run_watched(run) : 0;
  if (done == n) {
    stats.fused = run.fusion.fused;
    return;
  }
  const bool costs = mode == Schedule::Auto;  // a parallel schedule does not ask
  if (!run.recorded)
    record_rest(run, done, costs);
  else if (costs)
    plan_costs(run, done);
  // Note [Serial or parallel run]
  // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  // The worker pool pays for itself only when independent nodes carry real work: a run goes
  // to the pool when it has fan-out, enough total work to amortise waking a worker, and a
  // total/critical-path work ratio (the most its node-level parallelism can give) of at least
  // kMinParallelism. Otherwise (a chain, an MLP step whose few side branches are small next to
  // its GEMMs) it runs on the calling thread, where each large kernel may use the whole
  // thread budget (Note [Thread budget]). Costs are rough: flops for products, elements
  // touched otherwise. Either way the results are the same bits.
  //
  // The pool also has to beat what the calling thread gets by splitting the large kernels over
  // the budget instead (issue #16: a LeNet step, a chain of wide kernels whose backward has a
  // little fan-out, ran at 0.47-0.80x the speed of 1 thread on 2 when it went to the pool, every
  // kernel single-threaded; measured alone on the final tree: 12.9 ms on 1 thread, 10.6 ms on
  // the pool, 8.5 ms split). With T the total cost, C the critical path and S the part of T in
  // kernels that split (splits() in plan.cpp), p threads estimate
  //   on the pool:            max(C, T / p)        (Brent's bound)
  //   on the calling thread:  (T - S) + S / p
  // and go to the pool only when its estimate is at most kPoolMargin of the other's: nodes
  // side by side share no data and pay no split-and-join per kernel, so the pool wins ties.
  // The costs cover the nodes not yet run: runs of small nodes first show on the calling
  // thread that they are worth planning (Note [Measured node cost]). dagrad.set_schedule
  // overrides the decision (Schedule in scheduler/observer.h).
  constexpr double kMinParallelWork = 2e4, kMinParallelism = 1.3, kPoolMargin = 1.1;
  const double p = threads, T = run.total_cost, C = run.critical_cost, S = run.split_cost;
  const bool beats_split = std::max(C, T / p) <= kPoolMargin * ((T - S) + S / p);
  const bool pool = mode == Schedule::Parallel || (T >= kMinParallelWork && T >= kMinParallelism * C && beats_split);
  // Note [Fusion keeps parallel branches]; not once nodes have run (Note [Measured node cost]).
  if (pool && done == 0) run.fusion.split_joins(run.order, run.mark);
  stats.fused = run.fusion.fused;
  stats.parallel = pool;
  if (!pool) {
    run_serial(run, done, n);
    return;
  }
  link_children(run);
  std::vector<std::atomic<int32_t>> pending(n);
  for (size_t i = 0; i < n; ++i) pending[i].store(run.indegree[i], std::memory_order_relaxed);
  std::vector<int32_t> seeds;
  if (done == 0) {
    seeds = run.roots;
  } else {
    // The nodes run so far are done: their children wait for one parent fewer (a replayed run
    // recorded them; a realized run recorded no edge from them, so this finds none). Still
    // one thread here.
    for (int32_t r : run.roots)
      if (static_cast<size_t>(r) >= done) seeds.push_back(r);
    for (size_t i = 0; i < done; ++i)
      for (int32_t k = run.child_head[i]; k >= 0; k = run.edge_next[k]) {
        const int32_t c = run.edge_child[k];
        const int32_t left = pending[c].load(std::memory_order_relaxed) - 1;
        pending[c].store(left, std::memory_order_relaxed);
        if (left == 0 && static_cast<size_t>(c) >= done) seeds.push_back(c);
      }
    std::sort(seeds.begin(), seeds.end());  // neighbours together (Note [Per-worker ready lists])
  }
  run_parallel(run, pending, seeds, n - done, threads, stats);
}

}  // namespace
}  // namespace scheduler

using scheduler::collect;
using scheduler::execute_run;
using scheduler::PooledRun;
using scheduler::Run;

void realize(const std::vector<Tensor>& targets) {
  GraphLock lock;
  const uint64_t mark = next_mark();
  PooledRun pooled;
  Run& run = *pooled.run;
  // The edge lists and the costs only serve to decide on and drive a parallel run, and are
  // made only for one (Note [Measured node cost]). run_index stays stale on the nodes
  // afterwards: it is read only for nodes carrying the current walk's mark.
  ObserverSnapshot observers;
  const bool keep_graph = observers.keeps_graph();
  observers.node_observers(run.node_observers);
  run.mark = mark;
  // Anomaly mode checks every node's own output, so nothing is computed inside a group there.
  run.fusion.active = !keep_graph && fusion::enabled() && !anomaly_enabled();
  collect(targets, mark, run);
  const size_t n = run.order.size();
  if (n == 0) return;
  if (n > static_cast<size_t>(INT32_MAX - 1))
    throw ValueError("realize: a run of " + std::to_string(n) + " nodes is too large");
  run.release_inputs = !keep_graph;

  RunStats stats;
  std::exception_ptr error;
  reset_peak_buffer_bytes();
  run.seq = ++g_runs;
  try {
    execute_run(run, stats);
  } catch (...) {
    error = std::current_exception();
  }
  stats.peak_bytes = peak_buffer_bytes();
  g_last_stats = stats;
  trim_pool_after_run(stats.peak_bytes);
  if (error) std::rethrow_exception(error);
  observers.run_done(run.order, stats);  // compile's trace records the run here
}

const Tensor& Tensor::realize() const {
  if (!node_->realized()) dagrad::realize({*this});
  return *this;
}

double Tensor::item() const {
  if (numel() != 1)
    throw RuntimeError("a Tensor with " + std::to_string(numel()) + " elements cannot be converted to a scalar");
  realize();
  switch (dtype()) {
    case DType::Float32: return node_->data<float>()[0];
    case DType::Float64: return node_->data<double>()[0];
    case DType::Int64: return static_cast<double>(node_->data<int64_t>()[0]);
    case DType::Bool: return node_->data<bool>()[0] ? 1.0 : 0.0;
  }
  return 0.0;
}

// Note [Values while recording]: the ops reach realize through this registration.
namespace {
const bool g_registered = (set_realize_fn(&realize), true);
}  // namespace

// ---- replay of recorded runs (compile's trace) -------------------------------------------------

struct CachedRun::Impl {
  std::vector<NodePtr> keep;  // owns the nodes
  scheduler::Run run;
};

CachedRun::CachedRun(const std::vector<Node*>& order) : impl_(std::make_shared<Impl>()) {
  GraphLock lock;
  const uint64_t mark = next_mark();
  for (size_t i = 0; i < order.size(); ++i) {
    impl_->keep.push_back(order[i]->shared_from_this());
    order[i]->mark = mark;
    order[i]->run_index = static_cast<int32_t>(i);
  }
  scheduler::Run& run = impl_->run;
  run.order = order;
  run.recorded = run.has_fanout = true;  // the planner decides (Note [Serial or parallel run])
  for (Node* node : order) scheduler::record(run, node, mark);
  for (Node* node : order) node->run_index = -1;
}

const std::vector<NodePtr>& CachedRun::nodes() const { return impl_->keep; }

void CachedRun::execute() const {
  RunStats stats;
  scheduler::Run& run = impl_->run;
  run.seq = ++g_runs;  // replay runs under the graph lock (Program::replay)
  ObserverSnapshot observers;
  observers.node_observers(run.node_observers);
  scheduler::execute_run(run, stats);
}

}  // namespace dagrad