// @brief Basic vocabulary of the core: dtypes, shapes, typed errors and storage.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

// ---------------------------------------------------------------------------
// Portability. The core builds with GCC and Clang (Linux, macOS) and MSVC (Windows); each
// compiler-specific spelling is named once here. See Note [Platforms] in CMakeLists.txt.
// ---------------------------------------------------------------------------

// A packed class: DAGRAD_PACKED_BEGIN class DAGRAD_PACKED Name { ... }; DAGRAD_PACKED_END
#if defined(_MSC_VER) && !defined(__clang__)
#define DAGRAD_PACKED
#define DAGRAD_PACKED_BEGIN __pragma(pack(push, 1))
#define DAGRAD_PACKED_END __pragma(pack(pop))
#else
#define DAGRAD_PACKED __attribute__((packed))
#define DAGRAD_PACKED_BEGIN
#define DAGRAD_PACKED_END
#endif

// A hint to start loading the cache line at p (no effect on results).
#if defined(__GNUC__) || defined(__clang__)
#define DAGRAD_PREFETCH(p) __builtin_prefetch(p)
#else
#define DAGRAD_PREFETCH(p) ((void)(p))
#endif

namespace dagrad {

// ---------------------------------------------------------------------------
// Errors. Each maps to one Python exception type in the bindings.
// ---------------------------------------------------------------------------

/// @brief Bad argument value (Python ValueError).
struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
/// @brief Shapes that do not fit together (Python ValueError).
struct ShapeError : ValueError {
  using ValueError::ValueError;
};
/// @brief Wrong dtype or kind of argument (Python TypeError).
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
/// @brief Index or dimension out of range (Python IndexError).
struct IndexError : std::out_of_range {
  using std::out_of_range::out_of_range;
};
/// @brief Misuse at run time, e.g. backward twice (Python RuntimeError).
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// @brief Allocation failure with the size that failed (Python MemoryError).
/// @brief Inside a catch block: rethrows the exception being handled with `context` appended to
/// its message, keeping its dagrad type (other exceptions are rethrown unchanged).
[[noreturn]] void rethrow_with_context(const std::string& context);

struct MemoryError : std::bad_alloc {
  explicit MemoryError(std::string msg) : msg_(std::move(msg)) {}
  const char* what() const noexcept override { return msg_.c_str(); }

 private:
  std::string msg_;
};

// ---------------------------------------------------------------------------
// dtypes
// ---------------------------------------------------------------------------

#define DAGRAD_DTYPES(X)        \
  X(Float32, float, "float32")  \
  X(Float64, double, "float64") \
  X(Int64, int64_t, "int64")    \
  X(Bool, bool, "bool")

enum class DType : uint8_t {
#define DAGRAD_X(name, ctype, str) name,
  DAGRAD_DTYPES(DAGRAD_X)
#undef DAGRAD_X
};

/// @brief A number as Python has it: bool, integer or floating, kept exactly (an int64 never
/// goes through double). Converts implicitly to double for the arithmetic of float ops.
/// Packed (9 bytes): two of them sit in OpAttrs, and a 16-byte Scalar would push every Node
/// past four cache lines (Note [Node layout]; +22 ns a node on the scheduler's chain benchmark).
DAGRAD_PACKED_BEGIN
class DAGRAD_PACKED Scalar {
 public:
  enum class Kind : uint8_t { Bool, Int, Float };
  Scalar(double v = 0.0) : kind_(Kind::Float) { v_.f = v; }  // NOLINT: implicit on purpose
  /// An integer (or bool) stays one: pow(int_t, 2) from C++ is int64, as from Python.
  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  Scalar(I v) : kind_(std::is_same_v<I, bool> ? Kind::Bool : Kind::Int) {  // NOLINT: implicit
    v_.i = static_cast<int64_t>(v);
  }
  static Scalar integer(int64_t v) {
    Scalar s;
    s.kind_ = Kind::Int;
    s.v_.i = v;
    return s;
  }
  static Scalar boolean(bool v) {
    Scalar s = integer(v ? 1 : 0);
    s.kind_ = Kind::Bool;
    return s;
  }
  Kind kind() const { return kind_; }
  bool is_floating() const { return kind_ == Kind::Float; }
  double to_double() const { return kind_ == Kind::Float ? v_.f : static_cast<double>(v_.i); }
  operator double() const { return to_double(); }  // NOLINT: implicit on purpose
  /// The value as an element of type T (a float into int64 truncates, as a cast does; callers
  /// check with fits_int64 first).
  template <class T>
  T as() const {
    if constexpr (std::is_same_v<T, int64_t>)
      return kind_ == Kind::Float ? static_cast<int64_t>(v_.f) : v_.i;
    else if constexpr (std::is_same_v<T, bool>)
      return kind_ == Kind::Float ? v_.f != 0.0 : v_.i != 0;
    else
      return static_cast<T>(to_double());
  }
  /// Whether the value can become an int64 element (finite, in range).
  bool fits_int64() const;
  std::string str() const;

 private:
  Kind kind_;
  union {
    double f;
    int64_t i;
  } v_;
};
DAGRAD_PACKED_END
static_assert(sizeof(Scalar) == 9, "Scalar is packed (Note [Node layout])");

/// @brief Checks that `s` can be written into a tensor of dtype `dt` (ValueError naming `op`
/// otherwise: NaN, inf or out-of-range numbers into int64), and returns it.
const Scalar& check_scalar_fits(const Scalar& s, DType dt, const char* op);

size_t itemsize(DType dt);
const char* dtype_name(DType dt);
inline bool is_floating(DType dt) { return dt == DType::Float32 || dt == DType::Float64; }
/// @brief Result dtype of a binary op, as PyTorch promotes (bool < int64 < float32 < float64).
DType promote_types(DType a, DType b);
/// @brief Result dtype of an op between a tensor of dtype `t` and a Python number of kind `s`:
/// PyTorch's rule for "weak" scalars, in one place. The number changes the dtype only when it
/// is of a higher category (bool < integer < floating): int64 tensor + 2.5 is float32 (the
/// default float), float64 tensor + 2.5 stays float64, bool tensor + 3 is int64.
DType result_type(DType t, Scalar::Kind s);
/// @brief Result dtype of an op between two tensors, by PyTorch's priorities: a 0-d tensor
/// (`*_0d`) changes the dtype of a dimensioned one only when it is of a higher category, as a
/// Python number does; between two tensors of the same kind, promote_types.
DType result_type(DType a, bool a_0d, DType b, bool b_0d);
/// @brief Whether a result of dtype `from` may be written into a tensor of dtype `to` by an
/// in-place op (PyTorch's canCast: never floating into integer, nor a number into bool).
bool can_cast(DType from, DType to);

// ---------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
/// @brief Number of elements; throws ValueError on negative dims or int64 overflow.
int64_t checked_numel(const Shape& s, const char* op);
inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
/// @brief a * b and a + b of sizes, strides or paddings; ValueError naming `op` and both values on
/// int64 overflow. Every size product in the core goes through these (or checked_numel).
int64_t checked_mul(int64_t a, int64_t b, const char* op);
int64_t checked_add(int64_t a, int64_t b, const char* op);
/// @brief Row-major element strides.
Shape contiguous_strides(const Shape& s);
/// @brief Wraps a possibly negative dim into [0, ndim); IndexError otherwise, and always for a
/// 0-d tensor (ndim == 0), which has no dim to index. See Note [Dims of 0-d tensors].
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
/// @brief As wrap_dim, but a 0-d tensor accepts dim 0 and -1 (returned as 0), as PyTorch lets
/// reductions, softmax, squeeze and transpose treat it as one dim of one element. The caller
/// must not index the (empty) shape with the result. See Note [Dims of 0-d tensors].
int64_t wrap_dim_or_scalar(int64_t dim, int64_t ndim, const char* op);

// ---------------------------------------------------------------------------
// Storage: one contiguous, 64-byte aligned buffer.
// ---------------------------------------------------------------------------

/// @brief An owned, aligned byte buffer holding a tensor's elements.
struct Storage {
  explicit Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t nbytes() const { return nbytes_; }
  // Bumped by every in-place write. Ops record it when created and check it
  // when they run, so a value changed in place after use is detected.
  std::atomic<uint32_t> version{0};

 private:
  void* ptr_ = nullptr;
  size_t nbytes_ = 0;
  size_t capacity_ = 0;  // bytes actually held (a pool size class)
  // Small values (scalars of a scalar graph) live inline: one allocation per value, not two.
  alignas(16) unsigned char inline_[32];
};

using StoragePtr = std::shared_ptr<Storage>;

/// @brief Bytes of tensor buffers alive now, and the most alive at once since the last
/// reset_peak_buffer_bytes (values of 32 bytes or less live inside their node and are not
/// counted; pooled buffers count while in use).
int64_t live_buffer_bytes();
int64_t peak_buffer_bytes();
void reset_peak_buffer_bytes();

/// @brief dagrad.memory_stats(): bytes in live buffers, bytes cached in the pool, the peak of
/// live bytes since reset_peak_memory_stats, and counts of allocations, frees and allocations
/// the pool served.
struct MemoryStats {
  int64_t live_bytes = 0, cached_bytes = 0, peak_bytes = 0;
  int64_t allocations = 0, frees = 0, pool_hits = 0;
};
MemoryStats memory_stats();
void reset_peak_memory_stats();

/// @brief After a run: records its peak of live buffer bytes and trims the pool to the limit
/// that follows (Note [The pool keeps no more than the program uses]).
void trim_pool_after_run(int64_t run_peak_bytes);

/// @brief Bytes held by the buffer pool for reuse (see Note [Buffer pool]).
size_t pooled_bytes();
/// @brief Returns every pooled buffer to the system.
void release_pooled_buffers();

}  // namespace dagrad
