// Run planning: collect, link, cost (plan.h).
#include "dagrad/scheduler/plan.h"

#include "dagrad/kernels/gemm.h"
#include "dagrad/ops.h"

#include <algorithm>
#include <cstring>

namespace dagrad::scheduler {

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
    case OpKind::LstmCell: {  // the hidden product (N, K) @ (K, 4H), then 7H elements a row
      const double k = static_cast<double>(n.inputs[3].node->shape[1]);
      return static_cast<double>(n.numel()) * (1.0 + 8.0 * k / 7.0);
    }
    case OpKind::RnnCell: return static_cast<double>(n.numel()) * (1.0 + 2.0 * n.inputs[2].node->shape[1]);
    case OpKind::GruCell: {  // the hidden product (N, H) @ (H, 3H), then 5H elements a row
      const double k = static_cast<double>(n.inputs[1].node->shape[1]);
      return static_cast<double>(n.numel()) * (1.0 + 6.0 * k / 5.0);
    }
    // Direct convolution (Note [Direct convolution]): 2 * (outputs) * C*kh*kw flops. The
    // weight is input 1 of conv2d and of its input gradient; the weight gradient's output is
    // the weight, and its input 0 the output gradient.
    case OpKind::Conv2d:
    case OpKind::Conv2dInputBackward: {
      const Node& w = *n.inputs[1].node;
      const double ckk = static_cast<double>(w.numel()) / static_cast<double>(std::max<int64_t>(1, w.shape[0]));
      const double outs =
          n.op == OpKind::Conv2d ? static_cast<double>(n.numel()) : static_cast<double>(n.inputs[0].node->numel());
      return 2.0 * outs * ckk;
    }
    case OpKind::Conv2dWeightBackward:
      return 2.0 * static_cast<double>(n.inputs[0].node->numel()) * static_cast<double>(n.numel()) /
             static_cast<double>(std::max<int64_t>(1, n.shape[0]));
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

namespace {

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
    case OpKind::RnnCell:
    case OpKind::LstmCell:
    case OpKind::GruCell: return cost >= kMinSplitFlops && n.shape[0] >= 256;
    case OpKind::Conv2d:
    case OpKind::Conv2dInputBackward:
    case OpKind::Conv2dWeightBackward: return cost >= kMinSplitFlops;
    default: return !no_split[static_cast<size_t>(n.op)] && cost >= kMinSplitElements;
  }
}

}  // namespace

void record(Run& run, const Node* n, uint64_t mark) {
  if (run.parent_begin.empty()) run.parent_begin.push_back(0);
  size_t np = 0;
  for (const Edge& e : n->inputs)
    if (e.node->mark == mark) {
      run.parent_index.push_back(e.node->run_index);
      ++np;
    }
  run.parent_begin.push_back(static_cast<int32_t>(run.parent_index.size()));
  if (np == 0) run.roots.push_back(n->run_index);
}

namespace {
constexpr size_t kAhead = 16;  // how far ahead the passes over cold nodes fetch them

// Starts fetching the nodes a pass over order[first, n) needs first.
void fetch_head(const Run& run, size_t first) {
  for (size_t i = first; i < std::min(run.order.size(), first + kAhead); ++i) {
    DAGRAD_PREFETCH(run.order[i]);
    DAGRAD_PREFETCH(&run.order[i]->attrs);
  }
}

// The costs of node i, whose recorded parents have theirs.
inline void cost_node(Run& run, size_t i) {
  double longest = 0;
  for (int32_t k = run.parent_begin[i]; k < run.parent_begin[i + 1]; ++k)
    longest = std::max(longest, run.crit[static_cast<size_t>(run.parent_index[k])]);
  const Node& node = *run.order[i];
  const double c = node_cost(node);
  run.crit[i] = longest + c;
  run.total_cost += c;
  if (splits(node, c)) run.split_cost += c;
  run.critical_cost = std::max(run.critical_cost, longest + c);
}

void reset_costs(Run& run) {
  run.crit.assign(run.order.size(), 0.0);
  run.total_cost = run.critical_cost = run.split_cost = 0;
}
}  // namespace

// Records and (with `costs`) costs in one pass: both read the same cold node.
void record_rest(Run& run, size_t first, bool costs) {
  const size_t n = run.order.size();
  const uint64_t mark = run.mark;
  run.parent_begin.assign(first + 1, 0);
  run.parent_index.clear();
  run.roots.clear();
  if (costs) reset_costs(run);
  fetch_head(run, first);
  for (size_t i = first; i < n; ++i) {
    if (i + kAhead < n) {  // its line, its parents' addresses, and (costs) its attributes
      DAGRAD_PREFETCH(run.order[i + kAhead]);
      DAGRAD_PREFETCH(&run.order[i + kAhead]->attrs);
    }
    const Node* node = run.order[i];
    const size_t before = run.parent_index.size();
    for (const Edge& e : node->inputs) {
      const Node* p = e.node.get();
      // Unrun nodes hold their inputs, so every parent is alive; those of this run carry its
      // mark, and those before `first` have run.
      if (p->mark == mark && static_cast<size_t>(p->run_index) >= first) run.parent_index.push_back(p->run_index);
    }
    run.parent_begin.push_back(static_cast<int32_t>(run.parent_index.size()));
    if (run.parent_index.size() == before) run.roots.push_back(static_cast<int32_t>(i));
    if (costs) cost_node(run, i);
  }
}

// The nodes are cold on a large run and each needs two of its cache lines (its kind, and its
// attributes for a custom op's cost): fetch them well ahead, or the loop waits on few misses at
// a time (measured on a loaded host: 17-22 against 25-27 ns a node on a 130k-node tree, 23-25
// against 33-37 on the random wide graph).
void plan_costs(Run& run, size_t first) {
  const size_t n = run.order.size();
  reset_costs(run);
  fetch_head(run, first);
  for (size_t i = first; i < n; ++i) {
    if (i + kAhead < n) {
      DAGRAD_PREFETCH(run.order[i + kAhead]);
      DAGRAD_PREFETCH(&run.order[i + kAhead]->attrs);
    }
    cost_node(run, i);
  }
}

void link_children(Run& run) {
  const size_t n = run.order.size();
  run.indegree.resize(n);
  run.child_head.assign(n, -1);
  run.edge_child.resize(run.parent_index.size());
  run.edge_next.resize(run.parent_index.size());
  int32_t edge = 0;
  for (size_t i = 0; i < n; ++i) {
    run.indegree[i] = run.parent_begin[i + 1] - run.parent_begin[i];
    for (int32_t k = run.parent_begin[i]; k < run.parent_begin[i + 1]; ++k, ++edge) {
      int32_t& head = run.child_head[static_cast<size_t>(run.parent_index[k])];
      run.edge_next[edge] = head;
      run.edge_child[edge] = static_cast<int32_t>(i);
      head = edge;
    }
  }
}

// Iterative post-order DFS over pending nodes (Note [Iterative teardown] has the same
// reason: a recursive walk overflows the stack on long chains). It records nothing for a
// parallel run: recording each node's parents here cost ~15% of the walk (measured on the
// tree, wavefront and wide benchmark graphs), paid by every run that then stays on one thread
// (Note [Measured node cost] in run.cpp); record_rest() does it for the runs that need it.
using Frame = Run::Frame;
void collect(const std::vector<Tensor>& targets, uint64_t mark, Run& run) {
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
      }
    }
  }
  run.has_fanout = parallelism;
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
      run->parent_index.capacity() > kKeep || g_run_pool.size() >= 4)
    return;
  run->clear();
  g_run_pool.push_back(std::move(run));
}

}  // namespace dagrad::scheduler
