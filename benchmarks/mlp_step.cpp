// An MLP training step written against the C++ API alone: forward, cross-entropy, backward and
// fused SGD updates. Usage: bench_mlp_step [-t threads] [-s steps] [-b batch] [sizes...]
// (default 784 128 64 10, batch 64). Prints ms per step and the loss going down.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench_env.h"
#include "dagrad/ops.h"
#include "dagrad/optim.h"
#include "dagrad/scheduler.h"

using namespace dagrad;

int main(int argc, char** argv) {
  use_single_threaded_blas(argv);
  int threads = 1, steps = 50, batch = 64;
  std::vector<int64_t> sizes;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-t" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "-s" && i + 1 < argc)
      steps = std::atoi(argv[++i]);
    else if (a == "-b" && i + 1 < argc)
      batch = std::atoi(argv[++i]);
    else
      sizes.push_back(std::atoll(a.c_str()));
  }
  if (sizes.size() < 2) sizes = {784, 128, 64, 10};
  set_num_threads(threads);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto randn = [&](const Shape& s, float scale, bool rg) {
    std::vector<float> v(static_cast<size_t>(numel(s)));
    for (float& x : v) x = normal(rng) * scale;
    return from_data(v.data(), s, DType::Float32, rg);
  };
  std::vector<Tensor> params;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    params.push_back(randn({sizes[l + 1], sizes[l]}, 1.0f / std::sqrt(float(sizes[l])), true));
    params.push_back(randn({sizes[l + 1]}, 0.0f, true));
  }
  std::vector<std::vector<Tensor>> state;
  for (const Tensor& p : params) state.push_back({full({}, 0.0, DType::Float64), full(p.shape(), 0.0, p.dtype())});
  OptimHyper h;
  h.lr = 0.01;
  h.momentum = 0.9;
  Tensor x = randn({batch, sizes.front()}, 1.0f, false);
  std::vector<int64_t> labels(batch);
  for (auto& y : labels) y = static_cast<int64_t>(rng() % sizes.back());
  Tensor target = from_data(labels.data(), {batch}, DType::Int64);

  double first = 0, last = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s <= steps; ++s) {
    if (s == 1) t0 = std::chrono::steady_clock::now();  // step 0 is the warm-up
    Tensor h1 = x;
    for (size_t l = 0; l < params.size(); l += 2) {
      h1 = linear(h1, params[l], params[l + 1]);
      if (l + 2 < params.size()) h1 = relu(h1);
    }
    Tensor loss = cross_entropy(h1, target);
    loss.backward();
    for (size_t i = 0; i < params.size(); ++i) {
      optim_step(OptimKind::SGD, params[i], params[i].grad(), state[i], h);
      params[i]->grad.reset();
    }
    last = loss.item();
    if (s == 0) first = last;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / steps;
  std::printf("MLP");
  for (int64_t v : sizes) std::printf(" %lld", static_cast<long long>(v));
  std::printf(", batch %d, %d thread(s): %.3f ms per training step; loss %.4f -> %.4f\n", batch, threads, ms, first,
              last);
  return last < first ? 0 : 1;
}
