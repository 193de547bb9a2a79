// Run planning: collect, link, cost (plan.h).
#include "dagrad/scheduler/plan.h"

#include "dagrad/kernels/gemm.h"
#include "dagrad/ops.h"

#include <algorithm>
#include <cstring>

namespace dagrad::scheduler {

namespace {

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

// Whether n's kernel splits its work over the thread budget when it runs alone (Note [Thread
// budget]) with enough work per thread to gain from it: products split by batch or into tiles
// (Note [GEMM tiles]) and gain from ~16 MFLOP on; reductions and losses never split (their sums keep
// one order); everything else splits by elements, rows or planes and gains from ~256k
// elements on. Below that a split's region costs about what it saves (the digits CNN step,
// 8x8 inputs: 1.64 ms with split kernels against 1.47 ms on the pool at 2 threads; LeNet's
// 28x28 step, ten times the work per kernel: 8.5 ms split against 10.6 ms on the pool).
bool splits(const Node& n, double cost) {
  static const bool* no_split = [] {
    static bool t[] = {
#define DAGRAD_X(name, str, family) (std::strcmp(#family, "reduce") == 0 || std::strcmp(#family, "loss") == 0),
        DAGRAD_OPS(DAGRAD_X)
#undef DAGRAD_X
    };
    return t;
  }();
  constexpr double kMinSplitFlops = 1.6e7, kMinSplitElements = 2.6e5;
  switch (n.op) {
    // A product splits by batch or into the GEMM's tiles (Note [GEMM tiles]).
    case OpKind::Matmul: {
      const int64_t m = n.shape[n.ndim() - 2], cols = n.shape.back(), mn = std::max<int64_t>(1, m * cols);
      const Node& a = *n.inputs[0].node;
      const int64_t k = n.attrs.ints[0] ? a.shape[a.ndim() - 2] : a.shape.back();
      return cost >= kMinSplitFlops && (n.numel() / mn >= 2 || kernels::gemm_tiles(m, cols, k).count() >= 2);
    }
    case OpKind::Linear: {
      const int64_t cols = n.shape.back(), m = n.numel() / std::max<int64_t>(1, cols);
      return cost >= kMinSplitFlops && kernels::gemm_tiles(m, cols, n.inputs[1].node->shape[1]).count() >= 2;
    }
    default: return !no_split[static_cast<size_t>(n.op)] && cost >= kMinSplitElements;
  }
}

}  // namespace

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
  if (splits(*n, c)) run.split_cost += c;
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
        for (const Edge& e : n->inputs) DAGRAD_PREFETCH(e.node.get());
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
        if (run.fusion.active) run.fusion.consider(n, mark);
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

namespace {
// Guarded by graph_mutex().
std::vector<std::unique_ptr<Run>> g_run_pool;

}  // namespace

PooledRun::PooledRun() {
  if (g_run_pool.empty()) {
    run = std::make_unique<Run>();
  } else {
    run = std::move(g_run_pool.back());
    g_run_pool.pop_back();
  }
}
PooledRun::~PooledRun() {
  // Keep the capacity of ordinary runs; give back what a giant graph grew.
  constexpr size_t kKeep = size_t{1} << 20;
  if (run->order.capacity() > kKeep || run->stack.capacity() > kKeep || run->edge_child.capacity() > kKeep ||
      g_run_pool.size() >= 4)
    return;
  run->clear();
  g_run_pool.push_back(std::move(run));
}

}  // namespace dagrad::scheduler
