"""Tensor creation, the Python-side Tensor methods, grad mode and threads."""
import builtins
import contextlib
import functools
import operator
import warnings

import numpy as np

from . import _args, _core
from ._core import Tensor

dtype = _core.dtype
float32 = dtype.float32
float64 = dtype.float64
int64 = dtype.int64
bool = dtype.bool  # noqa: A001  (PyTorch's name)

dtype.__repr__ = lambda self: f"dagrad.{self.name}"
dtype.__str__ = dtype.__repr__

_DEFAULT_FLOAT = float32
_NUMPY_OF = {float32: np.float32, float64: np.float64, int64: np.int64, bool: np.bool_}


def _dtype_arg(d):
    """Accepts a dagrad dtype, a numpy dtype or a type such as float."""
    if d is None or isinstance(d, dtype):
        return d
    if d is builtins.float:
        return _DEFAULT_FLOAT
    if d is builtins.int:
        return int64
    if d is builtins.bool:
        return bool
    try:
        with warnings.catch_warnings():  # np.dtype("a") warns of a deprecated alias, then fails below
            warnings.simplefilter("ignore", DeprecationWarning)
            nd = np.dtype(d)
    except TypeError:
        raise TypeError(f"unsupported dtype {d!r}") from None
    for k, v in _NUMPY_OF.items():
        if nd == np.dtype(v):
            return k
    raise TypeError(f"unsupported dtype {d!r}; use dagrad.float32, float64, int64 or bool")


def _infer_dtype(arr, from_numpy):
    kind = arr.dtype.kind
    if kind == "b":
        return bool
    if kind in "iu":
        return int64
    if kind == "f":
        if from_numpy and arr.dtype == np.float64:
            return float64
        return float32
    raise TypeError(
        f"tensor(): argument 'data' must hold numbers or booleans, not numpy dtype {arr.dtype}")


def tensor(data, dtype=None, requires_grad=False):
    """Creates a leaf tensor holding a copy of ``data``.

    Parameters
    ----------
    data : array_like
        A number, a (nested) sequence of numbers, a numpy array or a Tensor.
        Python floats become float32 (the default dtype); numpy arrays keep float32/float64;
        integers become int64 and booleans bool.
    dtype : dagrad.dtype, optional
    requires_grad : bool
        Whether backward() should accumulate a gradient into ``.grad``.

    Examples
    --------
    >>> dagrad.tensor([[1.0, 2.0]], requires_grad=True).shape
    (1, 2)
    """
    dt = _args.dtype(dtype, "tensor")
    requires_grad = _args.boolean(requires_grad, "tensor", "requires_grad")
    if isinstance(data, Tensor):
        arr = data.numpy()
        from_numpy = True
    else:
        from_numpy = isinstance(data, (np.ndarray, np.generic))
        try:
            arr = np.asarray(data)
        except ValueError as e:
            raise ValueError(f"tensor(): argument 'data' is ragged or not array-like: {e}") from None
        except TypeError as e:
            raise TypeError(f"tensor(): argument 'data' of type {type(data).__name__} cannot be converted: {e}") from None
    if arr.dtype.kind not in "biuf":
        if arr.dtype.kind == "O" and not from_numpy:
            raise TypeError(
                "tensor(): argument 'data' must be numbers or nested sequences of numbers of equal length, "
                f"not {_args.type_name(data)}")
        if dt is None or arr.dtype.kind not in "biufO":
            raise TypeError(f"tensor(): argument 'data' must hold numbers or booleans, not numpy dtype {arr.dtype}")
    if dt is None:
        dt = _infer_dtype(arr, from_numpy)
    if dt == int64 and arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        # numpy keeps 2**63 as uint64; int64 would wrap it to -2**63 (torch refuses too).
        raise RuntimeError(f"tensor: value {arr.max()} does not fit in int64 (overflow)")
    try:
        arr = np.asarray(arr, dtype=_NUMPY_OF[dt], order="C")
    except (TypeError, ValueError) as e:
        raise TypeError(f"tensor(): argument 'data' cannot be converted to {dt}: {e}") from None
    return _core._from_numpy(arr, dt, requires_grad)


def as_tensor(data, dtype=None):
    """Returns ``data`` if it is already a Tensor of ``dtype``, else ``tensor(data, dtype)``."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == _args.dtype(dtype, "as_tensor")):
        return data
    try:
        return tensor(data, dtype=dtype)
    except (TypeError, ValueError) as e:  # the same checks, reported under this function's name
        raise type(e)(str(e).replace("tensor():", "as_tensor():", 1)) from None


def _size(size, fn="size"):
    """f(2, 3), f((2, 3)) or f([2, 3]) as a list of non-negative ints (errors name fn)."""
    return _args.size(size, fn)


def full(size, fill_value, dtype=None, requires_grad=False, *, _fn="full"):
    """A tensor of shape ``size`` filled with ``fill_value``.

    >>> dagrad.full((2, 2), 7.0).sum().item()
    28.0
    """
    dt = _args.dtype(dtype, _fn)
    _args.number(fill_value, _fn, "fill_value")
    requires_grad = _args.boolean(requires_grad, _fn, "requires_grad")
    if dt is None:
        if isinstance(fill_value, builtins.bool):
            dt = bool
        elif isinstance(fill_value, (int, np.integer)):
            dt = int64
        else:
            dt = _DEFAULT_FLOAT
    size = _size((size,), _fn)
    return _core.full(size, fill_value, dt, requires_grad)  # exact for int64 (a Scalar)


def zeros(*size, dtype=None, requires_grad=False):
    """A tensor of zeros. >>> dagrad.zeros(2, 3).shape
    (2, 3)
    """
    return _core.full(_size(size, "zeros"), 0.0, _args.dtype(dtype, "zeros") or _DEFAULT_FLOAT,
                      _args.boolean(requires_grad, "zeros", "requires_grad"))


def ones(*size, dtype=None, requires_grad=False):
    """A tensor of ones. >>> dagrad.ones(3).sum().item()
    3.0
    """
    return _core.full(_size(size, "ones"), 1.0, _args.dtype(dtype, "ones") or _DEFAULT_FLOAT,
                      _args.boolean(requires_grad, "ones", "requires_grad"))


def empty(*size, dtype=None, requires_grad=False):
    """An uninitialised tensor (zero-filled here, for reproducibility)."""
    return _core.full(_size(size, "empty"), 0.0, _args.dtype(dtype, "empty") or _DEFAULT_FLOAT,
                      _args.boolean(requires_grad, "empty", "requires_grad"))


def zeros_like(t, dtype=None, requires_grad=False):
    _args.tensor(t, "zeros_like")
    return full(t.shape, 0, dtype=_args.dtype(dtype, "zeros_like") or t.dtype, requires_grad=requires_grad,
                _fn="zeros_like")


def ones_like(t, dtype=None, requires_grad=False):
    _args.tensor(t, "ones_like")
    return full(t.shape, 1, dtype=_args.dtype(dtype, "ones_like") or t.dtype, requires_grad=requires_grad,
                _fn="ones_like")


def full_like(t, fill_value, dtype=None, requires_grad=False):
    _args.tensor(t, "full_like")
    return full(t.shape, fill_value, dtype=_args.dtype(dtype, "full_like") or t.dtype, requires_grad=requires_grad,
                _fn="full_like")


# Random numbers come from one seeded numpy generator, so manual_seed makes runs repeatable.
_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Seeds dagrad's random number generator. >>> _ = dagrad.manual_seed(0)"""
    global _rng
    if isinstance(seed, (builtins.bool, np.bool_)) or not _args._is_int(seed):
        raise TypeError(f"manual_seed(): argument 'seed' must be int, not {_args.type_name(seed)}")
    seed = operator.index(seed)
    if not -(2 ** 63) <= seed < 2 ** 64:  # PyTorch's range; a negative seed wraps, as in PyTorch
        raise ValueError(f"manual_seed(): argument 'seed' must be in [-2**63, 2**64), got {seed}")
    _rng = np.random.default_rng(seed % 2 ** 64)
    return _rng


def _random(fn, size, dtype, requires_grad, name):
    dt = _args.dtype(dtype, name) or _DEFAULT_FLOAT
    requires_grad = _args.boolean(requires_grad, name, "requires_grad")
    if not dt.is_floating_point:
        raise TypeError(f"{name}(): argument 'dtype' must be a floating point dtype, got {dt}")
    size = _size(size, name)
    arr = fn(_rng, tuple(size), _NUMPY_OF[dt])
    return _core._from_numpy(np.asarray(arr, order="C"), dt, requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    """Standard normal samples. >>> dagrad.randn(2, 3).shape
    (2, 3)
    """
    return _random(lambda g, s, d: g.standard_normal(s, dtype=d), size, dtype, requires_grad, "randn")


def rand(*size, dtype=None, requires_grad=False):
    """Uniform samples on [0, 1). >>> dagrad.rand(4).shape
    (4,)
    """
    return _random(lambda g, s, d: g.random(s, dtype=d), size, dtype, requires_grad, "rand")


def randn_like(t, dtype=None, requires_grad=False):
    _args.tensor(t, "randn_like")
    return _random(lambda g, s, d: g.standard_normal(s, dtype=d), t.shape,
                   _args.dtype(dtype, "randn_like") or t.dtype, requires_grad, "randn_like")


def rand_like(t, dtype=None, requires_grad=False):
    _args.tensor(t, "rand_like")
    return _random(lambda g, s, d: g.random(s, dtype=d), t.shape,
                   _args.dtype(dtype, "rand_like") or t.dtype, requires_grad, "rand_like")


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Evenly spaced values in [start, end). >>> dagrad.arange(3).tolist()
    [0, 1, 2]
    """
    start = _exact_number(start, "arange", "start")
    end = None if end is None else _exact_number(end, "arange", "end")
    step = _exact_number(step, "arange", "step")
    if step == 0:
        raise ValueError("arange(): argument 'step' must be nonzero")
    if end is None:
        start, end = 0, start
    n = np.ceil((end - start) / step)
    if not np.isfinite(n) or n > 2 ** 62:
        raise ValueError(f"arange(): the range from {start} to {end} by {step} has too many elements")
    arr = np.arange(start, end, step)
    dt = _args.dtype(dtype, "arange")
    if dt is None:
        dt = int64 if arr.dtype.kind in "iu" else _DEFAULT_FLOAT
    return tensor(arr, dtype=dt, requires_grad=requires_grad)


def _exact_number(v, fn, name):
    """A number kept as given (ints stay exact for arange), checked like _args.number."""
    _args.number(v, fn, name)
    return v


def linspace(start, end, steps, dtype=None, requires_grad=False):
    """``steps`` values from start to end inclusive. >>> dagrad.linspace(0, 1, 3).tolist()
    [0.0, 0.5, 1.0]
    """
    dtype = _args.dtype(dtype, "linspace")
    start = _args.number(start, "linspace", "start")
    end = _args.number(end, "linspace", "end")
    steps = _args.integer(steps, "linspace", "steps")
    if steps < 0:
        raise ValueError(f"linspace(): argument 'steps' must be non-negative, got {steps}")
    return tensor(np.linspace(start, end, steps), dtype=dtype or _DEFAULT_FLOAT,
                  requires_grad=requires_grad)


def realize(*tensors):
    """Computes every pending value the tensors need, in one parallel run.

    >>> a, b = dagrad.ones(2) * 2, dagrad.ones(2) * 3
    >>> dagrad.realize(a, b)
    """
    for t in tensors:
        _args.tensor(t, "realize", "tensors")
    _core.realize(list(tensors))


# ----------------------------------------------------------------------------- grad mode

class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator that stops ops from recording what backward needs.

    >>> with dagrad.no_grad():
    ...     y = dagrad.ones(2, requires_grad=True) * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


class enable_grad(contextlib.ContextDecorator):
    """Re-enables grad recording inside a no_grad block."""

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(True)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


class set_grad_enabled(contextlib.ContextDecorator):
    """Sets grad mode; usable as a function call or a context manager."""

    def __init__(self, mode):
        mode = _args.boolean(mode, "set_grad_enabled", "mode")
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


def is_grad_enabled():
    return _core.is_grad_enabled()


# ----------------------------------------------------------------------------- threads

def set_num_threads(n):
    """Sets the thread budget of the scheduler and kernels (see Note [Thread budget]).

    At most ``max(64, cores)`` (Note [Thread cap]); a larger or non-positive count raises
    ValueError, as does the same value in ``DAGRAD_NUM_THREADS``.
    """
    _core.set_num_threads(_args.integer(n, "set_num_threads", "n", allow_bool=False))


def get_num_threads():
    """The thread budget; defaults to $DAGRAD_NUM_THREADS or the number of cores."""
    return _core.get_num_threads()


def show_config():
    """Prints the version, thread budget, OpenMP and BLAS in use."""
    import os
    from . import __version__
    cfg = _core._config()
    lines = [
        f"dagrad {__version__}",
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
    """What made a non-leaf tensor (PyTorch's grad_fn), by op name."""

    __slots__ = ("_op",)

    def __init__(self, op):
        self._op = op

    def name(self):
        return "".join(p.capitalize() for p in self._op.split("_")) + "Backward"

    def __repr__(self):
        return f"<{self.name()}>"


def _grad_fn(self):
    if self.is_leaf:
        return None
    return _GradFn(self._op)


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


def clamp(input, min=None, max=None):  # noqa: A002
    return _args.tensor(input, "clamp").clamp(min, max)


def clip(input, min=None, max=None):  # noqa: A002
    return _args.tensor(input, "clip").clip(min, max)


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


def amax(input, dim=None, keepdim=False):
    return _args.tensor(input, "amax").amax(dim, keepdim)


def amin(input, dim=None, keepdim=False):
    return _args.tensor(input, "amin").amin(dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    return _args.tensor(input, "argmax").argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    return _args.tensor(input, "argmin").argmin(dim, keepdim)


def prod(input, dim=None, keepdim=False):
    return _args.tensor(input, "prod").prod(dim, keepdim)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _var(_args.tensor(input, "var"), dim, unbiased, keepdim, correction=correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _std(_args.tensor(input, "std"), dim, unbiased, keepdim, correction=correction)


def logsumexp(input, dim, keepdim=False):
    return _args.tensor(input, "logsumexp").logsumexp(dim, keepdim)


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
    """Concatenates tensors along an existing dim. >>> dagrad.cat([dagrad.ones(2), dagrad.zeros(1)]).tolist()
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


def squeeze(input, dim=None):
    return _args.tensor(input, "squeeze").squeeze(dim)


def unsqueeze(input, dim):
    return _args.tensor(input, "unsqueeze").unsqueeze(dim)


def flatten(input, start_dim=0, end_dim=-1):
    return _args.tensor(input, "flatten").flatten(start_dim, end_dim)


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
    import copy as _copy
    out = _core._clone_leaf(self.detach())
    if self.requires_grad and self.is_leaf:
        out.requires_grad_(True)
    memo[id(self)] = out
    out._is_param = self._is_param
    if self.grad is not None:
        out.grad = _core._clone_leaf(self.grad)
    return out


Tensor.__deepcopy__ = _deepcopy
