"""dagrad against PyTorch, one line per op: elementwise, comparisons, reductions, movement,
indexing and dtypes. Forward, backward with a random output gradient, and float64 gradcheck;
see torch_helpers.py for what one ``helper_test_op`` line checks and why the tolerances are
what they are."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dagrad  # noqa: E402
import dagrad.nn.functional as DF  # noqa: E402
from torch_helpers import TOL32, TOL64, assert_same, dg, helper_test_op, make_input, rng, th, to_np  # noqa: E402

TF = torch.nn.functional

# ----------------------------------------------------------------------------- shapes and views

# 0-d, zero-size, and 1- to 3-d.
UNARY_SHAPES = [(), (0,), (5,), (3, 4), (2, 0, 3), (2, 3, 4)]

# Non-contiguous inputs: (leaf shape, view applied to the leaf on both sides).
VIEWS = {
    "transposed": ((4, 3), lambda t: t.transpose(0, 1)),
    "sliced": ((5, 6), lambda t: t[1:, ::2]),
    "permuted": ((2, 3, 4), lambda t: t.permute(2, 0, 1)),
    "expanded": ((3, 1), lambda t: t.expand(3, 4)),
}


def test_views_are_really_non_contiguous_in_torch():
    for shape, view in VIEWS.values():
        assert not view(torch.zeros(shape)).is_contiguous()


# ----------------------------------------------------------------------------- unary ops

# name: (torch fn, dagrad fn or None for the same lambda, low, high, kinks)
UNARY = {
    "neg": (lambda x: -x, None, -2, 2, ()),
    "abs": (lambda x: x.abs(), None, -2, 2, (0,)),
    "abs_fn": (torch.abs, dagrad.abs, -2, 2, (0,)),
    "abs_op": (lambda x: abs(x), None, -2, 2, (0,)),
    "square": (lambda x: x.square(), None, -2, 2, ()),
    "square_fn": (torch.square, dagrad.square, -2, 2, ()),
    "sign": (lambda x: x.sign(), None, -2, 2, (0,)),
    "sin": (lambda x: x.sin(), None, -3, 3, ()),
    "cos": (lambda x: x.cos(), None, -3, 3, ()),
    "log1p": (lambda x: x.log1p(), None, -0.9, 3, ()),
    "expm1": (lambda x: x.expm1(), None, -2, 2, ()),
    "rsqrt": (lambda x: x.rsqrt(), None, 0.3, 3, ()),
    "exp": (lambda x: x.exp(), None, -2, 2, ()),
    "log": (lambda x: x.log(), None, 0.3, 3, ()),
    "sqrt": (lambda x: x.sqrt(), None, 0.3, 3, ()),
    "tanh": (lambda x: x.tanh(), None, -2, 2, ()),
    "sigmoid": (lambda x: x.sigmoid(), None, -3, 3, ()),
    "relu": (lambda x: x.relu(), None, -2, 2, (0,)),
    "erf": (lambda x: x.erf(), None, -2, 2, ()),
    "exp_fn": (torch.exp, dagrad.exp, -2, 2, ()),
    "log_fn": (torch.log, dagrad.log, 0.3, 3, ()),
    "sqrt_fn": (torch.sqrt, dagrad.sqrt, 0.3, 3, ()),
    "tanh_fn": (torch.tanh, dagrad.tanh, -2, 2, ()),
    "sigmoid_fn": (torch.sigmoid, dagrad.sigmoid, -3, 3, ()),
    "relu_fn": (torch.relu, dagrad.relu, -2, 2, (0,)),
    "sin_fn": (torch.sin, dagrad.sin, -3, 3, ()),
    "cos_fn": (torch.cos, dagrad.cos, -3, 3, ()),
    "log1p_fn": (torch.log1p, dagrad.log1p, -0.9, 3, ()),
    "expm1_fn": (torch.expm1, dagrad.expm1, -2, 2, ()),
    "rsqrt_fn": (torch.rsqrt, dagrad.rsqrt, 0.3, 3, ()),
    "sign_fn": (torch.sign, dagrad.sign, -2, 2, (0,)),
    "pow2": (lambda x: x ** 2, None, -2, 2, ()),
    "pow3": (lambda x: x ** 3, None, -2, 2, ()),
    "pow0.5": (lambda x: x ** 0.5, None, 0.3, 3, ()),
    "pow-1.5": (lambda x: x ** -1.5, None, 0.3, 3, ()),
    "pow_fn": (lambda x: torch.pow(x, 2.5), lambda x: dagrad.pow(x, 2.5), 0.3, 3, ()),
    "rpow": (lambda x: 2.0 ** x, None, -2, 2, ()),
    "clamp_min": (lambda x: x.clamp(min=-0.5), None, -2, 2, (-0.5,)),
    "clamp_max": (lambda x: x.clamp(max=0.7), None, -2, 2, (0.7,)),
    "clamp_both": (lambda x: x.clamp(-0.5, 0.7), None, -2, 2, (-0.5, 0.7)),
    "clamp_fn": (lambda x: torch.clamp(x, min=-0.5, max=0.7),
                 lambda x: dagrad.clamp(x, min=-0.5, max=0.7), -2, 2, (-0.5, 0.7)),
    "clip": (lambda x: torch.clip(x, -0.5, 0.7), lambda x: dagrad.clip(x, -0.5, 0.7), -2, 2, (-0.5, 0.7)),
    "leaky_relu": (TF.leaky_relu, DF.leaky_relu, -2, 2, (0,)),
    "leaky_relu_0.2": (lambda x: TF.leaky_relu(x, 0.2), lambda x: DF.leaky_relu(x, 0.2), -2, 2, (0,)),
    "elu": (TF.elu, DF.elu, -2, 2, (0,)),
    "elu_0.5": (lambda x: TF.elu(x, alpha=0.5), lambda x: DF.elu(x, alpha=0.5), -2, 2, (0,)),
    "gelu": (TF.gelu, DF.gelu, -3, 3, ()),
    "gelu_tanh": (lambda x: TF.gelu(x, approximate="tanh"), lambda x: DF.gelu(x, approximate="tanh"),
                  -3, 3, ()),
    "softplus": (TF.softplus, DF.softplus, -3, 3, ()),
    # beta * x crosses the threshold inside the range: both branches (kept off the switch).
    "softplus_beta2_thr1": (lambda x: TF.softplus(x, beta=2.0, threshold=1.0),
                            lambda x: DF.softplus(x, beta=2.0, threshold=1.0), -3, 3, (0.5,)),
    "silu": (TF.silu, DF.silu, -3, 3, ()),
    "F.relu": (TF.relu, DF.relu, -2, 2, (0,)),
    "F.sigmoid": (torch.sigmoid, DF.sigmoid, -3, 3, ()),
    "F.tanh": (torch.tanh, DF.tanh, -2, 2, ()),
}


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("op", list(UNARY))
def test_unary(op, shape):
    tfn, dfn, lo, hi, kinks = UNARY[op]
    helper_test_op([shape], tfn, dfn, low=lo, high=hi, kinks=kinks)


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("op", ["abs", "exp", "log", "tanh", "sigmoid", "relu", "gelu", "softplus",
                                "clamp_both", "pow3", "elu", "silu", "rsqrt", "square"])
def test_unary_non_contiguous(op, view):
    tfn, dfn, lo, hi, kinks = UNARY[op]
    shape, v = VIEWS[view]
    helper_test_op([shape], tfn, dfn, low=lo, high=hi, kinks=kinks, views=[v])


def test_activations_large_inputs_are_finite_and_match_torch():
    x = np.array([-1000.0, -50.0, -20.5, -1.0, 1.0, 20.5, 50.0, 1000.0])
    for tfn, dfn in [(TF.softplus, DF.softplus), (TF.silu, DF.silu), (TF.elu, DF.elu),
                     (torch.sigmoid, DF.sigmoid), (torch.tanh, DF.tanh), (TF.gelu, DF.gelu),
                     (lambda t: TF.gelu(t, approximate="tanh"), lambda t: DF.gelu(t, approximate="tanh"))]:
        helper_test_op(None, tfn, dfn, vals=[x], gradcheck=False)


# ----------------------------------------------------------------------------- binary ops

BIN_SHAPES = [(), (1,), (3,), (1, 3), (2, 1), (2, 3), (4, 1, 3), (4, 2, 1), (1, 2, 3), (0,), (0, 3)]


def _broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


PAIRS = [(a, b) for a, b in itertools.product(BIN_SHAPES, BIN_SHAPES) if _broadcastable(a, b)]
PAIR_IDS = [f"{a}-{b}" for a, b in PAIRS]


def test_broadcast_pairs_cover_the_interesting_cases():
    assert ((), (4, 1, 3)) in PAIRS and ((2, 1), (1, 3)) in PAIRS and ((0,), (2, 1)) in PAIRS
    assert ((4, 1, 3), (2, 1)) in PAIRS and ((3,), (4, 2, 1)) in PAIRS and ((0, 3), (1,)) in PAIRS
    assert ((2, 3), (3, 1)) not in PAIRS and len(PAIRS) > 70


BINARY = {
    "add": (lambda a, b: a + b, None),
    "sub": (lambda a, b: a - b, None),
    "mul": (lambda a, b: a * b, None),
    "div": (lambda a, b: a / b, None),
    "add_fn": (torch.add, dagrad.add),
    "sub_fn": (torch.sub, dagrad.sub),
    "mul_fn": (torch.mul, dagrad.mul),
    "div_fn": (torch.div, dagrad.div),
    "maximum": (torch.maximum, dagrad.maximum),
    "minimum": (torch.minimum, dagrad.minimum),
    "max_binary": (torch.max, dagrad.max),
    "min_binary": (torch.min, dagrad.min),
}


MAXMIN = ("maximum", "minimum", "max_binary", "min_binary")


def _binary_inputs(op, sa, sb, seed=0):
    if op in MAXMIN:
        # a on the grid 0.2k, b on 0.2k + 0.1: never closer than 0.1, so no ties (ties have
        # their own test) and finite differences stay on one side.
        a = np.round(make_input(sa, seed + 1) / 0.2) * 0.2
        b = np.round(make_input(sb, seed + 2) / 0.2) * 0.2 + 0.1
        return [a, b]
    a = make_input(sa, seed + 1)
    if op.startswith("div"):  # a divisor away from 0
        b = make_input(sb, seed + 2, 0.5, 2.0) * np.where(rng(seed + 3).random(sb) < 0.5, -1, 1)
    else:
        b = make_input(sb, seed + 2)
    return [a, b]


@pytest.mark.parametrize("sa,sb", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("op", list(BINARY))
def test_binary_broadcast(op, sa, sb):
    tfn, dfn = BINARY[op]
    helper_test_op(None, tfn, dfn, vals=_binary_inputs(op, sa, sb))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum"])
@pytest.mark.parametrize("view", ["transposed", "sliced", "expanded"])
def test_binary_non_contiguous(op, view):
    tfn, dfn = BINARY[op]
    shape, v = VIEWS[view]
    out_shape = tuple(v(torch.zeros(shape)).shape)
    a = make_input(shape, 1)
    b = make_input(out_shape[-1:], 2, 0.5, 2.0) + 2.0  # also apart from a: no ties
    # The view on the left, and a contiguous operand broadcast against it on the right.
    helper_test_op(None, tfn, dfn, vals=[a, b], views=[v, None])
    # Both operands non-contiguous.
    helper_test_op(None, tfn, dfn, vals=[a, a * 0.5 + 3.0], views=[v, v])


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_ties_share_the_gradient_as_torch(op):
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 0.0, 3.0, 2.0])
    tfn, dfn = BINARY[op]
    helper_test_op(None, tfn, dfn, vals=[a, b], gradcheck=False)


@pytest.mark.parametrize("scalar", [2, 2.5, -0.75])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "radd", "rsub", "rmul", "rdiv"])
def test_binary_with_python_scalar(op, scalar):
    fns = {"add": lambda x: x + scalar, "sub": lambda x: x - scalar, "mul": lambda x: x * scalar,
           "div": lambda x: x / scalar, "radd": lambda x: scalar + x, "rsub": lambda x: scalar - x,
           "rmul": lambda x: scalar * x, "rdiv": lambda x: scalar / x}
    lo = 0.5 if op == "rdiv" else -2.0
    helper_test_op([(2, 3)], fns[op], low=lo, high=2.0)


# ----------------------------------------------------------------------------- where

WHERE_CASES = [  # cond, a, b
    ((2, 3), (2, 3), (2, 3)), ((2, 3), (), ()), ((2, 1), (1, 3), ()), ((3,), (2, 3), (2, 1)),
    ((), (2, 3), (3,)), ((4, 1, 3), (2, 1), (1, 2, 3)), ((0, 3), (3,), (0, 1)), ((), (), ()),
]


@pytest.mark.parametrize("sc,sa,sb", WHERE_CASES, ids=[str(c) for c in WHERE_CASES])
def test_where(sc, sa, sb):
    mask = rng(5).random(sc) < 0.5
    helper_test_op([sa, sb], lambda a, b: torch.where(th(mask), a, b),
                   lambda a, b: dagrad.where(dg(mask), a, b))


@pytest.mark.parametrize("sa,sb", PAIRS, ids=PAIR_IDS)
def test_where_broadcast_pairs(sa, sb):
    full = np.broadcast_shapes(sa, sb)
    mask = rng(6).random(full) < 0.5
    helper_test_op([sa, sb], lambda a, b: torch.where(th(mask), a, b),
                   lambda a, b: dagrad.where(dg(mask), a, b))


def test_where_with_python_numbers_and_a_comparison_as_condition():
    helper_test_op([(3, 4)], lambda x: torch.where(x > 0, x, 0.0), lambda x: dagrad.where(x > 0, x, 0.0),
                   kinks=(0,))
    helper_test_op([(3, 4)], lambda x: torch.where(x < 0.5, 1.5, x), lambda x: dagrad.where(x < 0.5, 1.5, x),
                   kinks=(0.5,))


def test_where_non_contiguous():
    mask = rng(7).random((3, 4)) < 0.5
    helper_test_op([(4, 3), (4, 8)], lambda a, b: torch.where(th(mask), a, b),
                   lambda a, b: dagrad.where(dg(mask), a, b),
                   views=[VIEWS["transposed"][1], lambda t: t[1:, ::2]])


# ----------------------------------------------------------------------------- comparisons

CMP = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
       "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def _small_ints(shape, seed):
    """Integer-valued floats in {-1, 0, 1}: equal elements are common."""
    return rng(seed).integers(-1, 2, size=shape).astype(np.float64)


@pytest.mark.parametrize("sa,sb", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("op", list(CMP))
def test_comparison_operators(op, sa, sb):
    vals = [_small_ints(sa, 1), _small_ints(sb, 2)]
    helper_test_op(None, CMP[op], vals=vals, grad=False)


@pytest.mark.parametrize("op", list(CMP))
def test_comparison_functions_and_methods(op):
    vals = [_small_ints((3, 4), 3), _small_ints((4,), 4)]
    helper_test_op(None, getattr(torch, op), getattr(dagrad, op), vals=vals, grad=False)
    helper_test_op(None, lambda a, b: getattr(a, op)(b), vals=vals, grad=False)
    helper_test_op(None, lambda a: getattr(a, op)(0), vals=vals[:1], grad=False)
    helper_test_op(None, lambda a: CMP[op](a, 0.0), vals=vals[:1], grad=False)
    helper_test_op(None, lambda a: CMP[op](a.transpose(0, 1), 1), vals=vals[:1], grad=False)


@pytest.mark.parametrize("op", list(CMP))
def test_comparison_is_bool_without_gradient(op):
    for dt in (dagrad.float32, dagrad.float64, dagrad.int64):
        a = dagrad.tensor(_small_ints((2, 3), 5), dtype=dt, requires_grad=dt.is_floating_point)
        b = dagrad.tensor(_small_ints((3,), 6), dtype=dt)
        for out in (CMP[op](a, b), getattr(dagrad, op)(a, b), CMP[op](a, 0)):
            assert out.dtype == dagrad.bool
            assert not out.requires_grad
            assert out.grad_fn is None


def test_comparison_mask_used_in_arithmetic_passes_gradient_only_through_the_data():
    helper_test_op([(3, 4)], lambda x: x * (x > 0), kinks=(0,))
    helper_test_op([(3, 4)], lambda x: x * (x <= 0.3).to(x.dtype), lambda x: x * (x <= 0.3).to(x.dtype),
                   kinks=(0.3,))


# ----------------------------------------------------------------------------- reductions

RED_CASES = [  # shape, dim, keepdim
    ((), None, False), ((5,), None, False), ((5,), 0, False), ((5,), 0, True), ((5,), -1, True),
    ((3, 4), None, False), ((3, 4), 0, False), ((3, 4), 1, True), ((3, 4), -1, False),
    ((3, 4), (0, 1), True), ((2, 3, 4), 1, False), ((2, 3, 4), (0, 2), False), ((2, 3, 4), (-1, 0), True),
    ((2, 3, 4), (0, 1, 2), False), ((0, 3), 1, False), ((0, 3), 0, True), ((0, 3), None, False),
    ((2, 0, 3), 2, True), ((2, 0, 3), 1, False),
]
RED_IDS = [f"{s}-{d}-{k}" for s, d, k in RED_CASES]


def _kw(dim, keepdim):
    return {} if dim is None else dict(dim=dim, keepdim=keepdim)


@pytest.mark.parametrize("shape,dim,keepdim", RED_CASES, ids=RED_IDS)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean(op, shape, dim, keepdim):
    kw = _kw(dim, keepdim)
    helper_test_op([shape], lambda x: getattr(x, op)(**kw))
    helper_test_op([shape], lambda x: getattr(torch, op)(x, **kw), lambda x: getattr(dagrad, op)(x, **kw),
                   gradcheck=False)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "prod", "logsumexp", "var", "std"])
@pytest.mark.parametrize("view", ["transposed", "sliced", "permuted", "expanded"])
def test_reductions_non_contiguous(op, view):
    shape, v = VIEWS[view]
    helper_test_op([shape], lambda x: getattr(x, op)(dim=0), views=[v])
    if not (op == "std" and view == "expanded"):  # rows of equal values: std has no gradient at 0
        helper_test_op([shape], lambda x: getattr(x, op)(dim=-1, keepdim=True), views=[v])


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "prod", "var", "std"])
@pytest.mark.parametrize("view", ["transposed", "permuted"])
def test_full_reductions_non_contiguous(op, view):
    shape, v = VIEWS[view]
    helper_test_op([shape], lambda x: getattr(x, op)(), views=[v])


def _reduces_over_empty(shape, dim):
    dims = range(len(shape)) if dim is None else [dim] if isinstance(dim, int) else dim
    return any(shape[d] == 0 for d in dims)


# max and min have no identity: no reducing over an empty dim (empty outputs are fine).
MAXMIN_CASES = [c for c in RED_CASES if not _reduces_over_empty(c[0], c[1])]


def test_maxmin_cases_include_empty_outputs():
    assert ((0, 3), 1, False) in MAXMIN_CASES and ((2, 0, 3), 2, True) in MAXMIN_CASES
    assert ((0, 3), 0, True) not in MAXMIN_CASES  # reducing over an empty dim: no identity


@pytest.mark.parametrize("shape,dim,keepdim", MAXMIN_CASES, ids=[f"{s}-{d}-{k}" for s, d, k in MAXMIN_CASES])
@pytest.mark.parametrize("op", ["amax", "amin"])
def test_amax_amin(op, shape, dim, keepdim):
    kw = _kw(dim, keepdim)
    helper_test_op([shape], lambda x: getattr(x, op)(**kw))
    helper_test_op([shape], lambda x: getattr(torch, op)(x, **kw), lambda x: getattr(dagrad, op)(x, **kw),
                   gradcheck=False)


def _single_dims():
    return [(s, d, k) for s, d, k in MAXMIN_CASES if isinstance(d, int)] + [((), 0, False), ((), 0, True)]


@pytest.mark.parametrize("shape,dim,keepdim", _single_dims(), ids=[f"{s}-{d}-{k}" for s, d, k in _single_dims()])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_gives_values_and_indices(op, shape, dim, keepdim):
    helper_test_op([shape], lambda x: getattr(x, op)(dim, keepdim))
    helper_test_op([shape], lambda x: getattr(x, op)(dim=dim, keepdim=keepdim), gradcheck=False)
    helper_test_op([shape], lambda x: getattr(torch, op)(x, dim, keepdim),
                   lambda x: getattr(dagrad, op)(x, dim, keepdim), gradcheck=False)
    out = getattr(dg(make_input(shape, 0)), op)(dim, keepdim)
    assert out.indices.dtype == dagrad.int64 and out.values.shape == out.indices.shape


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_ties_gradient_goes_to_the_chosen_element(op):
    s = 1.0 if op == "max" else -1.0
    x = s * np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0], [0.0, 1.0, 2.0, 2.0]])
    helper_test_op(None, lambda t: getattr(t, op)(1), vals=[x], gradcheck=False)
    helper_test_op(None, lambda t: getattr(t, op)(0, keepdim=True), vals=[x.T.copy()], gradcheck=False)
    # The chosen element is one of the maxima and takes the whole gradient.
    t = dg(x, dagrad.float64, requires_grad=True)
    v, i = getattr(t, op)(1)
    R = rng(3).standard_normal(3)
    v.backward(dg(R, dagrad.float64))
    g = to_np(t.grad)
    for r in range(3):
        assert x[r, int(to_np(i)[r])] == getattr(np, op)(x[r])
        np.testing.assert_array_equal(np.nonzero(g[r])[0], [int(to_np(i)[r])])
        assert g[r].sum() == R[r]


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_without_dim(op, shape):
    helper_test_op([shape], lambda x: getattr(x, op)())
    helper_test_op([shape], lambda x: getattr(torch, op)(x), lambda x: getattr(dagrad, op)(x), gradcheck=False)


@pytest.mark.parametrize("op", ["max", "min", "amax", "amin"])
def test_max_min_without_dim_ties_share_the_gradient_as_torch(op):
    s = 1.0 if op in ("max", "amax") else -1.0
    x = s * np.array([[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]])
    helper_test_op(None, lambda t: getattr(t, op)(), vals=[x], gradcheck=False)
    if op in ("amax", "amin"):
        helper_test_op(None, lambda t: getattr(t, op)(dim=1), vals=[x], gradcheck=False)
        helper_test_op(None, lambda t: getattr(t, op)(dim=0, keepdim=True), vals=[x], gradcheck=False)


ARG_CASES = [((5,), None, False), ((3, 4), None, False), ((3, 4), 0, False), ((3, 4), 1, True),
             ((2, 3, 4), -1, False), ((2, 3, 4), 1, True), ((), None, False), ((0, 3), 1, False)]


@pytest.mark.parametrize("shape,dim,keepdim", ARG_CASES, ids=[str(c) for c in ARG_CASES])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(op, shape, dim, keepdim):
    kw = {} if dim is None else dict(dim=dim, keepdim=keepdim)
    helper_test_op([shape], lambda x: getattr(x, op)(**kw), grad=False)
    helper_test_op([shape], lambda x: getattr(torch, op)(x, **kw), lambda x: getattr(dagrad, op)(x, **kw),
                   grad=False)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin_non_contiguous(op):
    for view in ("transposed", "sliced", "permuted"):
        shape, v = VIEWS[view]
        for kw in ({}, dict(dim=0), dict(dim=-1, keepdim=True)):
            helper_test_op([shape], lambda x: getattr(x, op)(**kw), views=[v], grad=False)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin_ties_pick_the_first(op):
    x = np.array([[1.0, 4.0, 4.0, 0.0], [2.0, 0.0, 2.0, 2.0]])
    x = x if op == "argmax" else -x
    helper_test_op(None, lambda t: getattr(t, op)(1), vals=[x], grad=False)
    helper_test_op(None, lambda t: getattr(t, op)(), vals=[x], grad=False)
    r = getattr(dg(x), op)(1)
    assert r.dtype == dagrad.int64 and not r.requires_grad
    np.testing.assert_array_equal(to_np(r), [1, 0])


VAR_CASES = [  # shape, dim, keepdim
    ((5,), None, False), ((3, 4), None, False), ((3, 4), 0, False), ((3, 4), 1, True),
    ((2, 3, 4), (0, 2), False), ((2, 3, 4), -1, True), ((2, 3, 4), (0, 1, 2), True),
]


@pytest.mark.parametrize("shape,dim,keepdim", VAR_CASES, ids=[str(c) for c in VAR_CASES])
@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("how", ["default", "unbiased=True", "unbiased=False", "correction=0",
                                 "correction=1", "correction=2"])
def test_var_std(op, how, shape, dim, keepdim):
    if how == "default":
        tkw, dkw = {}, {}
    elif how.startswith("unbiased"):
        u = how.endswith("True")
        tkw, dkw = dict(correction=int(u)), dict(unbiased=u)
    else:
        tkw = dkw = dict(correction=int(how[-1]))
    if dim is not None or keepdim:
        tkw = dict(tkw, dim=dim, keepdim=keepdim)
        dkw = dict(dkw, dim=dim, keepdim=keepdim)
    helper_test_op([shape], lambda x: getattr(x, op)(**tkw), lambda x: getattr(x, op)(**dkw))
    helper_test_op([shape], lambda x: getattr(torch, op)(x, **tkw), lambda x: getattr(dagrad, op)(x, **dkw),
                   gradcheck=False)


def test_var_std_positional_unbiased_as_old_pytorch():
    helper_test_op([(3, 4)], lambda x: x.var(0, unbiased=False) + x.std(1, unbiased=True).sum(),
                   lambda x: x.var(0, False) + x.std(1, True).sum())
    helper_test_op([(3, 4)], lambda x: x.var(unbiased=False), lambda x: x.var(False))


LSE_CASES = [((5,), 0, False), ((3, 4), 1, False), ((3, 4), 0, True), ((3, 4), (0, 1), False),
             ((2, 3, 4), -1, True), ((2, 3, 4), (0, 2), False), ((0, 3), 1, False)]


@pytest.mark.parametrize("shape,dim,keepdim", LSE_CASES, ids=[str(c) for c in LSE_CASES])
def test_logsumexp(shape, dim, keepdim):
    helper_test_op([shape], lambda x: x.logsumexp(dim, keepdim))
    helper_test_op([shape], lambda x: torch.logsumexp(x, dim, keepdim=keepdim),
                   lambda x: dagrad.logsumexp(x, dim, keepdim=keepdim), gradcheck=False)


@pytest.mark.parametrize("shift", [1000.0, -1000.0])
def test_logsumexp_is_stable_at_large_magnitudes(shift):
    x = make_input((3, 4), 0) + shift
    helper_test_op(None, lambda t: t.logsumexp(1), vals=[x])
    helper_test_op(None, lambda t: t.logsumexp((0, 1)), vals=[x])
    mixed = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -999.0, -1000.0]])
    helper_test_op(None, lambda t: t.logsumexp(1), vals=[mixed])
    out = dg(mixed, dagrad.float32).logsumexp(1)
    assert np.all(np.isfinite(to_np(out)))


PROD_VALUES = {
    "random": make_input((3, 4), 0, kinks=(0,)),
    "one_zero": np.array([[1.5, 0.0, -2.0, 0.5], [1.2, -0.7, 2.0, 0.3], [0.9, 1.1, -1.3, 0.0]]),
    "two_zeros": np.array([[1.5, 0.0, -2.0, 0.0], [1.2, -0.7, 2.0, 0.3], [0.0, 0.0, 0.0, 1.7]]),
}


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, False), (1, True), (-2, True)])
@pytest.mark.parametrize("case", list(PROD_VALUES))
def test_prod(case, dim, keepdim):
    # prod is a polynomial, so finite differences are exact enough even at the zeros.
    kw = _kw(dim, keepdim)
    x = PROD_VALUES[case]
    helper_test_op(None, lambda t: t.prod(**kw), vals=[x])
    helper_test_op(None, lambda t: torch.prod(t, **kw) if kw else torch.prod(t),
                   lambda t: dagrad.prod(t, **kw), vals=[x], gradcheck=False)


@pytest.mark.parametrize("shape", [(), (5,), (0,), (2, 0, 3)], ids=str)
def test_prod_shapes(shape):
    helper_test_op([shape], lambda t: t.prod())
    if len(shape) > 1:
        helper_test_op([shape], lambda t: t.prod(dim=1))
        helper_test_op([shape], lambda t: t.prod(dim=2, keepdim=True))


# ----------------------------------------------------------------------------- movement

MOVEMENT = [  # id, leaf shape, fn (same call on both sides)
    ("permute", (2, 3, 4), lambda x: x.permute(2, 0, 1)),
    ("permute_list", (2, 3, 4), lambda x: x.permute((1, 2, 0))),
    ("permute_neg", (2, 3, 4), lambda x: x.permute(-1, -3, -2)),
    ("permute_fn", (2, 3, 4), "permute_fn"),
    ("transpose", (2, 3, 4), lambda x: x.transpose(0, 2)),
    ("transpose_neg", (2, 3, 4), lambda x: x.transpose(-1, 1)),
    ("T", (3, 4), lambda x: x.T),
    ("squeeze_all", (1, 3, 1, 2), lambda x: x.squeeze()),
    ("squeeze_dim", (1, 3, 1, 2), lambda x: x.squeeze(2)),
    ("squeeze_neg_dim", (1, 3, 1, 2), lambda x: x.squeeze(-2)),
    ("squeeze_not_one", (1, 3, 1, 2), lambda x: x.squeeze(1)),
    ("squeeze_0d", (), lambda x: x.squeeze()),
    ("unsqueeze0", (3, 4), lambda x: x.unsqueeze(0)),
    ("unsqueeze_end", (3, 4), lambda x: x.unsqueeze(2)),
    ("unsqueeze_neg", (3, 4), lambda x: x.unsqueeze(-1)),
    ("unsqueeze_0d", (), lambda x: x.unsqueeze(0)),
    ("flatten", (2, 3, 4), lambda x: x.flatten()),
    ("flatten_1", (2, 3, 4), lambda x: x.flatten(1)),
    ("flatten_0_1", (2, 3, 4), lambda x: x.flatten(0, 1)),
    ("flatten_0d", (), lambda x: x.flatten()),
    ("flatten_empty", (2, 0, 3), lambda x: x.flatten(1)),
    ("expand", (3, 1), lambda x: x.expand(3, 4)),
    ("expand_new_dims", (3, 1), lambda x: x.expand(2, 3, 5)),
    ("expand_minus1", (3, 1), lambda x: x.expand(-1, 4)),
    ("expand_0d", (), lambda x: x.expand(2, 3)),
    ("expand_to_zero", (3, 1), lambda x: x.expand(3, 0)),
    ("broadcast_to", (1, 4), lambda x: x.broadcast_to((3, 4))),
    ("broadcast_to_fn", (4,), "broadcast_to_fn"),
    ("reshape", (2, 3, 4), lambda x: x.reshape(4, 6)),
    ("reshape_minus1", (2, 3, 4), lambda x: x.reshape(-1, 2)),
    ("reshape_tuple", (2, 3, 4), lambda x: x.reshape((3, 8))),
    ("view", (2, 3, 4), lambda x: x.view(6, 4)),
    ("reshape_of_transposed", (3, 4), lambda x: x.T.reshape(2, 6)),
    ("unsqueeze_of_sliced", (5, 6), lambda x: x[1:, ::2].unsqueeze(1)),
    ("flatten_of_permuted", (2, 3, 4), lambda x: x.permute(2, 0, 1).flatten(1)),
]

_FN_FORMS = {
    "permute_fn": (lambda x: torch.permute(x, (2, 0, 1)), lambda x: dagrad.permute(x, (2, 0, 1))),
    "broadcast_to_fn": (lambda x: torch.broadcast_to(x, (2, 3, 4)), lambda x: dagrad.broadcast_to(x, (2, 3, 4))),
}


@pytest.mark.parametrize("name,shape,fn", MOVEMENT, ids=[m[0] for m in MOVEMENT])
def test_movement(name, shape, fn):
    tfn, dfn = _FN_FORMS[fn] if isinstance(fn, str) else (fn, fn)
    helper_test_op([shape], tfn, dfn)


@pytest.mark.parametrize("fn,args", [("squeeze", (1,)), ("unsqueeze", (1,)), ("flatten", (0, 1)),
                                     ("transpose", (0, 2)), ("reshape", ((4, 3),))])
def test_movement_functional_forms(fn, args):
    shape = (3, 1, 4)
    helper_test_op([shape], lambda x: getattr(torch, fn)(x, *args), lambda x: getattr(dagrad, fn)(x, *args))


# ----------------------------------------------------------------------------- indexing

IDX = np.array([2, 0, 2, 3])          # repeated: gradients accumulate
NEG_IDX = np.array([-1, 0, -3])
ROWS = np.array([0, 2, 2, 1])
COLS = np.array([3, 1, 1, 0])
MASK34 = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])
MASK3 = np.array([True, False, True])

# id, leaf shape, key (numpy arrays become index tensors of each framework)
INDEX_CASES = [
    ("int", (3, 4), (1,)),
    ("neg_int", (3, 4), (-1,)),
    ("int_int_0d", (3, 4), (2, -3)),
    ("int_int_int", (2, 3, 4), (1, 2, 3)),
    ("slice_slice_int", (4, 3, 5), (slice(1, 3), slice(None), 0)),
    ("slice_neg", (5, 4), (slice(-3, -1),)),
    ("slice_step", (7, 4), (slice(None, None, 2), slice(1, None, 3))),
    ("slice_step_offset", (7, 5), (slice(1, 6, 2), slice(-4, None, 2))),
    ("slice_clamped", (5, 4), (slice(2, 100),)),
    ("slice_empty", (5, 4), (slice(3, 3),)),
    ("slice_reversed_empty", (5, 4), (slice(4, 1),)),
    ("none_front", (3, 4), (None, 1)),
    ("none_middle", (3, 4), (slice(None), None, slice(1, 3))),
    ("none_end", (3, 4), (Ellipsis, None)),
    ("ellipsis_int", (2, 3, 4), (Ellipsis, 1)),
    ("int_ellipsis", (2, 3, 4), (1, Ellipsis)),
    ("int_ellipsis_slice", (2, 3, 4), (0, Ellipsis, slice(1, 3))),
    ("ellipsis_only", (2, 3), (Ellipsis,)),
    ("none_0d", (), (None,)),
    ("ellipsis_0d", (), (Ellipsis,)),
    ("on_zero_size", (0, 3), (slice(None), 1)),
    ("array", (5, 3), (IDX,)),
    ("array_neg", (5, 3), (NEG_IDX,)),
    ("array_dim1", (3, 5), (slice(None), IDX)),
    ("array_dim1_neg", (3, 5), (slice(None), NEG_IDX)),
    ("array_2d_index", (5, 3), (np.array([[0, 1], [4, 4]]),)),
    ("rows_cols", (3, 4), (ROWS, COLS)),
    ("rows_cols_broadcast", (3, 4), (np.array([[0], [2]]), np.array([1, 3, 3]))),
    ("array_int", (3, 4), (ROWS, 2)),
    ("int_array", (3, 4, 2), (1, COLS)),
    ("array_slice", (5, 4), (IDX, slice(1, 3))),
    ("slice_array_slice", (2, 5, 3), (slice(None), IDX, slice(0, 2))),
    ("non_adjacent_arrays", (4, 3, 5), (np.array([0, 3]), slice(None), np.array([4, 1]))),
    ("array_then_none", (5, 3), (IDX, None)),
    ("empty_array", (5, 3), (np.array([], dtype=np.int64),)),
    ("mask_full", (3, 4), (MASK34,)),
    ("mask_first_dim", (3, 4), (MASK3,)),
    ("mask_dim1", (2, 3, 4), (slice(None), MASK34)),
    ("mask_all_false", (3, 4), (np.zeros(3, bool),)),
]


def _key_for(key, lib):
    def conv(k):
        if isinstance(k, np.ndarray):
            return torch.tensor(k) if lib == "torch" else dagrad.tensor(k)
        return k
    return tuple(conv(k) for k in key)


def _key_numpy_list(key):
    """The dagrad key with numpy arrays and nested lists instead of tensors."""
    return tuple(k.tolist() if isinstance(k, np.ndarray) and k.ndim == 1 and k.size and k.dtype != bool
                 else k for k in key)


@pytest.mark.parametrize("name,shape,key", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_getitem(name, shape, key):
    tkey, dkey = _key_for(key, "torch"), _key_for(key, "dagrad")
    helper_test_op([shape], lambda x: x[tkey], lambda x: x[dkey])
    # numpy arrays and lists as keys work too (no gradcheck: the same function as above).
    nkey = _key_numpy_list(key)
    helper_test_op([shape], lambda x: x[tkey], lambda x: x[nkey], gradcheck=False)


NONCONTIG_KEYS = {  # functions of the view's shape
    "slice_int": lambda s: (slice(1, 3), 0),
    "array": lambda s: (np.array([2, 0, 2]),),
    "rows_cols": lambda s: (np.array([2, 0, 2]), np.array([1, 1, 0])),
    "mask": lambda s: (rng(8).random(s) < 0.5,),
    "step": lambda s: (slice(None, None, 2), slice(1, None)),
}


@pytest.mark.parametrize("name", list(NONCONTIG_KEYS))
@pytest.mark.parametrize("view", ["transposed", "sliced"])
def test_getitem_of_non_contiguous(view, name):
    shape, v = VIEWS[view]
    key = NONCONTIG_KEYS[name](tuple(v(torch.zeros(shape)).shape))
    tkey, dkey = _key_for(key, "torch"), _key_for(key, "dagrad")
    helper_test_op([shape], lambda x: v(x)[tkey], lambda x: v(x)[dkey])


def test_getitem_chained_and_int_tensor_index():
    helper_test_op([(4, 5, 3)], lambda x: x[1:][:, ::2][..., -1][0])
    idx = np.array(2)
    helper_test_op([(4, 3)], lambda x: x[torch.tensor(idx)], lambda x: x[dagrad.tensor(idx)])


# ----------------------------------------------------------------------------- gather

GATHER_CASES = [
    ((3, 4), 0, np.array([[0, 1, 2, 0], [2, 2, 1, 0]])),
    ((3, 4), 1, np.array([[3, 3], [0, 1], [2, 0]])),
    ((3, 4), -1, np.array([[1], [1], [3]])),
    ((2, 3, 4), 2, np.array([[[0, 3], [1, 1], [2, 0]], [[3, 2], [0, 0], [1, 3]]])),
    ((2, 3, 4), 1, np.zeros((2, 2, 4), dtype=np.int64)),
    ((5,), 0, np.array([4, 4, 0, 1, 4])),
    ((3, 4), 1, np.zeros((3, 0), dtype=np.int64)),
]


@pytest.mark.parametrize("shape,dim,index", GATHER_CASES, ids=[str(i) for i in range(len(GATHER_CASES))])
def test_gather(shape, dim, index):
    ti, di = torch.tensor(index), dagrad.tensor(index)
    helper_test_op([shape], lambda x: x.gather(dim, ti), lambda x: x.gather(dim, di))
    helper_test_op([shape], lambda x: torch.gather(x, dim, ti), lambda x: dagrad.gather(x, dim, di),
                   gradcheck=False)


def test_gather_non_contiguous():
    index = np.array([[0, 3, 3], [1, 0, 2], [2, 2, 0]])
    helper_test_op([(4, 3)], lambda x: x.T.gather(1, torch.tensor(index)),
                   lambda x: x.T.gather(1, dagrad.tensor(index)))


# ----------------------------------------------------------------------------- cat, stack, split, chunk

CAT_CASES = [  # shapes, dim
    ([(2, 3), (1, 3), (4, 3)], 0), ([(2, 1), (2, 3)], 1), ([(2, 1), (2, 3)], -1),
    ([(2, 3, 4), (2, 1, 4)], 1), ([(2, 3), (0, 3), (1, 3)], 0), ([(3,), (2,)], 0), ([(2, 3)], 0),
]


@pytest.mark.parametrize("shapes,dim", CAT_CASES, ids=[str(c) for c in CAT_CASES])
def test_cat(shapes, dim):
    helper_test_op(shapes, lambda *xs: torch.cat(xs, dim), lambda *xs: dagrad.cat(list(xs), dim))
    helper_test_op(shapes, lambda *xs: torch.concat(xs, dim=dim), lambda *xs: dagrad.concat(xs, dim=dim),
                   gradcheck=False)


def test_cat_non_contiguous_and_same_tensor_twice():
    helper_test_op([(4, 3), (3, 2)], lambda a, b: torch.cat([a.T, b, a.T], 1),
                   lambda a, b: dagrad.cat([a.T, b, a.T], 1))


STACK_CASES = [((2, 3), 0), ((2, 3), 1), ((2, 3), 2), ((2, 3), -1), ((), 0), ((0, 3), 1)]


@pytest.mark.parametrize("shape,dim", STACK_CASES, ids=[str(c) for c in STACK_CASES])
def test_stack(shape, dim):
    helper_test_op([shape] * 3, lambda *xs: torch.stack(xs, dim), lambda *xs: dagrad.stack(list(xs), dim))


def test_stack_non_contiguous():
    helper_test_op([(4, 3), (3, 4)], lambda a, b: torch.stack([a.T, b], 1),
                   lambda a, b: dagrad.stack([a.T, b], 1))


SPLIT_CASES = [  # shape, split_size_or_sections, dim
    ((5, 3), 2, 0), ((5, 3), 5, 0), ((5, 3), 7, 0), ((3, 5), 2, 1), ((3, 5), [1, 3, 1], 1),
    ((3, 5), [0, 5], -1), ((2, 6, 2), 3, 1), ((0, 3), 1, 1),
]


@pytest.mark.parametrize("shape,size,dim", SPLIT_CASES, ids=[str(c) for c in SPLIT_CASES])
def test_split(shape, size, dim):
    helper_test_op([shape], lambda x: x.split(size, dim))
    helper_test_op([shape], lambda x: torch.split(x, size, dim), lambda x: dagrad.split(x, size, dim),
                   gradcheck=False)


def test_split_only_some_pieces_used():
    helper_test_op([(5, 3)], lambda x: x.split(2)[1] * 2.0)
    helper_test_op([(4, 3)], lambda x: x.T.split([1, 3], 1)[0])


CHUNK_CASES = [((6, 2), 3, 0), ((5, 2), 3, 0), ((4, 2), 3, 0), ((2, 7), 2, 1), ((2, 3), 5, 1), ((2, 3), 1, -1)]


@pytest.mark.parametrize("shape,chunks,dim", CHUNK_CASES, ids=[str(c) for c in CHUNK_CASES])
def test_chunk(shape, chunks, dim):
    helper_test_op([shape], lambda x: x.chunk(chunks, dim))
    helper_test_op([shape], lambda x: torch.chunk(x, chunks, dim), lambda x: dagrad.chunk(x, chunks, dim),
                   gradcheck=False)


# ----------------------------------------------------------------------------- pad

PAD_CASES = [  # shape, pad, value
    ((3,), (1, 2), None), ((2, 3), (1, 1, 2, 0), None), ((2, 3), (0, 0, 1, 1), 0.5),
    ((2, 3, 4), (1, 0, 0, 2, 1, 1), -1.5), ((3, 4), (-1, 2), None), ((3, 4), (-1, -1, -1, 0), None),
    ((3, 4), (2, -3, 1, -2), 0.25), ((1, 2, 3, 3), (1, 1, 1, 1), None), ((3, 4), (0, 0), None),
    ((0, 3), (1, 1), None), ((3, 4), (0, 0, 0, -3), None),
]


@pytest.mark.parametrize("shape,pad,value", PAD_CASES, ids=[str(c[:2]) for c in PAD_CASES])
def test_pad_constant(shape, pad, value):
    kw = {} if value is None else dict(value=value)
    helper_test_op([shape], lambda x: TF.pad(x, pad, **kw), lambda x: DF.pad(x, pad, **kw))
    helper_test_op([shape], lambda x: TF.pad(x, pad, mode="constant", **kw),
                   lambda x: DF.pad(x, list(pad), mode="constant", **kw), gradcheck=False)


def test_pad_non_contiguous():
    helper_test_op([(4, 3)], lambda x: TF.pad(x.T, (1, -1, 0, 2)), lambda x: DF.pad(x.T, (1, -1, 0, 2)))


# ----------------------------------------------------------------------------- dtypes

FLOATS = [("float32", dagrad.float32, torch.float32), ("float64", dagrad.float64, torch.float64)]

MIXED_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "maximum": "maximum", "minimum": "minimum", "where": "where",
}


def _mixed_call(op, lib, a, b):
    f = MIXED_OPS[op]
    if op == "where":
        mask = rng(9).random((2, 3)) < 0.5
        return (torch.where(th(mask), a, b) if lib is torch else dagrad.where(dg(mask), a, b))
    if isinstance(f, str):
        return getattr(lib, f)(a, b)
    return f(a, b)


@pytest.mark.parametrize("order", ["f32-f64", "f64-f32"])
@pytest.mark.parametrize("op", list(MIXED_OPS))
def test_mixed_float_promotion_as_torch(op, order):
    da, db = (FLOATS[0], FLOATS[1]) if order == "f32-f64" else (FLOATS[1], FLOATS[0])
    a = make_input((2, 3), 1)
    b = make_input((3,), 2, 0.5, 2.0) + 2.0  # a divisor away from 0, apart from a
    ta = th(a.astype(np.float32 if da[0] == "float32" else np.float64), da[2], requires_grad=True)
    tb = th(b.astype(np.float32 if db[0] == "float32" else np.float64), db[2], requires_grad=True)
    xa = dg(to_np(ta), da[1], requires_grad=True)
    xb = dg(to_np(tb), db[1], requires_grad=True)
    tout, dout = _mixed_call(op, torch, ta, tb), _mixed_call(op, dagrad, xa, xb)
    assert tout.dtype == torch.float64
    assert_same(dout, tout, TOL64, f"{op} {order}")
    R = rng(3).standard_normal((2, 3))
    tout.backward(th(R, torch.float64))
    dout.backward(dg(R, dagrad.float64))
    for d, t, (name, _, _) in ((xa, ta, da), (xb, tb, db)):
        # Each gradient keeps its input's dtype; float32 gradients carry float32 rounding.
        assert_same(d.grad, t.grad, TOL64 if name == "float64" else TOL32, f"{op} grad", exp_dtype=name)


@pytest.mark.parametrize("op", list(CMP))
def test_mixed_float_comparison_is_bool(op):
    a, b = _small_ints((2, 3), 1), _small_ints((3,), 2)
    tout = CMP[op](th(a, torch.float32), th(b, torch.float64))
    dout = CMP[op](dg(a, dagrad.float32), dg(b, dagrad.float64))
    assert_same(dout, tout, TOL64, op)


INT_CASES = {  # name: fn on (int64 a, int64 b) or (int64 a, float32 f)
    "int+int": lambda a, b, f: a + b, "int-int": lambda a, b, f: a - b, "int*int": lambda a, b, f: a * b,
    "int/int": lambda a, b, f: a / b, "int*2": lambda a, b, f: a * 2, "int+0.5": lambda a, b, f: a + 0.5,
    "int+float32": lambda a, b, f: a + f, "float32*int": lambda a, b, f: f * a,
    "int==int": lambda a, b, f: a == b, "int<2": lambda a, b, f: a < 2, "int_sum": lambda a, b, f: a.sum(),
    "bool_sum": lambda a, b, f: (a == b).sum(), "bool_to_float_mean": lambda a, b, f: (a == b).float().mean(),
    "maximum": lambda a, b, f: a.maximum(b), "int_argmax": lambda a, b, f: a.argmax(1),
    "neg": lambda a, b, f: -a, "abs": lambda a, b, f: abs(a),
}


@pytest.mark.parametrize("case", list(INT_CASES))
def test_int64_and_bool_arithmetic_as_torch(case):
    a = np.array([[3, -1, 2], [0, 5, -4]], dtype=np.int64)
    b = np.array([3, 2, -4], dtype=np.int64)
    f = np.array([0.5, -1.25, 2.0], dtype=np.float32)
    tout = INT_CASES[case](torch.tensor(a), torch.tensor(b), torch.tensor(f))
    dout = INT_CASES[case](dagrad.tensor(a), dagrad.tensor(b), dagrad.tensor(f))
    assert_same(dout, tout, TOL32, case)


def test_int64_and_bool_tensors_for_labels_indices_masks():
    labels = dagrad.tensor([0, 2, 1])
    assert labels.dtype == dagrad.int64 and not labels.is_floating_point()
    mask = dagrad.tensor([True, False, True])
    assert mask.dtype == dagrad.bool
    assert dagrad.tensor(np.array([1, 2], dtype=np.int32)).dtype == dagrad.int64
    x = dagrad.tensor(np.arange(12.0).reshape(3, 4), dtype=dagrad.float64, requires_grad=True)
    y = x[mask].sum() + x[labels, labels].sum() + x.gather(1, labels.unsqueeze(1)).sum()
    y.backward()
    t = torch.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    tl, tm = torch.tensor([0, 2, 1]), torch.tensor([True, False, True])
    (t[tm].sum() + t[tl, tl].sum() + t.gather(1, tl.unsqueeze(1)).sum()).backward()
    assert y.item() == pytest.approx(t[tm].sum().item() + t[tl, tl].sum().item()
                                     + t.gather(1, tl.unsqueeze(1)).sum().item())
    np.testing.assert_array_equal(to_np(x.grad), to_np(t.grad))
    # int64 and bool tensors cannot require grad.
    for d in (dagrad.int64, dagrad.bool):
        with pytest.raises((TypeError, RuntimeError, ValueError)):
            dagrad.tensor([1, 0], dtype=d, requires_grad=True)


@pytest.mark.parametrize("case", ["matmul", "matmul_fn", "rmatmul", "conv2d", "conv2d_bias", "conv1d"])
def test_matmul_and_conv_with_mixed_float_dtypes_raise_type_error(case):
    f32, f64 = dagrad.float32, dagrad.float64
    calls = {
        "matmul": lambda: dagrad.ones(2, 3, dtype=f32) @ dagrad.ones(3, 2, dtype=f64),
        "matmul_fn": lambda: dagrad.matmul(dagrad.ones(2, 3, dtype=f64), dagrad.ones(3, dtype=f32)),
        "rmatmul": lambda: dagrad.ones(2, 3, dtype=f64).matmul(dagrad.ones(3, 2, dtype=f32)),
        "conv2d": lambda: DF.conv2d(dagrad.ones(1, 2, 5, 5, dtype=f32), dagrad.ones(3, 2, 3, 3, dtype=f64)),
        "conv2d_bias": lambda: DF.conv2d(dagrad.ones(1, 2, 5, 5, dtype=f64), dagrad.ones(3, 2, 3, 3, dtype=f64),
                                         dagrad.ones(3, dtype=f32)),
        "conv1d": lambda: DF.conv1d(dagrad.ones(1, 2, 5, dtype=f64), dagrad.ones(3, 2, 3, dtype=f32)),
    }
    with pytest.raises(TypeError, match="float32|float64"):
        calls[case]()


def test_float32_stays_float32_with_python_scalars():
    for fn in (lambda x: x + 1, lambda x: 2.5 * x, lambda x: x / 3, lambda x: x ** 2, lambda x: 1 - x,
               lambda x: dagrad.where(x > 0, x, 0.0), lambda x: x.clamp(0.1, 0.2), lambda x: x.maximum(x * 0.5)):
        assert fn(dagrad.ones(2, dtype=dagrad.float32)).dtype == dagrad.float32
        assert fn(dagrad.ones(2, dtype=dagrad.float64)).dtype == dagrad.float64
