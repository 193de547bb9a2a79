// @brief What the binding files share: conversions of Python values, the GIL-releasing
// realize, and the init_* functions the module definition (module.cpp) calls, one per subject.
#pragma once

#include "tensor_type.h"  // first: the Tensor caster

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <vector>

#include "dagrad/graph.h"

namespace dagrad_py {

// ---- the subjects: module.cpp calls each once, in this order ----------------------------------

class OpTable;

/// @brief dtype and the Tensor class: properties, values, operators, in-place updates, creation.
void init_tensor(pybind11::module_& m, TensorClass& cls);
/// @brief Every op, from the binding table (Note [The binding table]).
void init_ops(OpTable& table);
/// @brief Running, differentiating, threads, optimizers, compile and the profiler.
void init_runtime(pybind11::module_& m);

// ---- conversions --------------------------------------------------------------------------------

/// @brief A Python number (bool, int, float, or a numpy scalar of those kinds) as an exact
/// dagrad::Scalar; nullopt for anything else. ValueError for an int beyond int64.
std::optional<dagrad::Scalar> as_scalar(const pybind11::handle& h, bool throw_on_overflow = true);

/// @brief A Python operand next to a tensor, as a tensor (PyTorch's weak scalars).
dagrad::Tensor operand(const pybind11::handle& other, const dagrad::Tensor& like);

/// @brief A numpy view of a computed node's buffer (no copy); the array keeps the buffer alive.
/// Read-only unless `writable` (for a node's own output while its forward runs).
pybind11::array node_array(const dagrad::Node& n, bool writable);

/// @brief realize() with the GIL released (Note [GIL policy]).
void realize_nogil(const std::vector<dagrad::Tensor>& ts);

/// A Python callable the core may drop on any thread (a hook, a node's function): released
/// under the GIL wherever its last owner dies, and left alone at interpreter exit (Note
/// [Gradient hooks from Python]). Call it with the GIL held.
std::shared_ptr<pybind11::function> gil_safe_holder(pybind11::function fn);

/// @brief RuntimeError for reading a value inside a function being traced by dagrad.compile
/// (Note [Reading values while tracing]).
void check_not_tracing(const char* what);

}  // namespace dagrad_py

// Python numbers convert to dagrad::Scalar exactly wherever a binding takes one.
namespace pybind11::detail {
template <>
struct type_caster<dagrad::Scalar> {
  PYBIND11_TYPE_CASTER(dagrad::Scalar, const_name("number"));
  bool load(handle src, bool) {
    // An int beyond int64 does not fit: the call's argument errors name it (Note [Argument errors]).
    std::optional<dagrad::Scalar> s = dagrad_py::as_scalar(src, /*throw_on_overflow=*/false);
    if (!s) return false;
    value = *s;
    return true;
  }
  static handle cast(const dagrad::Scalar& s, return_value_policy, handle) {
    switch (s.kind()) {
      case dagrad::Scalar::Kind::Bool: return pybind11::bool_(s.as<bool>()).release();
      case dagrad::Scalar::Kind::Int: return pybind11::int_(s.as<int64_t>()).release();
      case dagrad::Scalar::Kind::Float: break;
    }
    return pybind11::float_(s.to_double()).release();
  }
};
}  // namespace pybind11::detail
