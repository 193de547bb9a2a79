// @brief The vectorised float32 transcendental kernels (exp, sigmoid, tanh) against float64
// libm over every float in their working range (2.2 million values plus the special values).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/elementwise_fns.h"

namespace {

// |got - want| in units of the last place of want's float32 neighbourhood.
double ulps(float got, double want) {
  const float w = static_cast<float>(want);
  const float up = std::nextafter(std::fabs(w), std::numeric_limits<float>::infinity());
  const double ulp = static_cast<double>(up) - std::fabs(static_cast<double>(w));
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

// Every float32 between lo and hi, in a fixed number of evenly spread bit patterns per binade
// (the sweep covers subnormal results, the clamp edges and 0).
std::vector<float> sweep(float lo, float hi) {
  std::vector<float> xs;
  for (float v : {lo, hi}) xs.push_back(v);
  for (int sign = -1; sign <= 1; sign += 2) {
    for (uint32_t bits = 0; bits < 0x7f800000u; bits += 997) {
      float m;
      std::memcpy(&m, &bits, sizeof m);
      const float v = sign * m;
      if (v >= lo && v <= hi) xs.push_back(v);
    }
  }
  return xs;
}

// Runs f over xs through the same vectorised loop the ops use.
template <class F>
std::vector<float> run_map(const std::vector<float>& xs, const F& f) {
  std::vector<float> ys(xs.size());
  dagrad::map1(xs.data(), ys.data(), static_cast<int64_t>(xs.size()), f);
  return ys;
}

void test_exp_f32() {
  const std::vector<float> xs = sweep(-110.0f, 89.0f);
  const std::vector<float> ys = run_map(xs, dagrad::fn::Exp{});
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double want = std::exp(static_cast<double>(xs[i]));
    if (want < std::numeric_limits<float>::min()) {  // subnormal or zero result: within one subnormal step
      CHECK_MSG(std::fabs(ys[i] - want) <= std::numeric_limits<float>::denorm_min(),
                "exp(" << xs[i] << ") = " << ys[i] << ", want " << want);
      continue;
    }
    if (want > std::numeric_limits<float>::max()) {
      CHECK_MSG(std::isinf(ys[i]), "exp(" << xs[i] << ") = " << ys[i] << ", want inf");
      continue;
    }
    const double u = ulps(ys[i], want);
    worst = std::max(worst, u);
    CHECK_MSG(u <= 1.0, "exp(" << xs[i] << ") = " << ys[i] << ", want " << want << " (" << u << " ulp)");
  }
  std::printf("    exp: %zu values, worst %.2f ulp\n", xs.size(), worst);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> sp = run_map(std::vector<float>{inf, -inf, nan, 0.0f, -0.0f, 1e-30f}, dagrad::fn::Exp{});
  CHECK(std::isinf(sp[0]) && sp[0] > 0);
  CHECK(sp[1] == 0.0f);
  CHECK(std::isnan(sp[2]));
  CHECK(sp[3] == 1.0f && sp[4] == 1.0f && sp[5] == 1.0f);
}

void test_sigmoid_f32() {
  const std::vector<float> xs = sweep(-110.0f, 110.0f);
  const std::vector<float> ys = run_map(xs, dagrad::fn::Sigmoid{});
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i];
    const double want = x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
    if (want < std::numeric_limits<float>::min()) {
      CHECK_MSG(std::fabs(ys[i] - want) <= std::numeric_limits<float>::denorm_min(),
                "sigmoid(" << xs[i] << ") = " << ys[i] << ", want " << want);
      continue;
    }
    const double u = ulps(ys[i], want);
    worst = std::max(worst, u);
    CHECK_MSG(u <= 3.0, "sigmoid(" << xs[i] << ") = " << ys[i] << ", want " << want << " (" << u << " ulp)");
  }
  std::printf("    sigmoid: %zu values, worst %.2f ulp\n", xs.size(), worst);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> sp = run_map(std::vector<float>{inf, -inf, nan, 0.0f}, dagrad::fn::Sigmoid{});
  CHECK(sp[0] == 1.0f);
  CHECK(sp[1] == 0.0f);
  CHECK(std::isnan(sp[2]));
  CHECK(sp[3] == 0.5f);
}

void test_tanh_f32() {
  const std::vector<float> xs = sweep(-20.0f, 20.0f);
  const std::vector<float> ys = run_map(xs, dagrad::fn::Tanh{});
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double want = std::tanh(static_cast<double>(xs[i]));
    // Worst at the clamp (|x| ~ 7.9, where it returns +-1 and the true value is 4.6 ulps short of it).
    const double u = ulps(ys[i], want);
    worst = std::max(worst, u);
    CHECK_MSG(u <= 5.0, "tanh(" << xs[i] << ") = " << ys[i] << ", want " << want << " (" << u << " ulp)");
  }
  std::printf("    tanh: %zu values, worst %.2f ulp\n", xs.size(), worst);
}

}  // namespace

int main() {
  check::start_watchdog();
  const check::Test tests[] = {
      {"float32 exp within 1 ulp of float64 exp, subnormals and specials included", test_exp_f32, 60},
      {"float32 sigmoid within 3 ulps of float64, both tails", test_sigmoid_f32, 60},
      {"float32 tanh within 5 ulps of float64", test_tanh_f32, 60},
  };
  for (const check::Test& t : tests) check::run_test(t);
  check::print_summary();
  return check::state().failed.load() == 0 ? 0 : 1;
}
