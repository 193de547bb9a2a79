"""``dagrad.compile``: trace a whole training step once, then replay it from C++.

The first call with a given input signature runs the function once, recording every effect it
has: the scheduler runs (forward and backward, node by node), in-place writes (optimizer
state, running statistics), .grad updates and the fused optimizer kernels. Later calls copy the
new inputs into the traced input buffers and replay that record: no Python runs per op, the
schedule of each run is fixed, and every node reuses its buffer (a static memory plan).

Like ``torch.jit.trace``, a trace records one path through the Python code: control flow that
depends on tensor values, Python-side randomness and learning-rate changes made inside the
function are frozen at trace time. Learning-rate changes made outside it (a scheduler) are
seen. Reading a value inside the traced function (``.item()``, ``.numpy()``) raises.

>>> import dagrad
>>> w = dagrad.tensor([1.0], requires_grad=True)
>>> opt = dagrad.optim.SGD([w], lr=0.1)
>>> @dagrad.compile
... def step(x):
...     opt.zero_grad()
...     loss = ((w * x) ** 2).sum()
...     loss.backward()
...     opt.step()
...     return loss
>>> round(step(dagrad.tensor([1.0])).item(), 4), round(step(dagrad.tensor([1.0])).item(), 4)
(1.0, 0.64)
"""
import functools

import numpy as np

from . import _core, _tensor
from ._core import Tensor
from .optim import optimizer as _optimizer


class _Trace:
    def __init__(self, program, inputs, outputs, structure):
        self.program = program
        self.inputs = inputs          # placeholder leaves the traced function saw
        self.outputs = outputs        # tensors it returned (computed by the program)
        self.structure = structure    # how to rebuild the return value


def _flatten_out(out, tensors):
    if isinstance(out, Tensor):
        tensors.append(out)
        return ("t", len(tensors) - 1)
    if isinstance(out, (tuple, list)):
        return ("tuple" if isinstance(out, tuple) else "list", [_flatten_out(o, tensors) for o in out])
    if isinstance(out, dict):
        return ("dict", [(k, _flatten_out(v, tensors)) for k, v in out.items()])
    return ("const", out)


def _rebuild(spec, values):
    kind, payload = spec
    if kind == "t":
        return values[payload]
    if kind == "tuple":
        return tuple(_rebuild(s, values) for s in payload)
    if kind == "list":
        return [_rebuild(s, values) for s in payload]
    if kind == "dict":
        return {k: _rebuild(s, values) for k, s in payload}
    return payload


class CompiledFunction:
    """A function traced once per input signature (shapes and dtypes) and replayed after."""

    def __init__(self, fn):
        self.fn = fn
        self.traces = {}
        functools.update_wrapper(self, fn)

    @staticmethod
    def _as_tensor(a):
        return a if isinstance(a, Tensor) else _tensor.tensor(np.asarray(a))

    def __call__(self, *args):
        args = [self._as_tensor(a) for a in args]
        key = tuple((tuple(a.shape), a.dtype.name, a.requires_grad) for a in args)
        tr = self.traces.get(key)
        if tr is not None and tr.program.preconditions_hold():
            for opt in list(_optimizer._live):
                opt._sync_hyper()
            for dst, src in zip(tr.inputs, args):
                _core._copy_into(dst, src)
            tr.program.replay()
        else:
            tr = self._trace(args)
            self.traces[key] = tr
        return _rebuild(tr.structure, [_core._clone_leaf(t) for t in tr.outputs])

    def _trace(self, args):
        program = _core.Program()
        inputs = []
        for a in args:
            p = _core._clone_leaf(a)
            if a.requires_grad:
                p.requires_grad_(True)
            inputs.append(p)
        _core._trace_begin(program)
        try:
            out = self.fn(*inputs)
            tensors = []
            structure = _flatten_out(out, tensors)
            _core.realize(tensors)
        finally:
            _core._trace_end()
        return _Trace(program, inputs, tensors, structure)


def compile(fn=None):  # noqa: A001
    """Compiles a training-step function; usable as ``dagrad.compile(fn)`` or ``@dagrad.compile``."""
    if fn is None:
        return compile
    return CompiledFunction(fn)
