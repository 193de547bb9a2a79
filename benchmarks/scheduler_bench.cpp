// Scheduler overhead: chain, binary tree, 2-d wavefront and a wide layered DAG, with empty and
// ~1 us node bodies. Competitors in one binary, measured side by side:
//   serial   : the bodies called in topological order (no scheduler at all)
//   dagrad   : the graph built from custom ops and run by dagrad's scheduler (1..N threads)
//   omp-task : join counters + `omp task` per ready node (an OpenMP-task runtime)
//   tbb-flow : oneTBB flow_graph continue_nodes (when built with libtbb-dev)
// Usage: bench_scheduler [-t max_threads] [-r rounds] [-n nodes] [-g graph] [-b empty|1us] [--quick]
// The end of the output checks issue #14's scheduler goals on this run's figures ("goal ... met").
//   -g keeps only the graphs whose name starts with the given word (chain, binary, wavefront, wide);
//   -b keeps one body; --dagrad-only skips the serial, OpenMP and oneTBB columns (for profiling).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include "bench_env.h"
#include "dagrad/ops.h"
#include "dagrad/scheduler.h"

#ifdef DAGRAD_BENCH_TBB
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#endif

using namespace dagrad;
using Clock = std::chrono::steady_clock;

namespace {

// ---- node bodies ---------------------------------------------------------------------------
std::atomic<uint64_t> g_sink{0};
int64_t g_spin_iters = 0;  // iterations of spin() that take about 1 us

inline void spin(int64_t iters) {
  double x = 1.0;
  for (int64_t i = 0; i < iters; ++i) x = x * 1.0000001 + 1e-9;
  if (x == 42.0) g_sink.fetch_add(1, std::memory_order_relaxed);
}

void calibrate() {
  int64_t iters = 1000;
  for (;;) {
    auto t0 = Clock::now();
    for (int r = 0; r < 100; ++r) spin(iters);
    double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / 100;
    if (us > 0.5) {
      g_spin_iters = static_cast<int64_t>(iters / us);
      return;
    }
    iters *= 2;
  }
}

// ---- graphs as adjacency lists (parents of each node, topological order) --------------------
struct Dag {
  std::string name;
  std::vector<std::vector<int32_t>> parents;
};

Dag chain(int n) {
  Dag d{"chain", std::vector<std::vector<int32_t>>(n)};
  for (int i = 1; i < n; ++i) d.parents[i] = {i - 1};
  return d;
}
Dag binary_tree(int n) {  // a reduction tree: leaves first, each inner node joins two
  Dag d{"binary tree", {}};
  int leaves = 1;
  while (2 * leaves - 1 < n) leaves *= 2;
  std::vector<int32_t> level;
  for (int i = 0; i < leaves; ++i) {
    d.parents.push_back({});
    level.push_back(i);
  }
  while (level.size() > 1) {
    std::vector<int32_t> next;
    for (size_t i = 0; i + 1 < level.size(); i += 2) {
      d.parents.push_back({level[i], level[i + 1]});
      next.push_back(static_cast<int32_t>(d.parents.size() - 1));
    }
    level = next;
  }
  return d;
}
Dag wavefront(int side) {
  Dag d{"wavefront " + std::to_string(side) + "x" + std::to_string(side), {}};
  d.parents.resize(static_cast<size_t>(side) * side);
  for (int i = 0; i < side; ++i)
    for (int j = 0; j < side; ++j) {
      auto& p = d.parents[i * side + j];
      if (i > 0) p.push_back((i - 1) * side + j);
      if (j > 0) p.push_back(i * side + j - 1);
    }
  return d;
}
Dag wide(int width, int layers, uint32_t seed) {
  Dag d{"wide " + std::to_string(width) + "x" + std::to_string(layers), {}};
  std::mt19937 rng(seed);
  for (int l = 0; l < layers; ++l)
    for (int w = 0; w < width; ++w) {
      std::vector<int32_t> p;
      if (l > 0)
        for (int k = 0; k < 2; ++k) p.push_back((l - 1) * width + static_cast<int32_t>(rng() % width));
      d.parents.push_back(p);
    }
  return d;
}

std::vector<int32_t> sinks(const Dag& d) {
  std::vector<char> has_child(d.parents.size(), 0);
  for (auto& ps : d.parents)
    for (int32_t p : ps) has_child[p] = 1;
  std::vector<int32_t> s;
  for (size_t i = 0; i < d.parents.size(); ++i)
    if (!has_child[i]) s.push_back(static_cast<int32_t>(i));
  return s;
}

// ---- competitors -------------------------------------------------------------------------------
double time_serial(const Dag& d, int64_t iters) {
  auto t0 = Clock::now();
  for (size_t i = 0; i < d.parents.size(); ++i) spin(iters);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// dagrad: each node is a custom op whose forward runs the body and shares a preallocated 0-d
// storage (empty nodes allocate nothing). There is one such storage per worker thread: a single
// one for all would put every node's reference-count increment on one cache line that both
// cores write, a cost of the benchmark rather than of the scheduler. Returns {run,
// build+run+free} seconds; `pooled` is set when the run went to the worker pool.
std::pair<double, double> time_dagrad(const Dag& d, int64_t iters, int threads, bool& pooled) {
  set_num_threads(threads);
  auto op = std::make_shared<CustomOp>();
  op->name = "bench";
  op->forward = [iters](Node& out) {
    thread_local StoragePtr shared = std::make_shared<Storage>(sizeof(float));
    spin(iters);
    out.storage = shared;
  };
  auto t0 = Clock::now();
  double run_s = 0;
  {
    std::vector<Tensor> nodes;
    nodes.reserve(d.parents.size());
    std::vector<Tensor> in;
    for (const auto& ps : d.parents) {
      in.clear();
      for (int32_t p : ps) in.push_back(nodes[p]);
      nodes.push_back(custom(op, in, {}, DType::Float32));
    }
    std::vector<Tensor> outs;
    for (int32_t s : sinks(d)) outs.push_back(nodes[s]);
    auto r0 = Clock::now();
    realize(outs);
    run_s = std::chrono::duration<double>(Clock::now() - r0).count();
    pooled = last_run_stats().parallel;
    // Free the nodes newest first. Node blocks go back to a LIFO free list (Note [Node pool] in
    // graph.cpp), so this hands the next graph the same addresses in the same order; freeing
    // oldest first would reverse the layout from one graph to the next, and a run's walk over
    // nodes laid out backwards measured ~40% slower (the second dagrad column of each round
    // was always the slow one: 2 threads / 1 read 0.73x in one order, 1.06x in the other).
    outs.clear();
    while (!nodes.empty()) nodes.pop_back();
  }
  double total = std::chrono::duration<double>(Clock::now() - t0).count();
  return {run_s, total};
}

double time_omp_tasks(const Dag& d, int64_t iters, int threads) {
  const size_t n = d.parents.size();
  std::vector<std::vector<int32_t>> children(n);
  std::vector<std::atomic<int32_t>> pending(n);
  for (size_t i = 0; i < n; ++i) {
    pending[i].store(static_cast<int32_t>(d.parents[i].size()));
    for (int32_t p : d.parents[i]) children[p].push_back(static_cast<int32_t>(i));
  }
  std::function<void(int32_t)> run = [&](int32_t i) {
    for (;;) {
      spin(iters);
      int32_t next = -1;
      for (int32_t c : children[i])
        if (pending[c].fetch_sub(1, std::memory_order_acq_rel) == 1) {
          if (next < 0) {
            next = c;
          } else {
#pragma omp task firstprivate(c) shared(run)
            run(c);
          }
        }
      if (next < 0) return;
      i = next;
    }
  };
  auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
#pragma omp single
  {
    for (size_t i = 0; i < n; ++i)
      if (d.parents[i].empty()) {
        int32_t r = static_cast<int32_t>(i);
#pragma omp task firstprivate(r) shared(run)
        run(r);
      }
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

#ifdef DAGRAD_BENCH_TBB
double time_tbb(const Dag& d, int64_t iters, int threads) {
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, threads);
  tbb::flow::graph g;
  std::vector<std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> nodes;
  nodes.reserve(d.parents.size());
  std::vector<int32_t> roots;
  for (size_t i = 0; i < d.parents.size(); ++i) {
    nodes.push_back(std::make_unique<tbb::flow::continue_node<tbb::flow::continue_msg>>(
        g, [iters](const tbb::flow::continue_msg&) { spin(iters); }));
    for (int32_t p : d.parents[i]) tbb::flow::make_edge(*nodes[p], *nodes[i]);
    if (d.parents[i].empty()) roots.push_back(static_cast<int32_t>(i));
  }
  auto t0 = Clock::now();
  for (int32_t r : roots) nodes[r]->try_put(tbb::flow::continue_msg());
  g.wait_for_all();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
#endif

// ---- load meter and goals ----------------------------------------------------------------------
// CPU the rest of the machine used while a section ran, in cores (0 = quiet, 1 = one core busy):
// the machine's busy time from /proc/stat minus this process's own CPU time, over the wall time.
// The same meter as benchmarks/bench_vs_torch.py's LoadMeter.
double machine_busy_s() {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long v[8] = {};
  const int got = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                              &v[5], &v[6], &v[7]);
  std::fclose(f);
  if (got < 5) return -1;
  unsigned long long busy = 0;
  for (int i = 0; i < 8; ++i)
    if (i != 3 && i != 4) busy += v[i];
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}
double own_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
struct LoadMeter {
  Clock::time_point t0 = Clock::now();
  double busy0 = machine_busy_s(), own0 = own_cpu_s();
  double other_cores() const {
    const double busy = machine_busy_s(), wall = std::chrono::duration<double>(Clock::now() - t0).count();
    if (busy0 < 0 || busy < 0 || wall <= 0) return -1;
    return std::max(0.0, (busy - busy0 - (own_cpu_s() - own0)) / wall);
  }
};

// One row of issue #14's table: the measured value, its bound, whether it holds.
struct Goal {
  std::string what;
  double value;
  std::string unit;  // "ns" (at most `bound`) or "x" (at least `bound`)
  double bound;
  bool met() const { return unit == "ns" ? value <= bound : value >= bound; }
};

}  // namespace

int main(int argc, char** argv) {
  use_single_threaded_blas(argv);
  int max_threads = std::max(1, omp_get_num_procs());
  int rounds = 5, n = 100000;
  std::string only_graph, only_body;
  bool dagrad_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-t" && i + 1 < argc)
      max_threads = std::atoi(argv[++i]);
    else if (a == "-r" && i + 1 < argc)
      rounds = std::atoi(argv[++i]);
    else if (a == "-n" && i + 1 < argc)
      n = std::atoi(argv[++i]);
    else if (a == "-g" && i + 1 < argc)
      only_graph = argv[++i];
    else if (a == "-b" && i + 1 < argc)
      only_body = argv[++i];
    else if (a == "--dagrad-only")
      dagrad_only = true;
    else if (a == "--no-fusion")
      set_fusion_enabled(false);
    else if (a == "--quick") {
      rounds = 2;
      n = 20000;
    } else {
      std::fprintf(
          stderr, "usage: %s [-t threads] [-r rounds] [-n nodes] [-g graph] [-b empty|1us] [--dagrad-only] [--quick]\n",
          argv[0]);
      return 2;
    }
  }
  calibrate();
  std::vector<Goal> goals;
  const int side = static_cast<int>(std::sqrt(static_cast<double>(n) * 0.9));
  std::vector<Dag> dags = {chain(n), binary_tree(n), wavefront(std::min(side, 300)),
                           wide(1000, std::max(1, n / 1000), 7)};
  std::printf("dagrad scheduler benchmark: %d cores, best of %d rounds, ~1us body = %lld spin iterations\n",
              omp_get_num_procs(), rounds, static_cast<long long>(g_spin_iters));
  // "on pool": in how many rounds dagrad's run went to the worker pool (Note [Serial or parallel
  // run] and Note [Measured node cost] in scheduler/run.cpp decide).
  std::printf("%-22s %-6s %8s %12s %20s %14s %8s %20s %20s\n", "graph", "body", "threads", "serial ns/n", "dagrad run",
              "dagrad b+r+f", "on pool", "omp-task", "tbb-flow");
  for (const Dag& d : dags) {
    if (!only_graph.empty() && d.name.rfind(only_graph, 0) != 0) continue;
    const double nn = static_cast<double>(d.parents.size());
    for (int body = 0; body < 2; ++body) {
      if (!only_body.empty() && only_body != (body ? "1us" : "empty")) continue;
      const int64_t iters = body ? g_spin_iters : 0;
      // Rounds are interleaved over the thread counts and competitors, so that a slow phase of
      // the host hits all columns alike; "speedup" is the median over rounds of the 1-thread
      // time over the t-thread time, measured in the same round.
      std::vector<int> ts;
      for (int t = 1; t <= max_threads; t *= 2) ts.push_back(t);
      const size_t nt = ts.size();
      std::vector<std::vector<double>> run(nt), total(nt), omp(nt), tbb(nt);
      std::vector<int> pooled(nt, 0);
      std::vector<double> serial;
      const LoadMeter load;
      for (int r = 0; r < rounds; ++r) {
        if (!dagrad_only) serial.push_back(time_serial(d, iters));
        for (size_t k = 0; k < nt; ++k) {
          bool on_pool = false;
          auto [a, b] = time_dagrad(d, iters, ts[k], on_pool);
          pooled[k] += on_pool;
          run[k].push_back(a);
          total[k].push_back(b);
          if (dagrad_only) continue;
          omp[k].push_back(time_omp_tasks(d, iters, ts[k]));
#ifdef DAGRAD_BENCH_TBB
          tbb[k].push_back(time_tbb(d, iters, ts[k]));
#endif
        }
      }
      auto best = [&](const std::vector<double>& v) -> std::string {
        if (v.empty()) return "-";
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f", *std::min_element(v.begin(), v.end()) / nn * 1e9);
        return buf;
      };
      // The median over rounds of v[base]'s time over v[k]'s, measured in the same round.
      auto ratio = [&](const std::vector<std::vector<double>>& v, size_t base, size_t k) {
        std::vector<double> q;
        for (size_t r = 0; r < v[k].size(); ++r) q.push_back(v[base][r] / v[k][r]);
        std::sort(q.begin(), q.end());
        return q[q.size() / 2];
      };
      auto speedup = [&](const std::vector<std::vector<double>>& v, size_t k) -> std::string {
        if (k == 0 || v[k].empty()) return "";
        char buf[32];
        std::snprintf(buf, sizeof buf, " (%.2fx)", ratio(v, 0, k));
        return buf;
      };
      for (size_t k = 0; k < nt; ++k) {
        const std::string on_pool = std::to_string(pooled[k]) + "/" + std::to_string(run[k].size());
        std::printf("%-22s %-6s %8d %12s %20s %14s %8s %20s %20s\n", d.name.c_str(), body ? "1us" : "empty", ts[k],
                    best(serial).c_str(), (best(run[k]) + speedup(run, k)).c_str(), best(total[k]).c_str(),
                    on_pool.c_str(), (best(omp[k]) + speedup(omp, k)).c_str(),
                    (best(tbb[k]) + speedup(tbb, k)).c_str());
      }
      const double other = load.other_cores();
      if (other >= 0)
        std::printf("%-22s %-6s other processes used %.2f cores on average%s\n", "", "", other,
                    other > 0.25 ? " (figures unreliable, the 2-thread ones most)" : "");
      // Issue #14's scheduler goals for this section.
      const auto ns_per_node = [&](const std::vector<double>& v) {
        return *std::min_element(v.begin(), v.end()) / nn * 1e9;
      };
      if (body == 0) {
        goals.push_back({d.name + ": run a built graph, 1 thread", ns_per_node(run[0]), "ns", 50});
        goals.push_back({d.name + ": build + run + free, 1 thread", ns_per_node(total[0]), "ns", 150});
        // Never slower for running on more threads: each thread count against the one before.
        for (size_t k = 1; k < nt; ++k)
          goals.push_back(
              {d.name + ": empty nodes, " + std::to_string(ts[k]) + " threads / " + std::to_string(ts[k - 1]),
               ratio(run, k - 1, k), "x", 0.95});
      } else if (d.name != "chain" && nt > 1) {
        const double ours = ratio(run, 0, 1);
        goals.push_back({d.name + ": ~1us nodes, 2 threads / 1", ours, "x", 1.85});
        if (!omp[1].empty())
          goals.push_back({d.name + ": ~1us nodes, 2 threads / 1, against OpenMP tasks'", ours, "x", ratio(omp, 0, 1)});
      }
    }
  }
  if (!goals.empty()) {
    std::printf("\nGoals (issue #14), from this run:\n");
    for (const Goal& g : goals)
      std::printf("    goal %-68s %8.2f%-2s (%s %g%s)  %s\n", g.what.c_str(), g.value, g.unit.c_str(),
                  g.unit == "ns" ? "<=" : ">=", g.unit == "ns" ? g.bound : std::round(g.bound * 100) / 100,
                  g.unit.c_str(), g.met() ? "met" : "NOT met");
  }
  return 0;
}
