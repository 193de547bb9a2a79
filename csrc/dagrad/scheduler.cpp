#include "dagrad/scheduler.h"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "dagrad/fusion.h"
#include "dagrad/ops.h"
#include "dagrad/profiler.h"
#include "dagrad/trace.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define DAGRAD_CPU_RELAX() _mm_pause()
#else
#define DAGRAD_CPU_RELAX() std::this_thread::yield()
#endif

namespace dagrad {

// Note [One run at a time]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// A run writes node scratch fields (mark, run_index) and node storage. Runs are therefore
// serialised by one process-wide (recursive: backward realizes from inside its own lock)
// mutex. Parallelism lives inside a run, across its independent nodes, not across runs.

namespace {

// Note [Thread cap]
// ~~~~~~~~~~~~~~~~~
// A run opens one OpenMP team of the budget's size, so the budget is a number of OS threads:
// 65536 of them crashed, 8192 made a tiny backward take 20 s. The budget is capped at
// max(64, cores): room to test determinism at 8 threads on a 2-core machine, and every core of
// a large one. set_num_threads and DAGRAD_NUM_THREADS follow the same rule and both raise
// ValueError beyond it (the variable when the budget is first read, which dagrad's import does).
int check_threads(long long n, const char* who) {
  const long long cap = max_threads();
  if (n < 1 || n > cap)
    throw ValueError(std::string(who) + ": expected a number of threads in [1, " + std::to_string(cap) +
                     "] (at most max(64, the " + std::to_string(omp_get_num_procs()) +
                     " cores)), got " + std::to_string(n));
  return static_cast<int>(n);
}

int default_threads() {
  if (const char* env = std::getenv("DAGRAD_NUM_THREADS")) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(env, &end, 10);
    if (end == env || *end != '\0' || errno == ERANGE)
      throw ValueError(std::string("DAGRAD_NUM_THREADS: expected a positive integer, got '") + env + "'");
    return check_threads(v, "DAGRAD_NUM_THREADS");
  }
  return std::max(1, omp_get_num_procs());
}

std::atomic<int> g_num_threads{0};  // 0: not read yet (the environment is read on first use)
uint64_t g_mark = 0;  // guarded by graph_mutex()
RunStats g_last_stats;  // guarded by graph_mutex()

}  // namespace

void check_input_version(const Node& n, size_t i) {
  const Node& p = *n.inputs[i].node;
  uint32_t now = p.storage->version.load(std::memory_order_relaxed);
  if (now != n.inputs[i].expected())
    throw RuntimeError(std::string(op_name(n.op)) + ": input " + std::to_string(i) +
                       " of shape " + shape_str(p.shape) +
                       " was modified by an in-place operation after this op was recorded "
                       "(version " + std::to_string(now) + ", expected " +
                       std::to_string(n.inputs[i].expected()) + ")");
}

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

inline void execute(Node& n, uint64_t mark, int thread) {
  // A replayed program rewrites inputs and parameters in place by design; its edges were
  // checked when it was recorded.
  if (!trace::replaying()) check_versions(n, mark);
  if (n.numel() == 0) {
    // Nothing to compute. Kernels are not asked to handle empty outputs, whose other dims may
    // multiply past int64 (only the element count is bounded) and whose inputs need no reading.
    alloc_output(n);
    n.base_version = n.storage->version.load(std::memory_order_relaxed);
    return;
  }
  try {
    if (profiler::enabled()) {
      int64_t t0 = profiler::now_ns();
      op_info(n.op).forward(n);
      profiler::record(TraceEvent{n.id, n.op, thread, t0, profiler::now_ns()});
    } else {
      op_info(n.op).forward(n);
    }
  } catch (...) {
    // A kernel may throw after allocating its output (gather checks its indices then): the
    // node must stay pending, not look computed with a buffer it never filled.
    n.storage.reset();
    throw;
  }
  n.base_version = n.storage->version.load(std::memory_order_relaxed);
}

// The root of a fused group computes the whole group (Note [Elementwise fusion]).
inline void execute_group(Node& n, const uint8_t* flags, uint64_t mark, int thread) {
  const int64_t t0 = profiler::enabled() ? profiler::now_ns() : 0;
  fusion::run_group(n, flags, mark);
  if (t0) profiler::record(TraceEvent{n.id, n.op, thread, t0, profiler::now_ns()});
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
  explicit ReadyLists(int workers) : lists_(static_cast<size_t>(workers)) {}

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

  void finish() {
    done_.store(true, std::memory_order_seq_cst);
    std::lock_guard<std::mutex> lock(sleep_m_);
    sleep_cv_.notify_all();
  }

 private:
  struct alignas(64) List {
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
};

struct Run {
  // Topological, parents first. A node's slot may dangle once the node has run: releasing
  // inputs (Note [Inputs are released as soon as a node has run]) can free an earlier node.
  std::vector<Node*> order;
  struct Frame {
    Node* node;
    uint32_t next;     // next input to visit
    int32_t parents;   // pending parents seen so far
  };
  std::vector<Frame> stack;  // collect()'s DFS
  bool release_inputs = false;  // see Note [Inputs are released as soon as a node has run]
  uint64_t mark = 0;
  // Elementwise fusion (Note [Elementwise fusion]): per-node flags and group sizes, filled
  // from the first candidate on (empty while none has been seen).
  bool fusing = false;     // fusion allowed in this run
  bool fused_any = false;  // some node is absorbed into a group
  int64_t fused = 0;       // how many
  std::vector<uint8_t> fuse_flags;
  std::vector<uint8_t> fuse_size;
  // What a parallel run needs, filled by link() (only when the run may go parallel):
  bool edges_built = false;
  std::vector<int32_t> indegree;    // in-run parents of each node
  std::vector<int32_t> child_head;  // first edge of each node's child list, or -1
  std::vector<int32_t> edge_child;  // per in-run edge: the child ...
  std::vector<int32_t> edge_next;   // ... and the next edge of the same parent, or -1
  std::vector<double> crit;         // costliest path ending at each node
  std::vector<int32_t> roots;       // nodes with no pending parent
  bool has_fanout = false;
  double total_cost = 0;     // sum of node costs
  double critical_cost = 0;  // costliest path

  void clear() {
    order.clear();
    stack.clear();
    indegree.clear();
    child_head.clear();
    edge_child.clear();
    edge_next.clear();
    crit.clear();
    roots.clear();
    fuse_flags.clear();
    fuse_size.clear();
    release_inputs = edges_built = has_fanout = fusing = fused_any = false;
    mark = 0;
    fused = 0;
    total_cost = critical_cost = 0;
  }
};

// Rough work of a node: flops for products, elements touched otherwise (see
// Note [Serial or parallel run]).
double node_cost(const Node& n) {
  switch (n.op) {
    case OpKind::Matmul: {
      const Node& a = *n.inputs[0].node;
      const double k = n.attrs.ints[0] ? a.shape[a.ndim() - 2] : a.shape.back();
      return 2.0 * static_cast<double>(n.numel()) * k;
    }
    case OpKind::Linear: return 2.0 * static_cast<double>(n.numel()) * static_cast<double>(n.inputs[1].node->shape[1]);
    case OpKind::Custom: return n.attrs.custom->cost;
    case OpKind::Reshape:
    case OpKind::Detach: return 1.0;
    default: {
      double c = static_cast<double>(n.numel());
      for (const Edge& e : n.inputs) c = std::max(c, static_cast<double>(e.node->numel()));
      return c + 1.0;
    }
  }
}

// Adds node n (whose run_index is set, and whose in-run parents are linked already) to the
// run's edge lists and costs. One pass over n's inputs while they are in cache.
void link(Run& run, Node* n, uint64_t mark) {
  const int32_t i = n->run_index;
  int32_t degree = 0;
  double longest = 0;
  for (const Edge& e : n->inputs) {
    const Node* p = e.node.get();
    if (p->mark != mark) continue;
    const int32_t pi = p->run_index;
    ++degree;
    int32_t& head = run.child_head[pi];
    if (head >= 0) run.has_fanout = true;
    run.edge_next.push_back(head);
    head = static_cast<int32_t>(run.edge_child.size());
    run.edge_child.push_back(i);
    longest = std::max(longest, run.crit[pi]);
  }
  run.indegree.push_back(degree);
  run.child_head.push_back(-1);
  if (degree == 0) run.roots.push_back(i);
  const double c = node_cost(*n);
  run.crit.push_back(longest + c);
  run.total_cost += c;
  run.critical_cost = std::max(run.critical_cost, longest + c);
}

// Iterative post-order DFS over pending nodes (Note [Iterative teardown] has the same
// reason: a recursive walk overflows the stack on long chains).
//
// With `edges` (more than one thread), nodes are also linked for a parallel run, but only once
// the walk has seen that two nodes could ever be ready at the same time: a second root, or a
// node reached from two children (fan-out). A chain never pays for its edge lists; the first
// sign of parallelism links the nodes emitted so far, and each later node is linked as it is
// emitted (its parents are emitted before it).
// Called for each node as collect() emits it (its in-run inputs are emitted already): decides
// which of its inputs are computed inside its group (Note [Elementwise fusion]).
void consider_fusion(Run& run, Node* n, uint64_t mark) {
  const size_t i = static_cast<size_t>(n->run_index);
  const bool cand = fusion::candidate(*n);
  if (run.fuse_flags.empty()) {
    if (!cand) return;  // nothing to track until the first candidate
    run.fuse_flags.assign(i, 0);
    run.fuse_size.assign(i, 1);
  }
  uint8_t flags = 0, size = 1;
  if (cand) {
    flags = fusion::kCandidate;
    for (const Edge& e : n->inputs) {
      Node* p = e.node.get();
      if (p->mark != mark) continue;
      const size_t pi = static_cast<size_t>(p->run_index);
      const uint8_t pf = run.fuse_flags[pi];
      if (!(pf & fusion::kCandidate) || (pf & fusion::kAbsorbed)) continue;
      if (e.node.use_count() != 1 || !fusion::absorbable(*p, *n)) continue;
      if (size + run.fuse_size[pi] > fusion::kMaxGroup) continue;
      run.fuse_flags[pi] = pf | fusion::kAbsorbed;
      size = static_cast<uint8_t>(size + run.fuse_size[pi]);
      flags |= fusion::kHasMembers;
      run.fused_any = true;
      ++run.fused;
    }
  }
  run.fuse_flags.push_back(flags);
  run.fuse_size.push_back(size);
}

using Frame = Run::Frame;
void collect(const std::vector<Tensor>& targets, uint64_t mark, Run& run, bool edges) {
  auto& stack = run.stack;  // (node, next input to visit, pending parents seen)
  bool parallelism = false;
  int32_t roots = 0;
  for (const Tensor& t : targets) {
    Node* root = t.node().get();
    if (root->realized() || root->mark == mark) continue;
    root->mark = mark;
    stack.push_back({root, 0, 0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      Node* n = f.node;
      // Loads of parent nodes are cache misses in a large graph; start them all at once on the
      // first visit (the walk needs each parent's flags next).
      if (f.next == 0)
        for (const Edge& e : n->inputs) __builtin_prefetch(e.node.get());
      if (f.next < n->inputs.size()) {
        Node* p = n->inputs[f.next++].node.get();
        if (p->realized()) continue;
        ++f.parents;
        if (p->mark == mark) {
          parallelism = true;  // p has a second child in the run
          continue;
        }
        if (p->op == OpKind::Leaf) throw RuntimeError("internal: leaf without a value");
        p->mark = mark;
        stack.push_back({p, 0, 0});
      } else {
        if (f.parents == 0 && ++roots > 1) parallelism = true;
        stack.pop_back();
        n->run_index = static_cast<int32_t>(run.order.size());
        run.order.push_back(n);
        if (run.fusing) consider_fusion(run, n, mark);
        if (run.edges_built) {
          link(run, n, mark);
        } else if (edges && parallelism) {
          run.edges_built = true;
          for (Node* m : run.order) link(run, m, mark);
        }
      }
    }
  }
}

// Note [Scheduler: wait, execute, propagate]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Each node has an atomic count of unfinished parents. A worker executes a node, then
// decrements each child's count; the decrement is acq_rel so that the child's worker,
// which sees the count reach zero, also sees every parent's output written. The first
// child that becomes ready continues on the same thread (no queue round trip, warm cache);
// the others go to the worker's ready list (Note [Per-worker ready lists]). The first exception is stored, the run is
// cancelled, every worker leaves the loop, and the caller rethrows it after the parallel
// region (no exception may cross an OpenMP region boundary).
void run_parallel(Run& run, std::vector<std::atomic<int32_t>>& pending, int threads,
                  RunStats& stats) {
  ReadyLists lists(threads);
  std::atomic<int64_t> remaining{static_cast<int64_t>(run.order.size())};
  std::atomic<bool> cancelled{false};
  std::mutex err_mutex;
  std::exception_ptr first_error;
  std::atomic<int> threads_used{0};

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const size_t nr = run.roots.size();
    lists.seed(tid, run.roots.data() + nr * tid / nt, run.roots.data() + nr * (tid + 1) / nt);
#pragma omp barrier
    int64_t done_here = 0, unflushed = 0;
    int32_t cur = -1;
    for (;;) {
      if (cur < 0 && !lists.pop(tid, cur)) break;
      if (cancelled.load(std::memory_order_relaxed)) break;
      const uint8_t fflags = run.fused_any ? run.fuse_flags[cur] : 0;
      try {
        if (fflags & fusion::kAbsorbed) {
          // computed by its group's root; its inputs stay for the root to read
        } else if (fflags & fusion::kHasMembers) {
          execute_group(*run.order[cur], run.fuse_flags.data(), run.mark, tid);
        } else {
          execute(*run.order[cur], run.mark, tid);
        }
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(err_mutex);
          if (!first_error) first_error = std::current_exception();
        }
        cancelled.store(true, std::memory_order_relaxed);
        lists.finish();
        break;
      }
      ++done_here;
      ++unflushed;
      // Children are found through the run's edge lists, not through the node, so its inputs
      // may go now.
      if (run.release_inputs && !(fflags & fusion::kAbsorbed)) release_inputs(*run.order[cur]);
      int32_t next = -1;
      for (int32_t k = run.child_head[cur]; k >= 0; k = run.edge_next[k]) {
        int32_t c = run.edge_child[k];
        if (pending[c].fetch_sub(1, std::memory_order_acq_rel) == 1) {
          if (next < 0)
            next = c;
          else
            lists.push(tid, c);
        }
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

}  // namespace

int max_threads() { return std::max(64, omp_get_num_procs()); }

void set_num_threads(long long n) {
  g_num_threads.store(check_threads(n, "set_num_threads"), std::memory_order_relaxed);
}

int get_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  // Racing first readers compute the same value; see Note [Thread cap].
  int expected = 0;
  const int v = default_threads();
  g_num_threads.compare_exchange_strong(expected, v, std::memory_order_relaxed);
  return g_num_threads.load(std::memory_order_relaxed);
}

uint64_t next_mark() { return ++g_mark; }

namespace {
std::atomic<bool> g_fusion{true};
}
void set_fusion_enabled(bool enabled) { g_fusion.store(enabled, std::memory_order_relaxed); }
bool fusion_enabled() { return g_fusion.load(std::memory_order_relaxed); }

RunStats last_run_stats() {
  GraphLock lock;
  return g_last_stats;
}

namespace {
void run_serial(const Run& run) {
  if (run.fused_any) {
    const size_t n = run.order.size();
    for (size_t i = 0; i < n; ++i) {
      const uint8_t f = run.fuse_flags[i];
      if (f & fusion::kAbsorbed) continue;  // computed by its group's root
      Node* node = run.order[i];
      if (f & fusion::kHasMembers)
        execute_group(*node, run.fuse_flags.data(), run.mark, 0);
      else
        execute(*node, run.mark, 0);
      if (run.release_inputs) release_inputs(*node);
    }
  } else if (run.release_inputs) {
    for (Node* node : run.order) {
      execute(*node, run.mark, 0);
      release_inputs(*node);
    }
  } else {
    for (Node* node : run.order) execute(*node, run.mark, 0);
  }
}

// Executes a built run: serially in topological order when no two nodes can be ready at once,
// else on the worker pool. Rethrows the first error after every worker has stopped.
void execute_run(Run& run, RunStats& stats) {
  const size_t n = run.order.size();
  stats.nodes = static_cast<int64_t>(n);
  stats.fused = run.fused;
  const int threads = get_num_threads();
  // Note [Serial or parallel run]
  // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  // The worker pool pays for itself only when independent nodes carry real work: a run goes
  // to the pool when it has fan-out, enough total work to amortise waking a worker, and a
  // total/critical-path work ratio (the most its node-level parallelism can give) of at least
  // kMinParallelism. Otherwise (a chain, an MLP step whose few side branches are small next to
  // its GEMMs) it runs on the calling thread, where each large kernel may use the whole
  // thread budget (Note [Thread budget]). Costs are rough: flops for products, elements
  // touched otherwise. Either way the results are the same bits.
  constexpr double kMinParallelWork = 2e4, kMinParallelism = 1.3;
  const bool parallel = threads > 1 && run.edges_built && (run.roots.size() > 1 || run.has_fanout) &&
                        run.total_cost >= kMinParallelWork &&
                        run.total_cost >= kMinParallelism * run.critical_cost;
  stats.parallel = parallel;
  if (parallel) {
    std::vector<std::atomic<int32_t>> pending(n);
    for (size_t i = 0; i < n; ++i) pending[i].store(run.indegree[i], std::memory_order_relaxed);
    run_parallel(run, pending, threads, stats);
  } else {
    run_serial(run);
    stats.threads_used = 1;
  }
}
}  // namespace

namespace {
// A run's arrays are reused from one realize to the next (a pool, not a single object: a
// custom op may realize from inside a run). Guarded by graph_mutex().
std::vector<std::unique_ptr<Run>> g_run_pool;

struct PooledRun {
  std::unique_ptr<Run> run;
  PooledRun() {
    if (g_run_pool.empty()) {
      run = std::make_unique<Run>();
    } else {
      run = std::move(g_run_pool.back());
      g_run_pool.pop_back();
    }
  }
  ~PooledRun() {
    // Keep the capacity of ordinary runs; give back what a giant graph grew.
    constexpr size_t kKeep = size_t{1} << 20;
    if (run->order.capacity() > kKeep || run->stack.capacity() > kKeep ||
        run->edge_child.capacity() > kKeep || g_run_pool.size() >= 4)
      return;
    run->clear();
    g_run_pool.push_back(std::move(run));
  }
};
}  // namespace

void realize(const std::vector<Tensor>& targets) {
  GraphLock lock;
  const uint64_t mark = next_mark();
  PooledRun pooled;
  Run& run = *pooled.run;
  // The edge lists and the costs only serve to decide on and drive a parallel run; a
  // one-thread run executes `order` as collected. run_index stays stale on the nodes
  // afterwards: it is read only for nodes carrying the current walk's mark.
  const bool tracing = trace::active();
  run.mark = mark;
  run.fusing = !tracing && fusion_enabled();
  collect(targets, mark, run, get_num_threads() > 1);
  const size_t n = run.order.size();
  if (n == 0) return;
  if (n > static_cast<size_t>(INT32_MAX - 1))
    throw ValueError("realize: a run of " + std::to_string(n) + " nodes is too large");
  run.release_inputs = !tracing;

  RunStats stats;
  std::exception_ptr error;
  try {
    execute_run(run, stats);
  } catch (...) {
    error = std::current_exception();
  }
  g_last_stats = stats;
  if (error) std::rethrow_exception(error);
  // See Note [Tracing keeps the graph].
  if (tracing) trace::record_run(run.order);
}

// ---- replay of recorded runs (trace.h) ---------------------------------------------------------

struct CachedRun::Impl {
  std::vector<NodePtr> keep;  // owns the nodes
  Run run;
};

CachedRun::CachedRun(const std::vector<Node*>& order) : impl_(std::make_shared<Impl>()) {
  GraphLock lock;
  const uint64_t mark = next_mark();
  for (size_t i = 0; i < order.size(); ++i) {
    impl_->keep.push_back(order[i]->shared_from_this());
    order[i]->mark = mark;
    order[i]->run_index = static_cast<int32_t>(i);
  }
  Run& run = impl_->run;
  run.order = order;
  run.edges_built = true;
  for (Node* node : order) link(run, node, mark);
  for (Node* node : order) node->run_index = -1;
}

void CachedRun::execute() const {
  RunStats stats;
  execute_run(impl_->run, stats);
}

}  // namespace dagrad
