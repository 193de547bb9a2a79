#include "dagrad/graph.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/parallel.h"

namespace dagrad {

namespace {
void drop_grad_hooks(const Node* n);
void drop_site(const Node* n);
}  // namespace

// Note [Iterative teardown]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Dropping the last handle on the end of a 1,000,000-node chain would, with the
// default destructor, destroy each parent from inside its child's destructor and
// overflow the stack. Instead a dying node moves its parents onto an explicit stack;
// each popped parent that we own alone (use_count 1: nobody else can reach it, as
// the graph holds no weak pointers) hands over its own parents before it dies, so
// every destructor returns after one level.
Node::~Node() {
  if (grad_flags & kHasHooks) drop_grad_hooks(this);
  if (grad_flags & kHasSite) drop_site(this);
  if (inputs.empty() && !grad) return;
  SmallVector<NodePtr, 16> stack;  // a chain's teardown needs one or two slots: no allocation
  auto take = [&stack](Node& n) {
    for (auto& e : n.inputs)
      if (e.node) stack.push_back(std::move(e.node));
    n.inputs.clear();
    if (n.grad) stack.push_back(std::move(n.grad));
  };
  take(*this);
  while (!stack.empty()) {
    NodePtr p = std::move(stack.back());
    stack.pop_back();
    if (p.use_count() == 1) take(*p);
  }
}

namespace {
thread_local bool t_grad_enabled = true;
thread_local bool t_backward_pass = false;

// Hooks live beside the graph, keyed by node (a node has no room for them, Note [Node layout]);
// a node with hooks carries kHasHooks and drops them when it dies, on whatever thread.
std::mutex g_hooks_mutex;
struct HookEntry {
  uint64_t handle;
  GradHook hook;
};
std::unordered_map<const Node*, std::vector<HookEntry>> g_hooks;  // guarded by g_hooks_mutex
uint64_t g_next_hook = 1;                                         // guarded by g_hooks_mutex

void drop_grad_hooks(const Node* n) {
  std::vector<HookEntry> dead;  // destroyed outside the lock (a hook's captures may be heavy)
  {
    std::lock_guard<std::mutex> lock(g_hooks_mutex);
    auto it = g_hooks.find(n);
    if (it == g_hooks.end()) return;
    dead = std::move(it->second);
    g_hooks.erase(it);
  }
}
std::atomic<uint64_t> g_next_id{1};

// Note [Node pool]
// ~~~~~~~~~~~~~~~~
// A scalar graph or a scheduler benchmark makes and frees nodes by the hundred thousand; from
// malloc each ~250-byte node costs a trip through glibc's unsorted and small bins (its per-thread
// cache keeps only 7 blocks of a size), about a third of building and freeing a graph. Nodes
// (with their shared_ptr control block, one allocate_shared block) therefore come from a
// per-thread free list of blocks of that one size. A node may die on another thread than the one
// that made it (a worker releases inputs, Note [Inputs are released as soon as a node has run]):
// its block simply joins the list of the thread that frees it; blocks are plain operator-new
// memory, so any thread may hand them back to the system. Each list keeps at most
// kMaxPooledNodes blocks (~64 MiB, reached only by a program that had that many nodes alive,
// and then reused by its next graph); beyond that, and after the thread's list is destroyed at
// thread exit, blocks go straight back to operator delete.
// Under AddressSanitizer the pool is off, so that a use of a freed node is reported, not
// hidden by the block's reuse.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kMaxPooledNodes = 0;
#else
constexpr size_t kMaxPooledNodes = size_t{1} << 18;
#endif

struct FreeBlock {
  FreeBlock* next;
};
struct NodeFreeList {
  FreeBlock* head = nullptr;
  size_t count = 0;
  ~NodeFreeList();
};
thread_local bool t_free_list_dead = false;  // trivially destructible: readable after exit
thread_local NodeFreeList t_free_list;
NodeFreeList::~NodeFreeList() {
  t_free_list_dead = true;
  while (head) {
    FreeBlock* next = head->next;
    ::operator delete(head);
    head = next;
  }
  count = 0;
}

template <class T>
struct NodeAllocator {
  using value_type = T;
  NodeAllocator() = default;
  template <class U>
  NodeAllocator(const NodeAllocator<U>&) {}

  T* allocate(size_t n) {
    static_assert(sizeof(T) >= sizeof(FreeBlock), "a pooled block holds the free-list link");
    if (n == 1 && !t_free_list_dead) {
      NodeFreeList& fl = t_free_list;
      if (fl.head) {
        FreeBlock* b = fl.head;
        fl.head = b->next;
        --fl.count;
        return reinterpret_cast<T*>(b);
      }
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) {
    if (n == 1 && !t_free_list_dead) {
      NodeFreeList& fl = t_free_list;
      if (fl.count < kMaxPooledNodes) {
        FreeBlock* b = reinterpret_cast<FreeBlock*>(p);
        b->next = fl.head;
        fl.head = b;
        ++fl.count;
        return;
      }
    }
    ::operator delete(p);
  }
  template <class U>
  bool operator==(const NodeAllocator<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const NodeAllocator<U>&) const {
    return false;
  }
};

NodePtr new_node(OpKind op, Shape shape, DType dtype) {
  // Only allocate_shared's one control-block-and-node type is ever allocated through
  // NodeAllocator, so every pooled block has the same size.
  auto n = std::allocate_shared<Node>(NodeAllocator<Node>());
  n->op = op;
  n->shape = std::move(shape);
  n->dtype = dtype;
  // Ids are unique, and increase with creation on each thread: a thread takes them from the
  // global counter in blocks, so making a node costs no atomic read-modify-write.
  constexpr uint64_t kIdBlock = 1024;
  thread_local uint64_t next_id = 0, end_id = 0;
  if (next_id == end_id) {
    next_id = g_next_id.fetch_add(kIdBlock, std::memory_order_relaxed);
    end_id = next_id + kIdBlock;
  }
  n->id = next_id++;
  return n;
}
}  // namespace

BackwardPassScope::BackwardPassScope() : prev_(t_backward_pass) { t_backward_pass = true; }
BackwardPassScope::~BackwardPassScope() { t_backward_pass = prev_; }

uint64_t add_grad_hook(const Tensor& t, GradHook hook) {
  if (!t->requires_grad)
    throw RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient");
  std::lock_guard<std::mutex> lock(g_hooks_mutex);
  const uint64_t h = g_next_hook++;
  g_hooks[t.node().get()].push_back(HookEntry{h, std::move(hook)});
  t->grad_flags |= Node::kHasHooks;
  return h;
}

void remove_grad_hook(uint64_t handle) {
  GradHook dead;
  std::lock_guard<std::mutex> lock(g_hooks_mutex);
  for (auto it = g_hooks.begin(); it != g_hooks.end(); ++it) {
    auto& v = it->second;
    for (auto e = v.begin(); e != v.end(); ++e)
      if (e->handle == handle) {
        dead = std::move(e->hook);
        v.erase(e);
        return;  // the node keeps kHasHooks; an empty entry costs nothing
      }
  }
}

namespace {
struct GroupEntry {
  uint64_t handle;
  GroupGradHookEntry entry;
};
std::vector<GroupEntry> g_group_hooks;  // guarded by g_hooks_mutex, in the order added
}  // namespace

uint64_t add_group_grad_hook(const std::vector<Tensor>& leaves, GroupGradHook hook) {
  GroupGradHookEntry entry{{}, std::move(hook)};
  for (size_t i = 0; i < leaves.size(); ++i) {
    const Tensor& t = leaves[i];
    if (!t.defined() || !t->requires_grad || !t->is_leaf())
      throw RuntimeError("group gradient hook: tensor " + std::to_string(i) +
                         " is not a leaf that requires grad (hooks on a group are for leaves, such as parameters)");
    entry.leaves.push_back(t.node());
  }
  std::lock_guard<std::mutex> lock(g_hooks_mutex);
  const uint64_t h = g_next_hook++;
  g_group_hooks.push_back(GroupEntry{h, std::move(entry)});
  return h;
}

void remove_group_grad_hook(uint64_t handle) {
  GroupGradHook dead;  // destroyed outside the lock
  std::lock_guard<std::mutex> lock(g_hooks_mutex);
  for (auto it = g_group_hooks.begin(); it != g_group_hooks.end(); ++it)
    if (it->handle == handle) {
      dead = std::move(it->entry.hook);
      g_group_hooks.erase(it);
      return;
    }
}

std::vector<GroupGradHookEntry> group_grad_hooks() {
  std::lock_guard<std::mutex> lock(g_hooks_mutex);
  std::vector<GroupGradHookEntry> out;
  for (const GroupEntry& e : g_group_hooks) out.push_back(e.entry);
  return out;
}

std::vector<GradHook> grad_hooks(const Node& n) {
  std::vector<GradHook> out;
  if (!(n.grad_flags & Node::kHasHooks)) return out;
  std::lock_guard<std::mutex> lock(g_hooks_mutex);
  auto it = g_hooks.find(&n);
  if (it != g_hooks.end())
    for (const HookEntry& e : it->second) out.push_back(e.hook);
  return out;
}

void retain_grad(const Tensor& t) {
  if (!t->requires_grad) throw RuntimeError("retain_grad: can't retain_grad on a tensor that has requires_grad=False");
  if (!t->is_leaf()) t->grad_flags |= Node::kRetainsGrad;
}

// Note [Anomaly mode]
// ~~~~~~~~~~~~~~~~~~~
// With dagrad.autograd.detect_anomaly on, every node made remembers where: the Python line
// that recorded a forward op (the bindings' SiteFn reads the caller's frame; it is called only
// while recording, which holds the GIL), or "backward of <op> recorded at <line>" for the
// nodes a backward rule makes (autodiff opens a BackwardOfScope around each rule). Sites live
// beside the graph, like hooks, and die with their node. The scheduler names the site of a
// node whose kernel fails, and runtime.cpp's observer the first node whose output holds NaN
// or Inf. Off, it costs one relaxed load per recorded node.
namespace {
std::atomic<bool> g_anomaly{false};
std::atomic<SiteFn> g_site_fn{nullptr};
thread_local const Node* t_backward_of = nullptr;
std::mutex g_sites_mutex;
std::unordered_map<const Node*, std::string> g_sites;  // guarded by g_sites_mutex

void drop_site(const Node* n) {
  std::lock_guard<std::mutex> lock(g_sites_mutex);
  g_sites.erase(n);
}

void record_site(Node& n) {
  std::string site;
  if (t_backward_of) {
    const std::string fwd = node_site(*t_backward_of);
    site = std::string("backward of '") + op_name(t_backward_of->op) + "'" + (fwd.empty() ? "" : " recorded at " + fwd);
  } else if (SiteFn fn = g_site_fn.load(std::memory_order_acquire)) {
    site = fn();
  }
  if (site.empty()) return;
  std::lock_guard<std::mutex> lock(g_sites_mutex);
  g_sites[&n] = std::move(site);
  n.grad_flags |= Node::kHasSite;
}
}  // namespace

bool anomaly_enabled() { return g_anomaly.load(std::memory_order_relaxed); }
void set_anomaly_enabled(bool on) { g_anomaly.store(on, std::memory_order_relaxed); }
void set_site_fn(SiteFn fn) { g_site_fn.store(fn, std::memory_order_release); }
std::string node_site(const Node& n) {
  if (!(n.grad_flags & Node::kHasSite)) return "";
  std::lock_guard<std::mutex> lock(g_sites_mutex);
  auto it = g_sites.find(&n);
  return it == g_sites.end() ? "" : it->second;
}
BackwardOfScope::BackwardOfScope(const Node* n) : prev_(t_backward_of) { t_backward_of = n; }
BackwardOfScope::~BackwardOfScope() { t_backward_of = prev_; }

bool GradMode::is_enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool enabled) { t_grad_enabled = enabled; }

const char* op_name(OpKind op) {
  static constexpr const char* kNames[] = {
#define DAGRAD_X(name, str, family) str,
      DAGRAD_OPS(DAGRAD_X)
#undef DAGRAD_X
  };
  return kNames[static_cast<size_t>(op)];
}

Tensor make_op(OpKind op, const Tensor* inputs, size_t count, Shape shape, DType dtype, OpAttrs&& attrs) {
  // Every op's inferred shape passes here: a negative dim or an element count past int64 is an
  // error of the op that inferred it, never a buffer of the wrong size.
  checked_numel(shape, op_name(op));
  NodePtr n = new_node(op, std::move(shape), dtype);
  n->attrs = std::move(attrs);
  bool rg = false;
  n->inputs.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const Tensor& t = inputs[i];
    rg = rg || t->requires_grad;
    uint32_t v = t->storage ? t->storage->version.load(std::memory_order_relaxed) : Edge::kPendingVersion;
    n->inputs.push_back(Edge{t.node(), v});
  }
  n->requires_grad = rg && GradMode::is_enabled() && is_floating(dtype);
  n->is_backward = t_backward_pass;
  if (anomaly_enabled()) record_site(*n);  // Note [Anomaly mode]
  return Tensor(std::move(n));
}

Tensor make_op(OpKind op, const std::vector<Tensor>& inputs, Shape shape, DType dtype, OpAttrs attrs) {
  return make_op(op, inputs.data(), inputs.size(), std::move(shape), dtype, std::move(attrs));
}

Tensor make_op(OpKind op, std::initializer_list<Tensor> inputs, Shape shape, DType dtype, OpAttrs attrs) {
  return make_op(op, inputs.begin(), inputs.size(), std::move(shape), dtype, std::move(attrs));
}

// Note [No thread waits for a dagrad lock holding the GIL]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Two locks meet in dagrad: the GIL and the graph lock. A thread that waited for the graph lock
// while holding the GIL would deadlock against a graph-lock holder that needs the GIL (to
// return to Python, or for a Python op). So the rule has one direction: nobody waits for the
// graph lock with the GIL held. GraphLock first tries the lock; only when another thread holds
// it does it call the bindings' before_wait (which releases the GIL when this thread holds it),
// wait, then after_wait (which takes the GIL back, now holding the graph lock: allowed, since
// whoever holds the GIL and wants the graph lock releases the GIL first). The uncontended path
// costs one try_lock. Nothing holds the graph lock across a call into user Python code (a
// traced function runs without it: Note [Tracing belongs to the tracing thread]).
std::recursive_mutex& graph_mutex() {
  static std::recursive_mutex m;
  return m;
}

namespace {
// Note [Fork]: the child's copies of the graph's locks, fresh.
void graph_after_fork_in_child() {
  new (&graph_mutex()) std::recursive_mutex();
  new (&g_hooks_mutex) std::mutex();
  new (&g_sites_mutex) std::mutex();
}
#if defined(__unix__) || defined(__APPLE__)
const int g_graph_atfork = pthread_atfork(nullptr, nullptr, &graph_after_fork_in_child);
#endif
}  // namespace

namespace {
std::atomic<void* (*)()> g_before_wait{nullptr};
std::atomic<void (*)(void*)> g_after_wait{nullptr};
}  // namespace

void set_lock_wait_hooks(LockWaitHooks hooks) {
  g_after_wait.store(hooks.after_wait, std::memory_order_release);
  g_before_wait.store(hooks.before_wait, std::memory_order_release);
}

GraphLock::GraphLock() {
  std::recursive_mutex& m = graph_mutex();
  if (m.try_lock()) return;
  void* (*before)() = g_before_wait.load(std::memory_order_acquire);
  void (*after)(void*) = g_after_wait.load(std::memory_order_acquire);
  void* state = before ? before() : nullptr;
  m.lock();
  if (after) after(state);
}

GraphLock::~GraphLock() { graph_mutex().unlock(); }

void alloc_output(Node& n) {
  int64_t count = n.numel();
  size_t bytes = static_cast<size_t>(count) * itemsize(n.dtype);
  // A replayed program rewrites each node's own buffer (Note [Tracing keeps the graph]).
  if (n.storage && replaying() && n.storage->nbytes() == bytes) return;
  if (count != 0 && bytes / itemsize(n.dtype) != static_cast<size_t>(count))
    throw MemoryError(std::string(op_name(n.op)) + ": output of shape " + shape_str(n.shape) +
                      " is too large to allocate");
  try {
    n.storage = std::make_shared<Storage>(bytes);
  } catch (const MemoryError& e) {
    throw MemoryError(std::string(op_name(n.op)) + ": out of memory allocating " + std::to_string(bytes) +
                      " bytes for an output of shape " + shape_str(n.shape) + " " + dtype_name(n.dtype));
  }
}

Tensor from_storage(StoragePtr storage, const Shape& shape, DType dtype, bool requires_grad) {
  checked_numel(shape, "tensor");
  NodePtr n = new_node(OpKind::Leaf, shape, dtype);
  n->storage = std::move(storage);
  Tensor t(std::move(n));
  if (requires_grad) set_requires_grad(t, true);
  return t;
}

Tensor from_data(const void* src, const Shape& shape, DType dtype, bool requires_grad) {
  checked_numel(shape, "tensor");
  NodePtr n = new_node(OpKind::Leaf, shape, dtype);
  alloc_output(*n);
  if (n->storage->nbytes()) std::memcpy(n->storage->data(), src, n->storage->nbytes());
  Tensor t(std::move(n));
  if (requires_grad) set_requires_grad(t, true);
  return t;
}

namespace {
template <class T>
void fill_n(void* p, int64_t n, const Scalar& v) {
  T* d = static_cast<T*>(p);
  const T x = v.as<T>();
  for (int64_t i = 0; i < n; ++i) d[i] = x;
}
}  // namespace

Tensor full(const Shape& shape, Scalar value, DType dtype, bool requires_grad) {
  checked_numel(shape, "full");
  check_scalar_fits(value, dtype, "full");
  NodePtr n = new_node(OpKind::Leaf, shape, dtype);
  alloc_output(*n);
  switch (dtype) {
    case DType::Float32: fill_n<float>(n->storage->data(), n->numel(), value); break;
    case DType::Float64: fill_n<double>(n->storage->data(), n->numel(), value); break;
    case DType::Int64: fill_n<int64_t>(n->storage->data(), n->numel(), value); break;
    case DType::Bool: fill_n<bool>(n->storage->data(), n->numel(), value); break;
  }
  Tensor t(std::move(n));
  if (requires_grad) set_requires_grad(t, true);
  return t;
}

Tensor scalar(Scalar value, DType dtype) { return full({}, value, dtype); }

void set_requires_grad(const Tensor& t, bool requires_grad) {
  if (!t->is_leaf())
    throw RuntimeError("you can only change requires_grad flags of leaf variables; use detach() to get a leaf");
  if (requires_grad && !is_floating(t.dtype()))
    throw RuntimeError(std::string("only tensors of floating point dtype can require gradients, got ") +
                       dtype_name(t.dtype()));
  t->requires_grad = requires_grad;
}

void check_input_version(const Node& n, size_t i) {
  const Node& p = *n.inputs[i].node;
  uint32_t now = p.storage->version.load(std::memory_order_relaxed);
  if (now != n.inputs[i].expected())
    throw RuntimeError(std::string(op_name(n.op)) + ": input " + std::to_string(i) + " of shape " + shape_str(p.shape) +
                       " was modified by an in-place operation after this op was recorded "
                       "(version " +
                       std::to_string(now) + ", expected " + std::to_string(n.inputs[i].expected()) + ")");
}

// Note [Values while recording]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A few ops need a value while they record, not when they run: nll_loss checks its class
// indices against the number of classes on the line that passed them. The ops sit below the
// scheduler and never include it; they call realize_now, which the scheduler registers when
// the library is loaded (its translation unit is always linked: realize is how anything runs).
namespace {
std::atomic<RealizeFn> g_realize{nullptr};
bool g_replaying = false;  // guarded by graph_mutex(): Note [Tracing belongs to the tracing thread]
}  // namespace

void set_realize_fn(RealizeFn fn) { g_realize.store(fn, std::memory_order_release); }

void realize_now(const std::vector<Tensor>& targets) {
  RealizeFn fn = g_realize.load(std::memory_order_acquire);
  if (!fn) throw RuntimeError("internal: no scheduler registered to compute values");
  fn(targets);
}

bool replaying() { return g_replaying; }
ReplayScope::ReplayScope() { g_replaying = true; }
ReplayScope::~ReplayScope() { g_replaying = false; }

// Note [Accumulating into .grad]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// As in PyTorch, backward adds each leaf's new gradient into its existing .grad in place, one
// leaf after another in the fixed order of the walk, after the run that computed them. Adding
// in place (rather than computing old + new in the run and copying it over) keeps .grad's
// identity and gives the right sum when several leaves share one .grad buffer (x.grad = g;
// z.grad = g): each addition reads what the previous one wrote. Elements are independent, so
// splitting them over threads does not change a bit.
void accumulate_grad(Node& target, const Node& g) {
  const int64_t n = target.numel();
  DAGRAD_DISPATCH_FLOAT(target.dtype, "backward", {
    T* pt = target.data<T>();
    const T* pg = g.data<T>();
    parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) pt[i] += pg[i];
    });
  });
  target.storage->version.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace dagrad
