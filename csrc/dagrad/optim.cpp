#include "dagrad/optim.h"

#include <cmath>
#include <string>

#include "dagrad/kernels/parallel.h"

namespace dagrad {

namespace {

constexpr int64_t kGrain = 1 << 14;

// Each element is updated by the same instructions whatever the split, so results do not
// depend on the thread count (Note [Thread budget]).
template <class T>
void sgd(T* p, const T* g, T* buf, int64_t n, const OptimHyper& h, bool first) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum),
          damp = static_cast<T>(h.dampening);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T d = h.maximize ? -g[i] : g[i];
      if (wd != 0) d = d + wd * p[i];
      if (mom != 0) {
        buf[i] = first ? d : buf[i] * mom + (1 - damp) * d;
        d = h.nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] = p[i] + (-lr) * d;
    }
  });
}

template <class T>
void adam(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const OptimHyper& h, double step) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), b1 = static_cast<T>(h.beta1),
          b2 = static_cast<T>(h.beta2), eps = static_cast<T>(h.eps);
  const T bc1 = static_cast<T>(1 - std::pow(h.beta1, step));
  const T bc2_sqrt = static_cast<T>(std::sqrt(1 - std::pow(h.beta2, step)));
  const T step_size = lr / bc1;
  const T w1 = 1 - b1, w2 = 1 - b2;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T gi = h.maximize ? -g[i] : g[i];
      if (h.decoupled)
        p[i] = p[i] * (1 - lr * wd);
      else if (wd != 0)
        gi = gi + wd * p[i];
      m[i] = m[i] + w1 * (gi - m[i]);  // lerp with weight < 0.5, as ATen computes it
      v[i] = v[i] * b2 + w2 * gi * gi;
      T denom;
      if (h.amsgrad) {
        vmax[i] = vmax[i] > v[i] || vmax[i] != vmax[i] ? vmax[i] : v[i];
        denom = std::sqrt(vmax[i]) / bc2_sqrt + eps;
      } else {
        denom = std::sqrt(v[i]) / bc2_sqrt + eps;
      }
      p[i] = p[i] + (-step_size) * (m[i] / denom);
    }
  });
}

template <class T>
void rmsprop(T* p, const T* g, T* sq, T* buf, T* gavg, int64_t n, const OptimHyper& h) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), a = static_cast<T>(h.alpha),
          eps = static_cast<T>(h.eps), mom = static_cast<T>(h.momentum);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T gi = h.maximize ? -g[i] : g[i];
      if (wd != 0) gi = gi + wd * p[i];
      sq[i] = sq[i] * a + (1 - a) * gi * gi;
      T avg;
      if (h.centered) {
        gavg[i] = gavg[i] + (1 - a) * (gi - gavg[i]);
        avg = std::sqrt(sq[i] + (-1) * gavg[i] * gavg[i]) + eps;
      } else {
        avg = std::sqrt(sq[i]) + eps;
      }
      if (mom > 0) {
        buf[i] = buf[i] * mom + gi / avg;
        p[i] = p[i] + (-lr) * buf[i];
      } else {
        p[i] = p[i] + (-lr) * (gi / avg);
      }
    }
  });
}

template <class T>
void adagrad(T* p, const T* g, T* sum, int64_t n, const OptimHyper& h, double step) {
  const T wd = static_cast<T>(h.weight_decay), eps = static_cast<T>(h.eps);
  const T clr = static_cast<T>(h.lr / (1 + (step - 1) * h.lr_decay));
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T gi = h.maximize ? -g[i] : g[i];
      if (wd != 0) gi = gi + wd * p[i];
      sum[i] = sum[i] + gi * gi;
      p[i] = p[i] + (-clr) * (gi / (std::sqrt(sum[i]) + eps));
    }
  });
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
                       dtype_name(grad.dtype()) + " does not match the parameter of shape " +
                       shape_str(param.shape()) + " " + dtype_name(param.dtype()));
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
