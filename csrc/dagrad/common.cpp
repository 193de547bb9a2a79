#include "dagrad/common.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sys/mman.h>
#endif
#if defined(_WIN32)
#include <malloc.h>
#endif
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace dagrad {

size_t itemsize(DType dt) {
  switch (dt) {
#define DAGRAD_X(name, ctype, str) \
  case DType::name: return sizeof(ctype);
    DAGRAD_DTYPES(DAGRAD_X)
#undef DAGRAD_X
  }
  throw TypeError("unknown dtype");
}

const char* dtype_name(DType dt) {
  switch (dt) {
#define DAGRAD_X(name, ctype, str) \
  case DType::name: return str;
    DAGRAD_DTYPES(DAGRAD_X)
#undef DAGRAD_X
  }
  return "?";
}

bool Scalar::fits_int64() const {
  if (kind_ != Kind::Float) return true;
  // [-2^63, 2^63): both bounds are exact doubles.
  return v_.f >= -9223372036854775808.0 && v_.f < 9223372036854775808.0;
}

std::string Scalar::str() const {
  if (kind_ == Kind::Bool) return v_.i ? "True" : "False";
  if (kind_ == Kind::Int) return std::to_string(v_.i);
  std::ostringstream os;
  os << v_.f;
  return os.str();
}

const Scalar& check_scalar_fits(const Scalar& s, DType dt, const char* op) {
  if (dt == DType::Int64 && !s.fits_int64())
    throw ValueError(std::string(op) + ": value " + s.str() + " cannot be converted to int64 without overflow");
  return s;
}

DType result_type(DType t, Scalar::Kind s) {
  switch (s) {
    case Scalar::Kind::Bool: return t;
    case Scalar::Kind::Int: return t == DType::Bool ? DType::Int64 : t;
    case Scalar::Kind::Float: return is_floating(t) ? t : DType::Float32;
  }
  return t;
}

DType result_type(DType a, bool a_0d, DType b, bool b_0d) {
  if (a_0d == b_0d) return promote_types(a, b);
  auto category = [](DType d) { return d == DType::Bool ? 0 : is_floating(d) ? 2 : 1; };
  const DType dim = a_0d ? b : a, zero = a_0d ? a : b;
  return category(zero) > category(dim) ? zero : dim;
}

bool can_cast(DType from, DType to) {
  if (is_floating(from) && !is_floating(to)) return false;
  if (from != DType::Bool && to == DType::Bool) return false;
  return true;
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
      throw ValueError(std::string(op) + ": negative dimension " + std::to_string(d) + " in shape " + shape_str(s));
  }
  for (int64_t d : s) {
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw ValueError(std::string(op) + ": shape " + shape_str(s) + " has more elements than fit in int64");
    n *= d;
  }
  return n;
}

namespace {
// r = a * b and r = a + b; true where the exact result does not fit int64.
#if defined(__GNUC__) || defined(__clang__)
bool mul_overflows(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }
bool add_overflows(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
#else
bool mul_overflows(int64_t a, int64_t b, int64_t* r) {
  constexpr int64_t hi = std::numeric_limits<int64_t>::max(), lo = std::numeric_limits<int64_t>::min();
  bool over = false;
  if (a > 0)
    over = b > 0 ? a > hi / b : b < lo / a;
  else if (a < 0)
    over = b > 0 ? a < lo / b : (b < 0 && a < hi / b);
  if (!over) *r = a * b;
  return over;
}
bool add_overflows(int64_t a, int64_t b, int64_t* r) {
  const bool over = b > 0 ? a > std::numeric_limits<int64_t>::max() - b : a < std::numeric_limits<int64_t>::min() - b;
  if (!over) *r = a + b;
  return over;
}
#endif
}  // namespace

int64_t checked_mul(int64_t a, int64_t b, const char* op) {
  int64_t r;
  if (mul_overflows(a, b, &r))
    throw ValueError(std::string(op) + ": sizes " + std::to_string(a) + " * " + std::to_string(b) + " overflow int64");
  return r;
}

int64_t checked_add(int64_t a, int64_t b, const char* op) {
  int64_t r;
  if (add_overflows(a, b, &r))
    throw ValueError(std::string(op) + ": sizes " + std::to_string(a) + " + " + std::to_string(b) + " overflow int64");
  return r;
}

Shape contiguous_strides(const Shape& s) {
  // A tensor with a zero dim may have other dims whose product exceeds int64 (checked_numel
  // only bounds the element count); its strides never address memory, so they wrap (uint64)
  // rather than overflow.
  Shape st(s.size());
  uint64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = static_cast<int64_t>(acc);
    acc *= static_cast<uint64_t>(s[i]);
  }
  return st;
}

// Note [Dims of 0-d tensors]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// PyTorch lets some ops take dim 0 or -1 on a 0-d tensor, as if it were one dim of one element
// (sum, softmax, squeeze, transpose, gather, max(dim)), and refuses it elsewhere (split, chunk,
// slicing, size(dim)). An op that accepted the dim and then read shape[dim] would read past an
// empty shape, so the two cases are two functions: wrap_dim never returns a dim for a 0-d
// tensor, and wrap_dim_or_scalar does, for callers that handle ndim == 0 themselves.
namespace {
[[noreturn]] void dim_out_of_range(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  throw IndexError(std::string(op) + ": dimension " + std::to_string(dim) + " is out of range for a tensor of " +
                   std::to_string(ndim) + " dimensions (expected to be in range of [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "])");
}
}  // namespace

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  if (ndim == 0)
    throw IndexError(std::string(op) + ": dimension " + std::to_string(dim) +
                     " was given, but a 0-d tensor has no dimensions");
  if (dim < -ndim || dim >= ndim) dim_out_of_range(dim, ndim, op);
  return dim < 0 ? dim + ndim : dim;
}

void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const ShapeError& e) {
    throw ShapeError(e.what() + context);
  } catch (const ValueError& e) {
    throw ValueError(e.what() + context);
  } catch (const TypeError& e) {
    throw TypeError(e.what() + context);
  } catch (const IndexError& e) {
    throw IndexError(e.what() + context);
  } catch (const RuntimeError& e) {
    throw RuntimeError(e.what() + context);
  } catch (const MemoryError& e) {
    throw MemoryError(std::string(e.what()) + context);
  }
}

int64_t wrap_dim_or_scalar(int64_t dim, int64_t ndim, const char* op) {
  if (ndim > 0) return wrap_dim(dim, ndim, op);
  if (dim < -1 || dim > 0) dim_out_of_range(dim, ndim, op);
  return 0;
}

namespace {
// The pool's buffers: std::aligned_alloc/std::free, except on Windows, whose C runtime has no
// aligned_alloc and frees aligned blocks with its own function.
void* buffer_alloc(size_t align, size_t bytes) {
#if defined(_WIN32)
  return _aligned_malloc(bytes, align);
#else
  return std::aligned_alloc(align, bytes);
#endif
}
void buffer_free(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}
}  // namespace

// Note [Buffer pool]
// ~~~~~~~~~~~~~~~~~~
// Every node's output is a fresh buffer, and a training step frees them all at its end, so the
// next step would get them back from the system page by page (page faults, zeroing) if they
// were returned. Freed buffers instead go to a pool keyed by size class (powers of two up to
// 1 MiB, then whole MiB), and the next allocation of that class reuses one. Buffers of 4 MiB
// and more are 2 MiB-aligned and advised to use huge pages. The pool is shared by all threads
// under one mutex (allocations are per node, not per element).
//
// Note [The pool keeps no more than the program uses]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// What the pool may cache is capped by what the program uses:
//     limit = max(kPoolFloor, min(last run's peak, kLiveFactor x bytes live now)), <= kPoolLimit.
//  * A training step's temporaries die while its parameters, gradients and optimizer state stay
//    alive, and the next step needs them again: the last run's peak keeps them cached, as long
//    as they stay within kLiveFactor times what is still alive (a step's temporaries are
//    typically a small multiple of the state that outlives it).
//  * When the program lets go of its tensors (del, the end of a phase), the live bytes fall and
//    the limit with them; every free then trims the pool, largest buffers first, down to it, so
//    RSS comes back without an empty_cache() call.
//  * After a run whose peak is far below what is cached (a smaller phase: evaluation after
//    training), the end of the run trims the pool to the new limit (trim_pool_after_run).
// kPoolFloor keeps a small working set cached even when few bytes are alive (a scalar graph's
// or a small model's steps). dagrad.empty_cache() returns everything cached at once.
namespace {
// Off under AddressSanitizer: reused buffers would hide a use after free.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kPoolLimit = 0;
#else
constexpr size_t kPoolLimit = size_t(1) << 30;
#endif
constexpr size_t kPoolFloor = size_t(32) << 20;
constexpr int64_t kLiveFactor = 8;
constexpr size_t kHuge = size_t(4) << 20;

struct Pool {
  std::mutex m;
  std::unordered_map<size_t, std::vector<void*>> free;
  size_t cached = 0;
  ~Pool() {
    for (auto& [cap, v] : free)
      for (void* p : v) buffer_free(p);
  }
};
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: storages may outlive static destruction
  return *p;
}
// Note [Fork]: the child's pool lock, fresh (the cached buffers stay valid).
void pool_after_fork_in_child() { new (&pool().m) std::mutex(); }
#if defined(__unix__) || defined(__APPLE__)
const int g_pool_atfork = pthread_atfork(nullptr, nullptr, &pool_after_fork_in_child);
#endif
size_t size_class(size_t n) {
  if (n <= 64) return 64;
  if (n <= (size_t(1) << 20)) {
    size_t c = 64;
    while (c < n) c <<= 1;
    return c;
  }
  const size_t mib = size_t(1) << 20;
  // From kHuge on, buffers are 2 MiB-aligned, and aligned_alloc wants a size that is a multiple
  // of the alignment (glibc lets it pass; AddressSanitizer's allocator, rightly, returns null:
  // a 7 MiB im2col buffer failed under the sanitizer stage). A size that wraps stays below n,
  // which the caller reports as too large.
  const size_t unit = n >= kHuge ? 2 * mib : mib;
  return (n + unit - 1) / unit * unit;
}
}  // namespace

namespace {
// Bytes of the buffers alive now and the most alive at once since reset_peak_buffer_bytes
// (pooled buffers count while in use, not while cached; inline values are not counted).
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};       // since reset_peak_buffer_bytes (each run resets it)
std::atomic<int64_t> g_user_peak_bytes{0};  // since reset_peak_memory_stats (the user's)
std::atomic<int64_t> g_allocs{0}, g_frees{0}, g_pool_hits{0};
std::atomic<int64_t> g_last_run_peak{0};  // Note [The pool keeps no more than the program uses]

size_t pool_limit(int64_t live) {
  const int64_t use =
      std::min(g_last_run_peak.load(std::memory_order_relaxed), kLiveFactor * std::max<int64_t>(live, 0));
  return std::min(kPoolLimit, std::max(kPoolFloor, static_cast<size_t>(std::max<int64_t>(use, 0))));
}

void raise_to(std::atomic<int64_t>& peak, int64_t now) {
  int64_t p = peak.load(std::memory_order_relaxed);
  while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
  }
}

void note_alloc(size_t cap) {
  const int64_t now =
      g_live_bytes.fetch_add(static_cast<int64_t>(cap), std::memory_order_relaxed) + static_cast<int64_t>(cap);
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  raise_to(g_peak_bytes, now);
  raise_to(g_user_peak_bytes, now);
}
}  // namespace

int64_t live_buffer_bytes() { return g_live_bytes.load(std::memory_order_relaxed); }
int64_t peak_buffer_bytes() { return g_peak_bytes.load(std::memory_order_relaxed); }
void reset_peak_buffer_bytes() { g_peak_bytes.store(live_buffer_bytes(), std::memory_order_relaxed); }

MemoryStats memory_stats() {
  MemoryStats m;
  m.live_bytes = live_buffer_bytes();
  m.cached_bytes = static_cast<int64_t>(pooled_bytes());
  m.peak_bytes = g_user_peak_bytes.load(std::memory_order_relaxed);
  m.allocations = g_allocs.load(std::memory_order_relaxed);
  m.frees = g_frees.load(std::memory_order_relaxed);
  m.pool_hits = g_pool_hits.load(std::memory_order_relaxed);
  return m;
}
void reset_peak_memory_stats() { g_user_peak_bytes.store(live_buffer_bytes(), std::memory_order_relaxed); }

size_t pooled_bytes() {
  std::lock_guard<std::mutex> lock(pool().m);
  return pool().cached;
}

void release_pooled_buffers() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.m);
  for (auto& [cap, v] : p.free)
    for (void* q : v) buffer_free(q);
  p.free.clear();
  p.cached = 0;
}

Storage::Storage(size_t nbytes) : nbytes_(nbytes) {
  if (nbytes <= sizeof(inline_)) {
    ptr_ = inline_;
    return;
  }
  const size_t cap = size_class(nbytes);
  if (cap < nbytes) throw MemoryError("cannot allocate " + std::to_string(nbytes) + " bytes");
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.m);
    auto it = p.free.find(cap);
    if (it != p.free.end() && !it->second.empty()) {
      ptr_ = it->second.back();
      it->second.pop_back();
      p.cached -= cap;
      capacity_ = cap;
      note_alloc(cap);
      g_pool_hits.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  const size_t align = cap >= kHuge ? (size_t(2) << 20) : 64;
  ptr_ = buffer_alloc(align, cap);
  if (!ptr_) throw MemoryError("out of memory: cannot allocate " + std::to_string(nbytes) + " bytes");
#ifdef MADV_HUGEPAGE
  if (cap >= kHuge) madvise(ptr_, cap, MADV_HUGEPAGE);
#endif
  capacity_ = cap;
  note_alloc(cap);
}

namespace {
// Frees cached buffers, largest first, until at most `limit` bytes are cached. Returns them for
// the caller to free outside the pool's lock. Called with p.m held.
void evict_locked(Pool& p, size_t limit, std::vector<void*>& out) {
  while (p.cached > limit) {
    auto largest = p.free.end();
    for (auto it = p.free.begin(); it != p.free.end(); ++it)
      if (!it->second.empty() && (largest == p.free.end() || it->first > largest->first)) largest = it;
    if (largest == p.free.end()) break;
    out.push_back(largest->second.back());
    largest->second.pop_back();
    p.cached -= largest->first;
  }
}
}  // namespace

void trim_pool_after_run(int64_t run_peak_bytes) {
  g_last_run_peak.store(run_peak_bytes, std::memory_order_relaxed);
  const size_t limit = pool_limit(live_buffer_bytes());
  std::vector<void*> evicted;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.m);
    if (p.cached <= limit) return;
    evict_locked(p, limit, evicted);
  }
  for (void* q : evicted) buffer_free(q);
}

Storage::~Storage() {
  if (ptr_ == inline_ || !ptr_) return;
  const int64_t live = g_live_bytes.fetch_sub(static_cast<int64_t>(capacity_), std::memory_order_relaxed) -
                       static_cast<int64_t>(capacity_);
  g_frees.fetch_add(1, std::memory_order_relaxed);
  const size_t limit = pool_limit(live);  // Note [The pool keeps no more than the program uses]
  std::vector<void*> evicted;
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.m);
    if (p.cached + capacity_ <= limit) {
      p.free[capacity_].push_back(ptr_);
      p.cached += capacity_;
      return;
    }
    evict_locked(p, limit, evicted);  // over the limit: this buffer goes back, and cached ones
  }
  buffer_free(ptr_);
  for (void* q : evicted) buffer_free(q);  // outside the lock
}

}  // namespace dagrad
