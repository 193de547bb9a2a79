#include "dagrad/scheduler.h"

#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

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
std::recursive_mutex& graph_mutex() {
  static std::recursive_mutex m;
  return m;
}

namespace {

int default_threads() {
  if (const char* env = std::getenv("DAGRAD_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 4096) return static_cast<int>(v);
  }
  return std::max(1, omp_get_num_procs());
}

std::atomic<int> g_num_threads{default_threads()};
uint64_t g_mark = 0;  // guarded by graph_mutex()
RunStats g_last_stats;  // guarded by graph_mutex()

void check_versions(const Node& n) {
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const Node& p = *n.inputs[i].node;
    uint32_t now = p.storage->version.load(std::memory_order_relaxed);
    if (now != n.inputs[i].expected())
      throw RuntimeError(std::string(op_name(n.op)) + ": input " + std::to_string(i) +
                         " of shape " + shape_str(p.shape) +
                         " was modified by an in-place operation after this op was recorded "
                         "(version " + std::to_string(now) + ", expected " +
                         std::to_string(n.inputs[i].expected()) + ")");
  }
}

inline void execute(Node& n, int thread) {
  // A replayed program rewrites inputs and parameters in place by design; its edges were
  // checked when it was recorded.
  if (!trace::replaying()) check_versions(n);
  if (profiler::enabled()) {
    int64_t t0 = profiler::now_ns();
    op_info(n.op).forward(n);
    profiler::record(TraceEvent{n.id, n.op, thread, t0, profiler::now_ns()});
  } else {
    op_info(n.op).forward(n);
  }
  n.base_version = n.storage->version.load(std::memory_order_relaxed);
}

// The ready queue shared by the workers of one run. LIFO, so a worker that picks up
// work tends to continue where the data is still in cache.
class ReadyQueue {
 public:
  void push(int32_t i) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(m_);
      items_.push_back(i);
      size_.store(static_cast<int64_t>(items_.size()), std::memory_order_release);
      wake = sleepers_ > 0;
    }
    if (wake) cv_.notify_one();
  }

  // Note [Idle workers spin briefly, then sleep]
  // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  // A worker with nothing to do polls the queue size for a few microseconds (cheap when
  // work arrives soon, as it does in a busy graph), then blocks on the condition variable.
  // Spinning longer would steal the core from another process on a machine where we may
  // not own every core; see also OMP_WAIT_POLICY in python/dagrad/__init__.py.
  bool pop(int32_t& out) {
    for (int spin = 0; spin < 256; ++spin) {
      if (done_.load(std::memory_order_acquire)) return false;
      if (size_.load(std::memory_order_acquire) > 0) {
        std::lock_guard<std::mutex> lock(m_);
        if (take(out)) return true;
      }
      DAGRAD_CPU_RELAX();
    }
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      if (take(out)) return true;
      if (done_.load(std::memory_order_relaxed)) return false;
      ++sleepers_;
      cv_.wait(lock);
      --sleepers_;
    }
  }

  void finish() {
    {
      std::lock_guard<std::mutex> lock(m_);
      done_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
  }

 private:
  bool take(int32_t& out) {  // caller holds m_
    if (items_.empty()) return false;
    out = items_.back();
    items_.pop_back();
    size_.store(static_cast<int64_t>(items_.size()), std::memory_order_release);
    return true;
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::vector<int32_t> items_;
  std::atomic<int64_t> size_{0};
  std::atomic<bool> done_{false};
  int sleepers_ = 0;
};

struct Run {
  std::vector<Node*> order;          // topological: parents first
  std::vector<int32_t> indegree;     // in-run parents of each node
  std::vector<int32_t> child_begin;  // CSR of in-run children, size n + 1
  std::vector<int32_t> children;
  std::vector<int32_t> roots;        // nodes with no pending parent
  bool has_fanout = false;
  double total_cost = 0;     // sum of node costs
  double critical_cost = 0;  // costliest path
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

// Iterative post-order DFS over pending nodes (Note [Iterative teardown] has the same
// reason: a recursive walk overflows the stack on long chains).
void collect(const std::vector<Tensor>& targets, uint64_t mark, Run& run) {
  std::vector<std::pair<Node*, size_t>> stack;
  for (const Tensor& t : targets) {
    Node* root = t.node().get();
    if (root->realized() || root->mark == mark) continue;
    root->mark = mark;
    stack.emplace_back(root, 0);
    while (!stack.empty()) {
      auto& [n, next] = stack.back();
      if (next < n->inputs.size()) {
        Node* p = n->inputs[next++].node.get();
        if (!p->realized() && p->mark != mark) {
          if (p->op == OpKind::Leaf) throw RuntimeError("internal: leaf without a value");
          p->mark = mark;
          stack.emplace_back(p, 0);
        }
      } else {
        n->run_index = static_cast<int32_t>(run.order.size());
        run.order.push_back(n);
        stack.pop_back();
      }
    }
  }
}

// Nodes of the run are exactly those carrying `mark` (collect() marks only pending nodes).
void build_edges(uint64_t mark, Run& run) {
  const Run& r = run;
  const size_t n = r.order.size();
  run.indegree.assign(n, 0);
  std::vector<int32_t>& cb = run.child_begin;
  cb.assign(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    int32_t cnt = 0;
    for (const Edge& e : r.order[i]->inputs) {
      const Node* p = e.node.get();
      if (p->mark == mark) {
        ++cb[p->run_index + 1];
        ++cnt;
      }
    }
    run.indegree[i] = cnt;
    if (cnt == 0) run.roots.push_back(static_cast<int32_t>(i));
  }
  for (size_t i = 0; i < n; ++i) {
    if (cb[i + 1] > 1) run.has_fanout = true;
    cb[i + 1] += cb[i];
  }
  // Total work and the costliest path (order is topological, so one pass suffices).
  std::vector<double> crit(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double c = node_cost(*r.order[i]);
    double longest = 0;
    for (const Edge& e : r.order[i]->inputs)
      if (e.node->mark == mark) longest = std::max(longest, crit[e.node->run_index]);
    crit[i] = longest + c;
    run.total_cost += c;
    run.critical_cost = std::max(run.critical_cost, crit[i]);
  }
  run.children.resize(cb[n]);
  std::vector<int32_t> fill(cb.begin(), cb.end() - 1);
  for (size_t i = 0; i < n; ++i)
    for (const Edge& e : r.order[i]->inputs) {
      const Node* p = e.node.get();
      if (p->mark == mark) run.children[fill[p->run_index]++] = static_cast<int32_t>(i);
    }
}

// Note [Scheduler: wait, execute, propagate]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Each node has an atomic count of unfinished parents. A worker executes a node, then
// decrements each child's count; the decrement is acq_rel so that the child's worker,
// which sees the count reach zero, also sees every parent's output written. The first
// child that becomes ready continues on the same thread (no queue round trip, warm cache);
// the others go to the shared ready queue. The first exception is stored, the run is
// cancelled, every worker leaves the loop, and the caller rethrows it after the parallel
// region (no exception may cross an OpenMP region boundary).
void run_parallel(Run& run, std::vector<std::atomic<int32_t>>& pending, int threads,
                  RunStats& stats) {
  ReadyQueue queue;
  // The roots are dealt out in contiguous blocks to private lists up front (neighbouring roots,
  // which often share children, stay on one thread), so the many roots of a wide graph cost no
  // lock; only nodes readied later go through the shared queue.
  std::atomic<int64_t> remaining{static_cast<int64_t>(run.order.size())};
  std::atomic<bool> cancelled{false};
  std::mutex err_mutex;
  std::exception_ptr first_error;
  std::atomic<int> threads_used{0};

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const size_t nr = run.roots.size();
    std::vector<int32_t> mine(run.roots.begin() + nr * tid / nt, run.roots.begin() + nr * (tid + 1) / nt);
    std::reverse(mine.begin(), mine.end());
    int64_t done_here = 0;
    int32_t cur = -1;
    for (;;) {
      if (cur < 0 && !mine.empty()) {
        cur = mine.back();
        mine.pop_back();
      }
      if (cur < 0 && !queue.pop(cur)) break;
      if (cancelled.load(std::memory_order_relaxed)) break;
      try {
        execute(*run.order[cur], tid);
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(err_mutex);
          if (!first_error) first_error = std::current_exception();
        }
        cancelled.store(true, std::memory_order_relaxed);
        queue.finish();
        break;
      }
      ++done_here;
      int32_t next = -1;
      for (int32_t k = run.child_begin[cur]; k < run.child_begin[cur + 1]; ++k) {
        int32_t c = run.children[k];
        if (pending[c].fetch_sub(1, std::memory_order_acq_rel) == 1) {
          if (next < 0)
            next = c;
          else
            queue.push(c);
        }
      }
      if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) queue.finish();
      cur = next;
    }
    if (done_here) threads_used.fetch_add(1, std::memory_order_relaxed);
  }
  stats.threads_used = threads_used.load();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw ValueError("set_num_threads: expected a positive number of threads, got " +
                              std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
}

int get_num_threads() { return g_num_threads.load(std::memory_order_relaxed); }

uint64_t next_mark() { return ++g_mark; }

RunStats last_run_stats() {
  std::lock_guard<std::recursive_mutex> lock(graph_mutex());
  return g_last_stats;
}

namespace {
// Executes a built run: serially in topological order when no two nodes can be ready at once,
// else on the worker pool. Rethrows the first error after every worker has stopped.
void execute_run(Run& run, RunStats& stats) {
  const size_t n = run.order.size();
  stats.nodes = static_cast<int64_t>(n);
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
  const bool parallel = threads > 1 && (run.roots.size() > 1 || run.has_fanout) &&
                        run.total_cost >= kMinParallelWork &&
                        run.total_cost >= kMinParallelism * run.critical_cost;
  stats.parallel = parallel;
  if (parallel) {
    std::vector<std::atomic<int32_t>> pending(n);
    for (size_t i = 0; i < n; ++i) pending[i].store(run.indegree[i], std::memory_order_relaxed);
    run_parallel(run, pending, threads, stats);
  } else {
    for (Node* node : run.order) execute(*node, 0);
    stats.threads_used = 1;
  }
}
}  // namespace

void realize(const std::vector<Tensor>& targets) {
  std::lock_guard<std::recursive_mutex> lock(graph_mutex());
  const uint64_t mark = next_mark();
  Run run;
  collect(targets, mark, run);
  const size_t n = run.order.size();
  if (n == 0) return;
  if (n > static_cast<size_t>(INT32_MAX - 1))
    throw ValueError("realize: a run of " + std::to_string(n) + " nodes is too large");
  build_edges(mark, run);

  RunStats stats;
  std::exception_ptr error;
  try {
    execute_run(run, stats);
  } catch (...) {
    error = std::current_exception();
  }
  for (Node* node : run.order) node->run_index = -1;
  g_last_stats = stats;
  if (error) std::rethrow_exception(error);
  if (trace::active()) {
    // See Note [Tracing keeps the graph].
    trace::record_run(run.order);
    return;
  }

  // A computed node that no gradient will flow through no longer needs its inputs:
  // dropping them frees intermediates nobody else holds. Walking parents-first is safe: a
  // node freed here is a parent of the current one, already behind us in run.order, and the
  // current node is kept alive by its own (later) children or by the targets.
  for (Node* node : run.order)
    if (!node->requires_grad || node->op == OpKind::Detach) node->inputs.clear();
}

// ---- replay of recorded runs (trace.h) ---------------------------------------------------------

struct CachedRun::Impl {
  std::vector<NodePtr> keep;  // owns the nodes
  Run run;
};

CachedRun::CachedRun(const std::vector<Node*>& order) : impl_(std::make_shared<Impl>()) {
  std::lock_guard<std::recursive_mutex> lock(graph_mutex());
  const uint64_t mark = next_mark();
  for (size_t i = 0; i < order.size(); ++i) {
    impl_->keep.push_back(order[i]->shared_from_this());
    order[i]->mark = mark;
    order[i]->run_index = static_cast<int32_t>(i);
  }
  impl_->run.order = order;
  build_edges(mark, impl_->run);
  for (Node* node : order) node->run_index = -1;
}

void CachedRun::execute() const {
  RunStats stats;
  execute_run(impl_->run, stats);
}

}  // namespace dagrad
