// @brief Fused optimizer updates: one pass over a parameter, its gradient and its state.
#pragma once

#include <memory>
#include <vector>

#include "dagrad/graph.h"

namespace dagrad {

/// @brief Hyperparameters of one parameter group (shared with the Python optimizer, which
/// writes them before each step, so a replayed step sees the current learning rate).
struct OptimHyper {
  double lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, alpha = 0.99, lr_decay = 0;
  double initial_accumulator_value = 0;
  bool nesterov = false, amsgrad = false, centered = false, maximize = false, decoupled = false;
};

enum class OptimKind { SGD, Adam, RMSprop, Adagrad };

/// @brief Updates `param` in place from `grad`, following PyTorch's single-tensor formulas.
///
/// `state` holds, in order: a 0-d float64 step counter, then the optimizer's buffers
/// (SGD: momentum; Adam/AdamW: exp_avg, exp_avg_sq, max_exp_avg_sq; RMSprop: square_avg,
/// momentum_buffer, grad_avg; Adagrad: sum), each shaped like the parameter. Every tensor
/// must be realized; their storage versions are bumped.
void optim_step(OptimKind kind, const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state,
                const OptimHyper& h);

}  // namespace dagrad
