// Tests of the parallel scheduler through the public C++ API: results that do not depend on
// the thread count (forward and backward, bit for bit), real parallelism on wide graphs,
// exceptions out of parallel runs, a 1,000,000-node chain, and thread-count validation.
//
// Prints one line per test and a final "N passed, M failed"; exits non-zero on any failure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "dagrad/autodiff.h"
#include "dagrad/graph.h"
#include "dagrad/ops.h"
#include "dagrad/profiler.h"
#include "dagrad/runtime.h"
#include "dagrad/scheduler.h"

using namespace dagrad;

// Under AddressSanitizer, an impossible allocation (the tests below ask for petabytes on
// purpose) must return null, so that dagrad throws MemoryError, instead of aborting.
// Harmless without ASan: nothing calls it.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace {

constexpr int kMaxThreads = 8;

// Restores the thread count a test changed, whatever way the test ends.
struct ThreadsGuard {
  int prev = get_num_threads();
  ~ThreadsGuard() { set_num_threads(prev); }
};
// Runs with schedule s until the end of the scope (then auto again).
struct ScheduleGuard {
  Schedule prev = get_schedule();
  explicit ScheduleGuard(Schedule s) { set_schedule(s); }
  ~ScheduleGuard() { set_schedule(prev); }
};

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(const Tensor& t) {
  if (!t->realized()) return {};
  const size_t n = static_cast<size_t>(t.numel()) * itemsize(t.dtype());
  const uint8_t* p = static_cast<const uint8_t*>(t->storage->data());
  return Bytes(p, p + n);
}

double value_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::Float32 ? static_cast<double>(t->data<float>()[i]) : t->data<double>()[i];
}

bool all_finite(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(value_at(t, i))) return false;
  return true;
}

// A leaf with the given values, in float32 or float64.
Tensor leaf_from(const std::vector<double>& v, const Shape& s, DType dt, bool requires_grad) {
  if (dt == DType::Float32) {
    std::vector<float> f(v.begin(), v.end());
    return from_data(f.data(), s, dt, requires_grad);
  }
  return from_data(v.data(), s, dt, requires_grad);
}

// Compares two lists of byte snapshots; reports the first few differences by index.
int compare_snapshots(const std::vector<Bytes>& ref, const std::vector<Bytes>& got, const std::string& what) {
  int bad = 0;
  if (ref.size() != got.size()) {
    FAIL_MSG(what << ": " << got.size() << " entries, expected " << ref.size());
    return 1;
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    if (ref[i] == got[i]) continue;
    if (++bad <= 3)
      FAIL_MSG(what << ": entry " << i << " differs bitwise from the reference ("
                    << (got[i].empty() ? "not realized" : "different bytes") << ")");
  }
  if (bad > 3) FAIL_MSG(what << ": " << bad << " entries differ in all");
  return bad;
}

// ---------------------------------------------------------------------------------------
// A random DAG, rebuilt identically from a seed.
//
// Values are kept bounded (a node whose bound passes kCap goes through tanh; exp only sees
// small values; denominators are sigmoid(b) + 0.5 in [0.5, 1.5]), so forward values and
// gradients stay finite and comparisons mean something.
// ---------------------------------------------------------------------------------------
constexpr int64_t kA = 24, kB = 40;
constexpr double kCap = 8.0;
constexpr int64_t kMaxNumel = 4000;

const std::vector<Shape>& leaf_shapes() {
  static const std::vector<Shape> s = {{kA, kB}, {kB, kA}, {kA, 1},     {1, kB},     {kB},       {kA},   {},
                                       {kB, kB}, {kA, kA}, {2, kA, kB}, {2, kB, kA}, {2, 1, kB}, {kB, 1}};
  return s;
}

bool broadcastable(const Shape& a, const Shape& b, Shape* out) {
  const size_t n = std::max(a.size(), b.size());
  Shape o(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    o[i] = da == 1 ? db : da;
  }
  if (out) *out = o;
  return true;
}

struct Dag {
  std::vector<Tensor> nodes;  // every node the generator made, in creation order
  std::vector<Tensor> sinks;  // nodes no other generated node consumes
  std::vector<Tensor> grad_leaves;
  std::vector<std::vector<double>> directions;  // per grad leaf: a random direction
  int64_t n_leaves = 0;
};

class DagBuilder {
 public:
  // perturb: grad leaves get value + perturb * direction (for a directional derivative).
  DagBuilder(uint64_t seed, DType dt, bool grad, double perturb = 0.0)
      : rng_(seed), rng_dir_(seed ^ 0x5bd1e995u), dt_(dt), grad_(grad), perturb_(perturb) {}

  Dag build(size_t n_nodes) {
    half_ = leaf_from({0.5}, {}, dt_, false);
    push(half_, 0.5);
    for (const Shape& s : leaf_shapes()) new_leaf(s);
    while (dag_.nodes.size() < n_nodes) step();
    for (size_t i = 0; i < dag_.nodes.size(); ++i)
      if (!used_[i]) dag_.sinks.push_back(dag_.nodes[i]);
    return std::move(dag_);
  }

 private:
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  size_t below(size_t n) { return std::min(n - 1, static_cast<size_t>(uniform() * n)); }

  // Half the picks come from the most recent nodes (long chains), half from anywhere
  // (fan-out from old nodes, independent branches meeting late).
  size_t pick() {
    const size_t n = dag_.nodes.size();
    if (uniform() < 0.5) return n - 1 - below(std::min<size_t>(n, 8));
    return below(n);
  }

  size_t push(const Tensor& t, double bound) {
    dag_.nodes.push_back(t);
    bound_.push_back(bound);
    used_.push_back(0);
    return dag_.nodes.size() - 1;
  }
  void use(size_t i) { used_[i] = 1; }
  const Tensor& node(size_t i) const { return dag_.nodes[i]; }

  // Squashes a node whose bound got too large.
  void push_bounded(const Tensor& t, double bound) {
    size_t i = push(t, bound);
    if (bound > kCap) {
      use(i);
      push(dagrad::tanh(t), 1.0);
    }
  }

  void new_leaf(const Shape& s) {
    const int64_t n = numel(s);
    std::vector<double> v(n), dir(n);
    for (auto& x : v) x = -1.0 + 2.0 * uniform();
    for (auto& x : dir) x = -1.0 + 2.0 * static_cast<double>(rng_dir_() >> 11) * 0x1.0p-53;
    const bool rg = uniform() < 0.85 && grad_;
    if (rg)
      for (int64_t i = 0; i < n; ++i) v[i] += perturb_ * dir[i];
    Tensor t = leaf_from(v, s, dt_, rg);
    push(t, 1.0);  // not perturb-dependent: the graph must not change with it
    ++dag_.n_leaves;
    if (rg) {
      dag_.grad_leaves.push_back(t);
      dag_.directions.push_back(std::move(dir));
    }
  }

  // A node broadcast-compatible with `a` (with a result of moderate size), or -1.
  long partner(size_t a) {
    for (int tries = 0; tries < 30; ++tries) {
      size_t b = pick();
      Shape o;
      if (broadcastable(node(a).shape(), node(b).shape(), &o) && o.size() <= 3 && numel(o) <= kMaxNumel)
        return static_cast<long>(b);
    }
    return -1;
  }

  void unary(size_t a, int which) {
    const Tensor x = node(a);  // a copy: push() may reallocate the node list
    const double ba = bound_[a];
    use(a);
    switch (which) {
      case 0: push(dagrad::tanh(x), 1.0); break;
      case 1: push(dagrad::sigmoid(x), 1.0); break;
      case 2:
        if (ba <= 2.0)
          push_bounded(dagrad::exp(x), std::exp(ba));
        else
          push(dagrad::tanh(x), 1.0);
        break;
      default: push(dagrad::relu(x), ba); break;
    }
  }

  void step() {
    const double r = uniform() * 104.0;
    const size_t a = pick();
    const Tensor x = node(a);  // a copy: push() may reallocate the node list
    const double ba = bound_[a];

    if (r < 40) {  // add, sub, mul, div
      long b = partner(a);
      if (b < 0) return unary(a, static_cast<int>(r) % 4);
      const Tensor y = node(b);
      const double bb = bound_[b];
      use(a);
      use(b);
      if (r < 12) return push_bounded(add(x, y), ba + bb);
      if (r < 20) return push_bounded(sub(x, y), ba + bb);
      if (r < 32) return push_bounded(mul(x, y), ba * bb);
      // Denominator sigmoid(y) + 0.5 lies in [0.5, 1.5]: far from 0.
      Tensor s = dagrad::sigmoid(y);
      size_t si = push(s, 1.0);
      use(si);
      Tensor den = add(s, half_);
      use(0);
      size_t di = push(den, 1.5);
      use(di);
      return push_bounded(div(x, den), 2.0 * ba);
    }
    if (r < 64) return unary(a, static_cast<int>((r - 40) / 6.0));
    if (r < 74) {  // matmul on whatever operand fits
      if (x.ndim() == 0) return unary(a, 0);
      for (int tries = 0; tries < 30; ++tries) {
        size_t b = pick();
        const Tensor y = node(b);
        if (y.ndim() == 0) continue;
        Tensor m;
        try {
          m = matmul(x, y);
        } catch (const ShapeError&) {
          continue;
        }
        if (m.numel() > kMaxNumel) continue;
        use(a);
        use(b);
        const int64_t k = x.shape().back();
        return push_bounded(m, ba * bound_[b] * static_cast<double>(k));
      }
      return unary(a, 3);
    }
    if (r < 88) {  // sum or mean, over a random subset of dims, keepdim or not
      const bool is_mean = r >= 82;
      std::vector<int64_t> dims;
      int64_t count = 1;
      const int64_t nd = x.ndim();
      for (int64_t d = 0; d < nd; ++d) {
        if (uniform() < 0.5) {
          dims.push_back(uniform() < 0.3 ? d - nd : d);
          count *= x.shape()[d];
        }
      }
      if (dims.empty()) count = x.numel();  // empty dims: over everything
      const bool keepdim = uniform() < 0.5;
      use(a);
      if (is_mean) {
        push(mean(x, dims, keepdim), ba);
        return;
      }
      return push_bounded(sum(x, dims, keepdim), ba * static_cast<double>(count));
    }
    if (r < 94) {  // reshape to another shape with the same number of elements
      std::vector<Shape> cands;
      for (const Shape& s : leaf_shapes())
        if (numel(s) == x.numel() && s != x.shape()) cands.push_back(s);
      if (x.ndim() != 1) cands.push_back({x.numel()});
      if (cands.empty()) return unary(a, 1);
      Shape s = cands[below(cands.size())];
      if (!s.empty() && uniform() < 0.3) s[below(s.size())] = -1;
      use(a);
      push(reshape(x, s), ba);
      return;
    }
    if (r < 100) {  // transpose
      if (x.ndim() < 2) return unary(a, 2);
      int64_t d0 = static_cast<int64_t>(below(x.ndim()));
      int64_t d1 = static_cast<int64_t>(below(x.ndim() - 1));
      if (d1 >= d0) ++d1;
      use(a);
      push(transpose(x, d0, uniform() < 0.5 ? d1 : d1 - x.ndim()), ba);
      return;
    }
    new_leaf(leaf_shapes()[below(leaf_shapes().size())]);
  }

  std::mt19937_64 rng_, rng_dir_;
  DType dt_;
  bool grad_;
  double perturb_;
  Tensor half_;
  Dag dag_;
  std::vector<double> bound_;
  std::vector<char> used_;
};

// The loss for backward: sum over sinks of sum(sink * w) with fixed random weights w
// (a random output gradient per sink, not a plain .sum()).
Tensor weighted_loss(const Dag& dag, uint64_t seed, DType dt) {
  std::mt19937_64 rng(seed * 7919 + 17);
  Tensor loss;
  for (const Tensor& s : dag.sinks) {
    std::vector<double> w(s.numel());
    for (auto& v : w) v = -1.0 + 2.0 * static_cast<double>(rng() >> 11) * 0x1.0p-53;
    Tensor term = sum(mul(s, leaf_from(w, s.shape(), dt, false)));
    loss = loss.defined() ? add(loss, term) : term;
  }
  return loss;
}

constexpr size_t kDagNodes = 320;
const uint64_t kSeeds[] = {1, 2, 3, 42, 2024};

// One line describing a generated graph, so a reader can see it is as branchy as intended.
void describe(const Dag& dag, uint64_t seed) {
  std::map<const Node*, int> fanout, depth;
  std::map<std::string, int> ops;
  int max_fanout = 0, max_depth = 0;
  for (const Tensor& t : dag.nodes) {
    ++ops[op_name(t->op)];
    int d = 0;
    for (const Edge& e : t->inputs) {
      max_fanout = std::max(max_fanout, ++fanout[e.node.get()]);
      d = std::max(d, depth[e.node.get()] + 1);
    }
    depth[t.node().get()] = d;
    max_depth = std::max(max_depth, d);
  }
  std::string kinds;
  for (const auto& [name, n] : ops) kinds += " " + name + "=" + std::to_string(n);
  std::printf(
      "    seed %llu graph: %zu nodes, %lld leaves, %zu sinks, max fan-out %d, "
      "longest path %d;%s\n",
      static_cast<unsigned long long>(seed), dag.nodes.size(), static_cast<long long>(dag.n_leaves), dag.sinks.size(),
      max_fanout, max_depth, kinds.c_str());
}

struct ForwardResult {
  std::vector<Bytes> values;
  RunStats stats;
};

// threads == 0: keep the current thread count.
ForwardResult forward_run(uint64_t seed, DType dt, int threads) {
  if (threads > 0) set_num_threads(threads);
  Dag dag = DagBuilder(seed, dt, false).build(kDagNodes);
  realize(dag.sinks);
  ForwardResult r;
  r.stats = last_run_stats();
  for (const Tensor& t : dag.nodes) r.values.push_back(bytes_of(t));
  return r;
}

struct BackwardResult {
  std::vector<Bytes> grads;
  std::vector<Bytes> values;                  // every node, after a second run realizes the rest
  std::vector<uint8_t> realized_by_backward;  // which nodes the backward run computed
  Bytes loss;
  bool grads_finite = true;
  bool loss_requires_grad = true;
};

BackwardResult backward_run(uint64_t seed, DType dt, int threads) {
  if (threads > 0) set_num_threads(threads);
  Dag dag = DagBuilder(seed, dt, true).build(kDagNodes);
  Tensor loss = weighted_loss(dag, seed, dt);
  BackwardResult r;
  r.loss_requires_grad = loss.requires_grad();
  if (!r.loss_requires_grad) return r;
  loss.backward();  // forward and backward together, in one run
  for (const Tensor& t : dag.nodes) r.realized_by_backward.push_back(t->realized() ? 1 : 0);
  for (const Tensor& l : dag.grad_leaves) {
    Tensor g = l.grad();
    if (!g.defined()) {
      r.grads.push_back({});
      continue;
    }
    r.grads.push_back(bytes_of(g));
    r.grads_finite = r.grads_finite && all_finite(g);
  }
  std::vector<Tensor> rest = dag.nodes;
  rest.push_back(loss);
  realize(rest);
  for (const Tensor& t : dag.nodes) r.values.push_back(bytes_of(t));
  r.loss = bytes_of(loss);
  return r;
}

// ---------------------------------------------------------------------------------------
// 1. Random DAGs: every value and every gradient is bitwise the same at 1..8 threads.
// ---------------------------------------------------------------------------------------
void test_random_dags_deterministic() {
  ThreadsGuard guard;
  int max_used = 0, runs = 0, multi = 0;
  for (uint64_t seed : kSeeds) {
    for (DType dt : {DType::Float64, DType::Float32}) {
      const std::string tag = "seed " + std::to_string(seed) + " " + dtype_name(dt);
      if (dt == DType::Float64) describe(DagBuilder(seed, dt, false).build(kDagNodes), seed);
      ForwardResult ref = forward_run(seed, dt, 1);
      bool all_realized = true;
      for (const Bytes& b : ref.values) all_realized = all_realized && !b.empty();
      CHECK_MSG(all_realized, tag << ": realize(sinks) left some nodes pending");
      CHECK_MSG(!ref.stats.parallel, tag << ": a 1-thread run used the pool");
      for (int t = 2; t <= kMaxThreads; ++t) {
        ForwardResult got = forward_run(seed, dt, t);
        compare_snapshots(ref.values, got.values, tag + " forward at " + std::to_string(t) + " threads");
        CHECK_MSG(got.stats.nodes == ref.stats.nodes, tag << ": " << got.stats.nodes << " nodes computed at " << t
                                                          << " threads, " << ref.stats.nodes << " at 1");
        CHECK_MSG(got.stats.parallel, tag << ": the run at " << t << " threads was serial");
        CHECK_MSG(got.stats.threads_used >= 1 && got.stats.threads_used <= t,
                  tag << ": threads_used " << got.stats.threads_used << " at " << t << " threads");
        max_used = std::max(max_used, got.stats.threads_used);
        multi += got.stats.threads_used > 1;
        ++runs;
      }

      BackwardResult bref = backward_run(seed, dt, 1);
      CHECK_MSG(bref.loss_requires_grad, tag << ": generated loss does not require grad");
      if (!bref.loss_requires_grad) continue;
      CHECK_MSG(bref.grads_finite, tag << ": non-finite gradient (test generator too loose?)");
      size_t undefined = 0;
      for (const Bytes& g : bref.grads) undefined += g.empty();
      CHECK_MSG(undefined == 0, tag << ": " << undefined << " grad leaves got no gradient");
      // The same forward values whether or not the graph records gradients and whether or
      // not backward ran in the same run.
      compare_snapshots(ref.values, bref.values, tag + " forward values of the backward graph");
      for (int t = 2; t <= kMaxThreads; ++t) {
        BackwardResult got = backward_run(seed, dt, t);
        const std::string where = tag + " backward at " + std::to_string(t) + " threads";
        compare_snapshots(bref.grads, got.grads, where + ": leaf gradients");
        compare_snapshots(bref.values, got.values, where + ": node values");
        CHECK_MSG(bref.loss == got.loss, where << ": loss differs bitwise");
        CHECK_MSG(bref.realized_by_backward == got.realized_by_backward,
                  where << ": a different set of forward nodes was computed");
        ++runs;
      }
    }
  }
  std::printf(
      "    %d runs compared against the 1-thread run; %d forward runs computed nodes "
      "on several threads (at most %d)\n",
      runs, multi, max_used);
}

// Gradients of random float64 DAGs against a central difference along a random direction:
// catches a wrong backward rule that would be deterministic, and so invisible above.
void test_random_dags_directional_derivative() {
  ThreadsGuard guard;
  set_num_threads(4);
  const double eps = 2e-5;
  for (uint64_t seed : kSeeds) {
    Dag dag = DagBuilder(seed, DType::Float64, true).build(kDagNodes);
    Tensor loss = weighted_loss(dag, seed, DType::Float64);
    loss.backward();
    double analytic = 0.0, scale = 0.0;
    for (size_t i = 0; i < dag.grad_leaves.size(); ++i) {
      Tensor g = dag.grad_leaves[i].grad();
      if (!g.defined()) continue;
      for (int64_t k = 0; k < g.numel(); ++k) {
        analytic += g->data<double>()[k] * dag.directions[i][k];
        scale += std::abs(g->data<double>()[k] * dag.directions[i][k]);
      }
    }
    auto loss_at = [&](double p) {
      Dag d = DagBuilder(seed, DType::Float64, true, p).build(kDagNodes);
      return weighted_loss(d, seed, DType::Float64).item();
    };
    // Central differences at h and h/2, combined (Richardson) to cancel the h^2 term: the
    // graphs are nonlinear enough that a plain central difference is limited by truncation.
    const double d1 = (loss_at(eps) - loss_at(-eps)) / (2 * eps);
    const double d2 = (loss_at(eps / 2) - loss_at(-eps / 2)) / eps;
    const double numeric = (4 * d2 - d1) / 3;
    const double err = std::abs(numeric - analytic);
    std::printf("    seed %llu: loss %.6g, backward %.12g, central difference %.12g (error %.2g)\n",
                static_cast<unsigned long long>(seed), loss.item(), analytic, numeric, err);
    CHECK_MSG(err <= 1e-7 * std::max(1.0, scale),
              "seed " << seed << ": directional derivative " << analytic << " from backward vs " << numeric
                      << " by central difference (error " << err << ", scale " << scale << ")");
  }
}

// Large nodes: a chain (no two nodes ready at once) runs serially and its kernels split their
// range over all threads; two copies side by side run one node per worker with serial
// kernels. Both must give the same bits at any thread count (Note [Thread budget]).
struct BigGraph {
  std::vector<Tensor> nodes;
  std::vector<Tensor> params;  // leaves that require grad (when asked for)
};

BigGraph big_chain(uint64_t seed, DType dt, bool grad = false) {
  std::mt19937_64 rng(seed);
  auto rnd = [&](const Shape& s, double scale) {
    std::vector<double> v(numel(s));
    for (auto& x : v) x = scale * (-1.0 + 2.0 * static_cast<double>(rng() >> 11) * 0x1.0p-53);
    return leaf_from(v, s, dt, false);
  };
  BigGraph g;
  // Odd sizes, so that no split lines up with a vector width or a block size.
  Tensor x = rnd({300, 301}, 2.0), w = rnd({300, 301}, 1.0), bias = rnd({1, 301}, 1.0), w2 = rnd({301, 302}, 0.1);
  if (grad) {
    set_requires_grad(x, true);
    set_requires_grad(w2, true);
    g.params = {x, w2};
  }
  Tensor y = dagrad::tanh(x);  // 90300 elements: split
  g.nodes.push_back(y);
  g.nodes.push_back(y = mul(y, w));           // same-shape binary
  g.nodes.push_back(y = add(y, bias));        // broadcast binary, split by rows
  g.nodes.push_back(y = matmul(y, w2));       // rows split
  g.nodes.push_back(y = transpose(y, 0, 1));  // strided copy
  g.nodes.push_back(y = dagrad::exp(dagrad::tanh(y)));
  g.nodes.push_back(y = sum(y, {1}, true));  // reduction (never split)
  g.nodes.push_back(y = mean(y));
  return g;
}

void test_large_nodes_deterministic() {
  ThreadsGuard guard;
  for (DType dt : {DType::Float32, DType::Float64}) {
    const std::string tag = std::string(dtype_name(dt)) + " ";
    std::vector<Bytes> ref, grad_ref;
    for (int t = 1; t <= kMaxThreads; ++t) {
      set_num_threads(t);
      BigGraph g = big_chain(7, dt);
      realize({g.nodes.back()});
      RunStats st = last_run_stats();
      CHECK_MSG(!st.parallel, tag << "chain used the worker pool at " << t << " threads");
      std::vector<Bytes> got;
      for (const Tensor& n : g.nodes) got.push_back(bytes_of(n));
      if (t == 1)
        ref = got;
      else
        compare_snapshots(ref, got, tag + "large chain at " + std::to_string(t) + " threads");

      // Two copies at once: a parallel run whose kernels do not split. (Auto would run them
      // serially with split kernels from 4 threads on, Note [Serial or parallel run].)
      BigGraph a = big_chain(7, dt), b = big_chain(7, dt);
      {
        ScheduleGuard pool(Schedule::Parallel);
        realize({a.nodes.back(), b.nodes.back()});
      }
      CHECK_MSG(last_run_stats().parallel == (t > 1),
                tag << "two independent chains at " << t << " threads: parallel=" << last_run_stats().parallel);
      std::vector<Bytes> ga, gb;
      for (const Tensor& n : a.nodes) ga.push_back(bytes_of(n));
      for (const Tensor& n : b.nodes) gb.push_back(bytes_of(n));
      compare_snapshots(ref, ga, tag + "two chains at " + std::to_string(t) + " threads, copy 0");
      compare_snapshots(ref, gb, tag + "two chains at " + std::to_string(t) + " threads, copy 1");

      // Backward through the same large ops (matmul backward, broadcast sums, ...).
      BigGraph gr = big_chain(7, dt, true);
      gr.nodes.back().backward();
      std::vector<Bytes> grads;
      for (const Tensor& p : gr.params) grads.push_back(p.grad().defined() ? bytes_of(p.grad()) : Bytes());
      CHECK_MSG(!grads[0].empty() && !grads[1].empty(), tag << "missing gradient");
      if (t == 1)
        grad_ref = grads;
      else
        compare_snapshots(grad_ref, grads, tag + "large chain gradients at " + std::to_string(t) + " threads");
    }
  }
}

// ---------------------------------------------------------------------------------------
// 2. A wide graph really runs on several threads, respects dependencies, and is correct.
// ---------------------------------------------------------------------------------------
constexpr int kChainLen = 8;

struct Wide {
  std::vector<std::vector<double>> inputs;
  std::vector<std::vector<Tensor>> chains;  // per branch, every node in order
  std::vector<Tensor> sinks;
};

Wide wide_graph(int branches, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Wide w;
  for (int b = 0; b < branches; ++b) {
    std::vector<double> v(n);
    for (auto& x : v) x = -1.0 + 2.0 * static_cast<double>(rng() >> 11) * 0x1.0p-53;
    Tensor y = leaf_from(v, {n}, DType::Float32, false);
    w.inputs.push_back(std::move(v));
    std::vector<Tensor> chain;
    for (int k = 0; k < kChainLen; ++k) {
      y = k % 2 == 0 ? dagrad::exp(y) : dagrad::tanh(y);
      chain.push_back(y);
    }
    w.chains.push_back(std::move(chain));
    w.sinks.push_back(y);
  }
  return w;
}

double wide_reference(double x) {
  for (int k = 0; k < kChainLen; ++k) x = k % 2 == 0 ? std::exp(x) : std::tanh(x);
  return x;
}

int check_wide_values(const Wide& w, const std::string& what) {
  int bad = 0;
  for (size_t b = 0; b < w.sinks.size(); ++b) {
    const Tensor& s = w.sinks[b];
    if (!s->realized()) {
      if (++bad <= 3) FAIL_MSG(what << ": branch " << b << " not realized");
      continue;
    }
    const float* p = s->data<float>();
    for (int64_t i = 0; i < s.numel(); ++i) {
      const double want = wide_reference(w.inputs[b][i]);
      if (!(std::abs(p[i] - want) <= 1e-5 * std::abs(want) + 1e-6)) {
        if (++bad <= 3)
          FAIL_MSG(what << ": branch " << b << " element " << i << " is " << p[i] << ", expected " << want);
        break;
      }
    }
  }
  return bad;
}

void test_wide_graph_runs_in_parallel() {
  ThreadsGuard guard;
  set_num_threads(4);
  const int kBranches = 256;
  const int64_t kN = 10000;
  bool multi = false;
  for (int attempt = 1; attempt <= 5 && !multi; ++attempt) {
    Wide w = wide_graph(kBranches, kN, 100 + attempt);
    profiler::take_events();  // drop anything older
    profiler::set_enabled(true);
    realize(w.sinks);
    profiler::set_enabled(false);
    const RunStats st = last_run_stats();
    std::vector<TraceEvent> ev = profiler::take_events();

    CHECK_MSG(st.parallel, "attempt " << attempt << ": the wide run did not use the pool");
    CHECK_MSG(st.nodes == kBranches * kChainLen,
              "attempt " << attempt << ": " << st.nodes << " nodes computed, expected " << kBranches * kChainLen);
    CHECK_MSG(static_cast<int64_t>(ev.size()) == kBranches * kChainLen,
              "attempt " << attempt << ": " << ev.size() << " profiler events, expected " << kBranches * kChainLen);
    std::set<int32_t> threads;
    std::map<uint64_t, const TraceEvent*> by_id;
    for (const TraceEvent& e : ev) {
      threads.insert(e.thread);
      by_id[e.node_id] = &e;
      CHECK_MSG(e.end_ns >= e.start_ns, "event of node " << e.node_id << " ends before it starts");
    }
    // Each node starts after its parent ended: dependencies were respected.
    int order_bad = 0, missing = 0;
    for (const auto& chain : w.chains)
      for (size_t k = 0; k < chain.size(); ++k) {
        auto it = by_id.find(chain[k]->id);
        if (it == by_id.end()) {
          ++missing;
          continue;
        }
        if (k > 0) {
          auto p = by_id.find(chain[k - 1]->id);
          if (p != by_id.end() && it->second->start_ns < p->second->end_ns) ++order_bad;
        }
      }
    CHECK_MSG(missing == 0, missing << " nodes have no profiler event");
    CHECK_MSG(order_bad == 0, order_bad << " nodes started before their parent ended");
    check_wide_values(w, "wide graph attempt " + std::to_string(attempt));
    multi = st.threads_used > 1 && threads.size() > 1;
    std::printf("    attempt %d: threads_used=%d, profiler saw %zu threads\n", attempt, st.threads_used,
                threads.size());
  }
  CHECK_MSG(multi, "256 independent branches at 4 threads never ran on more than one thread");
}

// ---------------------------------------------------------------------------------------
// 3. An exception inside a parallel run comes out of realize as its own type; the graph
//    and the library stay usable.
// ---------------------------------------------------------------------------------------
// A node that needs 2^50 elements: shapes check out when it is recorded, but its output
// cannot be allocated, so it throws MemoryError when the scheduler runs it.
Tensor impossible_node(const Tensor& from) {
  Tensor one = reshape(sum(from), {1});
  return dagrad::exp(expand(one, {int64_t(1) << 25, int64_t(1) << 25}));
}

void test_exception_in_parallel_run() {
  ThreadsGuard guard;
  // The impossible nodes' cost would make auto split kernels instead (Note [Serial or parallel
  // run]); this test is about the pool.
  ScheduleGuard pool(Schedule::Parallel);
  for (int t : {4, 8, 2, 1}) {
    set_num_threads(t);
    const std::string tag = std::to_string(t) + " threads";
    Wide w = wide_graph(64, 10000, 300 + t);
    // One bad node hangs off a leaf, another off the middle of a good branch.
    Tensor bad_root = dagrad::exp(expand(full({1}, 0.5, DType::Float32), {int64_t(1) << 25, int64_t(1) << 25}));
    Tensor bad_mid = impossible_node(w.chains[40][3]);
    std::vector<Tensor> targets(w.sinks.begin(), w.sinks.begin() + 32);
    targets.push_back(bad_root);
    targets.insert(targets.end(), w.sinks.begin() + 32, w.sinks.end());
    targets.push_back(bad_mid);

    try {
      realize(targets);
      FAIL_MSG(tag << ": realize of a graph with an impossible node did not throw");
    } catch (const MemoryError& e) {
      const std::string msg = e.what();
      if (t == 4) std::printf("    MemoryError: %s\n", msg.c_str());
      CHECK_MSG(msg.find("expand") != std::string::npos, tag << ": the error does not name the op: " << msg);
    } catch (const std::exception& e) {
      FAIL_MSG(tag << ": expected dagrad::MemoryError, got " << typeid(e).name() << ": " << e.what());
    }
    CHECK_MSG(last_run_stats().parallel == (t > 1),
              tag << ": the failing run was " << (t > 1 ? "not " : "") << "parallel");
    CHECK(!bad_root->realized());
    CHECK(!bad_mid->realized());

    // The rest of the same graph: whatever was cancelled is still pending and now runs.
    realize(w.sinks);
    check_wide_values(w, tag + ": other branches after the error");
    // The failing node fails the same way again; nothing was left half-done.
    CHECK_THROWS_AS(realize({bad_mid}), MemoryError);
    CHECK_THROWS_AS(realize({bad_root}), MemoryError);

    // A new graph afterwards, and backward through a new graph.
    Wide w2 = wide_graph(64, 2000, 400 + t);
    realize(w2.sinks);
    check_wide_values(w2, tag + ": a new graph after the error");
    CHECK_MSG(last_run_stats().parallel == (t > 1), tag << ": run after the error");
    Tensor x = full({3, 4}, 0.25, DType::Float64, true);
    Tensor loss = sum(add(mul(x, x), dagrad::exp(x)));
    loss.backward();
    bool grad_ok = x.grad().defined();
    if (grad_ok)
      for (int64_t i = 0; i < 12; ++i)
        grad_ok = grad_ok && std::abs(x.grad()->data<double>()[i] - (0.5 + std::exp(0.25))) < 1e-14;
    CHECK_MSG(grad_ok, tag << ": backward after the error gives a wrong gradient");
  }
}

// An error thrown inside backward's run also propagates as its type. Here the forward
// pass is fine (a broadcast view is only summed), but the gradient of that sum must be
// expanded back to 2^48 elements, which cannot be allocated; it sits among 16 independent
// gradient branches, so the run is parallel.
void test_exception_in_backward_run() {
  ThreadsGuard guard;
  set_num_threads(4);
  Tensor x = full({8}, 0.5, DType::Float32, true);
  Tensor loss;
  for (int i = 0; i < 16; ++i) {
    Tensor part = sum(dagrad::exp(mul(x, scalar(0.1 * i, DType::Float32))));
    loss = loss.defined() ? add(loss, part) : part;
  }
  Tensor big = expand(reshape(x, {1, 8}), {int64_t(1) << 45, 8});
  loss = add(loss, sum(big));
  CHECK_THROWS_AS(loss.backward(), MemoryError);
  CHECK_MSG(!x.grad().defined(), "a failed backward left a gradient behind");
  // The graph was not freed by the failed backward: the same error again, not a
  // "backward through the graph a second time" error.
  CHECK_THROWS_AS(loss.backward(), MemoryError);
  // A new graph on the same leaf still differentiates, in parallel.
  Tensor l2;
  for (int i = 0; i < 16; ++i) {
    Tensor part = sum(mul(x, x));
    l2 = l2.defined() ? add(l2, part) : part;
  }
  l2.backward();
  CHECK(x.grad().defined());
  if (x.grad().defined())
    for (int64_t i = 0; i < 8; ++i)
      CHECK_MSG(x.grad()->data<float>()[i] == 16.0f, "gradient " << x.grad()->data<float>()[i] << ", expected 16");
}

// Another exception type out of a parallel run: a node whose input was modified in place
// after the node was recorded raises RuntimeError when it runs.
void test_version_error_in_parallel_run() {
  ThreadsGuard guard;
  set_num_threads(4);
  Wide w = wide_graph(32, 2000, 500);
  Tensor l = full({2000}, 0.1, DType::Float32);
  Tensor stale = dagrad::exp(l);
  assign_(l, full({2000}, 0.2, DType::Float32));
  std::vector<Tensor> targets(w.sinks.begin(), w.sinks.begin() + 16);
  targets.push_back(stale);
  targets.insert(targets.end(), w.sinks.begin() + 16, w.sinks.end());
  CHECK_THROWS_AS(realize(targets), RuntimeError);
  CHECK(!stale->realized());
  realize(w.sinks);
  check_wide_values(w, "branches next to the stale node");
  // A node recorded after the update sees the new value.
  Tensor fresh = dagrad::exp(l);
  CHECK(std::abs(fresh.data<float>()[0] - std::exp(0.2f)) < 1e-6f);
}

// Several user threads realizing and differentiating their own graphs at once: runs are
// serialised by the library (Note [One run at a time]); nothing may deadlock, crash or
// change a bit.
void test_concurrent_callers() {
  ThreadsGuard guard;
  set_num_threads(4);
  constexpr int kCallers = 3, kRounds = 4;
  const uint64_t seeds[kCallers] = {11, 12, 13};
  std::vector<ForwardResult> fref;
  std::vector<BackwardResult> bref;
  for (uint64_t seed : seeds) {
    fref.push_back(forward_run(seed, DType::Float64, 0));
    bref.push_back(backward_run(seed, DType::Float64, 0));
  }
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      try {
        for (int r = 0; r < kRounds; ++r) {
          if (fref[c].values != forward_run(seeds[c], DType::Float64, 0).values) ++mismatches;
          BackwardResult b = backward_run(seeds[c], DType::Float64, 0);
          if (b.grads != bref[c].grads || b.values != bref[c].values) ++mismatches;
        }
      } catch (...) {
        ++errors;
      }
    });
  for (auto& t : callers) t.join();
  CHECK_MSG(mismatches == 0, mismatches.load() << " concurrent runs differ from the serial ones");
  CHECK_MSG(errors == 0, errors.load() << " concurrent callers threw");
}

// ---------------------------------------------------------------------------------------
// 4. A 1,000,000-node chain: build, forward, backward, destroy; no recursion anywhere.
// ---------------------------------------------------------------------------------------
constexpr int64_t kChain = 1000000;
constexpr double kFactor = 1.0 + 1e-7;

Tensor long_chain(const Tensor& x, const Tensor& c) {
  Tensor y = x;
  for (int64_t i = 0; i < kChain; ++i) y = y * c;
  return y;
}

double rel_err(double got, double want) { return std::abs(got - want) / std::abs(want); }

void test_million_node_chain() {
  ThreadsGuard guard;
  set_num_threads(4);
  const double want = std::pow(kFactor, static_cast<double>(kChain));
  auto t0 = check::now_ns();
  auto lap = [&](const char* what) {
    const int64_t t1 = check::now_ns();
    std::printf("    %-44s %.2f s\n", what, (t1 - t0) * 1e-9);
    t0 = t1;
  };
  {
    Tensor x = full({}, 1.0, DType::Float64, true);
    Tensor c = full({}, kFactor, DType::Float64);
    Tensor y = long_chain(x, c);
    lap("build 1M-node chain");
    const double v = y.item();
    lap("forward");
    CHECK_MSG(last_run_stats().nodes == kChain, "forward computed " << last_run_stats().nodes);
    CHECK_MSG(rel_err(v, want) < 1e-9, "forward value " << v << ", expected " << want);
    y.backward();
    lap("backward");
    CHECK(x.grad().defined());
    if (x.grad().defined())
      CHECK_MSG(rel_err(x.grad().item(), want) < 1e-9, "d y / d x = " << x.grad().item() << ", expected " << want);
  }
  lap("destroy after backward");
  {
    // A realized chain that records gradients keeps every edge: a deep teardown.
    Tensor x = full({}, 1.0, DType::Float64, true);
    Tensor y = long_chain(x, full({}, kFactor, DType::Float64));
    y.realize();
    CHECK_MSG(rel_err(y.item(), want) < 1e-9, "forward value " << y.item());
  }
  lap("build, forward, destroy (graph kept)");
  { Tensor y = long_chain(full({}, 1.0, DType::Float64), full({}, kFactor, DType::Float64)); }
  lap("build and destroy a pending chain");
  {
    // Forward and backward in one run, with a 1M-way fan-in of gradient into c and every y_k
    // used twice (by the chain and by c's gradient): d y / d c = N x c^(N-1).
    Tensor x = full({}, 1.0, DType::Float64, true);
    Tensor c = full({}, kFactor, DType::Float64, true);
    Tensor y = long_chain(x, c);
    y.backward();
    lap("forward + backward in one run, 1M fan-in");
    const double want_c = static_cast<double>(kChain) * std::pow(kFactor, kChain - 1.0);
    CHECK(x.grad().defined() && c.grad().defined());
    if (x.grad().defined()) CHECK_MSG(rel_err(x.grad().item(), want) < 1e-9, "d y / d x = " << x.grad().item());
    if (c.grad().defined())
      CHECK_MSG(rel_err(c.grad().item(), want_c) < 1e-8, "d y / d c = " << c.grad().item() << ", expected " << want_c);
  }
  lap("destroy");
}

// ---------------------------------------------------------------------------------------
// 5. Thread counts.
// ---------------------------------------------------------------------------------------
void test_thread_count_validation() {
  ThreadsGuard guard;
  set_num_threads(3);
  CHECK_THROWS_AS(set_num_threads(0), ValueError);
  CHECK_THROWS_AS(set_num_threads(-1), ValueError);
  CHECK_MSG(get_num_threads() == 3, "a rejected set_num_threads changed the count to " << get_num_threads());
  set_num_threads(1);
  CHECK(get_num_threads() == 1);
  set_num_threads(kMaxThreads);
  CHECK(get_num_threads() == kMaxThreads);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Intermediates are freed at their last use, during the run (Note [Inputs are released as soon
// as a node has run]): a probe node at the end of each branch sees that the branch's first
// intermediate, which only graph edges held, is already gone. Values stay right.
// ---------------------------------------------------------------------------------------
void test_intermediates_freed_at_last_use() {
  ThreadsGuard guard;
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    NoGradGuard ng;
    const int kBranches = 8;
    std::vector<std::weak_ptr<Node>> firsts(kBranches);
    std::atomic<int> alive_at_probe{0};
    std::vector<Tensor> outs;
    for (int b = 0; b < kBranches; ++b) {
      std::vector<float> v(4096, static_cast<float>(b + 1));
      Tensor x = from_data(v.data(), {4096}, DType::Float32);
      Tensor first = dagrad::exp(x * scalar(0.0, DType::Float32));  // all ones, held only by `second`'s edge below
      firsts[b] = first.node();
      Tensor second = first * scalar(3.0, DType::Float32);
      Tensor third = second + x;
      first = Tensor();
      second = Tensor();
      auto probe = std::make_shared<CustomOp>();
      probe->name = "probe";
      probe->cost = 1e6;  // makes the run worth the pool
      std::weak_ptr<Node> watched = firsts[b];
      probe->forward = [watched, &alive_at_probe](Node& out) {
        if (!watched.expired()) alive_at_probe.fetch_add(1);
        out.storage = in(out, 0).storage;
      };
      outs.push_back(custom(probe, {third}, {4096}, DType::Float32));
    }
    realize(outs);
    CHECK_MSG(alive_at_probe.load() == 0, threads
                                              << " threads: " << alive_at_probe.load()
                                              << " intermediates were still alive when their branch's last node ran");
    for (int b = 0; b < kBranches; ++b) {
      const float* d = outs[b].data<float>();
      CHECK_MSG(d[0] == 3.0f + static_cast<float>(b + 1) && d[4095] == d[0], "branch " << b << " value " << d[0]);
      CHECK(firsts[b].expired());
    }
  }
}

// Note [Measured node cost]: a run of small custom nodes (default cost) starts on the calling
// thread and times itself; nodes of a couple of microseconds then go to the pool, which starts
// where the calling thread stopped (after two windows of them). Every node runs exactly once,
// after its parents, with the right value, whichever way the run went (empty nodes) and on the
// pool (slow nodes).
void test_measured_node_cost() {
  ThreadsGuard guard;
  constexpr int kSide = 40;
  for (const bool slow : {true, false}) {
    for (int threads : {2, 4, 1}) {
      set_num_threads(threads);
      const std::string tag =
          std::string(slow ? "2 us" : "empty") + " nodes at " + std::to_string(threads) + " threads";
      std::atomic<int64_t> clock{0};
      std::vector<int64_t> ran_at(kSide * kSide, -1);
      std::vector<int> runs(kSide * kSide, 0);
      std::vector<Tensor> cells(kSide * kSide);
      for (int i = 0; i < kSide; ++i)
        for (int j = 0; j < kSide; ++j) {
          const int id = i * kSide + j;
          auto op = std::make_shared<CustomOp>();  // default cost: small enough to be probed
          op->name = "cell";
          op->forward = [&, id, slow](Node& out) {  // out = 1 + the largest input (= i + j + 1)
            if (slow) {
              const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(2);
              while (std::chrono::steady_clock::now() < until) {
              }
            }
            alloc_output(out);
            double m = 0;
            for (const Edge& e : out.inputs) m = std::max(m, e.node->data<double>()[0]);
            out.data<double>()[0] = m + 1;
            ++runs[id];  // each node's own slot: written by whichever thread runs it, once
            ran_at[id] = clock.fetch_add(1, std::memory_order_relaxed);
          };
          std::vector<Tensor> parents;
          if (i > 0) parents.push_back(cells[(i - 1) * kSide + j]);
          if (j > 0) parents.push_back(cells[i * kSide + j - 1]);
          cells[id] = custom(op, parents, {}, DType::Float64);
        }
      realize({cells.back()});
      const RunStats st = last_run_stats();
      if (slow) CHECK_MSG(st.parallel == (threads > 1), tag << ": parallel=" << st.parallel);
      CHECK_MSG(st.nodes == kSide * kSide, tag << ": " << st.nodes << " nodes computed");
      int bad = 0;
      for (int i = 0; i < kSide && bad < 5; ++i)
        for (int j = 0; j < kSide && bad < 5; ++j) {
          const int id = i * kSide + j;
          const bool ok = runs[id] == 1 && cells[id].data<double>()[0] == i + j + 1 &&
                          (i == 0 || ran_at[(i - 1) * kSide + j] < ran_at[id]) &&
                          (j == 0 || ran_at[i * kSide + j - 1] < ran_at[id]);
          if (!ok) {
            ++bad;
            FAIL_MSG(tag << ": cell (" << i << ", " << j << ") ran " << runs[id] << " times, value "
                         << cells[id].data<double>()[0] << ", expected " << i + j + 1 << ", or before a parent");
          }
        }
    }
  }
}

// test_scheduler [--skip SUBSTRING]...: runs every test whose name contains none of them
// (the ThreadSanitizer stage skips the long serial chain).
// Note [Group gradient hooks]: a hook on a group of leaves sees their gradients once per
// backward and may replace them with nodes of its own, which run inside backward's run (the
// building block of data-parallel gradient buckets), at every thread count.
void test_group_gradient_hook() {
  ThreadsGuard guard;
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    Tensor w = full({3, 4}, 0.5, DType::Float64, true), b = full({4}, -1.0, DType::Float64, true);
    Tensor x = full({5, 3}, 2.0, DType::Float64);
    std::atomic<int> calls{0}, runs{0};
    auto op = std::make_shared<CustomOp>();
    op->name = "double_all";
    op->forward = [&runs](Node& out) {  // out = 2 * (its inputs, flattened and concatenated)
      alloc_output(out);
      double* o = out.data<double>();
      for (const Edge& e : out.inputs) {
        const double* in = e.node->data<double>();
        for (int64_t i = 0; i < e.node->numel(); ++i) *o++ = 2 * in[i];
      }
      runs.fetch_add(1);
    };
    const uint64_t h = add_group_grad_hook({w, b}, [&](const std::vector<Tensor>& g) {
      calls.fetch_add(1);
      Tensor flat = custom(op, g, {g[0].numel() + g[1].numel()}, DType::Float64);
      std::vector<Tensor> parts = split(flat, {g[0].numel(), g[1].numel()}, 0);
      return std::vector<Tensor>{reshape(parts[0], g[0].shape()), parts[1]};
    });
    sum(add(matmul(x, w), b)).backward();
    remove_group_grad_hook(h);
    CHECK(calls.load() == 1 && runs.load() == 1);
    // d/dw sum(x @ w + b) = x^T @ ones = 5 * 2 = 10 per element; d/db = 5; both doubled.
    for (int64_t i = 0; i < 12; ++i) CHECK_MSG(w.grad()->data<double>()[i] == 20.0, "w.grad " << i);
    for (int64_t i = 0; i < 4; ++i) CHECK_MSG(b.grad()->data<double>()[i] == 10.0, "b.grad " << i);
    sum(add(matmul(x, w), b)).backward();  // removed: plain accumulation
    CHECK(calls.load() == 1 && w.grad()->data<double>()[0] == 30.0);
    CHECK_THROWS_AS(add_group_grad_hook({w, x}, [](const std::vector<Tensor>&) { return std::vector<Tensor>{}; }),
                    RuntimeError);
  }
}

int main(int argc, char** argv) {
  std::vector<std::string> skip;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--skip") skip.emplace_back(argv[++i]);
  check::start_watchdog();
  const check::Test tests[] = {
      {"random DAGs: bitwise identical forward/backward at 1..8 threads", test_random_dags_deterministic, 180},
      {"random DAGs: gradients match a central difference (float64)", test_random_dags_directional_derivative, 60},
      // Under ThreadSanitizer at 8 threads on a busy 2-core host this took 36-60+ s.
      {"large nodes: split kernels and parallel runs give the same bits", test_large_nodes_deterministic, 180},
      {"wide graph: 256 branches run on several threads, in dependency order", test_wide_graph_runs_in_parallel, 60},
      {"exception in a parallel run: MemoryError propagates, graph stays usable", test_exception_in_parallel_run, 60},
      {"exception in a backward run propagates as its type", test_exception_in_backward_run, 60},
      {"exception in a parallel run: RuntimeError for an input changed in place", test_version_error_in_parallel_run,
       30},
      {"concurrent callers: runs from 3 user threads at once", test_concurrent_callers, 60},
      {"1,000,000-node chain: forward, backward, teardown", test_million_node_chain, 300},
      {"set_num_threads rejects counts below 1", test_thread_count_validation, 10},
      {"intermediates are freed at their last use, during the run", test_intermediates_freed_at_last_use, 30},
      {"group gradient hooks: one call, replacement nodes run inside backward", test_group_gradient_hook, 30},
      {"measured node cost: small nodes start serially, the pool takes over where they stopped",
       test_measured_node_cost, 60},
  };
  for (const check::Test& t : tests) {
    bool skipped = false;
    for (const std::string& s : skip) skipped = skipped || std::string(t.name).find(s) != std::string::npos;
    if (skipped)
      std::printf("[SKIP] %s\n", t.name);
    else
      check::run_test(t);
  }
  check::print_summary();
  return check::state().failed.load() == 0 ? 0 : 1;
}
