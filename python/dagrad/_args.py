"""Argument checks for the public API: errors that name the function and the argument.

See Note [Argument errors] in csrc/bindings/arg_errors.cpp. The Python wrappers check their
arguments with the helpers below; calls bound directly in C++ are checked there, and when
pybind11 finds no overload for a call, ``explain_call`` finds the argument at fault. Every
message reads like PyTorch's: ``sum(): argument 'dim' must be int, not str``. The exception
types are PyTorch's too: TypeError for a wrong type, IndexError for a dim out of range,
ValueError for a bad value (and for an int that does not fit int64, but TypeError for sizes).
"""
import builtins
import operator
import re

import numpy as np

from . import _core
from ._core import Tensor

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def type_name(v):
    """The type of v as a user reads it: 'str', 'numpy.ndarray', 'Tensor'."""
    if v is None:
        return "None"
    if isinstance(v, Tensor):
        return "Tensor"
    t = type(v)
    mod = t.__module__
    return t.__qualname__ if mod in ("builtins", "dagrad._core") else f"{mod}.{t.__qualname__}"


def _is_int(v):
    if isinstance(v, (float, np.floating, str, bytes)) or isinstance(v, Tensor):
        return False
    try:
        operator.index(v)
        return True
    except TypeError:
        return False


def integer(v, fn, name, *, size=False, allow_bool=True):
    """An int argument (ints, numpy ints, anything with __index__; never a float)."""
    if not _is_int(v) or (not allow_bool and isinstance(v, (bool, np.bool_))):
        raise TypeError(f"{fn}(): argument '{name}' must be int, not {type_name(v)}")
    i = operator.index(v)
    if not _INT64_MIN <= i <= _INT64_MAX:
        raise (TypeError if size else ValueError)(
            f"{fn}(): argument '{name}' is out of range: {i} does not fit in int64")
    return i


def count(v, fn, name):
    """A non-negative int (a number of features, channels, classes)."""
    i = integer(v, fn, name, allow_bool=False)
    if i < 0:
        raise ValueError(f"{fn}(): argument '{name}' must be non-negative, got {i}")
    return i


def optional_integer(v, fn, name, **kw):
    return None if v is None else integer(v, fn, name, **kw)


def dim(v, fn, ndim, name="dim"):
    """A dim of a tensor of `ndim` dims (a 0-d tensor takes -1 and 0, as in PyTorch)."""
    d = integer(v, fn, name, allow_bool=False)
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not lo <= d <= hi:
        raise IndexError(f"{fn}(): argument '{name}' is out of range: dimension {d} of a tensor of {ndim} "
                         f"dimensions (expected to be in range of [{lo}, {hi}])")
    return d


def optional_dim(v, fn, ndim, name="dim"):
    return None if v is None else dim(v, fn, ndim, name)


def dims(v, fn, ndim, name="dim"):
    """None, one dim or a sequence of dims; returned as given (None, int or list)."""
    if v is None:
        return None
    many = isinstance(v, (list, tuple, range)) or (isinstance(v, np.ndarray) and v.ndim == 1)
    if not many and _is_int(v):
        return dim(v, fn, ndim, name)
    if not many:
        raise TypeError(f"{fn}(): argument '{name}' must be an int or a sequence of ints, not {type_name(v)}")
    for d in v:
        if not _is_int(d):
            raise TypeError(f"{fn}(): argument '{name}' must be an int or a sequence of ints, not {type_name(d)}")
    return [dim(d, fn, ndim, name) for d in v]


def size(args, fn, name="size", *, min_size=0):
    """A shape given as f(2, 3), f((2, 3)) or f([2, 3]), as a list of ints; sizes below
    min_size are a ValueError, a product over int64 too."""
    if len(args) == 1 and not _is_int(args[0]):
        if not isinstance(args[0], (list, tuple)):
            raise TypeError(f"{fn}(): argument '{name}' must be a sequence of ints, not {type_name(args[0])}")
        args = tuple(args[0])
    out = []
    for s in args:
        if not _is_int(s) or isinstance(s, (bool, np.bool_)):
            raise TypeError(f"{fn}(): argument '{name}' must be a sequence of ints, not {type_name(s)}")
        out.append(integer(s, fn, name, size=True))
    if any(s < min_size for s in out):
        bad = next(s for s in out if s < min_size)
        raise ValueError(f"{fn}(): argument '{name}' has a{' negative' if bad < 0 else 'n invalid'} size "
                         f"{bad} in {tuple(out)}")
    n = 1
    for s in out:
        n *= builtins.max(s, 1)
    if n > _INT64_MAX:
        raise ValueError(f"{fn}(): argument '{name}' {tuple(out)} has more elements than int64 can count")
    return out


def number(v, fn, name):
    """A real number (int, float, numpy scalar) as a Python float."""
    if isinstance(v, (str, bytes)) or isinstance(v, Tensor) or not isinstance(v, (int, float, np.number, np.bool_)):
        raise TypeError(f"{fn}(): argument '{name}' must be a number, not {type_name(v)}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{fn}(): argument '{name}' is out of range: {v} does not fit in a float") from None


def optional_number(v, fn, name):
    return None if v is None else number(v, fn, name)


def boolean(v, fn, name):
    """A bool (numpy bools and the ints 0 and 1 too)."""
    if isinstance(v, (bool, np.bool_)):
        return builtins.bool(v)
    if _is_int(v) and operator.index(v) in (0, 1):
        return builtins.bool(operator.index(v))
    raise TypeError(f"{fn}(): argument '{name}' must be bool, not {type_name(v)}")


def tensor(v, fn, name="input"):
    if not isinstance(v, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be Tensor, not {type_name(v)}")
    return v


def optional_tensor(v, fn, name):
    return None if v is None else tensor(v, fn, name)


def tensor_like(v, fn, name="input", dtype=None):
    """A Tensor, or a number, numpy array or (nested) sequence of numbers made into one."""
    if isinstance(v, Tensor):
        return v
    if v is None or isinstance(v, (str, bytes, dict, set)) or not (
            isinstance(v, (list, tuple, np.ndarray, np.generic, int, float, builtins.bool))):
        raise TypeError(f"{fn}(): argument '{name}' must be a Tensor, a number or an array of numbers, "
                        f"not {type_name(v)}")
    from . import _creation
    try:
        return _creation.tensor(v, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}(): argument '{name}' must be a Tensor, a number or an array of numbers: {e}") from None


def tensors(v, fn, name="tensors"):
    """A sequence of tensors (numbers and arrays in it are made into tensors)."""
    if isinstance(v, Tensor) or not isinstance(v, (list, tuple)):
        raise TypeError(f"{fn}(): argument '{name}' must be a sequence of Tensors, not {type_name(v)}")
    return [tensor_like(t, fn, f"{name}[{i}]") for i, t in enumerate(v)]


def choice(v, fn, name, options):
    if not isinstance(v, str) or v not in options:
        raise ValueError(f"{fn}(): argument '{name}' must be one of {', '.join(map(repr, options))}, got {v!r}")
    return v


def int_list(v, fn, name):
    """A sequence of ints (a list of sizes, pads or dims), as a list."""
    if not isinstance(v, (list, tuple)):
        raise TypeError(f"{fn}(): argument '{name}' must be a sequence of ints, not {type_name(v)}")
    for e in v:
        if not _is_int(e):
            raise TypeError(f"{fn}(): argument '{name}' must be a sequence of ints, not {type_name(e)}")
    return [integer(e, fn, name) for e in v]


def int_pair(v, fn, name):
    """An int or a pair of ints (kernel_size=3 or (3, 2)), as a list of two ints."""
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"{fn}(): argument '{name}' must be an int or a pair of ints, got {list(v)!r}")
        return [integer(e, fn, name) for e in v]
    if not _is_int(v):
        raise TypeError(f"{fn}(): argument '{name}' must be an int or a pair of ints, not {type_name(v)}")
    i = integer(v, fn, name)
    return [i, i]


def dtype(v, fn, name="dtype"):
    """A dagrad dtype, a numpy dtype or float/int/bool; None stays None."""
    from . import _dtype
    try:
        return _dtype._dtype_arg(v)
    except TypeError:
        raise TypeError(f"{fn}(): argument '{name}' must be a dagrad dtype (dagrad.float32, float64, int64 "
                        f"or bool), not {v!r:.40}") from None


# ---------------------------------------------------------------------------- overload failures

# Names for the positional parameters pybind11 calls arg0, arg1, ...
_PARAM_NAMES = {
    "Tensor.pow": ["exponent"], "Tensor.fill_": ["value"], "Tensor.to": ["dtype"],
    "Tensor.requires_grad": ["requires_grad"], "Tensor.data": ["data"], "Tensor.grad": ["grad"],
}

_SIG = re.compile(r"^(?:\d+\.\s+)?[\w.]*\((.*)\)\s*->")


def _split_params(text):
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _parse(doc):
    """[(name, type text, has default, kw_only)] per overload of a pybind11 docstring."""
    sigs = []
    for line in (doc or "").splitlines():
        m = _SIG.match(line.strip())
        if not m:
            continue
        params, kw_only = [], False
        for p in _split_params(m.group(1)):
            if p == "*":
                kw_only = True
                continue
            if p.startswith("*"):  # *args, **kwargs: anything goes
                params.append((p.lstrip("*").split(":")[0], "object", True, kw_only))
                continue
            name, _, rest = p.partition(":")
            typ, _, default = rest.partition("=")
            params.append((name.strip(), typ.strip(), bool(default.strip()), kw_only))
        sigs.append(params)
    return sigs


def _readable(typ):
    t = typ.replace("dagrad._core.", "").replace("typing.", "").replace("collections.abc.", "")
    t = t.replace("SupportsFloat | SupportsIndex", "float").replace("SupportsInt | SupportsIndex", "int")
    t = t.replace("Sequence[int]", "a sequence of ints")
    return t


def _check_value(typ, v):
    """None if v fits the pybind11 type text, else (exception type, what was expected)."""
    alts = [a.strip() for a in _split_union(typ)]
    if v is None and ("None" in alts or typ.startswith("Optional[")):
        return None
    if typ.startswith("Optional["):
        alts = [typ[len("Optional["):-1]]
    alts = [a for a in alts if a != "None"]
    problem = None
    for a in alts:
        p = _check_one(a, v)
        if p is None:
            return None
        problem = problem or p
    return problem


def _split_union(typ):
    """The alternatives of "A | B[C | D]" at the top level: ["A", "B[C | D]"]."""
    out, depth, cur = [], 0, ""
    for ch in typ:
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "|" and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return out + [cur.strip()] if cur.strip() else out


def _check_one(a, v):
    if a in ("object", "") or a.startswith("Callable") or a.startswith("typing.Any"):
        return None
    if a in ("typing.SupportsInt", "typing.SupportsIndex", "int"):
        if not _is_int(v):
            return TypeError, "int"
        return None if _INT64_MIN <= operator.index(v) <= _INT64_MAX else (ValueError, "int64")
    if a in ("typing.SupportsFloat", "float"):
        if isinstance(v, (str, bytes)) or not isinstance(v, (int, float, np.number)):
            return TypeError, "a number"
        try:
            float(v)
        except OverflowError:
            return ValueError, "float"
        return None
    if a == "number":  # a dagrad::Scalar: a bool, an int that fits int64, or a float
        if isinstance(v, (str, bytes)) or not isinstance(v, (int, float, np.number, np.bool_)):
            return TypeError, "a number"
        if _is_int(v) and not (_INT64_MIN <= operator.index(v) <= _INT64_MAX):
            return ValueError, "int64"
        return None
    if a == "bool":
        return None if isinstance(v, (bool, np.bool_, int, float)) else (TypeError, "bool")
    if a == "str":
        return None if isinstance(v, str) else (TypeError, "str")
    m = re.match(r"(?:collections\.abc\.Sequence|list|tuple)\[(.*)\]$", a)
    if m:
        if not isinstance(v, (list, tuple)):
            return TypeError, f"a sequence of {_readable(m.group(1))}s"
        for i, e in enumerate(v):
            p = _check_value(m.group(1), e)
            if p is not None and p[0] is ValueError:
                return ValueError, p[1]
            if p is not None:
                return (p[0], f"a sequence of {_readable(m.group(1))}s",
                        f"{type_name(v)} with element {i} of type {type_name(e)}")
        return None
    if a.startswith("dagrad._core."):
        cls = getattr(_core, a[len("dagrad._core."):], None)
        if isinstance(cls, type) and not isinstance(v, cls):
            return TypeError, _readable(a)
        return None
    return None


def explain_call(name, doc, args, kwargs, original):
    """Raises the error for a call to `name` that fits none of the overloads in `doc` (the
    pybind11 docstring): the first argument that does not fit, named with the function."""
    label = name
    setter = name in ("Tensor.requires_grad", "Tensor.data", "Tensor.grad") and len(args) == 2 and not kwargs
    sigs = _parse(doc)
    best = None
    for params in sigs:
        a = list(args)
        if params and params[0][0] == "self":
            params, a = params[1:], a[1:]
        if setter:
            params, a = params[-1:], a[-1:]
        names = _PARAM_NAMES.get(name, [])
        params = [((names[i] if i < len(names) and p[0].startswith("arg") else p[0]),) + p[1:]
                  for i, p in enumerate(params)]
        positional = [p for p in params if not p[3]]
        if len(a) > len(positional) and not any(p[1] == "object" and p[0] == "args" for p in params):
            best = best or (TypeError, f"{label}() takes at most {len(positional)} positional arguments "
                                       f"({len(a)} given)")
            continue
        bound = list(zip(positional, a))
        by_name = {p[0]: p for p in params}
        unknown = [k for k in kwargs if k not in by_name]
        if unknown and "kwargs" not in by_name:
            best = best or (TypeError, f"{label}() got an unexpected keyword argument '{unknown[0]}'")
            continue
        bound += [(by_name[k], v) for k, v in kwargs.items() if k in by_name]
        given = {p[0] for p, _ in bound}
        missing = [p[0] for p in params if not p[2] and p[0] not in given and p[0] not in ("args", "kwargs")]
        if missing:
            best = best or (TypeError, f"{label}() missing required argument '{missing[0]}'")
            continue
        for p, v in bound:
            problem = _check_value(p[1], v)
            if problem is None:
                continue
            exc, expected, got = (problem + (type_name(v),))[:3]
            where = f"{label}: the value assigned" if setter else f"{label}(): argument '{p[0]}'"
            if exc is ValueError:
                # PyTorch: an int over int64 is a TypeError for sizes, a ValueError elsewhere.
                sized = p[0] in ("size", "shape") or "Sequence" in p[1]
                best = best or ((TypeError if sized else ValueError),
                                f"{where} is out of range: {v!r:.60} does not fit in {expected}")
            else:
                best = best or (TypeError, f"{where} must be {expected}, not {got}")
            break
    if best is None:
        shown = args[1:] if name.startswith("Tensor.") else args
        given = ", ".join([type_name(v) for v in shown] + [f"{k}={type_name(v)}" for k, v in kwargs.items()])
        best = (TypeError, f"{label}(): invalid arguments ({given})")
    raise best[0](best[1])


def device(v, fn, name="device"):
    """A device argument: None, "cpu" (or a dagrad/torch device of type cpu). Anything else is
    the RuntimeError PyTorch raises for a device it was not built for, saying why."""
    if v is None:
        return None
    kind = getattr(v, "type", v)
    if not isinstance(kind, str):
        raise TypeError(f"{fn}(): argument '{name}' must be a device or a string, not {type_name(v)}")
    if kind.split(":")[0] != "cpu":
        raise RuntimeError(f"{fn}(): argument '{name}' is {str(v)!r}, which is not available: dagrad runs on CPUs "
                           "only (device='cpu')")
    return v
