// @brief Argument errors that name the public function and the argument (Note [Argument errors]).
#pragma once

#include "tensor_type.h"  // first: the Tensor caster

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "dagrad/graph.h"

namespace dagrad_py {

/// @brief The public name of the wrapped call running on this thread ("Tensor.sum"), or
/// `fallback` outside one. Helpers below put it in their messages.
const char* current_call(const char* fallback = "dagrad");

/// @brief The type of `v` as a user reads it ("str", "numpy.ndarray", "Tensor").
std::string type_name(pybind11::handle v);

/// @brief An int argument (Python int or anything with __index__, not a float); one that does
/// not fit int64 is a ValueError, or a TypeError for sizes (PyTorch's types).
int64_t int_arg(pybind11::handle v, const char* arg, bool is_size = false);

/// @brief A dim of a tensor of `ndim` dims, returned as given; out of range is an IndexError
/// naming the current call and `arg` (a 0-d tensor takes -1 and 0, as in PyTorch).
int64_t dim_arg(int64_t d, int64_t ndim, const char* arg);

/// @brief `dim` of the current call: None (all dims), an int or a sequence of ints, each checked
/// against a tensor of `ndim` dims (IndexError naming the call and the dim).
std::vector<int64_t> dims_arg(pybind11::handle dim, int64_t ndim, const char* arg = "dim");

/// @brief A shape given as f(2, 3), f((2, 3)) or f([2, 3]); sizes below `min_size` are a
/// ValueError (-1 is allowed where a size is inferred or kept).
dagrad::Shape shape_args(const pybind11::args& args, const char* arg, int64_t min_size, bool is_size = true);

/// @brief A tensor argument; anything else is a TypeError naming the call and `arg`.
dagrad::Tensor tensor_arg(pybind11::handle v, const char* arg);

/// @brief The last resort of operand(): a sequence or array converted by dagrad.tensor, else a
/// TypeError naming the call and its `other` argument.
dagrad::Tensor convert_operand(pybind11::handle other);

/// @brief Whether operand() can take `other` (a number, a tensor, an array or a sequence).
bool is_operand(pybind11::handle other);

/// @brief Wraps every pybind11 function of `m` and every method and property setter of the
/// Tensor class (names not starting with '_'). Call before install_fast_calls.
void install_arg_errors(pybind11::module_& m, pybind11::handle tensor_type);

}  // namespace dagrad_py
