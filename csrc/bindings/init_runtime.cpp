// Running, differentiating, threads, optimizers, compile and the profiler.
#include <pybind11/stl.h>

#include <omp.h>

#include <cstring>
#include <optional>

#include "bindings.h"
#include "dagrad/autodiff.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/ops.h"
#include "dagrad/optim.h"
#include "dagrad/profiler.h"
#include "dagrad/runtime.h"
#include "dagrad/scheduler.h"
#include "dagrad/trace.h"

namespace py = pybind11;
using namespace dagrad;

namespace dagrad_py {

void init_runtime(py::module_& m) {
  // running and differentiating
  m.def("realize", &realize_nogil);
  m.def("backward", [](const std::vector<Tensor>& roots, const std::vector<std::optional<Tensor>>& grads, bool retain,
                       bool create) {
    std::vector<Tensor> g;
    for (auto& x : grads) g.push_back(x ? *x : Tensor());
    py::gil_scoped_release release;
    backward(roots, g, retain, create);
  });
  m.def("grad", [](const std::vector<Tensor>& outs, const std::vector<Tensor>& ins,
                   const std::vector<std::optional<Tensor>>& gouts, bool retain, bool create, bool allow_unused) {
    std::vector<Tensor> g;
    for (auto& x : gouts) g.push_back(x ? *x : Tensor());
    std::vector<Tensor> r;
    {
      py::gil_scoped_release release;
      r = grad(outs, ins, g, retain, create, allow_unused);
    }
    py::list out;
    for (auto& t : r) out.append(t.defined() ? py::cast(t) : py::none());
    return out;
  });
  m.def("is_grad_enabled", &GradMode::is_enabled);
  m.def("set_grad_enabled", &GradMode::set_enabled);
  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("max_threads", &max_threads);
  m.def("last_run_stats", [] {
    RunStats s = last_run_stats();
    py::dict d;
    d["nodes"] = s.nodes;
    d["threads_used"] = s.threads_used;
    d["parallel"] = s.parallel;
    d["fused"] = s.fused;
    d["peak_bytes"] = s.peak_bytes;
    return d;
  });
  m.def("_set_schedule", [](const std::string& mode) {
    if (mode == "auto")
      set_schedule(Schedule::Auto);
    else if (mode == "parallel")
      set_schedule(Schedule::Parallel);
    else if (mode == "serial")
      set_schedule(Schedule::Serial);
    else
      throw ValueError("set_schedule(): argument 'mode' must be 'auto', 'parallel' or 'serial', got '" + mode + "'");
  });
  m.def("_get_schedule", [] {
    switch (get_schedule()) {
      case Schedule::Parallel: return "parallel";
      case Schedule::Serial: return "serial";
      case Schedule::Auto: break;
    }
    return "auto";
  });
  m.def("_gradient_graph", [](const std::vector<Tensor>& roots) {
    py::gil_scoped_release release;
    return gradient_graph(roots);
  });
  m.def("_remove_hook", &remove_grad_hook);
  // Note [Anomaly mode]: where an op is recorded, from the Python frame that called it (the
  // first frame outside the dagrad package). Called only while recording, with the GIL held.
  set_site_fn([]() -> std::string {
    if (!PyGILState_Check()) return "";
    PyFrameObject* f = PyEval_GetFrame();  // borrowed
    Py_XINCREF(f);
    std::string site;
    while (f) {
      PyCodeObject* code = PyFrame_GetCode(f);  // new reference
      const char* file = PyUnicode_AsUTF8(code->co_filename);
      const bool inside = file && (std::strstr(file, "/dagrad/") || std::strstr(file, "\\dagrad\\"));
      if (file && !inside) site = std::string(file) + ":" + std::to_string(PyFrame_GetLineNumber(f));
      Py_DECREF(code);
      if (!site.empty()) break;
      PyFrameObject* back = PyFrame_GetBack(f);  // new reference
      Py_DECREF(f);
      f = back;
    }
    Py_XDECREF(f);
    if (PyErr_Occurred()) PyErr_Clear();
    return site;
  });
  m.def("_set_detect_anomaly", &set_detect_anomaly);
  m.def("_is_anomaly_enabled", &anomaly_enabled);
  // Note [Python ops hold the GIL only around their call]
  // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  // dagrad.autograd.Function: a node whose value the Python forward computed (at apply, as in
  // PyTorch) and whose backward rule calls the Python backward. Autodiff runs with the GIL
  // released (Note [GIL policy]) and takes it around that call only; the callable is released
  // under the GIL wherever the node dies, as a hook's is (Note [Gradient hooks from Python]).
  // Its gradients are checked like every rule's (Note [Backward rules are checked]).
  m.def("_function_node",
        [](const std::string& name, const std::vector<Tensor>& inputs, const Tensor& value, py::function backward) {
          {
            py::gil_scoped_release release;
            realize({value});
          }
          std::shared_ptr<py::function> holder = gil_safe_holder(std::move(backward));
          auto op = std::make_shared<CustomOp>();
          op->name = name;
          op->cost = 1.0;
          StoragePtr storage = value->storage;
          op->forward = [storage](Node& out) { out.storage = storage; };
          const size_t n_inputs = inputs.size();
          op->backward = [holder, name, n_inputs](const Tensor&, const Tensor& grad,
                                                  const std::vector<bool>& needs) -> std::vector<Tensor> {
            py::gil_scoped_acquire gil;
            py::list need;
            for (bool b : needs) need.append(b);
            py::object r = (*holder)(grad, need);
            std::vector<Tensor> out;
            for (py::handle h : r) out.push_back(h.is_none() ? Tensor() : h.cast<Tensor>());
            if (out.size() != n_inputs)
              throw RuntimeError("function " + name + ": internal: backward gave " + std::to_string(out.size()) +
                                 " gradients for " + std::to_string(n_inputs) + " inputs");
            return out;
          };
          Tensor t = custom(op, inputs, value.shape(), value.dtype());
          t->storage = storage;  // computed already: a leaf-like value with a backward
          t->base_version = storage->version.load(std::memory_order_relaxed);
          return t;
        });
  // Note [Python nodes run Python while the graph runs]
  // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  // _py_node records a node (no backward) whose value a Python function computes when the
  // scheduler runs it, on whichever worker it lands: fn(out, *inputs) gets zero-copy numpy views,
  // the inputs read-only and out writable (its own fresh buffer). The worker takes the GIL around
  // the call only (Note [Python ops hold the GIL only around their call]); nothing else in the run
  // waits for it except the node's children. A compiled step replays it like any node, calling fn
  // again. A Python exception becomes a RuntimeError naming the node (the run's first error wins).
  // dagrad.distributed reduces gradient buckets in such nodes (Note [Gradient buckets are graph nodes]).
  m.def("_py_node", [](const std::string& name, const std::vector<Tensor>& inputs, const std::vector<int64_t>& shape,
                       DType dtype, py::function fn, double cost) {
    std::shared_ptr<py::function> holder = gil_safe_holder(std::move(fn));
    auto op = std::make_shared<CustomOp>();
    op->name = name;
    op->cost = cost;
    op->forward = [holder, name](Node& out) {
      alloc_output(out);
      py::gil_scoped_acquire gil;
      try {
        py::list args;
        args.append(node_array(out, true));
        for (const Edge& e : out.inputs) args.append(node_array(*e.node, false));
        (*holder)(*py::tuple(args));
      } catch (py::error_already_set& e) {
        throw RuntimeError(name + ": " + e.what());
      }
    };
    return custom(op, inputs, Shape(shape.begin(), shape.end()), dtype);
  });
  // Note [Group gradient hooks] (autodiff.cpp); the callable is released under the GIL, as a
  // hook's is (Note [Gradient hooks from Python]), and called with it.
  m.def("_add_group_grad_hook", [](const std::vector<Tensor>& leaves, py::function fn) {
    std::shared_ptr<py::function> holder = gil_safe_holder(std::move(fn));
    return add_group_grad_hook(leaves, [holder](const std::vector<Tensor>& grads) -> std::vector<Tensor> {
      py::gil_scoped_acquire gil;
      py::list in;
      for (const Tensor& t : grads) in.append(t.defined() ? py::cast(t) : py::none());
      py::object r = (*holder)(in);
      std::vector<Tensor> out;
      if (r.is_none()) return out;
      for (py::handle h : r) {
        if (!h.is_none() && !tensor_type::is_tensor(h.ptr()))
          throw TypeError("group gradient hook: must return Tensors or None, not " +
                          std::string(py::str(h.get_type())));
        out.push_back(h.is_none() ? Tensor() : h.cast<Tensor>());
      }
      return out;
    });
  });
  m.def("_remove_group_grad_hook", &remove_group_grad_hook);
  m.def("_memory_stats", [] {
    MemoryStats st = memory_stats();
    py::dict d;
    d["live_bytes"] = st.live_bytes;
    d["cached_bytes"] = st.cached_bytes;
    d["peak_bytes"] = st.peak_bytes;
    d["allocations"] = st.allocations;
    d["frees"] = st.frees;
    d["pool_hits"] = st.pool_hits;
    return d;
  });
  m.def("_reset_peak_memory_stats", &reset_peak_memory_stats);
  m.def("_empty_cache", [] {
    py::gil_scoped_release release;
    release_pooled_buffers();
  });
  m.def("_set_fusion_enabled", &set_fusion_enabled);
  m.def("_fusion_enabled", &fusion_enabled);

  // optimizers
  py::class_<OptimHyper, std::shared_ptr<OptimHyper>>(m, "OptimHyper")
      .def(py::init<>())
      .def_readwrite("lr", &OptimHyper::lr)
      .def_readwrite("momentum", &OptimHyper::momentum)
      .def_readwrite("dampening", &OptimHyper::dampening)
      .def_readwrite("weight_decay", &OptimHyper::weight_decay)
      .def_readwrite("beta1", &OptimHyper::beta1)
      .def_readwrite("beta2", &OptimHyper::beta2)
      .def_readwrite("eps", &OptimHyper::eps)
      .def_readwrite("alpha", &OptimHyper::alpha)
      .def_readwrite("lr_decay", &OptimHyper::lr_decay)
      .def_readwrite("nesterov", &OptimHyper::nesterov)
      .def_readwrite("amsgrad", &OptimHyper::amsgrad)
      .def_readwrite("centered", &OptimHyper::centered)
      .def_readwrite("maximize", &OptimHyper::maximize)
      .def_readwrite("decoupled", &OptimHyper::decoupled);
  py::enum_<OptimKind>(m, "OptimKind")
      .value("SGD", OptimKind::SGD)
      .value("Adam", OptimKind::Adam)
      .value("RMSprop", OptimKind::RMSprop)
      .value("Adagrad", OptimKind::Adagrad);
  m.def("optim_step", [](OptimKind kind, const Tensor& p, const Tensor& g, const std::vector<std::optional<Tensor>>& st,
                         const std::shared_ptr<OptimHyper>& h) {
    std::vector<Tensor> state;
    for (auto& t : st) state.push_back(t ? *t : Tensor());
    py::gil_scoped_release release;
    optim_step_now(kind, p, g, state, h);
  });

  // compile: tracing and replay
  py::class_<Program, std::shared_ptr<Program>>(m, "Program")
      .def(py::init<>())
      .def("preconditions_hold", &Program::preconditions_hold)
      .def("replay",
           [](Program& p) {
             py::gil_scoped_release release;
             p.replay();
           })
      .def("_schedule",
           [](const Program& p) {
             py::list out;
             for (const Program::Step& st : p.schedule()) {
               py::dict d;
               d["kind"] = st.kind;
               py::list nodes;
               for (const NodePtr& n : st.nodes) nodes.append(py::cast(Tensor(n)));
               d["nodes"] = nodes;
               out.append(d);
             }
             return out;
           })
      .def_property_readonly("num_events", &Program::num_events)
      .def_property_readonly("num_nodes", &Program::num_nodes);
  // No lock is held across the traced function: Note [Tracing belongs to the tracing thread].
  m.def("_trace_begin", &trace::begin);
  m.def("_trace_end", &trace::end);
  m.def("is_tracing", &trace::active);
  m.def("_copy_into", [](const Tensor& dst, const Tensor& src) {
    py::gil_scoped_release release;
    copy_into(dst, src);
  });
  m.def("_clone_leaf", [](const Tensor& t) {
    py::gil_scoped_release release;
    return clone_leaf(t);
  });

  // profiler
  m.def("_profiler_set_enabled", &profiler::set_enabled);
  m.def("_profiler_take_events", [] {
    std::vector<TraceEvent> events;
    {
      py::gil_scoped_release release;
      events = profiler::take_events();
    }
    py::list out;
    for (const TraceEvent& e : events) {
      py::dict d;
      d["node"] = e.node_id;
      d["op"] = op_name(e.op);
      d["thread"] = e.thread;
      d["start_ns"] = e.start_ns;
      d["end_ns"] = e.end_ns;
      d["pass"] = e.backward ? "backward" : "forward";
      d["shape"] = py::tuple(py::cast(e.shape));
      d["dtype"] = dtype_name(e.dtype);
      d["inputs"] = py::cast(e.inputs);
      py::list fused;
      for (const auto& [id, op] : e.fused) {
        py::dict m;
        m["node"] = id;
        m["op"] = op_name(op);
        fused.append(m);
      }
      d["fused"] = fused;
      d["ready"] = e.ready;
      d["run"] = e.run;
      out.append(d);
    }
    return out;
  });
  m.def("_config", [] {
    py::dict d;
#ifdef _OPENMP
    d["openmp"] = _OPENMP;
#else
    d["openmp"] = py::none();
#endif
    d["blas"] = kernels::gemm_backend();
#if defined(_MSC_VER) && !defined(__clang__)
    d["compiler"] = "MSVC " + std::to_string(_MSC_FULL_VER);
#else
    d["compiler"] = __VERSION__;
#endif
    d["version"] = DAGRAD_VERSION;
    d["omp_max_threads"] = omp_get_max_threads();
    return d;
  });
}

}  // namespace dagrad_py
