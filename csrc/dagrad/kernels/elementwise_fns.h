// @brief The per-element functions of the elementwise ops, in one place.
//
// Each op's forward kernel (ops/elementwise.cpp) and the fused-chain kernel (fusion.cpp) call
// these same functors, so a value computed inside a fused chain is the same bits as one
// computed by the op alone (Note [Elementwise fusion]).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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
// float32 exp without a libm call, so the loops that use it vectorise (Note [SIMD at run time]):
// Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r
// (within 1 ulp of the true value on the whole range; checked against float64 exp in the C++
// tests), and 2^n built from its bits in two halves so that results down to the smallest
// subnormal are right. Beyond the range: 0 below, inf above; NaN stays NaN. The select-only
// shape (no branch holds arithmetic) needs -fno-trapping-math to if-convert (CMakeLists.txt).
inline float exp_f32(float v) {
  const float hi = 88.7228394f, lo = -103.972084f;  // e^hi ~ FLT_MAX; e^lo < the smallest subnormal / 2
  const float x = v > hi ? hi : (v < lo ? lo : v);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding then subtracting it rounds to an integer
  const float n = (x * 1.44269504088896341f + magic) - magic;
  float r = x - n * 0.693359375f;  // ln2 in two pieces: n * 0.693359375 is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ni = static_cast<int32_t>(n);  // in [-150, 128]
  const int32_t n1 = ni / 2, n2 = ni - n1;     // each in [-75, 64]: 2^n1 and 2^n2 are normal floats
  const uint32_t b1 = static_cast<uint32_t>(n1 + 127) << 23, b2 = static_cast<uint32_t>(n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, sizeof s1);
  std::memcpy(&s2, &b2, sizeof s2);
  const float res = p * s1 * s2;
  return v > hi ? std::numeric_limits<float>::infinity() : (v != v ? v : res);
}
struct Exp {
  float operator()(float v) const { return exp_f32(v); }
  double operator()(double v) const { return std::exp(v); }
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
// within 5 ulps of the true value, +-1 beyond |x| = 7.9: tests/cpp/test_kernels.cpp): no libm call, so the loop
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
// Stable for any input: exp only ever sees -|v|, so it never overflows. float32 goes through
// exp_f32 with selects instead of branches, so the loop vectorises (within 3 ulps of the true
// value: the formula of the float64 branches); float64 keeps libm.
inline float sigmoid_f32(float v) {
  const float a = v < 0 ? -v : v;
  const float e = exp_f32(-a);  // NaN stays NaN
  return (v >= 0 ? 1.0f : e) / (1.0f + e);
}
struct Sigmoid {
  float operator()(float v) const { return sigmoid_f32(v); }
  double operator()(double v) const {
    if (v >= 0) return 1.0 / (1.0 + std::exp(-v));
    const double e = std::exp(v);
    return e / (1.0 + e);
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
