"""Property-based tests (Hypothesis): dagrad against PyTorch and numpy on random inputs.

Each test draws random shapes (empty and 0-d included), dtypes (float32, float64, int64, bool),
values (NaN, +-inf and -0.0 included for floats, values beyond 2**53 for int64), Python scalars
(int, float, bool) and index keys (ints, slices, None, ``...``, integer lists, boolean masks),
runs the same call through dagrad and through PyTorch 2.13 (numpy for indexing), and requires:

* where the reference returns a result: dagrad returns one too, with the same shape, the same
  dtype (so PyTorch's type-promotion rules for tensors and Python scalars), and the same values.
  int and bool values are compared exactly, NaN positions exactly; floats with
  rtol 1e-5 / atol 1e-6 (float32) and rtol 1e-12 / atol 1e-12 (float64) for elementwise ops.
  Reductions of float32 are compared with the float64 result on the same float32 inputs (an
  exact reference), with an atol scaled by the number of terms and their size (summation order
  is free, and its honest error grows with both);
* where the reference raises: dagrad raises too. An IndexError of PyTorch (a dim or an index out
  of range, an empty reduction) must be an IndexError; a TypeError a TypeError; PyTorch's
  catch-all RuntimeError may be any of dagrad's documented types (dagrad raises ValueError for
  shape errors, see DESIGN.md section 6). Nothing else (no AttributeError, no SystemError) may
  escape. Where PyTorch refuses a dtype for an op that is well defined on it (argmax of bools,
  the mean of ints, subtraction of bools), dagrad may return a result instead;
* an in-place op that raises leaves its tensor unchanged, and one that succeeds is seen
  through every Python reference to the tensor.

The number of examples comes from the Hypothesis profile (tests/conftest.py): "ci" (the
default: few examples, derandomized, so CI is deterministic) or, for a longer local search,

    python -m pytest tests/ops/test_properties.py --hypothesis-profile=long

A failure prints the drawn example and a note with the arrays; ``nan`` and ``inf`` in those
notes are ``numpy.nan`` and ``numpy.inf``.
"""
import math
import operator
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("hypothesis")
torch = pytest.importorskip("torch")

from hypothesis import assume, given, note, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import dagrad  # noqa: E402
from torch_helpers import dg, th  # noqa: E402

DTYPES = ("float32", "float64", "int64", "bool")
NP_DT = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}

# What dagrad may raise at all (DESIGN.md section 6).
DG_ERRORS = (ValueError, TypeError, IndexError, RuntimeError, MemoryError)

INT53 = 2**53


# ----------------------------------------------------------------------------- running both sides

class Raised:
    """The outcome of a call that raised."""

    def __init__(self, exc):
        self.exc = exc

    def __repr__(self):
        return f"{type(self.exc).__name__}({str(self.exc)[:200]!r})"


class Snap:
    """A realized tensor: shape, dtype name and a numpy copy of the values."""

    def __init__(self, shape, dtype, arr):
        self.shape, self.dtype, self.arr = tuple(shape), dtype, arr

    def __repr__(self):
        return f"Snap(shape={self.shape}, dtype={self.dtype}, values={self.arr.tolist()!r})"


def snap(x):
    if isinstance(x, dagrad.Tensor):
        arr = np.array(x.numpy(), copy=True)
        return Snap(x.shape, x.dtype.name, arr)
    if isinstance(x, torch.Tensor):
        return Snap(x.shape, str(x.dtype).replace("torch.", ""), x.detach().numpy().copy())
    if isinstance(x, tuple):
        return tuple(snap(v) for v in x)
    raise AssertionError(f"expected a tensor or a tuple of tensors, got {type(x).__name__}")


def run(fn):
    """Calls ``fn`` and realizes what it returns; a raised exception becomes ``Raised``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return snap(fn())
    except AssertionError:
        raise
    except Exception as e:  # noqa: BLE001  (the type is what is checked)
        return Raised(e)


# PyTorch refuses some ops for some dtypes where the op is well defined (argmax of bools, the mean
# of ints, subtraction of bools): there dagrad may return a result instead of raising.
TORCH_DTYPE_REFUSALS = re.compile(
    r"not implemented for|does not support bool|Boolean inputs not supported|"
    r"with (a|two) bool tensors? is not supported|on a bool tensor is not supported|"
    r"could not infer output dtype|only support floating point")


def torch_refuses_dtype(t):
    return isinstance(t, Raised) and bool(TORCH_DTYPE_REFUSALS.search(str(t.exc)))


def assert_error_matches(d, t, what):
    exc, ref = d.exc, t.exc
    assert isinstance(exc, DG_ERRORS), (
        f"{what}: dagrad raised {type(exc).__name__} (not one of its documented exception types): "
        f"{exc}; torch raised {t!r}")
    if torch_refuses_dtype(t):
        ok = True  # dagrad may object to something else first (a dim out of range)
    elif isinstance(ref, IndexError):
        ok = isinstance(exc, IndexError)
    elif isinstance(ref, TypeError):
        ok = isinstance(exc, TypeError)
    else:  # PyTorch's catch-all
        ok = True
    assert ok, f"{what}: dagrad raised {d!r}, torch raised {t!r}"


def assert_snap_close(d, t, what, rtol=None, atol=None):
    if isinstance(t, tuple):
        assert isinstance(d, tuple) and len(d) == len(t), f"{what}: dagrad gave {d!r}, torch {t!r}"
        for k, (a, b) in enumerate(zip(d, t)):
            assert_snap_close(a, b, f"{what}[{k}]", rtol, atol)
        return
    assert isinstance(d, Snap), f"{what}: dagrad gave {d!r}, torch {t!r}"
    assert d.shape == t.shape, f"{what}: shape {d.shape} != torch's {t.shape}"
    assert d.arr.shape == d.shape, f"{what}: numpy() has shape {d.arr.shape}, the tensor {d.shape}"
    assert d.dtype == t.dtype, f"{what}: dtype {d.dtype} != torch's {t.dtype}"
    if t.dtype in ("int64", "bool"):
        np.testing.assert_array_equal(d.arr, t.arr, err_msg=what)
    else:
        tol = dict(TOL[t.dtype])
        if rtol is not None:
            tol["rtol"] = rtol
        if atol is not None:
            tol["atol"] = atol
        np.testing.assert_allclose(d.arr.astype(np.float64), t.arr.astype(np.float64),
                                   equal_nan=True, err_msg=what, **tol)


def check(d, t, what, **tol):
    """dagrad's outcome ``d`` against torch's ``t`` (results, or exceptions)."""
    if isinstance(t, Raised):
        if torch_refuses_dtype(t) and not isinstance(d, Raised):
            note(f"{what}: torch refuses the dtype ({t!r}); dagrad returns {d!r}")
            return
        assert isinstance(d, Raised), f"{what}: torch raises {t!r}, dagrad returns {d!r}"
        assert_error_matches(d, t, what)
        return
    if isinstance(d, Raised):
        assert isinstance(d.exc, DG_ERRORS), f"{what}: dagrad raised {d!r}, torch returns {t!r}"
        raise AssertionError(f"{what}: dagrad raises {d!r}, torch returns {t!r}")
    assert_snap_close(d, t, what, **tol)


def src(a):
    """Python source for a numpy array (for notes that reproduce a failure)."""
    a = np.asarray(a)
    if a.ndim == 0:
        return f"np.array({a.item()!r}, dtype=np.{a.dtype})"
    return f"np.array({a.tolist()!r}, dtype=np.{a.dtype})"


# ----------------------------------------------------------------------------- strategies

SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, 0.0, -0.0)


def big_ints(bound):
    """Odd integers beyond 2**53 (not exact in a double) up to ``bound``, either sign; Hypothesis'
    plain integers() rarely draws those."""
    if bound <= INT53:
        return st.integers(-bound, bound)
    return st.tuples(st.integers(INT53, bound - 1), st.booleans()).map(
        lambda p: (p[0] | 1) * (-1 if p[1] else 1))


def elements(dtype, int_bound=2**31 - 1, float_bound=1e6, special=True):
    if dtype == "bool":
        return st.booleans()
    if dtype == "int64":
        small = st.integers(-5, 5)
        return st.one_of(small, small, st.integers(-int_bound, int_bound), big_ints(int_bound))
    width = 32 if dtype == "float32" else 64
    base = st.floats(-float_bound, float_bound, width=width)
    if not special:
        return base
    return st.one_of(base, base, base, st.sampled_from(SPECIAL_FLOATS))


def arrays(dtype, shape, **kw):
    return hnp.arrays(NP_DT[dtype], shape, elements=elements(dtype, **kw))


def shapes(max_dims=3, max_side=4):
    return hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side)


def py_scalars(int_bound=2**62, float_bound=1e6, special=True):
    floats = st.floats(-float_bound, float_bound)
    parts = [st.booleans(), st.integers(-5, 5), st.integers(-int_bound, int_bound),
             big_ints(int_bound), floats, st.sampled_from((0.5, -2.5, 1e-3))]
    if special:
        parts.append(st.sampled_from(SPECIAL_FLOATS))
    return st.one_of(*parts)


def is_float(d):
    return d in ("float32", "float64")


# ----------------------------------------------------------------------------- indexing

class TIdx:
    """An integer index tensor in a key: a dagrad tensor for dagrad, a torch one for torch and an
    array for numpy."""

    def __init__(self, arr):
        self.arr = np.asarray(arr, dtype=np.int64)

    def __repr__(self):
        return f"<tensor {self.arr.tolist()}>"


def key_for(key, lib):
    def conv(k):
        if isinstance(k, TIdx):
            return {"dagrad": dagrad.tensor(k.arr), "torch": torch.from_numpy(k.arr.copy()),
                    "numpy": k.arr}[lib]
        return k
    if isinstance(key, tuple):
        return tuple(conv(k) for k in key)
    return conv(key)


@st.composite
def index_keys(draw, shape):
    """A key for a tensor of ``shape``: mostly valid, sometimes out of range or too long."""
    nd = len(shape)
    parts = []
    d = 0
    used_ellipsis = False
    adv_len = draw(st.integers(0, 3))  # one length for all integer lists, so they broadcast
    kinds = draw(st.sampled_from((
        ("int", "int", "slice", "slice", "none", "ellipsis", "list", "list", "tensor", "mask", "bool"),
        # several advanced indices with None and slices between them: where the result's dims go
        ("list", "list", "tensor", "none", "none", "slice", "ellipsis", "int"))))
    n_parts = draw(st.integers(0, nd + 2))
    for _ in range(n_parts):
        size = shape[d] if d < nd else 1
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            parts.append(draw(st.integers(-size - 1, size)))
            d += 1
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-size - 2, size + 2))
            step = draw(st.sampled_from((None, 1, 2, 3)))
            parts.append(slice(draw(bound), draw(bound), step))
            d += 1
        elif kind == "none":
            parts.append(None)
        elif kind == "bool":  # a bare True/False: a 0-d mask, a new dim of size 1 or 0
            parts.append(draw(st.booleans()))
        elif kind == "ellipsis":
            if used_ellipsis:
                continue
            used_ellipsis = True
            parts.append(Ellipsis)
            d = max(d, nd - (n_parts - len(parts)))
        elif kind in ("list", "tensor"):
            n = draw(st.sampled_from((adv_len, 1)))
            idx = draw(st.lists(st.integers(-size, size - 1) if size else st.integers(-1, 1),
                                min_size=n, max_size=n))
            if draw(st.integers(0, 7)) == 0:
                idx = [idx, idx]  # a 2-d index array
            parts.append(TIdx(idx) if kind == "tensor" else idx)
            d += 1
        else:  # a boolean mask over one dim
            parts.append(draw(st.lists(st.booleans(), min_size=size, max_size=size)))
            d += 1
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0]
    return tuple(parts)


def _np_ref(a, key):
    try:
        k = key_for(key, "numpy")
        if isinstance(k, list):
            k = np.asarray(k) if k else np.asarray(k, dtype=np.int64)
        out = a[k]
        return Snap(np.shape(out), np.asarray(out).dtype.name, np.array(out, copy=True))
    except Exception as e:  # noqa: BLE001
        return Raised(e)


@given(data=st.data())
def test_getitem(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(shapes(max_dims=4, max_side=4))
    a = data.draw(arrays(dtype, shape))
    key = data.draw(index_keys(shape))
    note(f"x = dagrad.tensor({src(a)}); x[{key!r}]")
    ref = _np_ref(a, key)
    tref = run(lambda: th(a)[key_for(key, "torch")])
    # Where numpy and PyTorch disagree (several ellipses, an empty list of indices, ...), the
    # expected behaviour is not settled: skip.
    if isinstance(ref, Raised) != isinstance(tref, Raised):
        assume(False)
    if not isinstance(ref, Raised):
        ref.dtype = tref.dtype
        if ref.shape != tref.shape or not np.array_equal(ref.arr, tref.arr, equal_nan=is_float(dtype)):
            assume(False)
    got = run(lambda: dg(a)[key_for(key, "dagrad")])
    if isinstance(ref, Raised):
        assert isinstance(got, Raised), f"x[{key!r}] on shape {shape}: numpy raises {ref!r}, dagrad returns {got!r}"
        assert_error_matches(got, tref, f"x[{key!r}] on shape {shape}")
        return
    check(got, ref, f"x[{key!r}] on shape {shape}", rtol=0, atol=0)


@given(data=st.data())
def test_setitem(data):
    if "__setitem__" not in dagrad.Tensor.__dict__:
        pytest.skip("dagrad.Tensor has no __setitem__")
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(shapes(max_dims=3, max_side=4))
    a = data.draw(arrays(dtype, shape, int_bound=2**24))
    key = data.draw(index_keys(shape))
    sel = _np_ref(np.arange(int(np.prod(shape))).reshape(shape), key)
    tsel = run(lambda: th(a)[key_for(key, "torch")])
    if isinstance(sel, Raised) or isinstance(tsel, Raised):
        assume(False)
    # Several writes to one element leave an unspecified winner in PyTorch: skip those keys.
    assume(np.unique(sel.arr).size == sel.arr.size)
    if data.draw(st.booleans()):
        vdtype = data.draw(st.sampled_from(DTYPES))
        vshape = sel.shape[data.draw(st.integers(0, len(sel.shape))):]
        value = data.draw(arrays(vdtype, vshape, int_bound=2**24, special=False))
        vd, vt, vs = (lambda: dg(value)), (lambda: th(value)), src(value)
    else:
        value = data.draw(py_scalars(int_bound=2**24, special=False))
        vd = vt = (lambda: value)
        vs = repr(value)
    note(f"x = dagrad.tensor({src(a)}); x[{key!r}] = {vs}")

    def assign(make, lib, v):
        x = make(a)
        x[key_for(key, lib)] = v()
        return x
    check(run(lambda: assign(dg, "dagrad", vd)), run(lambda: assign(th, "torch", vt)),
          f"x[{key!r}] = {vs} on shape {shape} {dtype}")


# ----------------------------------------------------------------------------- elementwise ops

# op: (function used for both libraries, bound for int64 values so nothing overflows int64)
BINARY = {
    "add": (operator.add, 2**61),
    "sub": (operator.sub, 2**61),
    "mul": (operator.mul, 2**31 - 1),
    "truediv": (operator.truediv, 2**62),
    "eq": (operator.eq, 2**62),
    "ne": (operator.ne, 2**62),
    "lt": (operator.lt, 2**62),
    "le": (operator.le, 2**62),
    "gt": (operator.gt, 2**62),
    "ge": (operator.ge, 2**62),
    "maximum": (lambda a, b: (dagrad if isinstance(a, dagrad.Tensor) else torch).maximum(a, b), 2**62),
    "minimum": (lambda a, b: (dagrad if isinstance(a, dagrad.Tensor) else torch).minimum(a, b), 2**62),
}
SCALAR_OPS = ("add", "sub", "mul", "truediv", "eq", "ne", "lt", "le", "gt", "ge")

# int64 values next to a float operand stay within float32's exact integers, so that no result
# depends on whether the int is rounded before or inside the op.
FLOAT_EXACT_INT = 2**24


@pytest.mark.parametrize("op", sorted(BINARY))
@given(data=st.data())
def test_binary_tensor_tensor(op, data):
    fn, bound = BINARY[op]
    da, db = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(DTYPES))
    if data.draw(st.integers(0, 9)):
        sa, sb = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                             min_side=0, max_side=4)).input_shapes
    else:  # shapes drawn independently: often they do not broadcast, and both sides must raise
        sa, sb = data.draw(shapes()), data.draw(shapes())
    if is_float(da) or is_float(db):
        bound = min(bound, FLOAT_EXACT_INT)
    a = data.draw(arrays(da, sa, int_bound=bound))
    b = data.draw(arrays(db, sb, int_bound=bound))
    note(f"a = dagrad.tensor({src(a)}); b = dagrad.tensor({src(b)})")
    what = f"{op}({da}{sa}, {db}{sb})"
    check(run(lambda: fn(dg(a), dg(b))), run(lambda: fn(th(a), th(b))), what)


@pytest.mark.parametrize("op", SCALAR_OPS)
@given(data=st.data())
def test_binary_tensor_scalar(op, data):
    fn, bound = BINARY[op]
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(shapes())
    s = data.draw(py_scalars(int_bound=bound))
    if is_float(dtype) or isinstance(s, float):
        bound = min(bound, FLOAT_EXACT_INT)
    a = data.draw(arrays(dtype, shape, int_bound=bound))
    reflected = data.draw(st.booleans())
    note(f"a = dagrad.tensor({src(a)}); s = {s!r}")
    if reflected:
        f_dg, f_th, what = (lambda: fn(s, dg(a))), (lambda: fn(s, th(a))), f"{op}({s!r}, {dtype}{shape})"
    else:
        f_dg, f_th, what = (lambda: fn(dg(a), s)), (lambda: fn(th(a), s)), f"{op}({dtype}{shape}, {s!r})"
    check(run(f_dg), run(f_th), what)


UNARY = ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu",
         "sign", "square", "log1p", "expm1", "erf")


@pytest.mark.parametrize("op", UNARY)
@given(data=st.data())
def test_unary(op, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(shapes())
    a = data.draw(arrays(dtype, shape, int_bound=2**31 - 1, float_bound=100.0))
    note(f"dagrad.{op}(dagrad.tensor({src(a)}))")
    check(run(lambda: getattr(dagrad, op)(dg(a))), run(lambda: getattr(torch, op)(th(a))),
          f"{op}({dtype}{shape})")


@given(data=st.data())
def test_clamp(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(shapes())
    a = data.draw(arrays(dtype, shape, int_bound=FLOAT_EXACT_INT))
    bounds = st.one_of(st.none(), py_scalars(int_bound=FLOAT_EXACT_INT))
    lo, hi = data.draw(bounds), data.draw(bounds)
    note(f"dagrad.tensor({src(a)}).clamp({lo!r}, {hi!r})")
    check(run(lambda: dg(a).clamp(lo, hi)), run(lambda: th(a).clamp(lo, hi)),
          f"clamp({dtype}{shape}, {lo!r}, {hi!r})")


@given(data=st.data())
def test_where(data):
    sc, sa, sb = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, min_side=0,
                                                             max_side=3)).input_shapes
    cond = data.draw(arrays("bool", sc))
    ops = []
    for s in (sa, sb):
        if data.draw(st.booleans()):
            dtype = data.draw(st.sampled_from(DTYPES))
            ops.append((dtype, data.draw(arrays(dtype, s, int_bound=FLOAT_EXACT_INT))))
        else:
            ops.append((None, data.draw(py_scalars(int_bound=FLOAT_EXACT_INT))))
    assume(any(dt is not None for dt, _ in ops))  # dagrad.where needs at least one tensor

    def make(lib):
        f = dg if lib == "dagrad" else th
        return [f(v) if dt else v for dt, v in ops]
    note(f"cond = {src(cond)}; a, b = {[src(v) if dt else repr(v) for dt, v in ops]}")
    check(run(lambda: dagrad.where(dg(cond), *make("dagrad"))),
          run(lambda: torch.where(th(cond), *make("torch"))),
          f"where({sc}, {[(dt, np.shape(v)) if dt else v for dt, v in ops]})")


@given(data=st.data())
def test_pow_scalar(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(shapes())
    reflected = data.draw(st.booleans())
    if reflected:
        # dagrad refuses a non-positive base with a tensor exponent (by design): positive bases.
        base = data.draw(st.one_of(st.integers(1, 10), st.floats(0.1, 10.0), st.just(True)))
        # An integer base to an integer tensor is int64 in torch; dagrad has no pow with a
        # tensor exponent yet: test_int_base_to_int_tensor_power below keeps that failure visible.
        assume(not (dtype in ("int64", "bool") and type(base) in (int, bool)))
        a = data.draw(arrays(dtype, shape, int_bound=10, float_bound=10.0))
        note(f"{base!r} ** dagrad.tensor({src(a)})")
        check(run(lambda: base ** dg(a)), run(lambda: base ** th(a)), f"{base!r} ** {dtype}{shape}")
        return
    # Not -0.5: PyTorch computes x ** -0.5 as rsqrt (-inf at -0.0, NaN at -inf), numpy as IEEE
    # pow (inf, 0): the references disagree.
    p = data.draw(st.one_of(st.integers(-3, 6), st.sampled_from((0.5, 2.0, 3.0, 1.5, -1.5)), st.booleans()))
    a = data.draw(arrays(dtype, shape, int_bound=1000, float_bound=100.0))
    note(f"dagrad.tensor({src(a)}) ** {p!r}")
    check(run(lambda: dg(a) ** p), run(lambda: th(a) ** p), f"{dtype}{shape} ** {p!r}")


@pytest.mark.xfail(strict=True, reason="no pow with a tensor exponent: int ** int tensor is float32, torch gives int64")
def test_int_base_to_int_tensor_power():
    got, ref = 2 ** dagrad.tensor([0, 1, 5]), 2 ** torch.tensor([0, 1, 5])
    assert str(got.dtype).split(".")[-1] == str(ref.dtype).split(".")[-1]
    assert got.tolist() == ref.tolist()


# ----------------------------------------------------------------------------- reductions

REDUCTIONS = ("sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "var",
              "std", "logsumexp")
TUPLE_DIMS = ("sum", "mean", "amax", "amin", "var", "std", "logsumexp")


@st.composite
def dims(draw, ndim, tuple_ok, none_ok):
    n = max(ndim, 1)
    choice = draw(st.integers(0, 9))
    if choice == 0 and none_ok:
        return None
    if choice < 6 or not tuple_ok:
        return draw(st.integers(-n - 1, n))  # one past each end: IndexError
    if ndim == 0:
        return (draw(st.sampled_from((0, -1))),)
    picked = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    out = [d - ndim if draw(st.booleans()) else d for d in picked]
    if draw(st.integers(0, 9)) == 0:
        out.append(out[0])  # a repeated dim: both raise
    return tuple(out)


def reduce_call(x, op, dim, keepdim, correction):
    kw = {}
    if op in ("var", "std") and correction is not None:
        kw["correction"] = correction
    if dim is None:
        return getattr(x, op)(**kw)
    return getattr(x, op)(dim=dim, keepdim=keepdim, **kw)


def _reduce_count(shape, dim):
    if dim is None or not shape:
        return max(int(np.prod(shape, dtype=np.int64)), 1)
    ds = dim if isinstance(dim, tuple) else (dim,)
    try:
        return max(int(np.prod([shape[d] for d in set(d % len(shape) for d in ds)])), 1)
    except (IndexError, ZeroDivisionError):
        return 1


@pytest.mark.parametrize("op", REDUCTIONS)
@given(data=st.data())
def test_reduction(op, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    if op == "prod":
        ints = st.one_of(st.sampled_from((-1, 0, 1, 1, 2, -3)), st.integers(-2**31, 2**31))
        a = data.draw(hnp.arrays(NP_DT[dtype], shape, elements=ints if dtype == "int64" else
                                 elements(dtype, float_bound=2.0)))
        if dtype == "int64":  # nothing that overflows int64 (PyTorch wraps, C++ would be UB)
            assume(math.prod(abs(v) for v in a.ravel().tolist()) < 2**62)
    else:
        a = data.draw(arrays(dtype, shape, int_bound=2**56, float_bound=100.0))
    dim = data.draw(dims(len(shape), op in TUPLE_DIMS, op != "logsumexp"))
    keepdim = data.draw(st.booleans())
    correction = data.draw(st.sampled_from((None, 0, 1, 2))) if op in ("var", "std") else None
    call = f"{op}(dim={dim!r}, keepdim={keepdim}" + (f", correction={correction})" if correction is not None else ")")
    note(f"dagrad.tensor({src(a)}).{call}")
    what = f"{dtype}{shape}.{call}"
    got = run(lambda: reduce_call(dg(a), op, dim, keepdim, correction))
    ref = run(lambda: reduce_call(th(a), op, dim, keepdim, correction))
    if isinstance(ref, Raised) or not is_float(dtype) or isinstance(got, Raised):
        check(got, ref, what)
        return
    # Float values against PyTorch in float64 on the same inputs, with an atol that grows with
    # the number of terms and their size; shape, dtype and indices against PyTorch in the dtype.
    check(got, ref, what, rtol=0, atol=np.inf)
    ref64 = run(lambda: reduce_call(th(a).double(), op, dim, keepdim, correction))
    if isinstance(ref64, Raised):
        return
    n = _reduce_count(shape, dim)
    finite = np.abs(a[np.isfinite(a)]) if a.size else np.zeros(0)
    m = float(finite.max()) if finite.size else 1.0
    m = max(m, 1.0)
    eps = 1e-6 if dtype == "float32" else 1e-13
    scale = {"sum": n * m, "mean": m, "var": n * m * m, "std": n * m, "logsumexp": m}.get(op, m)
    values = lambda s: s[0] if isinstance(s, tuple) else s  # noqa: E731
    gv, rv = values(got), values(ref64)
    np.testing.assert_allclose(gv.arr.astype(np.float64), rv.arr, equal_nan=True,
                               rtol=TOL[dtype]["rtol"] * (1 if op != "prod" else n),
                               atol=eps * scale, err_msg=f"{what}: values vs float64")
    if isinstance(got, tuple):  # max/min with a dim: the indices are exact
        np.testing.assert_array_equal(got[1].arr, ref[1].arr, err_msg=f"{what}: indices")


# ----------------------------------------------------------------------------- in-place ops

def _iop(name):
    f = getattr(operator, name)
    return lambda x, y: f(x, y)


INPLACE = {
    "iadd": (_iop("iadd"), 2**61),
    "isub": (_iop("isub"), 2**61),
    "imul": (_iop("imul"), 2**31 - 1),
    "itruediv": (_iop("itruediv"), 2**62),
    "add_": (lambda x, y: x.add_(y), 2**61),
    "sub_": (lambda x, y: x.sub_(y), 2**61),
    "mul_": (lambda x, y: x.mul_(y), 2**31 - 1),
    "div_": (lambda x, y: x.div_(y), 2**62),
    "copy_": (lambda x, y: x.copy_(y), 2**62),
    "fill_": (lambda x, y: x.fill_(y), 2**62),
    "clamp_": (lambda x, y: x.clamp_(*y), 2**24),
    "zero_": (lambda x, y: x.zero_(), 2**62),
}
SCALAR_ONLY = ("fill_", "clamp_", "zero_")


def run_inplace(fn, x, other):
    """(outcome of ``fn(x, other)``, the tensor seen through the caller's reference afterwards)."""
    alias = x
    out = run(lambda: fn(x, other))
    return out, run(lambda: alias)


@pytest.mark.parametrize("op", sorted(INPLACE))
@given(data=st.data())
def test_inplace(op, data):
    fn, bound = INPLACE[op]
    name = op if op.endswith("_") else f"__{op}__"
    if not hasattr(dagrad.Tensor, name):
        pytest.skip(f"dagrad.Tensor has no {name}")
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(shapes())
    computed = data.draw(st.booleans())  # a leaf, or the pending result of an op
    if op in SCALAR_ONLY:
        if op == "clamp_":
            b = st.one_of(st.none(), py_scalars(int_bound=FLOAT_EXACT_INT))
            other = (data.draw(b), data.draw(b))
            assume(other != (None, None))
        else:
            other = data.draw(py_scalars(int_bound=bound))
        odtype, oshape = None, None
    elif data.draw(st.booleans()):
        other = data.draw(py_scalars(int_bound=bound, special=op != "copy_"))
        odtype, oshape = None, None
    else:
        odtype = data.draw(st.sampled_from(DTYPES))
        oshape = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=3, min_side=0, max_side=4))
        # copy_ of NaN, inf or huge floats into an int tensor is undefined in PyTorch (a C cast).
        other = data.draw(arrays(odtype, oshape, int_bound=bound, float_bound=1e6,
                                 special=op != "copy_" or is_float(dtype)))
    float_involved = is_float(dtype) or is_float(odtype or "") or isinstance(other, float) or (
        isinstance(other, tuple) and any(isinstance(v, float) for v in other))
    a = data.draw(arrays(dtype, shape, int_bound=min(bound, FLOAT_EXACT_INT) if float_involved else bound))
    o_src = src(other) if odtype else repr(other)
    note(f"x = dagrad.tensor({src(a)}); other = {o_src}")

    def make(lib):
        if lib == "dagrad":
            x = dg(a)
            if computed:
                x = x.reshape(-1).reshape(shape)
            return x, (dg(other) if odtype else other)
        x = th(a)
        return (x.clone() if computed else x), (th(other) if odtype else other)

    what = f"{op} on {'computed ' if computed else ''}{dtype}{shape} with " + (
        f"{odtype}{oshape}" if odtype else repr(other))
    d_out, d_alias = run_inplace(fn, *make("dagrad"))
    t_out, t_alias = run_inplace(fn, *make("torch"))
    check(d_out, t_out, what)
    if torch_refuses_dtype(t_out) and not isinstance(d_out, Raised):
        return  # dagrad did what PyTorch refuses: nothing to compare the tensor with
    check(d_alias, t_alias, f"{what}: the tensor afterwards (through the caller's reference)")
