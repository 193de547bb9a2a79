// @brief The graph: nodes (ops and leaves), the Tensor handle, grad mode.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <vector>

#include "dagrad/common.h"
#include "dagrad/op_list.h"
#include "dagrad/small_vector.h"

namespace dagrad {

enum class OpKind : uint16_t {
#define DAGRAD_X(name, str, family) name,
  DAGRAD_OPS(DAGRAD_X)
#undef DAGRAD_X
};

struct Node;
using NodePtr = std::shared_ptr<Node>;
struct CustomOp;

/// @brief Per-op parameters. Which fields an op uses is written beside its definition.
struct OpAttrs {
  std::vector<int64_t> ints;  // axes, a shape or a permutation
  Scalar scalar;              // pow exponent, mean divisor, clamp min, fill value
  Scalar scalar2;             // clamp max
  bool keepdim = false;
  std::shared_ptr<const CustomOp> custom;  // Custom only
};

struct Node;
using NodePtr = std::shared_ptr<Node>;

/// @brief An input edge: the parent and the version of its storage when the edge was made
/// (kPendingVersion if the parent had no value yet: then the version it had when it was
/// computed, Node::base_version, is the one expected).
struct Edge {
  static constexpr uint32_t kPendingVersion = 0xffffffffu;
  NodePtr node;
  uint32_t version = 0;
  uint32_t expected() const;
};

/// @brief One node of the graph: an op applied to inputs, or a leaf holding data.
///
/// A node's value (storage) is null until the scheduler computes it. Values are
/// contiguous and row-major; Reshape and Detach share their input's storage.
///
/// Note [Node layout]
/// ~~~~~~~~~~~~~~~~~~
/// A run walks every pending node three times (collect, execute, release; the parallel path
/// also builds its edge arrays), so it is bound by cache misses on nodes, not by instructions.
/// The fields those walks read come first, next to the shared_ptr control block that
/// allocate_shared puts in front of the node: kind and flags, the scratch fields, the storage
/// and the input edges, two of which are kept inline (most ops have one or two inputs), so a
/// scheduler visit touches one or two cache lines and no separately allocated edge array.
/// Nodes come from a per-thread free list (Note [Node pool] in graph.cpp), not from malloc.
struct Node : std::enable_shared_from_this<Node> {
  static constexpr uint8_t kRetainsGrad = 1;  // a non-leaf whose gradient backward keeps in .grad
  static constexpr uint8_t kHasHooks = 2;     // has gradient hooks (add_grad_hook)
  static constexpr uint8_t kHasSite = 4;      // has a recording site (anomaly mode)

  OpKind op = OpKind::Leaf;
  DType dtype = DType::Float32;
  bool requires_grad = false;
  bool graph_freed = false;  // backward ran without retain_graph through this node
  bool is_param = false;     // marked as a Module parameter (dagrad.nn.Parameter)
  bool is_backward = false;  // made by autodiff: a gradient node (BackwardPassScope)
  uint8_t grad_flags = 0;    // kRetainsGrad, kHasHooks
  // Version of the storage right after this node computed it (aliases such as reshape share a
  // storage whose version may already be above 0). See Edge.
  uint32_t base_version = 0;
  // Scratch owned by the scheduler and autodiff while they hold the graph lock
  // (see Note [One run at a time]).
  int32_t run_index = -1;
  uint64_t mark = 0;
  StoragePtr storage;
  SmallVector<Edge, 2> inputs;
  Shape shape;
  OpAttrs attrs;
  NodePtr grad;  // accumulated gradient of a leaf that requires grad, or of a retained non-leaf
  uint64_t id = 0;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node();

  bool realized() const { return storage != nullptr; }
  /// PyTorch's rule: user-created tensors and tensors that need no grad are leaves.
  bool is_leaf() const { return op == OpKind::Leaf || op == OpKind::Detach || !requires_grad; }
  int64_t numel() const { return dagrad::numel(shape); }
  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  template <class T>
  T* data() const {
    return static_cast<T*>(storage->data());
  }
};

inline uint32_t Edge::expected() const { return version == kPendingVersion ? node->base_version : version; }

/// @brief A handle on a node: what a C++ user builds graphs with.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(NodePtr node) : node_(std::move(node)) {}

  const NodePtr& node() const { return node_; }
  Node* operator->() const { return node_.get(); }
  bool defined() const { return node_ != nullptr; }

  const Shape& shape() const { return node_->shape; }
  DType dtype() const { return node_->dtype; }
  int64_t ndim() const { return node_->ndim(); }
  int64_t numel() const { return node_->numel(); }
  bool requires_grad() const { return node_->requires_grad; }
  /// @brief The accumulated gradient of a leaf (undefined if none yet).
  Tensor grad() const { return Tensor(node_->grad); }

  /// @brief Computes this tensor's value (and whatever it depends on) if it is pending.
  /// Defined with the scheduler (scheduler/run.cpp).
  const Tensor& realize() const;
  /// @brief Realizes and returns a pointer to the contiguous elements.
  template <class T>
  const T* data() const {
    realize();
    return node_->data<T>();
  }
  /// @brief Realizes and returns the single element as a double.
  double item() const;

  /// @brief Accumulates d(this)/d(leaf) into every leaf's grad. Defined with autodiff (autodiff.h).
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false, bool create_graph = false) const;

 private:
  NodePtr node_;
};

// ---------------------------------------------------------------------------
// Grad mode (thread-local, as in PyTorch).
// ---------------------------------------------------------------------------

/// @brief Whether new ops record what backward needs.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

/// @brief RAII: disables grad recording in a scope.
struct NoGradGuard {
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }

 private:
  bool prev_;
};

/// @brief RAII: sets grad recording to `enabled` in a scope.
struct GradModeGuard {
  explicit GradModeGuard(bool enabled) : prev_(GradMode::is_enabled()) { GradMode::set_enabled(enabled); }
  ~GradModeGuard() { GradMode::set_enabled(prev_); }

 private:
  bool prev_;
};

/// @brief RAII: nodes made in this scope on this thread are gradient nodes (Node::is_backward),
/// which the profiler and the graph views show as the backward pass. Autodiff opens it.
struct BackwardPassScope {
  BackwardPassScope();
  ~BackwardPassScope();
  BackwardPassScope(const BackwardPassScope&) = delete;
  BackwardPassScope& operator=(const BackwardPassScope&) = delete;

 private:
  bool prev_;
};

// ---------------------------------------------------------------------------
// Gradient hooks (PyTorch's Tensor.register_hook), kept beside the graph.
// ---------------------------------------------------------------------------

/// @brief Called with the gradient of a tensor when backward has summed it; returns a
/// replacement, or an undefined Tensor to keep it (Note [Gradient hooks] in autodiff.cpp).
using GradHook = std::function<Tensor(const Tensor& grad)>;
/// @brief Adds a hook to t's node (RuntimeError if t does not require grad); returns its handle.
uint64_t add_grad_hook(const Tensor& t, GradHook hook);
/// @brief Removes the hook with this handle, if it is still there.
void remove_grad_hook(uint64_t handle);
/// @brief The hooks of a node, in the order they were added.
std::vector<GradHook> grad_hooks(const Node& n);
/// @brief Called once per backward() that reaches any leaf of its group, with each leaf's new
/// gradient (undefined where backward did not reach it); returns one replacement per leaf
/// (undefined keeps that gradient) or nothing. See Note [Group gradient hooks] in autodiff.cpp.
using GroupGradHook = std::function<std::vector<Tensor>(const std::vector<Tensor>& grads)>;
/// @brief Adds a hook on a group of leaves that require grad (RuntimeError otherwise); returns its
/// handle. The group holds its leaves weakly: a hook whose leaves all died is never called.
uint64_t add_group_grad_hook(const std::vector<Tensor>& leaves, GroupGradHook hook);
/// @brief Removes the group hook with this handle, if it is still there.
void remove_group_grad_hook(uint64_t handle);
/// @brief The group hooks, in the order they were added.
struct GroupGradHookEntry {
  std::vector<std::weak_ptr<Node>> leaves;
  GroupGradHook hook;
};
std::vector<GroupGradHookEntry> group_grad_hooks();
/// @brief Makes backward keep the gradient of the non-leaf t in t.grad (no-op for a leaf).
void retain_grad(const Tensor& t);

// ---------------------------------------------------------------------------
// Anomaly mode (dagrad.autograd.detect_anomaly): where each node was recorded.
// ---------------------------------------------------------------------------

/// @brief Whether nodes record the place that made them (process-wide; runtime.h's
/// set_detect_anomaly also checks every output for NaN and Inf).
bool anomaly_enabled();
void set_anomaly_enabled(bool on);
/// @brief Returns where the current op is being recorded ("file.py:12"), or "" if unknown. The
/// Python bindings register one that reads the caller's frame.
using SiteFn = std::string (*)();
void set_site_fn(SiteFn fn);
/// @brief Where n was recorded, if anomaly mode was on then ("" otherwise).
std::string node_site(const Node& n);
/// @brief RAII: nodes made in this scope (a backward rule's) are sited at "backward of" `n`.
struct BackwardOfScope {
  explicit BackwardOfScope(const Node* n);
  ~BackwardOfScope();
  BackwardOfScope(const BackwardOfScope&) = delete;
  BackwardOfScope& operator=(const BackwardOfScope&) = delete;

 private:
  const Node* prev_;
};

// ---------------------------------------------------------------------------
// Building nodes.
// ---------------------------------------------------------------------------

/// @brief Records an op node. Shape and dtype are already inferred by the caller.
Tensor make_op(OpKind op, const std::vector<Tensor>& inputs, Shape shape, DType dtype, OpAttrs attrs = {});
/// @brief As above, for a braced list of inputs (no temporary vector).
Tensor make_op(OpKind op, std::initializer_list<Tensor> inputs, Shape shape, DType dtype, OpAttrs attrs = {});
Tensor make_op(OpKind op, const Tensor* inputs, size_t count, Shape shape, DType dtype, OpAttrs&& attrs);

/// @brief A leaf holding a copy of `src` (row-major, `dtype` elements).
Tensor from_data(const void* src, const Shape& shape, DType dtype, bool requires_grad = false);
/// @brief A leaf filled with `value` (ValueError if it does not fit `dtype`).
Tensor full(const Shape& shape, Scalar value, DType dtype, bool requires_grad = false);
/// @brief A leaf whose storage is already filled (takes ownership).
Tensor from_storage(StoragePtr storage, const Shape& shape, DType dtype, bool requires_grad = false);
/// @brief A 0-d constant.
Tensor scalar(Scalar value, DType dtype);

/// @brief Allocates a node's output storage (MemoryError names the op and shape).
void alloc_output(Node& n);

/// @brief Sets requires_grad on a leaf (RuntimeError on non-leaves and non-float dtypes).
void set_requires_grad(const Tensor& t, bool requires_grad);

/// @brief Throws RuntimeError if input i of n was modified in place after n was recorded.
void check_input_version(const Node& n, size_t i);

// ---------------------------------------------------------------------------
// Values while recording (Note [Values while recording]).
// ---------------------------------------------------------------------------

/// @brief Computes the values of `targets` (and what they depend on) now. The ops that need a
/// value while they record (a loss that checks its targets) call this; the scheduler, which
/// sits above the ops, registers the implementation when the library is loaded.
void realize_now(const std::vector<Tensor>& targets);
using RealizeFn = void (*)(const std::vector<Tensor>& targets);
void set_realize_fn(RealizeFn fn);

/// @brief Whether a recorded program is being replayed (Note [Tracing keeps the graph]): node
/// buffers are then rewritten in place and edges are not version-checked. Written by replay
/// only, under the graph lock, which every reader holds too.
bool replaying();
/// @brief RAII: marks a replay (the caller holds the graph lock).
struct ReplayScope {
  ReplayScope();
  ~ReplayScope();
  ReplayScope(const ReplayScope&) = delete;
  ReplayScope& operator=(const ReplayScope&) = delete;
};

// ---------------------------------------------------------------------------
// The graph lock (Note [One run at a time]).
// ---------------------------------------------------------------------------

/// @brief The process-wide recursive lock that serialises runs and graph walks.
std::recursive_mutex& graph_mutex();

/// @brief Functions called around a wait for the graph lock when another thread holds it: the
/// Python bindings register ones that release the GIL before the wait and take it back after.
/// See Note [No thread waits for a dagrad lock holding the GIL].
struct LockWaitHooks {
  void* (*before_wait)() = nullptr;  // returns a state handed to after_wait
  void (*after_wait)(void*) = nullptr;
};
void set_lock_wait_hooks(LockWaitHooks hooks);

/// @brief RAII holder of graph_mutex(); waits through the LockWaitHooks when it is contended.
class GraphLock {
 public:
  GraphLock();
  ~GraphLock();
  GraphLock(const GraphLock&) = delete;
  GraphLock& operator=(const GraphLock&) = delete;
};

/// @brief target += g elementwise, in place (both realized, same shape and dtype): how backward
/// accumulates into an existing .grad. See Note [Accumulating into .grad].
void accumulate_grad(Node& target, const Node& g);

/// @brief Name of an op, from the op list.
const char* op_name(OpKind op);

}  // namespace dagrad
