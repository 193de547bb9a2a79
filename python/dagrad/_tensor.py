"""The Python side of Tensor: its methods beside the C++ ones, the module-level op functions,
realize and the thread budget."""
import builtins
import functools

import numpy as np

from . import _args, _core
from ._core import Tensor
from ._creation import full, tensor
from ._dtype import bool, float32, int64  # noqa: A004  (PyTorch's name)

# The op functions of the package: those defined below, and those the core binds as they are
# (its binding table's function rows, _core._FUNCTIONS; Note [The binding table]).
__all__ = (
    "device", "realize", "set_num_threads", "get_num_threads", "show_config", "last_run_stats",
    "set_schedule", "get_schedule", "schedule", "memory_stats", "reset_peak_memory_stats", "empty_cache",
    "add", "sub", "mul", "div", "pow", "matmul", "sum", "mean", "reshape", "transpose", "permute",
    "where", "maximum", "minimum", "max", "min", "var", "std", "softmax", "log_softmax",
    "cat", "concat", "stack", "split", "chunk", "gather", "broadcast_to", "eq", "ne", "lt", "le", "gt", "ge",
) + tuple(_core._FUNCTIONS)


def realize(*tensors):
    """Computes every pending value the tensors need, in one parallel run.

    >>> a, b = dagrad.ones(2) * 2, dagrad.ones(2) * 3
    >>> dagrad.realize(a, b)
    """
    for t in tensors:
        _args.tensor(t, "realize", "tensors")
    _core.realize(list(tensors))


# ----------------------------------------------------------------------------- threads

def set_num_threads(n):
    """Sets the thread budget of the scheduler and kernels (see Note [Thread budget]).

    At most ``max(64, cores)`` (Note [Thread cap]); a larger or non-positive count raises
    ValueError, as does the same value in ``DAGRAD_NUM_THREADS``.
    """
    _core.set_num_threads(_args.integer(n, "set_num_threads", "n", allow_bool=False))


def last_run_stats():
    """What the last scheduler run did: ``nodes`` computed, ``threads_used``, whether it ran
    on the worker pool (``parallel``), how many nodes ran inside a fused group (``fused``), and
    ``peak_bytes``, the most bytes of tensor buffers alive at once during it.

    >>> dagrad.realize(dagrad.ones(4) * 2)
    >>> dagrad.last_run_stats()["nodes"]
    1
    """
    return _core.last_run_stats()


def memory_stats():
    """dagrad's tensor memory: ``live_bytes`` (buffers of live tensors), ``cached_bytes`` (freed
    buffers the pool keeps for reuse), ``peak_bytes`` (the most live at once since
    ``reset_peak_memory_stats``), and the counts ``allocations``, ``frees`` and ``pool_hits``
    (allocations served from the pool). Values of 32 bytes or less live inside their node and
    are not counted. The pool never keeps more than max(32 MiB, the live bytes).

    >>> x = dagrad.ones(1 << 20)
    >>> dagrad.memory_stats()["live_bytes"] >= 4 << 20
    True
    """
    return _core._memory_stats()


def reset_peak_memory_stats():
    """Starts ``memory_stats()["peak_bytes"]`` again from the bytes live now."""
    _core._reset_peak_memory_stats()


def empty_cache():
    """Returns every buffer the pool keeps for reuse to the system (tensors are untouched)."""
    _core._empty_cache()


def set_schedule(mode):
    """How runs use the worker pool: ``"auto"`` (the default) decides by cost; ``"parallel"``
    sends every run with independent nodes to the pool (to see branches run side by side);
    ``"serial"`` keeps every run on the calling thread. Results are the same bits in each.
    """
    _core._set_schedule(_args.choice(mode, "set_schedule", "mode", ("auto", "parallel", "serial")))


def get_schedule():
    """The current schedule: ``"auto"``, ``"parallel"`` or ``"serial"``."""
    return _core._get_schedule()


class schedule:
    """``with dagrad.schedule("parallel"):`` sets the schedule inside the block and restores
    the previous one after it (see ``set_schedule``).

    >>> with dagrad.schedule("serial"):
    ...     dagrad.get_schedule()
    'serial'
    >>> dagrad.get_schedule()
    'auto'
    """

    def __init__(self, mode):
        self._mode = _args.choice(mode, "schedule", "mode", ("auto", "parallel", "serial"))
        self._prev = None

    def __enter__(self):
        self._prev = _core._get_schedule()
        _core._set_schedule(self._mode)
        return self

    def __exit__(self, *exc):
        _core._set_schedule(self._prev)


def get_num_threads():
    """The thread budget; defaults to $DAGRAD_NUM_THREADS or the number of cores."""
    return _core.get_num_threads()


def show_config():
    """Prints the version, thread budget, OpenMP and BLAS in use."""
    import os

    from . import __version__
    cfg = _core._config()
    # The compiled core carries the version it was built from; a stale build says so.
    stale = "" if cfg["version"] == __version__ else f" (compiled core: {cfg['version']})"
    lines = [
        f"dagrad {__version__}{stale}",
        f"  location:  {os.path.dirname(os.path.abspath(_core.__file__))}",
        f"  threads:   {get_num_threads()} (DAGRAD_NUM_THREADS={os.environ.get('DAGRAD_NUM_THREADS', 'unset')})",
        f"  OpenMP:    {cfg['openmp']} (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})",
        f"  BLAS:      {cfg['blas']}",
        f"  compiler:  {cfg['compiler']}",
        f"  numpy:     {np.__version__}",
    ]
    print("\n".join(lines))


# ----------------------------------------------------------------------------- functions

def _binary(name):
    f = getattr(_core, name)

    @functools.wraps(f)
    def op(input, other):
        return f(_args.tensor_like(input, name, "input"), other)
    op.__name__ = name
    return op


add, sub, mul, div = (_binary(n) for n in ("add", "sub", "mul", "div"))

# The functions the core binds as they are (one row each in its binding table,
# csrc/bindings/init_ops.cpp): dagrad.tanh is the core's tanh, Tensor.tanh its method.
for _name in _core._FUNCTIONS:
    globals()[_name] = getattr(_core, _name)
del _name


def pow(input, exponent):  # noqa: A001
    """``input ** exponent`` for a Python-number exponent."""
    _args.tensor(input, "pow")
    _args.number(exponent, "pow", "exponent")
    return input ** exponent


def matmul(input, other):
    """Matrix product with numpy's rules for 1-d operands and batch broadcasting.

    >>> dagrad.matmul(dagrad.ones(2, 3), dagrad.ones(3, 4)).shape
    (2, 4)
    """
    return _args.tensor_like(input, "matmul", "input") @ _args.tensor_like(other, "matmul", "other")


def sum(input, dim=None, keepdim=False):  # noqa: A001
    return _args.tensor(input, "sum").sum(dim=dim, keepdim=keepdim)


def mean(input, dim=None, keepdim=False):
    return _args.tensor(input, "mean").mean(dim=dim, keepdim=keepdim)


def reshape(input, shape):
    return _args.tensor(input, "reshape").reshape(shape)


def transpose(input, dim0, dim1):
    return _args.tensor(input, "transpose").transpose(dim0, dim1)


def permute(input, dims):
    return _args.tensor(input, "permute").permute(dims)


# ----------------------------------------------------------------------------- Tensor methods

def _repr(self):
    arr = self.numpy()
    body = np.array2string(arr, separator=", ", prefix="tensor(",
                           threshold=1000, edgeitems=3)
    extra = []
    if self.dtype not in (float32, int64, bool) or (arr.size == 0 and self.dtype != float32):
        extra.append(f"dtype={self.dtype!r}")
    if self.grad_fn is not None:
        extra.append(f"grad_fn=<{self.grad_fn.name()}>")
    elif self.requires_grad:
        extra.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extra) + ")"


class _GradFn:
    """What made a non-leaf tensor (PyTorch's grad_fn): its op's backward, and through
    ``next_functions`` the grad_fns of its inputs, so the graph can be followed back.

    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> z = x * 3.0 + 1.0
    >>> z.grad_fn
    <AddBackward>
    >>> z.grad_fn.next_functions
    ((<MulBackward>, 0), (None, 0))
    >>> z.grad_fn.next_functions[0][0].next_functions
    ((<AccumulateGrad>, 0), (None, 0))
    """

    __slots__ = ("_tensor",)

    def __init__(self, tensor):
        self._tensor = tensor

    def name(self):
        op = self._tensor._op
        if not op.islower():  # a user-defined op (autograd.Function) keeps its class's name
            return op + "Backward"
        return "".join(p.capitalize() for p in op.split("_")) + "Backward"

    @property
    def next_functions(self):
        """One ``(fn, 0)`` per input: its grad_fn, an ``AccumulateGrad`` for a leaf that
        requires grad, or ``None`` for one that does not (PyTorch's convention)."""
        out = []
        for t in self._tensor._inputs:
            if t.requires_grad and t.is_leaf:
                out.append((_AccumulateGrad(t), 0))
            elif t.requires_grad:
                out.append((_GradFn(t), 0))
            else:
                out.append((None, 0))
        return tuple(out)

    def __repr__(self):
        return f"<{self.name()}>"


class _AccumulateGrad:
    """The end of a backward path: accumulates into ``variable.grad`` (PyTorch's node)."""

    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad>"


def _grad_fn(self):
    if self.is_leaf:
        return None
    return _GradFn(self)


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook off again (idempotent).
    Also a context manager that removes the hook on exit."""

    __slots__ = ("_id",)

    def __init__(self, hook_id):
        self._id = hook_id

    def remove(self):
        if self._id is not None:
            _core._remove_hook(self._id)
            self._id = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _register_hook(self, hook):
    # Note [Gradient hooks] (autodiff.cpp) and Note [Gradient hooks from Python] (init_tensor.cpp).
    """Calls ``hook(grad)`` when the gradient of this tensor has been computed in a backward
    pass; a tensor it returns replaces the gradient (PyTorch's Tensor.register_hook). Returns a
    handle whose ``remove()`` unregisters it.

    Unlike PyTorch, the garbage collector does not see a hook from its tensor: a hook that
    refers back to the tensor or to a Module holding it (``lambda g: g * self.scale``) keeps
    both alive until the hook is removed. Refer to them through ``weakref`` in such a hook.

    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> y = x * 3.0
    >>> h = y.register_hook(lambda g: g * 10)
    >>> (y + 1.0).backward()
    >>> x.grad.item()
    30.0
    """
    if not callable(hook):
        raise TypeError(f"register_hook(): argument 'hook' must be callable, not {_args.type_name(hook)}")
    return RemovableHandle(self._register_hook(hook))


def _backward(self, gradient=None, retain_graph=None, create_graph=False):
    """Accumulates the gradient of this tensor into ``.grad`` of every leaf that requires it.

    Parameters
    ----------
    gradient : Tensor, optional
        d(loss)/d(self); may be omitted only for a tensor with one element.
    retain_graph : bool, optional
        Keep the graph for another backward (defaults to ``create_graph``).
    create_graph : bool
        Record the gradient computation too, for higher derivatives.

    >>> x = dagrad.tensor(3.0, requires_grad=True)
    >>> (x * x).backward()
    >>> x.grad.item()
    6.0
    """
    if gradient is not None and not isinstance(gradient, (Tensor, int, float, np.number)):
        raise TypeError(f"backward(): argument 'gradient' must be a Tensor, a number or None, "
                        f"not {_args.type_name(gradient)}")
    create_graph = _args.boolean(create_graph, "backward", "create_graph")
    retain_graph = create_graph if retain_graph is None else _args.boolean(retain_graph, "backward", "retain_graph")
    self._backward(gradient, retain_graph, create_graph)


def _tolist(self):
    return self.numpy().tolist()


def _array(self, dtype=None, copy=None):
    a = self.numpy()
    if dtype is not None:
        a = a.astype(dtype)
    elif copy:
        a = a.copy()
    return a


def _len(self):
    if self.ndim == 0:
        raise TypeError("len() of a 0-d tensor")
    return self.shape[0]


def _size_method(self, dim=None):
    if dim is None:
        return self.shape
    if self.ndim == 0:  # PyTorch: a 0-d tensor has no dim to ask the size of
        raise IndexError(f"size(): argument 'dim' is out of range: dimension {dim} of a tensor of 0 dimensions")
    return self.shape[_args.dim(dim, "size", self.ndim)]


def _scalar_conv(kind):
    def conv(self):
        if self.numel() != 1:
            raise (TypeError if kind is not builtins.bool else RuntimeError)(
                f"only one-element tensors can be converted to Python scalars (shape {self.shape})")
        return kind(self.item())
    return conv


Tensor.__repr__ = _repr
Tensor.__str__ = _repr
Tensor.grad_fn = property(_grad_fn)
Tensor.register_hook = _register_hook
Tensor.backward = _backward
Tensor.tolist = _tolist
Tensor.__array__ = _array
Tensor.__array_ufunc__ = None  # numpy defers to Tensor's reflected operators
Tensor.__array_priority__ = 1000
Tensor.__len__ = _len
Tensor.size = _size_method
Tensor.__float__ = _scalar_conv(builtins.float)
Tensor.__int__ = _scalar_conv(builtins.int)
Tensor.__bool__ = _scalar_conv(builtins.bool)
Tensor.__hash__ = object.__hash__


# ----------------------------------------------------------------------------- more ops

import collections as _collections  # noqa: E402

from . import _indexing  # noqa: E402

_MinMax = _collections.namedtuple("_MinMax", ["values", "indices"])


def _max(self, dim=None, keepdim=False):
    """Without dim: the maximum (gradient shared among ties). With dim: (values, indices),
    the gradient going to the first maximum."""
    if isinstance(dim, Tensor):
        return maximum(self, dim)
    keepdim = _args.boolean(keepdim, "max", "keepdim")
    if dim is None:
        return self.amax()
    return _MinMax(*_core.max_dim(self, _args.dim(dim, "max", self.ndim), keepdim))


def _min(self, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(self, dim)
    keepdim = _args.boolean(keepdim, "min", "keepdim")
    if dim is None:
        return self.amin()
    return _MinMax(*_core.min_dim(self, _args.dim(dim, "min", self.ndim), keepdim))


def _correction(unbiased, correction, fn):
    if correction is not None:
        return _args.number(correction, fn, "correction")
    if unbiased is None:
        return 1.0
    return 1.0 if _args.boolean(unbiased, fn, "unbiased") else 0.0


def _var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, builtins.bool):  # var(False): the positional 'unbiased' of old PyTorch
        dim, unbiased = None, dim
    return _core.var(self, _args.dims(dim, "var", self.ndim), _correction(unbiased, correction, "var"),
                     _args.boolean(keepdim, "var", "keepdim"))


def _std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, builtins.bool):
        dim, unbiased = None, dim
    return _core.std(self, _args.dims(dim, "std", self.ndim), _correction(unbiased, correction, "std"),
                     _args.boolean(keepdim, "std", "keepdim"))


def _no_dim(self, fn):
    # PyTorch refuses to split or chunk a 0-d tensor; IndexError, as for every dim of a 0-d
    # tensor an op cannot take (issue #15), and never a call into the op with an empty shape.
    if self.ndim == 0:
        raise IndexError(f"{fn}(): expects at least a 1-dimensional tensor, got a 0-d tensor")


def _split(self, split_size_or_sections, dim=0, _arg="split_size"):
    _no_dim(self, "split")
    dim = _args.dim(dim, "split", self.ndim)
    n = self.shape[dim]
    if _args._is_int(split_size_or_sections):
        s = _args.integer(split_size_or_sections, "split", _arg)
        if s <= 0:
            raise ValueError(f"split(): argument '{_arg}' must be positive, got {s}")
        sizes = [builtins.min(s, n - i) for i in range(0, n, s)] or [0]
    elif isinstance(split_size_or_sections, (list, tuple)):
        sizes = _args.int_list(split_size_or_sections, "split", _arg)
    else:
        raise TypeError(f"split(): argument '{_arg}' must be an int or a sequence of ints, "
                        f"not {_args.type_name(split_size_or_sections)}")
    return tuple(_core.split(self, sizes, dim))


def _chunk(self, chunks, dim=0):
    _no_dim(self, "chunk")
    return tuple(_core.chunk(self, _args.integer(chunks, "chunk", "chunks"), _args.dim(dim, "chunk", self.ndim)))


Tensor.__getitem__ = _indexing.getitem
Tensor.__setitem__ = _indexing.setitem
Tensor.max = _max
Tensor.min = _min
Tensor.var = _var
Tensor.std = _std
Tensor.split = _split
Tensor.chunk = _chunk


def _t(x):
    return x if isinstance(x, Tensor) else tensor(x)


_cast = Tensor.to  # the C++ binding: cast to a dagrad dtype


def _to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
    """A tensor of another dtype, with PyTorch's forms: ``to(dtype)``, ``to(other)`` (other's
    dtype), ``to(device)`` and ``to(device, dtype)``. dagrad runs on the CPU, so the only
    device is ``"cpu"``; ``copy=True`` returns a new tensor even when nothing changes.

    >>> dagrad.ones(2).to(dagrad.float64).dtype
    dagrad.float64
    """
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments ({len(args)} given)")
    for a in args:
        if isinstance(a, Tensor):
            if dtype is not None:
                raise TypeError("to(): got a tensor and a dtype; pass one of them")
            dtype = a.dtype
        elif isinstance(a, str) or _is_device(a):
            device = a
        elif dtype is None:
            dtype = a
        else:
            raise TypeError(f"to(): argument 'dtype' given twice ({dtype!r} and {a!r})")
    if device is not None and str(device) != "cpu":
        # What PyTorch raises for to('float64'), which it reads as a device string.
        raise RuntimeError(f"to(): invalid device {device!r}: dagrad runs on the CPU only ('cpu'); for a dtype "
                           f"pass a dtype such as dagrad.float64, not a string")
    _args.boolean(copy, "to", "copy")
    _args.boolean(non_blocking, "to", "non_blocking")
    dt = self.dtype if dtype is None else _args.dtype(dtype, "to")
    if dt == self.dtype:
        # A copy keeps the dtype and the graph (as PyTorch's): a multiply by one, exact for
        # every value (bool * True is a logical and).
        return (self * (True if dt == bool else 1)) if copy else self
    return _cast(self, dt)


def _is_device(a):
    return type(a).__name__ == "device"  # torch.device, if a caller passes one


Tensor.to = _to


class device:
    """Where a tensor lives: dagrad runs on CPUs, so this is always ``device(type='cpu')``.
    Compares equal to ``"cpu"`` and to another cpu device, as torch.device does.

    >>> dagrad.ones(2).device
    device(type='cpu')
    """

    __slots__ = ("type",)

    def __init__(self, type="cpu"):  # noqa: A002  (PyTorch's name)
        _args.device(type, "device", "type")
        self.type = "cpu"

    def __eq__(self, other):
        return str(other) == "cpu" or getattr(other, "type", None) == "cpu"

    def __hash__(self):
        return hash("cpu")

    def __str__(self):
        return "cpu"

    def __repr__(self):
        return "device(type='cpu')"


_CPU = device()


def _cpu(self, memory_format=None):
    """This tensor: it is on the CPU already (dagrad runs on CPUs only)."""
    return self


def _contiguous(self, memory_format=None):
    """This tensor: dagrad's values are always contiguous and row-major."""
    return self


def _clone(self, memory_format=None):
    """A copy with its own buffer that stays in the graph (its gradient flows to this tensor),
    as PyTorch's clone.

    >>> x = dagrad.tensor([1.0, 2.0], requires_grad=True)
    >>> x.clone().sum().backward(); x.grad.tolist()
    [1.0, 1.0]
    """
    return _to(self, copy=True)


def _t(self):
    """The transpose of a matrix; a 0-d or 1-d tensor as it is (PyTorch's Tensor.t)."""
    if self.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
    return self if self.ndim < 2 else self.transpose(0, 1)


Tensor.device = property(lambda self: _CPU)
Tensor.cpu = _cpu
Tensor.contiguous = _contiguous
Tensor.clone = _clone
Tensor.t = _t


def where(condition, input, other):
    """Elementwise ``input if condition else other``; numbers broadcast as 0-d tensors."""
    cond = _args.tensor_like(condition, "where", "condition")
    for name, v in (("input", input), ("other", other)):
        if not isinstance(v, Tensor):  # a number, made a 0-d tensor below
            _args.number(v, "where", name)
    a = input if isinstance(input, Tensor) else None
    b = other if isinstance(other, Tensor) else None
    like = a if a is not None else b
    # A number beside a tensor follows PyTorch's weak-scalar rule (the core's result_type).
    if a is None:
        a = _core._scalar_like(input, like) if like is not None else full((), input)
    if b is None:
        b = _core._scalar_like(other, like) if like is not None else full((), other)
    return _core.where(cond, a, b)


def maximum(input, other):
    return _core.maximum(_args.tensor_like(input, "maximum", "input"), _args.tensor_like(other, "maximum", "other"))


def minimum(input, other):
    return _core.minimum(_args.tensor_like(input, "minimum", "input"), _args.tensor_like(other, "minimum", "other"))


def max(input, dim=None, keepdim=False):  # noqa: A001
    return _args.tensor(input, "max").max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001
    return _args.tensor(input, "min").min(dim, keepdim)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _var(_args.tensor(input, "var"), dim, unbiased, keepdim, correction=correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _std(_args.tensor(input, "std"), dim, unbiased, keepdim, correction=correction)


def softmax(input, dim):
    _args.tensor(input, "softmax")
    return _core.softmax(input, _args.dim(dim, "softmax", input.ndim))


def log_softmax(input, dim):
    _args.tensor(input, "log_softmax")
    return _core.log_softmax(input, _args.dim(dim, "log_softmax", input.ndim))


def _cat(tensors, dim, fn, new_dim):
    ts = _args.tensors(tensors, fn)
    ndim = (ts[0].ndim if ts else 1) + new_dim
    return ts, _args.dim(dim, fn, builtins.max(ndim, 1))


def cat(tensors, dim=0):
    """Concatenates tensors along an existing dim.

    >>> dagrad.cat([dagrad.ones(2), dagrad.zeros(1)]).tolist()
    [1.0, 1.0, 0.0]
    """
    return _core.cat(*_cat(tensors, dim, "cat", 0))


def concat(tensors, dim=0):
    """``cat`` under numpy's name."""
    return _core.cat(*_cat(tensors, dim, "concat", 0))


def stack(tensors, dim=0):
    return _core.stack(*_cat(tensors, dim, "stack", 1))


def split(tensor, split_size_or_sections, dim=0):
    return _split(_args.tensor(tensor, "split", "tensor"), split_size_or_sections, dim, "split_size_or_sections")


def chunk(input, chunks, dim=0):
    return _chunk(_args.tensor(input, "chunk"), chunks, dim)


def gather(input, dim, index):
    _args.tensor(input, "gather")
    return input.gather(_args.dim(dim, "gather", input.ndim), _args.tensor(index, "gather", "index"))


def broadcast_to(input, size):
    return _args.tensor(input, "broadcast_to").broadcast_to(size)


def eq(input, other):
    return _args.tensor_like(input, "eq", "input").eq(other)


def ne(input, other):
    return _args.tensor_like(input, "ne", "input").ne(other)


def lt(input, other):
    return _args.tensor_like(input, "lt", "input").lt(other)


def le(input, other):
    return _args.tensor_like(input, "le", "input").le(other)


def gt(input, other):
    return _args.tensor_like(input, "gt", "input").gt(other)


def ge(input, other):
    return _args.tensor_like(input, "ge", "input").ge(other)


def _deepcopy(self, memo):
    """A new leaf with a copy of the value, the same requires_grad and the Parameter mark
    (so a deep-copied Module keeps its Parameters)."""
    if id(self) in memo:
        return memo[id(self)]
    out = _core._clone_leaf(self.detach())
    if self.requires_grad and self.is_leaf:
        out.requires_grad_(True)
    memo[id(self)] = out
    out._is_param = self._is_param
    if self.grad is not None:
        out.grad = _core._clone_leaf(self.grad)
    return out


Tensor.__deepcopy__ = _deepcopy
