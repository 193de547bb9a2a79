// @brief The per-element functions of the elementwise ops, in one place.
//
// Each op's forward kernel (ops/elementwise.cpp) and the fused-chain kernel (fusion.cpp) call
// these same functors, so a value computed inside a fused chain is the same bits as one
// computed by the op alone (Note [Elementwise fusion]).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace dagrad {
namespace fn {

// Note [Integer overflow wraps]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// int64 arithmetic wraps around on overflow (two's complement), as PyTorch's and numpy's does.
// Signed overflow is undefined in C++ (UBSan reports it, and the compiler may assume it never
// happens), so integer +, -, * and negation go through uint64, whose overflow is defined. The
// same instructions result; floats are untouched. Every kernel that adds or multiplies integer
// elements (elementwise ops, add_n, sums, products, scatter accumulations) uses these.
template <class T>
constexpr bool kWraps = std::is_integral_v<T> && !std::is_same_v<T, bool>;
template <class T>
inline T add(T x, T y) {
  if constexpr (kWraps<T>)
    return static_cast<T>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y));
  else
    return x + y;
}
template <class T>
inline T sub(T x, T y) {
  if constexpr (kWraps<T>)
    return static_cast<T>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y));
  else
    return x - y;
}
template <class T>
inline T mul(T x, T y) {
  if constexpr (kWraps<T>)
    return static_cast<T>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y));
  else
    return x * y;
}
template <class T>
inline T neg(T v) {
  if constexpr (kWraps<T>)
    return static_cast<T>(uint64_t(0) - static_cast<uint64_t>(v));
  else
    return -v;
}

struct Add {
  template <class T>
  T operator()(T x, T y) const {
    return add(x, y);
  }
};
struct Sub {
  template <class T>
  T operator()(T x, T y) const {
    return sub(x, y);
  }
};
struct Mul {
  template <class T>
  T operator()(T x, T y) const {
    return mul(x, y);
  }
};
struct Div {
  template <class T>
  T operator()(T x, T y) const {
    return x / y;
  }
};
struct Neg {
  template <class T>
  T operator()(T v) const {
    return neg(v);
  }
};
struct Exp {
  template <class T>
  T operator()(T v) const {
    return std::exp(v);
  }
};
struct Log {
  template <class T>
  T operator()(T v) const {
    return std::log(v);
  }
};
struct Sqrt {
  template <class T>
  T operator()(T v) const {
    return std::sqrt(v);
  }
};

// float32 tanh as a 13/6-degree rational function (the interpolant Eigen and TensorFlow use,
// a couple of ulps from the true value on [-7.9, 7.9], +-1 beyond): no libm call, so the loop
// vectorises (Note [SIMD at run time]). float64 keeps std::tanh.
inline float tanh_f32(float v) {
  const float c = 7.90531110763549805f;
  const float x = v < -c ? -c : (v > c ? c : v);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  float r = p / q;
  r = r > 1.0f ? 1.0f : (r < -1.0f ? -1.0f : r);
  const float a = v < 0 ? -v : v;
  return a < 0.0004f ? v : (v != v ? v : r);  // tanh(x) ~ x near 0; NaN stays NaN
}
struct Tanh {
  float operator()(float v) const { return tanh_f32(v); }
  double operator()(double v) const { return std::tanh(v); }
};
// Two branches so that exp never overflows: stable for any input.
struct Sigmoid {
  template <class T>
  T operator()(T v) const {
    if (v >= 0) return T(1) / (T(1) + std::exp(-v));
    const T e = std::exp(v);
    return e / (T(1) + e);
  }
};
// NOTE: written as "v <= 0 ? 0 : v" so that NaN passes through (relu(nan) is nan, as in
// PyTorch and numpy: a hidden NaN would hide a diverging run), and its gradient passes too.
struct Relu {
  template <class T>
  T operator()(T v) const {
    return v <= T(0) ? T(0) : v;
  }
};
struct Step {
  template <class T>
  T operator()(T v) const {
    return v <= T(0) ? T(0) : T(1);
  }
};
struct Abs {
  template <class T>
  T operator()(T v) const {
    return v < T(0) ? neg(v) : v;
  }
};
struct Sign {
  template <class T>
  T operator()(T v) const {
    return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));
  }
};
struct Sin {
  template <class T>
  T operator()(T v) const {
    return std::sin(v);
  }
};
struct Cos {
  template <class T>
  T operator()(T v) const {
    return std::cos(v);
  }
};
struct Log1p {
  template <class T>
  T operator()(T v) const {
    return std::log1p(v);
  }
};
struct Expm1 {
  template <class T>
  T operator()(T v) const {
    return std::expm1(v);
  }
};
struct Erf {
  template <class T>
  T operator()(T v) const {
    return std::erf(v);
  }
};
// Fused local gradients: (gradient, value) -> gradient.
struct ReluBackward {
  template <class T>
  T operator()(T gv, T xv) const {
    return xv <= T(0) ? T(0) : gv;
  }  // as Relu: NaN passes
};
struct TanhBackward {
  template <class T>
  T operator()(T gv, T yv) const {
    return gv * (T(1) - yv * yv);
  }
};
struct SigmoidBackward {
  template <class T>
  T operator()(T gv, T yv) const {
    return gv * (yv * (T(1) - yv));
  }
};

// x ** p for a scalar exponent: calls `apply` with the per-element function, special-cased once
// (not per element) for the common exponents.
template <class T, class Apply>
void with_pow(double p, const Apply& apply) {
  const T pt = static_cast<T>(p);
  if (p == 2.0)
    apply([](T v) { return v * v; });
  else if (p == 1.0)
    apply([](T v) { return v; });
  else if (p == 0.5)
    apply([](T v) { return std::sqrt(v); });
  else
    apply([pt](T v) { return std::pow(v, pt); });
}

}  // namespace fn
}  // namespace dagrad
