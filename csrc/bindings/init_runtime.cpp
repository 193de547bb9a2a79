// Running, differentiating, threads, optimizers, compile and the profiler.
#include <pybind11/stl.h>

#include <omp.h>

#include <optional>

#include "bindings.h"
#include "dagrad/autodiff.h"
#include "dagrad/kernels/gemm.h"
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
    return d;
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
    py::list out;
    for (const TraceEvent& e : profiler::take_events()) {
      py::dict d;
      d["node"] = e.node_id;
      d["op"] = op_name(e.op);
      d["thread"] = e.thread;
      d["start_ns"] = e.start_ns;
      d["end_ns"] = e.end_ns;
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
    d["compiler"] = __VERSION__;
    d["omp_max_threads"] = omp_get_max_threads();
    return d;
  });
}

}  // namespace dagrad_py
