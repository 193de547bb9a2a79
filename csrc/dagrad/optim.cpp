#include "dagrad/optim.h"

#include <cmath>
#include <string>

#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/parallel.h"

namespace dagrad {

namespace {

constexpr int64_t kGrain = 1 << 14;

// Note [Vectorised optimizer updates]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Each update is one loop over restrict-qualified arrays, compiled per ISA (Note [SIMD at run
// time]). Options that decide whether a state buffer exists (momentum, amsgrad, centered) or
// whether a term is added at all (weight decay: 0 * inf would be NaN) are template parameters;
// the others are per-element selects that vectorise (maximize is a multiplication by +-1,
// which is exact). Each element gets the same instructions whatever the split, so results do
// not depend on the thread count (Note [Thread budget]). The formulas are PyTorch's
// single-tensor ones, in the same order.

template <class T, bool Wd, bool Mom>
DAGRAD_SIMD_CLONES void sgd_loop(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n, T sign, T lr,
                                 T wd, T mom, T damp, bool first, bool nesterov) {
  for (int64_t i = 0; i < n; ++i) {
    T d = sign * g[i];
    if (Wd) d = d + wd * p[i];
    if (Mom) {
      const T bi = first ? d : buf[i] * mom + (1 - damp) * d;
      buf[i] = bi;
      d = nesterov ? d + mom * bi : bi;
    }
    p[i] = p[i] + (-lr) * d;
  }
}

template <class T>
void sgd(T* p, const T* g, T* buf, int64_t n, const OptimHyper& h, bool first) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum),
          damp = static_cast<T>(h.dampening), sign = h.maximize ? T(-1) : T(1);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    T* bb = buf ? buf + b : nullptr;
    if (wd != 0 && mom != 0)
      sgd_loop<T, true, true>(p + b, g + b, bb, e - b, sign, lr, wd, mom, damp, first, h.nesterov);
    else if (wd != 0)
      sgd_loop<T, true, false>(p + b, g + b, bb, e - b, sign, lr, wd, mom, damp, first, h.nesterov);
    else if (mom != 0)
      sgd_loop<T, false, true>(p + b, g + b, bb, e - b, sign, lr, wd, mom, damp, first, h.nesterov);
    else
      sgd_loop<T, false, false>(p + b, g + b, bb, e - b, sign, lr, wd, mom, damp, first, h.nesterov);
  });
}

template <class T>
struct AdamConsts {
  T sign, lr, wd, b1, b2, eps, bc2_sqrt, step_size, w1, w2;
  bool decoupled, coupled_wd;
};

template <class T, bool Ams>
DAGRAD_SIMD_CLONES void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                                  T* __restrict vmax, int64_t n, const AdamConsts<T> c) {
  for (int64_t i = 0; i < n; ++i) {
    T gi = c.sign * g[i];
    T pi = p[i];
    if (c.decoupled) pi = pi * (1 - c.lr * c.wd);
    if (c.coupled_wd) gi = gi + c.wd * pi;
    const T mi = m[i] + c.w1 * (gi - m[i]);  // lerp with weight < 0.5, as ATen computes it
    const T vi = v[i] * c.b2 + c.w2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T denom;
    if (Ams) {
      const T vm = vmax[i] > vi || vmax[i] != vmax[i] ? vmax[i] : vi;
      vmax[i] = vm;
      denom = std::sqrt(vm) / c.bc2_sqrt + c.eps;
    } else {
      denom = std::sqrt(vi) / c.bc2_sqrt + c.eps;
    }
    p[i] = pi + (-c.step_size) * (mi / denom);
  }
}

template <class T>
void adam(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const OptimHyper& h, double step) {
  AdamConsts<T> c;
  c.sign = h.maximize ? T(-1) : T(1);
  c.lr = static_cast<T>(h.lr);
  c.wd = static_cast<T>(h.weight_decay);
  c.b1 = static_cast<T>(h.beta1);
  c.b2 = static_cast<T>(h.beta2);
  c.eps = static_cast<T>(h.eps);
  const T bc1 = static_cast<T>(1 - std::pow(h.beta1, step));
  c.bc2_sqrt = static_cast<T>(std::sqrt(1 - std::pow(h.beta2, step)));
  c.step_size = c.lr / bc1;
  c.w1 = 1 - c.b1;
  c.w2 = 1 - c.b2;
  c.decoupled = h.decoupled;
  c.coupled_wd = !h.decoupled && c.wd != 0;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (h.amsgrad)
      adam_loop<T, true>(p + b, g + b, m + b, v + b, vmax + b, e - b, c);
    else
      adam_loop<T, false>(p + b, g + b, m + b, v + b, nullptr, e - b, c);
  });
}

template <class T, bool Centered, bool Mom>
DAGRAD_SIMD_CLONES void rmsprop_loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict buf,
                                     T* __restrict gavg, int64_t n, T sign, T lr, T wd, T a, T eps, T mom) {
  for (int64_t i = 0; i < n; ++i) {
    T gi = sign * g[i];
    if (wd != 0) gi = gi + wd * p[i];
    const T si = sq[i] * a + (1 - a) * gi * gi;
    sq[i] = si;
    T avg;
    if (Centered) {
      const T ga = gavg[i] + (1 - a) * (gi - gavg[i]);
      gavg[i] = ga;
      avg = std::sqrt(si + (-1) * ga * ga) + eps;
    } else {
      avg = std::sqrt(si) + eps;
    }
    if (Mom) {
      const T bi = buf[i] * mom + gi / avg;
      buf[i] = bi;
      p[i] = p[i] + (-lr) * bi;
    } else {
      p[i] = p[i] + (-lr) * (gi / avg);
    }
  }
}

template <class T>
void rmsprop(T* p, const T* g, T* sq, T* buf, T* gavg, int64_t n, const OptimHyper& h) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), a = static_cast<T>(h.alpha),
          eps = static_cast<T>(h.eps), mom = static_cast<T>(h.momentum), sign = h.maximize ? T(-1) : T(1);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    T* bb = buf ? buf + b : nullptr;
    T* ga = gavg ? gavg + b : nullptr;
    if (h.centered && mom > 0)
      rmsprop_loop<T, true, true>(p + b, g + b, sq + b, bb, ga, e - b, sign, lr, wd, a, eps, mom);
    else if (h.centered)
      rmsprop_loop<T, true, false>(p + b, g + b, sq + b, bb, ga, e - b, sign, lr, wd, a, eps, mom);
    else if (mom > 0)
      rmsprop_loop<T, false, true>(p + b, g + b, sq + b, bb, ga, e - b, sign, lr, wd, a, eps, mom);
    else
      rmsprop_loop<T, false, false>(p + b, g + b, sq + b, bb, ga, e - b, sign, lr, wd, a, eps, mom);
  });
}

template <class T>
DAGRAD_SIMD_CLONES void adagrad_loop(T* __restrict p, const T* __restrict g, T* __restrict sum, int64_t n, T sign, T wd,
                                     T eps, T clr) {
  for (int64_t i = 0; i < n; ++i) {
    T gi = sign * g[i];
    if (wd != 0) gi = gi + wd * p[i];
    const T si = sum[i] + gi * gi;
    sum[i] = si;
    p[i] = p[i] + (-clr) * (gi / (std::sqrt(si) + eps));
  }
}

template <class T>
void adagrad(T* p, const T* g, T* sum, int64_t n, const OptimHyper& h, double step) {
  const T wd = static_cast<T>(h.weight_decay), eps = static_cast<T>(h.eps), sign = h.maximize ? T(-1) : T(1);
  const T clr = static_cast<T>(h.lr / (1 + (step - 1) * h.lr_decay));
  parallel_for(n, kGrain,
               [&](int64_t b, int64_t e) { adagrad_loop<T>(p + b, g + b, sum + b, e - b, sign, wd, eps, clr); });
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? t->data<T>() : nullptr;
}

}  // namespace

void optim_step(OptimKind kind, const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state,
                const OptimHyper& h) {
  static const char* names[] = {"SGD", "Adam", "RMSprop", "Adagrad"};
  const char* name = names[static_cast<int>(kind)];
  if (!param->realized() || !grad->realized())
    throw RuntimeError(std::string(name) + ": parameter and gradient must be computed before the update");
  if (grad.shape() != param.shape() || grad.dtype() != param.dtype())
    throw RuntimeError(std::string(name) + ": gradient of shape " + shape_str(grad.shape()) + " " +
                       dtype_name(grad.dtype()) + " does not match the parameter of shape " + shape_str(param.shape()) +
                       " " + dtype_name(param.dtype()));
  if (state.empty() || state[0].dtype() != DType::Float64 || state[0].numel() != 1)
    throw RuntimeError(std::string(name) + ": state must start with a float64 step counter");
  for (size_t i = 1; i < state.size(); ++i)
    if (state[i].defined() && (state[i].shape() != param.shape() || state[i].dtype() != param.dtype()))
      throw RuntimeError(std::string(name) + ": state buffer " + std::to_string(i) + " of shape " +
                         shape_str(state[i].shape()) + " does not match the parameter of shape " +
                         shape_str(param.shape()));
  double& step = state[0]->data<double>()[0];
  const bool first = step == 0.0;
  step += 1.0;
  const int64_t n = param.numel();
  auto s = [&](size_t i) { return i < state.size() ? state[i] : Tensor(); };
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = param->data<T>();
    const T* g = grad->data<T>();
    switch (kind) {
      case OptimKind::SGD: sgd<T>(p, g, ptr<T>(s(1)), n, h, first); break;
      case OptimKind::Adam: adam<T>(p, g, ptr<T>(s(1)), ptr<T>(s(2)), ptr<T>(s(3)), n, h, step); break;
      case OptimKind::RMSprop: rmsprop<T>(p, g, ptr<T>(s(1)), ptr<T>(s(2)), ptr<T>(s(3)), n, h); break;
      case OptimKind::Adagrad: adagrad<T>(p, g, ptr<T>(s(1)), n, h, step); break;
    }
  };
  if (param.dtype() == DType::Float32)
    run(float());
  else if (param.dtype() == DType::Float64)
    run(double());
  else
    throw TypeError(std::string(name) + ": parameters must be floating point, got " + dtype_name(param.dtype()));
  param->storage->version.fetch_add(1, std::memory_order_relaxed);
  for (const Tensor& t : state)
    if (t.defined()) t->storage->version.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace dagrad
