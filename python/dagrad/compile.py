"""``dagrad.compile``: trace a whole training step once, then replay it from C++.

The first call with a given input signature runs the function once, recording every effect it
has: the scheduler runs (forward and backward, node by node), in-place writes (optimizer
state, running statistics), .grad updates and the fused optimizer kernels. Later calls copy the
new inputs into the traced input buffers and replay that record: no Python runs per op, the
schedule of each run is fixed, and every node reuses its buffer (a static memory plan).

Each input signature gets its own trace, and a trace holds every buffer of the step it
recorded. The traces of one compiled function are therefore kept in a least-recently-used
cache of at most ``cache_size_limit`` entries (8 by default, as torch.compile's
``cache_size_limit``; set it per function with ``dagrad.compile(fn, cache_size_limit=n)`` or
``step.cache_size_limit = n``, and for every function with
``dagrad.set_compile_cache_size_limit(n)``; ``None`` means no limit). Evicting a trace frees its
buffers; calling with that signature again traces it again, and the first eviction of each
function warns with a ``dagrad.RecompileWarning``, since a function that keeps meeting new
shapes pays a full trace per call. ``step.cache_info()`` counts hits, misses and evictions.

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
import collections
import functools
import threading
import warnings

import numpy as np

from . import _args, _core
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


class RecompileWarning(RuntimeWarning):
    """A compiled function traced more input signatures than its cache keeps (see
    ``dagrad.compile``): every call with a new or evicted signature traces again."""


_DEFAULT_CACHE_SIZE_LIMIT = 8
_cache_size_limit = _DEFAULT_CACHE_SIZE_LIMIT

CacheInfo = collections.namedtuple("CacheInfo", ["hits", "misses", "evictions", "size", "limit"])


def _check_limit(n, where):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{where}: cache_size_limit must be an int or None, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{where}: cache_size_limit must be at least 1 (or None for no limit), got {n}")
    return int(n)


def set_compile_cache_size_limit(n):
    """Sets how many traces every compiled function without its own limit keeps (default 8;
    ``None``: no limit). Functions over the new limit evict on their next call.

    >>> import dagrad
    >>> dagrad.set_compile_cache_size_limit(4)
    >>> dagrad.get_compile_cache_size_limit()
    4
    >>> dagrad.set_compile_cache_size_limit(8)
    """
    global _cache_size_limit
    _cache_size_limit = _check_limit(n, "set_compile_cache_size_limit")


def get_compile_cache_size_limit():
    """The number of traces a compiled function without its own limit keeps (None: no limit)."""
    return _cache_size_limit


_UNSET = object()


class CompiledFunction:
    """A function traced once per input signature (shapes, dtypes, requires_grad) and replayed
    after; the traces live in an LRU cache of ``cache_size_limit`` entries."""

    def __init__(self, fn, cache_size_limit=_UNSET):
        self.fn = fn
        # Note [Trace cache]: key -> _Trace, least recently used first. A trace owns every
        # buffer of the step it recorded (hundreds of MB for a real model), so an unbounded
        # dict grows with each new input shape; evicting drops the last reference to the
        # trace's Program and tensors, which returns their buffers.
        self.traces = collections.OrderedDict()
        self._limit = _UNSET if cache_size_limit is _UNSET else _check_limit(cache_size_limit, "compile")
        self._hits = self._misses = self._evictions = 0
        # One call at a time: a replay copies inputs into the trace's own buffers, then runs;
        # two threads interleaving those steps would mix their inputs. (Waiting here releases
        # the GIL, and nothing holds a dagrad lock across Python code.)
        self._lock = threading.RLock()
        self._warned = False
        functools.update_wrapper(self, fn)

    @property
    def cache_size_limit(self):
        """This function's trace limit (the global one unless set here; None: no limit)."""
        return _cache_size_limit if self._limit is _UNSET else self._limit

    @cache_size_limit.setter
    def cache_size_limit(self, n):
        self._limit = _check_limit(n, "compile")
        self._evict()

    def cache_info(self):
        """Hits, misses (traces made), evictions, traces held and the limit, as functools does."""
        return CacheInfo(self._hits, self._misses, self._evictions, len(self.traces), self.cache_size_limit)

    def cache_clear(self):
        """Drops every trace (and its buffers); the next call traces again."""
        self.traces.clear()

    def _evict(self, new_key=None):
        limit = self.cache_size_limit
        if limit is None:
            return
        while len(self.traces) > limit:
            old_key, _ = self.traces.popitem(last=False)
            self._evictions += 1
            if not self._warned:
                self._warned = True
                name = getattr(self.fn, "__qualname__", repr(self.fn))
                warnings.warn(
                    f"dagrad.compile: {name} has been traced for {self._misses} input signatures and its "
                    f"cache keeps {limit} (cache_size_limit), so the least recently used trace "
                    f"(inputs {_describe(old_key)}) was evicted; calling with it again traces again. "
                    "A function that meets many input shapes pays a full trace for each: pad or bucket "
                    "the shapes, or raise the limit with dagrad.compile(fn, cache_size_limit=n) or "
                    "dagrad.set_compile_cache_size_limit(n)",
                    RecompileWarning, stacklevel=4)  # _evict <- _call <- __call__ <- the caller

    def _as_tensor(self, a, i):
        if isinstance(a, Tensor):
            return a
        if isinstance(a, (list, tuple, int, float, np.generic)):
            a = np.asarray(a)  # numpy's dtypes: a Python float input is float64, as before
        return _args.tensor_like(a, f"compiled {getattr(self.fn, '__name__', 'function')}", f"args[{i}]")

    def __call__(self, *args):
        args = [self._as_tensor(a, i) for i, a in enumerate(args)]
        with self._lock:
            return self._call(args)

    def _call(self, args):
        key = tuple((tuple(a.shape), a.dtype.name, a.requires_grad) for a in args)
        tr = self.traces.get(key)
        if tr is not None and tr.program.preconditions_hold():
            self._hits += 1
            self.traces.move_to_end(key)
            for opt in list(_optimizer._live):
                opt._sync_hyper()
            for dst, src in zip(tr.inputs, args):
                _core._copy_into(dst, src)
            tr.program.replay()
        else:
            if tr is not None:  # stale: drop the old trace before making its replacement
                del self.traces[key]
                tr = None
            self._misses += 1
            tr = self._trace(args)
            self.traces[key] = tr
            self._evict()
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


def _describe(key):
    return ", ".join(f"{tuple(shape)} {dt}" + (" requires_grad" if rg else "") for shape, dt, rg in key) or "none"


def compile(fn=None, *, cache_size_limit=_UNSET):  # noqa: A001
    """Compiles a training-step function; usable as ``dagrad.compile(fn)``, ``@dagrad.compile``
    or ``@dagrad.compile(cache_size_limit=n)``.

    Parameters
    ----------
    fn : callable
        Takes tensors (or arrays) and returns tensors, or tuples, lists and dicts of them.
    cache_size_limit : int or None, optional
        How many traces (one per input signature) this function keeps, least recently used
        evicted first. Defaults to ``dagrad.get_compile_cache_size_limit()`` (8); ``None``
        keeps every trace.

    >>> import dagrad
    >>> f = dagrad.compile(lambda x: (x * 2).sum(), cache_size_limit=2)
    >>> [f(dagrad.ones(n)).item() for n in (1, 2, 1)]
    [2.0, 4.0, 2.0]
    >>> f.cache_info()
    CacheInfo(hits=1, misses=2, evictions=0, size=2, limit=2)
    """
    if fn is None:
        return functools.partial(compile, cache_size_limit=cache_size_limit)
    if not callable(fn):
        raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
    return CompiledFunction(fn, cache_size_limit)
