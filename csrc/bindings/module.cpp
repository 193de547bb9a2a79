// The module definition: the hooks and exception types the core needs from Python, then one
// init_* per subject (bindings.h), then the wrappers that name arguments in errors and the
// fast calls, over everything defined before them.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "arg_errors.h"
#include "bindings.h"
#include "dagrad/graph.h"
#include "fast_calls.h"
#include "op_table.h"

namespace py = pybind11;
using namespace dagrad;

// Note [GIL policy]
// ~~~~~~~~~~~~~~~~~
// Recording a node is a few hundred nanoseconds of C++ and keeps the GIL (releasing and
// re-taking it would cost as much). Everything that runs kernels (realize, backward, grad,
// numpy(), in-place updates) releases the GIL for the whole run, so other Python threads
// proceed while the scheduler works. Worker threads never touch Python objects: they only
// see nodes and storage. Node teardown may happen on any thread and touches no Python.

PYBIND11_MODULE(_core, m) {
  m.doc() = "dagrad core: graph, parallel scheduler, autodiff and kernels (C++17)";

  // See Note [No thread waits for a dagrad lock holding the GIL].
  LockWaitHooks hooks;
  hooks.before_wait = []() -> void* { return PyGILState_Check() ? PyEval_SaveThread() : nullptr; };
  hooks.after_wait = [](void* state) {
    if (state) PyEval_RestoreThread(static_cast<PyThreadState*>(state));
  };
  set_lock_wait_hooks(hooks);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dagrad::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const dagrad::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const dagrad::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  dagrad_py::TensorClass tensor(m);  // Note [Tensor is a hand-written CPython type]
  dagrad_py::init_tensor(m, tensor);
  dagrad_py::OpTable ops(m, tensor);
  dagrad_py::init_ops(ops);
  dagrad_py::init_runtime(m);

  // The functions the Python package re-exports as they are (Note [The binding table]).
  m.attr("_FUNCTIONS") = py::tuple(py::cast(ops.functions()));
  // Every public binding above names itself and its argument in errors: Note [Argument errors].
  dagrad_py::install_arg_errors(m, tensor.type());
  // Last, over the definitions above: Note [Fast calls].
  dagrad_py::install_fast_calls(m, tensor.type(), ops.fast_rows());
}
