#include "dagrad/common.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

namespace dagrad {

size_t itemsize(DType dt) {
  switch (dt) {
#define DAGRAD_X(name, ctype, str) \
  case DType::name:                \
    return sizeof(ctype);
    DAGRAD_DTYPES(DAGRAD_X)
#undef DAGRAD_X
  }
  throw TypeError("unknown dtype");
}

const char* dtype_name(DType dt) {
  switch (dt) {
#define DAGRAD_X(name, ctype, str) \
  case DType::name:                \
    return str;
    DAGRAD_DTYPES(DAGRAD_X)
#undef DAGRAD_X
  }
  return "?";
}

DType promote_types(DType a, DType b) {
  // The enum is not ordered by rank, so rank explicitly.
  auto rank = [](DType d) {
    switch (d) {
      case DType::Bool: return 0;
      case DType::Int64: return 1;
      case DType::Float32: return 2;
      case DType::Float64: return 3;
    }
    return 0;
  };
  return rank(a) >= rank(b) ? a : b;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) os << ", ";
    os << s[i];
  }
  if (s.size() == 1) os << ',';
  os << ')';
  return os.str();
}

int64_t checked_numel(const Shape& s, const char* op) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0)
      throw ValueError(std::string(op) + ": negative dimension " + std::to_string(d) +
                       " in shape " + shape_str(s));
  }
  for (int64_t d : s) {
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw ValueError(std::string(op) + ": shape " + shape_str(s) +
                       " has more elements than fit in int64");
    n *= d;
  }
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  if (dim < lo || dim > hi)
    throw IndexError(std::string(op) + ": dimension " + std::to_string(dim) +
                     " is out of range for a tensor of " + std::to_string(ndim) +
                     " dimensions (expected to be in range of [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "])");
  if (dim < 0) dim += ndim == 0 ? 1 : ndim;
  return dim;
}

Storage::Storage(size_t nbytes) : nbytes_(nbytes) {
  if (nbytes <= sizeof(inline_)) {
    ptr_ = inline_;
    return;
  }
  constexpr size_t kAlign = 64;
  size_t rounded = (nbytes + kAlign - 1) / kAlign * kAlign;
  if (rounded < nbytes) throw MemoryError("cannot allocate " + std::to_string(nbytes) + " bytes");
  if (rounded == 0) rounded = kAlign;
  ptr_ = std::aligned_alloc(kAlign, rounded);
  if (!ptr_)
    throw MemoryError("out of memory: cannot allocate " + std::to_string(nbytes) + " bytes");
}

Storage::~Storage() {
  if (ptr_ != inline_) std::free(ptr_);
}

}  // namespace dagrad
