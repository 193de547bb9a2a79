// @brief What a user does to tensors outside recording ops: in-place writes, .grad, compile's
// input copies and optimizer steps. Each takes the graph lock itself (an RAII GraphLock),
// runs what it needs and tells compile's trace (trace.h) when one is recording.
#pragma once

#include <memory>
#include <vector>

#include "dagrad/graph.h"
#include "dagrad/optim.h"

namespace dagrad {

/// @brief Writes `value` (broadcast and cast to t's shape and dtype) into t's storage.
/// Only allowed where no recorded op needs t's old value for backward.
void assign_(const Tensor& t, const Tensor& value);

/// @brief `op`'s in-place update of t (x += v, x.fill_(v), ...): assign_(t, value), refused as
/// in PyTorch when value's dtype cannot be cast to t's (int_t += 0.5 would silently truncate),
/// except for copy_ (`is_copy`), which casts whatever it is given.
void write_inplace(const char* op, const Tensor& t, const Tensor& value, bool is_copy = false);

/// @brief Makes `g` the .grad of the leaf `t` (null clears it). RuntimeError for a gradient of
/// another shape or dtype, and for one sharing t's storage (t itself, a detach or reshape of
/// it): backward accumulates into .grad in place, which would overwrite t.
/// Under the graph lock (a backward on another thread may be writing it), as get_grad reads it.
void set_grad(const Tensor& t, const Tensor& g);
NodePtr get_grad(const Tensor& t);

/// @brief Copies src's value into dst's storage (same shape and dtype, else ValueError naming
/// `what`): how a compiled step's inputs are refreshed before a replay.
void copy_into(const Tensor& dst, const Tensor& src, const char* what = "compile");

/// @brief A new leaf holding a copy of t's value.
Tensor clone_leaf(const Tensor& t);

/// @brief optim_step (optim.h) on realized values, under the graph lock, recorded into the
/// program being traced on this thread if any (so a compiled step replays the update).
void optim_step_now(OptimKind kind, const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state,
                    const std::shared_ptr<OptimHyper>& h);

/// @brief dagrad.autograd.detect_anomaly: nodes remember the line that recorded them, and every
/// node's output is checked: the first one holding NaN or Inf raises RuntimeError naming its op,
/// its pass and that line (Note [Anomaly mode]).
void set_detect_anomaly(bool on);

}  // namespace dagrad
