"""Every op, one line each: forward against numpy, backward against float64 finite
differences through a random output gradient (see torch_helpers.py)."""
import itertools
import warnings

import numpy as np
import pytest

import dagrad
from torch_helpers import (
    TOL64,
    assert_same,
    check_double_backward,
    helper_test_op,
    make_input,
    nonzero_input,
    positive_input,
    to_np,
)

# ----------------------------------------------------------------------------- binary ops

SHAPES = [(), (1,), (3,), (1, 3), (2, 1), (2, 3), (4, 1, 3), (4, 2, 1), (1, 2, 3)]


def _broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


PAIRS = [(a, b) for a, b in itertools.product(SHAPES, SHAPES) if _broadcastable(a, b)]
PAIR_IDS = [f"{a}-{b}" for a, b in PAIRS]

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


def test_broadcast_pairs_cover_the_interesting_cases():
    # Scalar with everything, row against column, rank growth on either side.
    assert ((), (4, 1, 3)) in PAIRS and ((2, 1), (1, 3)) in PAIRS
    assert ((4, 1, 3), (2, 1)) in PAIRS and ((3,), (4, 2, 1)) in PAIRS
    assert ((2, 3), (3, 1)) not in PAIRS and len(PAIRS) > 50


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("sa,sb", PAIRS, ids=PAIR_IDS)
def test_binary_broadcast(op, sa, sb):
    fn, ref = BINARY[op]
    a = make_input(sa, seed=1)
    b = nonzero_input(sb, seed=2) if op == "div" else make_input(sb, seed=2)
    helper_test_op(vals=[a, b], dagrad_fn=fn, np_fn=ref)


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_functional_form(op):
    fn = getattr(dagrad, op)
    a, b = make_input((2, 3), seed=3), nonzero_input((3,), seed=4)
    helper_test_op(vals=[a, b], dagrad_fn=fn, np_fn=BINARY[op][1])


def test_binary_same_tensor_both_sides():
    helper_test_op(vals=[make_input((2, 3), seed=5)], dagrad_fn=lambda x: x * x, np_fn=lambda x: x * x)
    helper_test_op(vals=[nonzero_input((2, 3), seed=5)], dagrad_fn=lambda x: x / x, np_fn=lambda x: x / x)
    helper_test_op(vals=[make_input((2, 3), seed=5)], dagrad_fn=lambda x: x - x, np_fn=lambda x: x - x)


# ----------------------------------------------------------------------------- scalars

SCALAR_CASES = {
    "x+2": (lambda x: x + 2, lambda x: x + 2),
    "2+x": (lambda x: 2 + x, lambda x: 2 + x),
    "x-2": (lambda x: x - 2, lambda x: x - 2),
    "2-x": (lambda x: 2 - x, lambda x: 2 - x),
    "x*2.5": (lambda x: x * 2.5, lambda x: x * 2.5),
    "2.5*x": (lambda x: 2.5 * x, lambda x: 2.5 * x),
    "x/2": (lambda x: x / 2, lambda x: x / 2),
    "2/x": (lambda x: 2 / x, lambda x: 2 / x),
    "2**x": (lambda x: 2 ** x, lambda x: 2.0 ** x),
    "1.5**x": (lambda x: 1.5 ** x, lambda x: 1.5 ** x),
    "-x": (lambda x: -x, lambda x: -x),
}


@pytest.mark.parametrize("case", sorted(SCALAR_CASES))
def test_python_scalar_operand(case):
    fn, ref = SCALAR_CASES[case]
    helper_test_op(vals=[nonzero_input((2, 3), seed=6)], dagrad_fn=fn, np_fn=ref)


def test_python_scalar_keeps_tensor_dtype():
    x = dagrad.tensor(np.ones(3, dtype=np.float32))
    for y in (x + 1, 1 + x, x * 2.5, 2 - x, 2 / x, 2 ** x):
        assert y.dtype == dagrad.float32


# ----------------------------------------------------------------------------- unary ops

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


UNARY = {
    # name: (dagrad fn, numpy fn, input generator)
    "neg": (lambda x: -x, np.negative, lambda s: make_input(s, seed=7)),
    "neg_fn": (dagrad.neg, np.negative, lambda s: make_input(s, seed=7)),
    "exp": (lambda x: x.exp(), np.exp, lambda s: make_input(s, seed=8)),
    "exp_fn": (dagrad.exp, np.exp, lambda s: make_input(s, seed=8)),
    "log": (lambda x: x.log(), np.log, lambda s: positive_input(s, seed=9)),
    "log_fn": (dagrad.log, np.log, lambda s: positive_input(s, seed=9)),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, lambda s: positive_input(s, seed=10)),
    "sqrt_fn": (dagrad.sqrt, np.sqrt, lambda s: positive_input(s, seed=10)),
    "tanh": (lambda x: x.tanh(), np.tanh, lambda s: make_input(s, seed=11)),
    "tanh_fn": (dagrad.tanh, np.tanh, lambda s: make_input(s, seed=11)),
    "sigmoid": (lambda x: x.sigmoid(), _sigmoid, lambda s: make_input(s, seed=12, low=-6, high=6)),
    "sigmoid_fn": (dagrad.sigmoid, _sigmoid, lambda s: make_input(s, seed=12, low=-6, high=6)),
    # NOTE: relu's inputs stay >= 0.1 away from the kink at 0.
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0),
             lambda s: nonzero_input(s, seed=13, low=0.1, high=2.0)),
    "relu_fn": (dagrad.relu, lambda x: np.maximum(x, 0),
                lambda s: nonzero_input(s, seed=13, low=0.1, high=2.0)),
}


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 1, 4)], ids=str)
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op, shape):
    fn, ref, gen = UNARY[op]
    helper_test_op(vals=[gen(shape)], dagrad_fn=fn, np_fn=ref)


def test_sigmoid_saturates_without_nan():
    x = np.array([-800.0, -50.0, 0.0, 50.0, 800.0])
    assert_same(dagrad.tensor(x).sigmoid(), _sigmoid(np.clip(x, -700, 700)), TOL64)


def test_exp_large_and_log_of_zero_match_numpy():
    with np.errstate(over="ignore", divide="ignore"):
        assert_same(dagrad.tensor(np.array([800.0, -800.0])).exp(), np.exp([800.0, -800.0]), TOL64)
        assert_same(dagrad.tensor(np.array([0.0, 1.0])).log(), np.log([0.0, 1.0]), TOL64)


# ----------------------------------------------------------------------------- pow

@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1, 1.7, 2.0, 0, 1])
@pytest.mark.parametrize("form", ["operator", "method", "function"])
def test_pow(exponent, form):
    fns = {"operator": lambda x: x ** exponent, "method": lambda x: x.pow(exponent),
           "function": lambda x: dagrad.pow(x, exponent)}
    # Integer exponents >= 0 are smooth everywhere (use both signs); the others need x > 0.
    if isinstance(exponent, int) and exponent >= 0:
        x = make_input((2, 3), seed=14)
    else:
        x = positive_input((2, 3), seed=14)
    helper_test_op(vals=[x], dagrad_fn=fns[form], np_fn=lambda a: np.power(a, float(exponent)))


def test_pow_integer_exponent_of_negative_base():
    x = np.array([-2.0, -0.5, 1.5])
    helper_test_op(vals=[x], dagrad_fn=lambda t: t ** 3, np_fn=lambda a: a ** 3)
    helper_test_op(vals=[x], dagrad_fn=lambda t: t ** -1, np_fn=lambda a: a ** -1.0)


# ----------------------------------------------------------------------------- matmul

MATMUL_SHAPES = [
    ((2, 3), (3, 4)),            # 2-d
    ((1, 1), (1, 1)),
    ((5, 2, 3), (5, 3, 4)),      # batched
    ((2, 1, 2, 3), (3, 3, 4)),   # batch broadcasting, both sides
    ((1, 2, 3), (4, 3, 2)),
    ((4, 2, 3), (3, 5)),         # batched @ 2-d
    ((2, 3), (4, 3, 5)),         # 2-d @ batched
    ((3,), (3,)),                # 1-d @ 1-d -> scalar
    ((3,), (3, 4)),              # 1-d @ 2-d
    ((2, 3), (3,)),              # 2-d @ 1-d
    ((5, 2, 3), (3,)),           # batched @ 1-d
    ((3,), (5, 3, 4)),           # 1-d @ batched
    ((17, 33), (33, 9)),         # not a multiple of any block size
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul(sa, sb):
    a, b = make_input(sa, seed=15), make_input(sb, seed=16)
    helper_test_op(vals=[a, b], dagrad_fn=lambda x, y: x @ y, np_fn=np.matmul)


def test_matmul_function_and_method():
    a, b = make_input((2, 3), seed=17), make_input((3, 2), seed=18)
    helper_test_op(vals=[a, b], dagrad_fn=dagrad.matmul, np_fn=np.matmul)
    helper_test_op(vals=[a, b], dagrad_fn=lambda x, y: x.matmul(y), np_fn=np.matmul)


def test_matmul_larger_forward():
    a, b = make_input((70, 130), seed=19), make_input((130, 65), seed=20)
    assert_same(dagrad.tensor(a) @ dagrad.tensor(b), a @ b, TOL64)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    # float32 accumulation over k = 130 terms of size ~1: allow a few float32 ulps times sqrt(k).
    out = to_np(dagrad.tensor(a32) @ dagrad.tensor(b32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, a32.astype(np.float64) @ b32.astype(np.float64),
                               rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- reductions

REDUCE_DIMS = [None, 0, 1, 2, -1, -3, (0, 2), (-1, -3), (1, 2), (0, 1, 2), [2, 0]]


def _np_axis(dim):
    return tuple(dim) if isinstance(dim, list) else dim


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", REDUCE_DIMS, ids=str)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduce(op, dim, keepdim):
    x = make_input((2, 3, 4), seed=21)
    ref = getattr(np, op)

    def fn(t):
        if dim is None and not keepdim:
            return getattr(t, op)()
        return getattr(t, op)(dim=dim, keepdim=keepdim)

    helper_test_op(vals=[x], dagrad_fn=fn, np_fn=lambda a: ref(a, axis=_np_axis(dim), keepdims=keepdim))


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduce_function_form(op):
    x = make_input((3, 4), seed=22)
    ref = getattr(np, op)
    helper_test_op(vals=[x], dagrad_fn=lambda t: getattr(dagrad, op)(t), np_fn=ref)
    helper_test_op(vals=[x], dagrad_fn=lambda t: getattr(dagrad, op)(t, 1, keepdim=True),
                   np_fn=lambda a: ref(a, axis=1, keepdims=True))
    helper_test_op(vals=[x], dagrad_fn=lambda t: getattr(dagrad, op)(t, dim=-2),
                   np_fn=lambda a: ref(a, axis=-2))


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduce_of_scalar_and_vector(op):
    ref = getattr(np, op)
    helper_test_op(vals=[np.array(1.5)], dagrad_fn=lambda t: getattr(t, op)(), np_fn=ref)
    helper_test_op(vals=[make_input((7,), seed=23)], dagrad_fn=lambda t: getattr(t, op)(dim=0),
                   np_fn=lambda a: ref(a, axis=0))


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduce_large_forward(op):
    # Big enough for the reduction to be split into chunks.
    x = make_input((300, 1001), seed=24)
    ref = getattr(np, op)
    for dim in (None, 0, 1):
        t = getattr(dagrad.tensor(x), op)() if dim is None else getattr(dagrad.tensor(x), op)(dim=dim)
        assert_same(t, ref(x, axis=dim), TOL64)
    x32 = x.astype(np.float32)
    got = to_np(getattr(dagrad.tensor(x32), op)())
    assert got.dtype == np.float32
    # 300k float32 terms: the error bound of a chunked/pairwise sum is well under 1e-4 relative.
    np.testing.assert_allclose(got, ref(x32.astype(np.float64)), rtol=1e-4,
                               atol=1e-4 * np.abs(x32).sum() / (x.size if op == "mean" else 1))


# ----------------------------------------------------------------------------- movement

RESHAPES = [
    ((2, 3, 4), (6, 4)),
    ((2, 3, 4), (-1,)),
    ((2, 3, 4), (4, -1)),
    ((2, 3, 4), (2, -1, 2)),
    ((2, 3, 4), (24,)),
    ((2, 3, 4), (1, 24, 1)),
    ((6,), (2, 3)),
    ((), (1, 1)),
    ((1,), ()),
    ((2, 3, 4), (2, 3, 4)),
]


@pytest.mark.parametrize("src,dst", RESHAPES, ids=[f"{a}->{b}" for a, b in RESHAPES])
def test_reshape(src, dst):
    x = make_input(src, seed=25)
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.reshape(dst), np_fn=lambda a: a.reshape(dst))


def test_reshape_argument_forms():
    x = make_input((2, 6), seed=26)
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.reshape(3, 4), np_fn=lambda a: a.reshape(3, 4))
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.reshape([4, -1]), np_fn=lambda a: a.reshape(4, -1))
    helper_test_op(vals=[x], dagrad_fn=lambda t: dagrad.reshape(t, (12,)), np_fn=lambda a: a.reshape(12))
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.view(3, -1), np_fn=lambda a: a.reshape(3, -1))


def test_reshape_then_compute():
    # A reshape shares storage with its input: a later op must read it in the new layout.
    x = make_input((2, 3, 4), seed=27)
    helper_test_op(vals=[x], dagrad_fn=lambda t: (t.reshape(4, 6) * 2).transpose(0, 1).reshape(-1, 3),
                   np_fn=lambda a: (a.reshape(4, 6) * 2).T.reshape(-1, 3))


TRANSPOSES = [((2, 3), 0, 1), ((2, 3), 1, 0), ((2, 3, 4), 0, 2), ((2, 3, 4), -1, -2),
              ((2, 3, 4), 1, 1), ((2, 3, 4, 5), 1, 3)]


@pytest.mark.parametrize("shape,d0,d1", TRANSPOSES, ids=str)
def test_transpose(shape, d0, d1):
    x = make_input(shape, seed=28)
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.transpose(d0, d1), np_fn=lambda a: np.swapaxes(a, d0, d1))
    helper_test_op(vals=[x], dagrad_fn=lambda t: dagrad.transpose(t, d0, d1), np_fn=lambda a: np.swapaxes(a, d0, d1))


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4)], ids=str)
def test_T(shape):
    # numpy's .T reverses all dimensions.
    helper_test_op(vals=[make_input(shape, seed=29)], dagrad_fn=lambda t: t.T, np_fn=lambda a: a.T)


PERMUTES = [((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), (0, 1, 2)),
            ((2, 3, 4), (-1, 0, 1)), ((2, 3, 4, 5), (3, 1, 0, 2)), ((5, 1), (1, 0))]


@pytest.mark.parametrize("shape,perm", PERMUTES, ids=str)
def test_permute(shape, perm):
    x = make_input(shape, seed=30)
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.permute(*perm), np_fn=lambda a: np.transpose(a, perm))
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.permute(perm), np_fn=lambda a: np.transpose(a, perm))
    helper_test_op(vals=[x], dagrad_fn=lambda t: dagrad.permute(t, perm), np_fn=lambda a: np.transpose(a, perm))


EXPANDS = [((3, 1), (3, 4)), ((1, 3), (2, 3)), ((3,), (2, 3)), ((), (2, 3)),
           ((2, 1, 3), (4, 2, 5, 3)), ((3, 1), (-1, 4)), ((1,), (1,)), ((1, 1), (2, 5))]


@pytest.mark.parametrize("src,dst", EXPANDS, ids=[f"{a}->{b}" for a, b in EXPANDS])
def test_expand(src, dst):
    x = make_input(src, seed=31)
    np_dst = tuple(s if d == -1 else d for s, d in
                   zip((1,) * (len(dst) - len(src)) + tuple(src), dst))
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.expand(*dst), np_fn=lambda a: np.broadcast_to(a, np_dst))
    helper_test_op(vals=[x], dagrad_fn=lambda t: t.expand(dst), np_fn=lambda a: np.broadcast_to(a, np_dst))


# ----------------------------------------------------------------------------- compositions

def test_composite_mlp_layer():
    x, w, b = make_input((4, 3), seed=32), make_input((3, 5), seed=33), make_input((5,), seed=34)
    helper_test_op(vals=[x, w, b], dagrad_fn=lambda x, w, b: (x @ w + b).tanh().sigmoid().mean(dim=0),
                   np_fn=lambda x, w, b: _sigmoid(np.tanh(x @ w + b)).mean(axis=0))


def test_composite_fan_in():
    helper_test_op(vals=[positive_input((2, 3), seed=35)],
                   dagrad_fn=lambda x: (x * x.exp() + x.log() / x - x.sqrt() * x.T.T) ** 2,
                   np_fn=lambda x: (x * np.exp(x) + np.log(x) / x - np.sqrt(x) * x) ** 2)


# ----------------------------------------------------------------------------- second order

SECOND_ORDER = {
    # Backward rules emit ordinary ops, so gradients are themselves differentiable.
    "mul": (lambda a, b: a * b, [(2, 3), (3,)], make_input),
    "div": (lambda a, b: a / b, [(2, 3), (2, 1)], nonzero_input),
    "sub": (lambda a, b: a - b * b, [(2, 3), (1, 3)], make_input),
    "exp": (lambda x: x.exp(), [(2, 3)], make_input),
    "log": (lambda x: x.log(), [(2, 3)], positive_input),
    "sqrt": (lambda x: x.sqrt(), [(2, 3)], positive_input),
    "tanh": (lambda x: x.tanh(), [(2, 3)], make_input),
    "sigmoid": (lambda x: x.sigmoid(), [(2, 3)], make_input),
    "relu": (lambda x: x.relu() * x, [(2, 3)],
             lambda s, seed: nonzero_input(s, seed=seed, low=0.1, high=2.0)),
    "pow1.7": (lambda x: x ** 1.7, [(2, 3)], positive_input),
    "pow-1": (lambda x: x ** -1, [(2, 3)], positive_input),
    "matmul": (lambda a, b: (a @ b) * (a @ b), [(2, 3), (3, 4)], make_input),
    "sum": (lambda x: (x * x).sum(dim=1, keepdim=True) * x, [(2, 3)], make_input),
    "mean": (lambda x: x.mean(dim=0) * x, [(2, 3)], make_input),
    "movement": (lambda x: x.T.reshape(-1).expand(2, 6).permute(1, 0) * x.reshape(6, 1),
                 [(2, 3)], make_input),
}


@pytest.mark.parametrize("case", sorted(SECOND_ORDER))
def test_second_derivative(case):
    fn, shapes, gen = SECOND_ORDER[case]
    check_double_backward(fn, [gen(s, seed=40 + i) for i, s in enumerate(shapes)])


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("op", sorted(BINARY))
def test_promotion_float32_float64(op):
    fn, ref = BINARY[op]
    a32 = make_input((2, 3), seed=36).astype(np.float32)
    b64 = nonzero_input((3,), seed=37)
    for x, y in ((a32, b64), (b64, a32)):
        out = fn(dagrad.tensor(x), dagrad.tensor(y))
        assert out.dtype == dagrad.float64
        assert_same(out, ref(x.astype(np.float64), y.astype(np.float64)), TOL64)


def test_promotion_gradients_keep_input_dtypes():
    a32 = dagrad.tensor(make_input((2, 3), seed=38).astype(np.float32), requires_grad=True)
    b64 = dagrad.tensor(make_input((2, 3), seed=39), requires_grad=True)
    (a32 * b64).sum().backward()
    assert a32.grad.dtype == dagrad.float32 and b64.grad.dtype == dagrad.float64
    np.testing.assert_allclose(to_np(a32.grad), to_np(b64).astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(to_np(b64.grad), to_np(a32).astype(np.float64), rtol=1e-12)


def test_python_float_tensor_is_float32_and_numpy_keeps_float64():
    assert dagrad.tensor([1.0, 2.0]).dtype == dagrad.float32
    assert dagrad.tensor(np.array([1.0, 2.0])).dtype == dagrad.float64
    assert dagrad.tensor(np.array([1.0], dtype=np.float32)).dtype == dagrad.float32
    assert (dagrad.tensor([1.0]) + dagrad.tensor(np.array([1.0]))).dtype == dagrad.float64


# ----------------------------------------------------------------------------- zero-size

ZERO_UNARY = [lambda t: -t, lambda t: t.exp(), lambda t: t.log(), lambda t: t.sqrt(),
              lambda t: t.tanh(), lambda t: t.sigmoid(), lambda t: t.relu(), lambda t: t ** 2,
              lambda t: t * 2 + 1]
ZERO_UNARY_NP = [np.negative, np.exp, np.log, np.sqrt, np.tanh, _sigmoid,
                 lambda a: np.maximum(a, 0), lambda a: a ** 2, lambda a: a * 2 + 1]


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3), (2, 0, 3)], ids=str)
def test_zero_size_forward(shape):
    x = np.zeros(shape)
    t = dagrad.tensor(x)
    for fn, ref in zip(ZERO_UNARY, ZERO_UNARY_NP):
        assert_same(fn(t), ref(x), TOL64)
    assert_same(t + dagrad.tensor(np.ones(shape[-1:])), x + np.ones(shape[-1:]), TOL64)
    assert_same(t.sum(), np.sum(x), TOL64)
    assert_same(t.sum(dim=0), np.sum(x, axis=0), TOL64)
    assert_same(t.sum(dim=-1, keepdim=True), np.sum(x, axis=-1, keepdims=True), TOL64)
    assert_same(t.reshape(-1), x.reshape(-1), TOL64)
    assert_same(t.T, x.T, TOL64)
    assert t.numel() == 0 and t.shape == shape


def test_zero_size_mean_is_nan():
    # numpy and PyTorch: the mean of no elements is nan.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.mean(np.zeros((0, 3)), axis=0)
        ref_all = np.mean(np.zeros((0, 3)))
    assert np.isnan(ref_all) and np.all(np.isnan(ref))
    assert_same(dagrad.tensor(np.zeros((0, 3))).mean(dim=0), ref, TOL64)
    assert_same(dagrad.tensor(np.zeros((0, 3))).mean(), ref_all, TOL64)


@pytest.mark.parametrize("sa,sb", [((2, 0), (0, 3)), ((0, 3), (3, 2)), ((2, 3), (3, 0)),
                                   ((4, 0, 2), (2, 5)), ((0,), (0,))], ids=str)
def test_zero_size_matmul(sa, sb):
    a, b = np.ones(sa), np.ones(sb)
    assert_same(dagrad.tensor(a) @ dagrad.tensor(b), a @ b, TOL64)


def test_zero_size_creation_and_expand():
    assert_same(dagrad.zeros(0, 3, dtype=dagrad.float64), np.zeros((0, 3)), TOL64)
    assert_same(dagrad.ones(3, dtype=dagrad.float64).expand(0, 3), np.ones((0, 3)), TOL64)
    assert dagrad.tensor([]).shape == (0,)
