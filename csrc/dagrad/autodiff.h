// @brief Reverse-mode autodiff: builds gradient nodes from each op's backward rule.
#pragma once

#include <vector>

#include "dagrad/graph.h"

namespace dagrad {

/// @brief Accumulates d(roots)/d(leaf) into the grad of every leaf that requires grad.
///
/// `grads[i]` is the gradient flowing into roots[i]; an undefined one means 1 and is only
/// allowed for a root with one element. The gradient graph is run together with whatever
/// forward nodes are still pending, in one scheduler run. Without retain_graph, the graph
/// is freed afterwards and a second backward through it raises. With create_graph the
/// gradient nodes themselves record a graph, so they can be differentiated again.
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph = false,
              bool create_graph = false);

/// @brief Gradients of `outputs` with respect to `inputs` (PyTorch's autograd.grad);
/// nothing accumulates into .grad. An input the outputs do not depend on gets an
/// undefined Tensor if allow_unused, else RuntimeError.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph = false, bool create_graph = false,
                         bool allow_unused = false);

/// @brief The backward graph of `roots` (each with one element, seeded with 1) with respect to
/// every leaf that requires grad, built but not run, with no effect on .grad and no hook called:
/// (leaf, pending gradient) pairs. What the graph views draw as the backward pass.
std::vector<std::pair<Tensor, Tensor>> gradient_graph(const std::vector<Tensor>& roots);

}  // namespace dagrad
