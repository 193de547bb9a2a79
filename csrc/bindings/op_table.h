// @brief The binding table: each op's Python surface declared once (Note [The binding table]).
#pragma once

#include "tensor_type.h"  // first: the Tensor caster

#include <pybind11/pybind11.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "dagrad/graph.h"

namespace dagrad_py {

// Note [The binding table]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Every op reaches Python through one row of init_ops (init_ops.cpp): its name, its C++
// function, its variants (a function dagrad.<name>, a method Tensor.<name>, or both: PyTorch's
// `variants:` in miniature) and, for a unary op, whether it takes the fast path (Note [Fast
// calls]). One row makes all of it:
//   * a function variant is defined on the module with its first parameter named `input`, and
//     its name joins _core._FUNCTIONS, which the Python package re-exports as it is
//     (dagrad/_ops.py), so no Python file repeats the name;
//   * a method variant is defined on Tensor with the same C++ function, `self` first;
//   * a fast row is not defined through pybind11 at all: its METH_O function and METH_NOARGS
//     method are made from the row when the fast calls are installed, so no pybind11
//     definition is left shadowed, dead, behind it.
// The rows hold no binding technology but the definitions' callables: a later binding layer
// (a hand-written type, nanobind) reads the same rows.
enum Variants : unsigned {
  kFunction = 1,  // dagrad.<name>(input, ...)
  kMethod = 2,    // Tensor.<name>(self, ...)
  kBoth = 3,
  kFast = 4,  // unary, direct CPython entry points (Note [Fast calls])
};

/// @brief A fast unary row: the C functions made for it (fast_calls.cpp).
struct FastRow {
  const char* name;
  unsigned variants;
  PyCFunction function;  // METH_O
  PyCFunction method;    // METH_NOARGS
};

/// @brief Fast unary entry points for F (fast_calls.cpp).
template <dagrad::Tensor (*F)(const dagrad::Tensor&)>
FastRow fast_row(const char* name, unsigned variants);

class OpTable {
 public:
  OpTable(pybind11::module_& m, TensorClass& cls) : m_(m), cls_(cls) {}

  /// @brief A row: `f` (its first parameter the tensor) as the variants asked for. `extra` are
  /// pybind11 annotations of every parameter after the tensor (py::arg("dim") = ..., ...), or
  /// none.
  template <class F, class... Extra>
  OpTable& def(const char* name, unsigned variants, F&& f, const Extra&... extra) {
    if (variants & kFunction) {
      // Parameters are named all or none (pybind11's rule); unnamed ones read as argN in
      // errors until dagrad/_args.py's table names them.
      if constexpr (sizeof...(Extra) > 0)
        m_.def(name, f, pybind11::arg("input"), extra...);
      else
        m_.def(name, f);
      functions_.emplace_back(name);
    }
    if (variants & kMethod) cls_.def(name, f, extra...);
    return *this;
  }

  /// @brief An internal helper of the Python package (a name starting with '_', or one the
  /// package wraps): defined on the module only, not re-exported.
  template <class F, class... Extra>
  OpTable& internal(const char* name, F&& f, const Extra&... extra) {
    m_.def(name, f, extra...);
    return *this;
  }

  /// @brief A unary row; with kFast it takes the direct path.
  template <dagrad::Tensor (*F)(const dagrad::Tensor&)>
  OpTable& unary(const char* name, unsigned variants) {
    if (variants & kFast) {
      fast_.push_back(fast_row<F>(name, variants));
      if (variants & kFunction) functions_.emplace_back(name);
      return *this;
    }
    auto f = [](const dagrad::Tensor& x) { return F(x); };
    if (variants & kFunction) {
      m_.def(name, f, pybind11::arg("input"));
      functions_.emplace_back(name);
    }
    if (variants & kMethod) cls_.def(name, f);
    return *this;
  }

  const std::vector<FastRow>& fast_rows() const { return fast_; }
  const std::vector<std::string>& functions() const { return functions_; }

 private:
  pybind11::module_& m_;
  TensorClass& cls_;
  std::vector<FastRow> fast_;
  std::vector<std::string> functions_;
};

}  // namespace dagrad_py
