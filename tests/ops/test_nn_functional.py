"""dagrad.nn.functional against torch.nn.functional: softmax, linear, convolutions, pooling,
embedding, dropout, normalisation and losses. One ``helper_test_op`` line checks forward,
backward with a random output gradient and float64 gradcheck (see torch_helpers.py)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dagrad  # noqa: E402
import dagrad.nn.functional as DF  # noqa: E402
from torch_helpers import TOL32, TOL64, assert_same, dg, helper_test_op, make_input, rng, th, to_np  # noqa: E402

TF = torch.nn.functional
REDUCTIONS = ["mean", "sum", "none"]

# ----------------------------------------------------------------------------- softmax

SOFTMAX_CASES = [((5,), 0), ((5,), -1), ((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 4), 0),
                 ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), -2), ((), 0), ((0, 3), 1), ((3, 1), 1)]


@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=[str(c) for c in SOFTMAX_CASES])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, shape, dim):
    helper_test_op([shape], lambda x: getattr(TF, op)(x, dim), lambda x: getattr(DF, op)(x, dim))
    helper_test_op([shape], lambda x: getattr(torch, op)(x, dim), lambda x: getattr(dagrad, op)(x, dim),
                   gradcheck=False)
    helper_test_op([shape], lambda x: getattr(x, op)(dim), gradcheck=False)


@pytest.mark.parametrize("view", ["transposed", "sliced", "permuted"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_non_contiguous(op, view):
    shape, v = {"transposed": ((4, 3), lambda t: t.T), "sliced": ((5, 6), lambda t: t[1:, ::2]),
                "permuted": ((2, 3, 4), lambda t: t.permute(2, 0, 1))}[view]
    for dim in (0, -1):
        helper_test_op([shape], lambda x: getattr(TF, op)(x, dim), lambda x: getattr(DF, op)(x, dim),
                       views=[v])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("data", ["plus1000", "minus1000", "mixed"])
def test_softmax_is_stable_at_large_magnitudes(op, data):
    x = {"plus1000": make_input((3, 4), 0) + 1000.0, "minus1000": make_input((3, 4), 1) - 1000.0,
         "mixed": np.array([[1000.0, -1000.0, 0.0, 999.0], [-1000.0, -1000.0, -999.5, -1000.0],
                            [1000.0, 1000.0, -1000.0, 0.0]])}[data]
    for dim in (0, 1):
        helper_test_op(None, lambda t: getattr(TF, op)(t, dim), lambda t: getattr(DF, op)(t, dim), vals=[x])
        for dt in (dagrad.float32, dagrad.float64):
            t = dg(x, dt, requires_grad=True)
            y = getattr(DF, op)(t, dim)
            y.backward(dg(rng(2).standard_normal(x.shape), dt))
            assert np.all(np.isfinite(to_np(y))) and np.all(np.isfinite(to_np(t.grad)))


def test_softmax_dtype_argument():
    x = make_input((3, 4), 0).astype(np.float32)
    for op in ("softmax", "log_softmax"):
        tout = getattr(TF, op)(th(x), 1, dtype=torch.float64)
        dout = getattr(DF, op)(dg(x), 1, dtype=dagrad.float64)
        assert_same(dout, tout, TOL64, op)


# ----------------------------------------------------------------------------- linear

LINEAR_CASES = [(5,), (3, 5), (2, 3, 5), (0, 5)]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xshape", LINEAR_CASES, ids=str)
def test_linear(xshape, bias):
    shapes = [xshape, (4, 5)] + ([(4,)] if bias else [])
    helper_test_op(shapes, TF.linear, DF.linear)


def test_linear_non_contiguous_input_and_weight():
    t = lambda x: x.transpose(0, 1)  # noqa: E731
    helper_test_op([(5, 3), (5, 4), (4,)], TF.linear, DF.linear, views=[t, t, None])
    helper_test_op([(2, 5, 3), (4, 10)], TF.linear, DF.linear, views=[lambda x: x.transpose(1, 2),
                                                                       lambda w: w[:, ::2]])
    helper_test_op([(3, 5), (4, 5), (4, 1)], TF.linear, DF.linear,
                   views=[None, None, lambda b: b.expand(4, 2)[:, 0]])


def test_matmul_against_torch():
    for sa, sb in [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                   ((2, 1, 3, 4), (3, 4, 2)), ((0, 4), (4, 2))]:
        helper_test_op([sa, sb], lambda a, b: a @ b)
        helper_test_op([sa, sb], torch.matmul, dagrad.matmul, gradcheck=False)
    helper_test_op([(4, 3), (2, 4)], lambda a, b: a.T @ b.T)


# ----------------------------------------------------------------------------- convolutions

CONV2D_CASES = {  # x shape, w shape, bias, kwargs
    "basic": ((2, 3, 6, 6), (4, 3, 3, 3), True, {}),
    "no_bias": ((2, 3, 5, 5), (2, 3, 3, 3), False, {}),
    "stride2_pad1": ((1, 2, 7, 7), (3, 2, 3, 3), True, dict(stride=2, padding=1)),
    "asym": ((1, 2, 7, 6), (3, 2, 2, 3), True, dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1))),
    "dilation2": ((1, 2, 7, 7), (2, 2, 3, 3), True, dict(dilation=2, padding=2)),
    "groups2": ((1, 4, 5, 5), (6, 2, 3, 3), True, dict(groups=2, padding=1)),
    "depthwise": ((2, 3, 5, 5), (3, 1, 3, 3), False, dict(groups=3)),
    "kernel1": ((2, 3, 4, 4), (5, 3, 1, 1), True, {}),
    "kernel_eq_input": ((2, 2, 3, 3), (3, 2, 3, 3), True, {}),
    "all": ((2, 4, 8, 7), (4, 2, 3, 2), True, dict(stride=(2, 3), padding=(2, 1), dilation=(1, 2), groups=2)),
    "unbatched": ((3, 5, 5), (2, 3, 3, 3), True, dict(padding=1)),
}


@pytest.mark.parametrize("case", list(CONV2D_CASES))
def test_conv2d(case):
    xs, ws, bias, kw = CONV2D_CASES[case]
    shapes = [xs, ws] + ([(ws[0],)] if bias else [])
    helper_test_op(shapes, lambda *a: TF.conv2d(*a, **kw), lambda *a: DF.conv2d(*a, **kw))


def test_conv2d_non_contiguous_input_and_weight():
    # An NHWC leaf seen as NCHW, and a weight sliced out of a bigger one.
    helper_test_op([(2, 5, 5, 3), (4, 3, 3, 6), (4,)], lambda x, w, b: TF.conv2d(x, w, b, padding=1),
                   lambda x, w, b: DF.conv2d(x, w, b, padding=1),
                   views=[lambda x: x.permute(0, 3, 1, 2), lambda w: w[:, :, :, ::2], None])


CONV1D_CASES = {
    "basic": ((2, 3, 7), (4, 3, 3), True, {}),
    "no_bias": ((2, 3, 7), (4, 3, 3), False, {}),
    "stride_pad": ((2, 2, 9), (3, 2, 3), True, dict(stride=2, padding=1)),
    "dilation": ((1, 2, 9), (3, 2, 3), True, dict(dilation=2, padding=2)),
    "groups": ((2, 4, 6), (6, 2, 2), True, dict(groups=2, stride=2)),
    "kernel1": ((2, 3, 5), (2, 3, 1), False, {}),
    "unbatched": ((3, 7), (2, 3, 3), True, {}),
}


@pytest.mark.parametrize("case", list(CONV1D_CASES))
def test_conv1d(case):
    xs, ws, bias, kw = CONV1D_CASES[case]
    shapes = [xs, ws] + ([(ws[0],)] if bias else [])
    helper_test_op(shapes, lambda *a: TF.conv1d(*a, **kw), lambda *a: DF.conv1d(*a, **kw))


def test_conv1d_non_contiguous_input():
    helper_test_op([(2, 7, 3), (4, 3, 3)], lambda x, w: TF.conv1d(x, w), lambda x, w: DF.conv1d(x, w),
                   views=[lambda x: x.transpose(1, 2), None])


# ----------------------------------------------------------------------------- pooling

MAXPOOL_CASES = {
    "k2": ((2, 3, 6, 6), dict(kernel_size=2)),
    "k3_s2_p1": ((1, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    "k2_s1": ((1, 2, 5, 5), dict(kernel_size=2, stride=1)),
    "asym": ((1, 2, 6, 7), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    "dilation": ((1, 2, 7, 7), dict(kernel_size=2, stride=1, dilation=2)),
    "odd_size": ((2, 1, 5, 7), dict(kernel_size=2)),
    "unbatched": ((2, 6, 6), dict(kernel_size=3, stride=3)),
}


@pytest.mark.parametrize("case", list(MAXPOOL_CASES))
def test_max_pool2d(case):
    shape, kw = MAXPOOL_CASES[case]
    helper_test_op([shape], lambda x: TF.max_pool2d(x, **kw), lambda x: DF.max_pool2d(x, **kw))


def test_max_pool2d_non_contiguous_and_negative_inputs():
    helper_test_op([(2, 6, 6, 3)], lambda x: TF.max_pool2d(x, 3, 2, 1), lambda x: DF.max_pool2d(x, 3, 2, 1),
                   views=[lambda x: x.permute(0, 3, 1, 2)])
    # All negative: zero padding would win, -inf padding does not.
    helper_test_op([(1, 2, 5, 5)], lambda x: TF.max_pool2d(x, 3, 2, 1), lambda x: DF.max_pool2d(x, 3, 2, 1),
                   low=-3.0, high=-1.0)


AVGPOOL_CASES = {
    "k2": ((2, 3, 6, 6), dict(kernel_size=2)),
    "k3_s2_p1": ((1, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    "k3_s2_p1_exclude": ((1, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    "asym": ((1, 2, 6, 7), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    "asym_exclude": ((1, 2, 6, 7), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
                                         count_include_pad=False)),
    "k2_s1": ((1, 2, 5, 5), dict(kernel_size=2, stride=1)),
    "unbatched": ((2, 6, 6), dict(kernel_size=2, padding=1, count_include_pad=False)),
}


@pytest.mark.parametrize("case", list(AVGPOOL_CASES))
def test_avg_pool2d(case):
    shape, kw = AVGPOOL_CASES[case]
    helper_test_op([shape], lambda x: TF.avg_pool2d(x, **kw), lambda x: DF.avg_pool2d(x, **kw))


def test_avg_pool2d_non_contiguous():
    helper_test_op([(2, 6, 6, 3)], lambda x: TF.avg_pool2d(x, 2), lambda x: DF.avg_pool2d(x, 2),
                   views=[lambda x: x.permute(0, 3, 1, 2)])


# ----------------------------------------------------------------------------- embedding

@pytest.mark.parametrize("idx", [np.array([1, 3, 1, 0, 3, 3]), np.array([[0, 2, 2], [4, 0, 1]]),
                                 np.array(2), np.array([], dtype=np.int64)], ids=["1d", "2d", "0d", "empty"])
def test_embedding_repeated_indices_accumulate(idx):
    helper_test_op([(5, 3)], lambda w: TF.embedding(th(idx), w), lambda w: DF.embedding(dg(idx), w))


def test_embedding_gradient_rows_are_sums():
    idx = np.array([1, 3, 1, 1])
    w = dg(make_input((4, 2), 0), dagrad.float64, requires_grad=True)
    out = DF.embedding(dg(idx), w)
    R = rng(1).standard_normal((4, 2))
    out.backward(dg(R, dagrad.float64))
    g = to_np(w.grad)
    np.testing.assert_allclose(g[1], R[0] + R[2] + R[3], rtol=1e-15)
    np.testing.assert_array_equal(g[0], 0.0)
    np.testing.assert_array_equal(g[3], R[1])


def test_embedding_padding_idx_and_non_contiguous_weight():
    idx = np.array([[0, 2, 2], [3, 0, 1]])
    # No gradcheck: by definition the padding row gets no gradient although it is used.
    helper_test_op([(4, 3)], lambda w: TF.embedding(th(idx), w, padding_idx=2),
                   lambda w: DF.embedding(dg(idx), w, padding_idx=2), gradcheck=False)
    helper_test_op([(3, 4)], lambda w: TF.embedding(th(idx), w), lambda w: DF.embedding(dg(idx), w),
                   views=[lambda w: w.T])


# ----------------------------------------------------------------------------- dropout

def test_dropout_seeded_mask_is_repeatable():
    x = dg(make_input((50, 40), 0, 0.5, 2.0), dagrad.float64)
    dagrad.manual_seed(123)
    a = to_np(DF.dropout(x, p=0.3))
    dagrad.manual_seed(123)
    b = to_np(DF.dropout(x, p=0.3))
    np.testing.assert_array_equal(a, b)
    c = to_np(DF.dropout(x, p=0.3))  # the generator moved on: another mask
    assert np.any((a == 0) != (c == 0))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_scales_kept_elements_and_gradient_is_the_mask(p):
    xv = make_input((60, 50), 1, 0.5, 2.0)
    for dt, tol in ((dagrad.float64, TOL64), (dagrad.float32, TOL32)):
        x = dg(xv, dt, requires_grad=True)
        dagrad.manual_seed(7)
        y = DF.dropout(x, p=p)
        assert y.dtype == dt and y.shape == x.shape
        yv, xr = to_np(y), to_np(x)
        kept = yv != 0
        np.testing.assert_allclose(yv[kept], xr[kept] / (1.0 - p), **tol)
        frac = 1.0 - kept.mean()
        assert abs(frac - p) < 0.05, f"dropped fraction {frac} for p={p}"
        R = rng(2).standard_normal(xv.shape).astype(to_np(x).dtype)
        y.backward(dg(R, dt))
        np.testing.assert_allclose(to_np(x.grad), np.where(kept, R / (1.0 - p), 0.0), **tol)


def test_dropout_gradcheck_with_a_fixed_seed():
    def fn(x):
        dagrad.manual_seed(3)  # the same mask at every evaluation
        return DF.dropout(x, p=0.4)
    x = dg(make_input((4, 5), 4), dagrad.float64, requires_grad=True)
    assert dagrad.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5, rtol=1e-3) is True


def test_dropout_identity_when_not_training_and_edge_probabilities():
    xv = make_input((4, 5), 2)
    for p in (0.0, 0.5, 1.0):
        x = dg(xv, dagrad.float64, requires_grad=True)
        y = DF.dropout(x, p=p, training=False)
        np.testing.assert_array_equal(to_np(y), xv)
        y.backward(dg(np.ones((4, 5)), dagrad.float64))
        np.testing.assert_array_equal(to_np(x.grad), np.ones((4, 5)))
    np.testing.assert_array_equal(to_np(DF.dropout(dg(xv), p=0.0)), xv)
    np.testing.assert_array_equal(to_np(DF.dropout(dg(xv), p=1.0)), np.zeros((4, 5)))
    with pytest.raises(ValueError):
        DF.dropout(dg(xv), p=1.5)


# ----------------------------------------------------------------------------- layer_norm

LN_CASES = [((2, 3, 4), (4,)), ((2, 3, 4), (3, 4)), ((5, 6), (6,)), ((6,), (6,))]


@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape,ns", LN_CASES, ids=[str(c) for c in LN_CASES])
def test_layer_norm(shape, ns, affine):
    shapes = [shape] + ([ns] if affine in ("both", "weight") else []) + ([ns] if affine == "both" else [])
    helper_test_op(shapes, lambda x, *wb: TF.layer_norm(x, ns, *wb), lambda x, *wb: DF.layer_norm(x, ns, *wb))


def test_layer_norm_int_shape_eps_and_non_contiguous():
    helper_test_op([(3, 5)], lambda x: TF.layer_norm(x, (5,), eps=1e-3), lambda x: DF.layer_norm(x, 5, eps=1e-3))
    helper_test_op([(4, 3), (4,), (4,)], lambda x, w, b: TF.layer_norm(x, (4,), w, b),
                   lambda x, w, b: DF.layer_norm(x, (4,), w, b), views=[lambda x: x.T, None, None])


# ----------------------------------------------------------------------------- batch_norm

BN_SHAPES = [(6, 3), (2, 3, 5), (2, 3, 3, 4)]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_training_uses_batch_statistics(shape, affine):
    c = shape[1]
    shapes = [shape] + ([(c,), (c,)] if affine else [])
    helper_test_op(shapes, lambda x, *wb: TF.batch_norm(x, None, None, *wb, training=True),
                   lambda x, *wb: DF.batch_norm(x, None, None, *wb, training=True))


@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_training_updates_running_stats_as_torch(shape, momentum):
    c = shape[1]
    for name, dt, tdt, tol in (("float64", dagrad.float64, torch.float64, TOL64),
                               ("float32", dagrad.float32, torch.float32, TOL32)):
        rm0, rv0 = make_input((c,), 3), make_input((c,), 4, 0.5, 2.0)
        trm, trv = th(rm0, tdt), th(rv0, tdt)
        drm, drv = dg(rm0, dt), dg(rv0, dt)
        for step in range(2):
            x = make_input(shape, 10 + step) * 2.0 + 1.0
            tout = TF.batch_norm(th(x, tdt), trm, trv, training=True, momentum=momentum)
            dout = DF.batch_norm(dg(x, dt), drm, drv, training=True, momentum=momentum)
            assert_same(dout, tout, tol, f"{name} output, step {step}")
            assert_same(drm, trm, tol, f"{name} running_mean, step {step}")
            assert_same(drv, trv, tol, f"{name} running_var, step {step}")


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_eval_uses_running_stats(shape, affine):
    c = shape[1]
    rm, rv = make_input((c,), 5), make_input((c,), 6, 0.5, 2.0)
    shapes = [shape] + ([(c,), (c,)] if affine else [])

    def tfn(x, *wb):
        return TF.batch_norm(x, th(rm, x.dtype), th(rv, x.dtype), *wb, training=False)

    def dfn(x, *wb):
        return DF.batch_norm(x, dg(rm, x.dtype), dg(rv, x.dtype), *wb, training=False)
    helper_test_op(shapes, tfn, dfn)
    # Eval leaves the running statistics alone.
    drm, drv = dg(rm, dagrad.float64), dg(rv, dagrad.float64)
    DF.batch_norm(dg(make_input(shape, 7), dagrad.float64), drm, drv, training=False).numpy()
    np.testing.assert_array_equal(to_np(drm), rm)
    np.testing.assert_array_equal(to_np(drv), rv)


def test_batch_norm_non_contiguous_input():
    helper_test_op([(3, 6), (3,), (3,)], lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
                   lambda x, w, b: DF.batch_norm(x, None, None, w, b, training=True), views=[lambda x: x.T, None, None])


# ----------------------------------------------------------------------------- regression losses

def _apart(shape, seed, kinks):
    """Input and target whose difference stays 0.05 away from each kink (|d| = 0, beta, ...)."""
    inp = make_input(shape, seed)
    d = make_input(shape, seed + 1, -2.5, 2.5, kinks=tuple(kinks) + tuple(-k for k in kinks))
    return [inp, inp - d]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 3), (5,), (2, 3, 2), ()], ids=str)
def test_mse_loss(shape, reduction):
    helper_test_op(None, lambda a, b: TF.mse_loss(a, b, reduction=reduction),
                   lambda a, b: DF.mse_loss(a, b, reduction=reduction), vals=_apart(shape, 0, ()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 3), (5,), ()], ids=str)
def test_l1_loss(shape, reduction):
    helper_test_op(None, lambda a, b: TF.l1_loss(a, b, reduction=reduction),
                   lambda a, b: DF.l1_loss(a, b, reduction=reduction), vals=_apart(shape, 1, (0.0,)))


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smooth_l1_loss(reduction, beta):
    helper_test_op(None, lambda a, b: TF.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                   lambda a, b: DF.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                   vals=_apart((4, 5), 2, (0.0, beta)))


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "smooth_l1_loss"])
def test_regression_losses_non_contiguous_input(loss):
    a, t = _apart((3, 4), 3, (0.0, 1.0))
    helper_test_op(None, lambda x, y: getattr(TF, loss)(x.T, y), lambda x, y: getattr(DF, loss)(x.T, y),
                   vals=[a.T.copy(), t])


# ----------------------------------------------------------------------------- classification losses

N, C = 5, 4
TARGET = np.array([0, 3, 1, 3, 2])
TARGET_IGN = np.array([0, -100, 1, 3, -100])
TARGET_IGN2 = np.array([0, 2, 1, 3, 2])
WEIGHT = np.array([0.5, 2.0, 1.0, 1.5])
TARGET_K = np.array([[0, 3, 2], [1, 1, 0]])  # (N=2, d1=3)
TARGET_K2 = rng(4).integers(0, C, size=(2, 3, 2))


def _soft_targets(shape, seed):
    p = rng(seed).random(shape) + 0.1
    return p / p.sum(axis=1, keepdims=True)


CE_CASES = {  # input shape, target (numpy), kwargs for both
    "basic": ((N, C), TARGET, {}),
    "weight": ((N, C), TARGET, dict(weight=WEIGHT)),
    "ignore_default": ((N, C), TARGET_IGN, {}),
    "ignore_index2": ((N, C), TARGET_IGN2, dict(ignore_index=2)),
    "ignore_weight": ((N, C), TARGET_IGN2, dict(ignore_index=2, weight=WEIGHT)),
    "smoothing": ((N, C), TARGET, dict(label_smoothing=0.1)),
    "smoothing_weight": ((N, C), TARGET, dict(label_smoothing=0.3, weight=WEIGHT)),
    "smoothing_ignore": ((N, C), TARGET_IGN, dict(label_smoothing=0.2)),
    "smoothing_weight_ignore": ((N, C), TARGET_IGN2, dict(label_smoothing=0.2, weight=WEIGHT, ignore_index=2)),
    "kdim": ((2, C, 3), TARGET_K, {}),
    "kdim_weight_smoothing": ((2, C, 3), TARGET_K, dict(weight=WEIGHT, label_smoothing=0.1)),
    "kdim2": ((2, C, 3, 2), TARGET_K2, {}),
    "kdim_ignore": ((2, C, 3), TARGET_K, dict(ignore_index=0)),
    "probs": ((N, C), _soft_targets((N, C), 5), {}),
    "probs_weight": ((N, C), _soft_targets((N, C), 5), dict(weight=WEIGHT)),
    "probs_smoothing": ((N, C), _soft_targets((N, C), 5), dict(label_smoothing=0.2)),
    "probs_kdim": ((2, C, 3), _soft_targets((2, C, 3), 6), {}),
    "unbatched": ((C,), np.array(2), {}),
    "one_class_row": ((1, C), np.array([3]), {}),
}


def _kw(kw, lib):
    f = (lambda a: th(a)) if lib is torch else (lambda a: dg(a))
    return {k: (f(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}


def _cast_kw(kw, x):
    """Weights in the input's dtype, as both frameworks require."""
    return {k: (v.to(x.dtype) if k == "weight" else v) for k, v in kw.items()}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CE_CASES))
def test_cross_entropy(case, reduction):
    shape, target, kw = CE_CASES[case]
    tkw, dkw = _kw(kw, torch), _kw(kw, dagrad)
    soft = target.dtype.kind == "f"

    def tfn(x):
        t = th(target, x.dtype) if soft else th(target)
        return TF.cross_entropy(x, t, reduction=reduction, **_cast_kw(tkw, x))

    def dfn(x):
        t = dg(target, x.dtype) if soft else dg(target)
        return DF.cross_entropy(x, t, reduction=reduction, **_cast_kw(dkw, x))
    helper_test_op([shape], tfn, dfn, low=-3, high=3)


NLL_CASES = {
    "basic": ((N, C), TARGET, {}),
    "weight": ((N, C), TARGET, dict(weight=WEIGHT)),
    "ignore_default": ((N, C), TARGET_IGN, {}),
    "ignore_weight": ((N, C), TARGET_IGN2, dict(ignore_index=2, weight=WEIGHT)),
    "kdim": ((2, C, 3), TARGET_K, {}),
    "kdim_weight_ignore": ((2, C, 3), TARGET_K, dict(weight=WEIGHT, ignore_index=1)),
    "unbatched": ((C,), np.array(1), {}),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(NLL_CASES))
def test_nll_loss(case, reduction):
    shape, target, kw = NLL_CASES[case]
    tkw, dkw = _kw(kw, torch), _kw(kw, dagrad)
    helper_test_op([shape], lambda x: TF.nll_loss(x, th(target), reduction=reduction, **_cast_kw(tkw, x)),
                   lambda x: DF.nll_loss(x, dg(target), reduction=reduction, **_cast_kw(dkw, x)))
    # The usual pairing: log_softmax then nll_loss equals cross_entropy.
    if kw.get("weight") is None and shape == (N, C):
        helper_test_op([shape], lambda x: TF.nll_loss(TF.log_softmax(x, 1), th(target), reduction=reduction, **tkw),
                       lambda x: DF.nll_loss(DF.log_softmax(x, 1), dg(target), reduction=reduction, **dkw))


def test_cross_entropy_and_nll_non_contiguous_input():
    helper_test_op([(C, N)], lambda x: TF.cross_entropy(x.T, th(TARGET)),
                   lambda x: DF.cross_entropy(x.T, dg(TARGET)))
    helper_test_op([(2, 3, C)], lambda x: TF.nll_loss(x.permute(0, 2, 1), th(TARGET_K), reduction="sum"),
                   lambda x: DF.nll_loss(x.permute(0, 2, 1), dg(TARGET_K), reduction="sum"))


BCE_TARGET = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
BCE_SOFT = rng(11).random((4, 3))
BCE_WEIGHT = np.array([0.5, 2.0, 1.0])
POS_WEIGHT = np.array([3.0, 0.5, 1.0])


@pytest.mark.parametrize("target", ["hard", "soft"])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction, weight, target):
    tgt = BCE_TARGET if target == "hard" else BCE_SOFT

    def tfn(p):
        w = th(BCE_WEIGHT, p.dtype) if weight else None
        return TF.binary_cross_entropy(p, th(tgt, p.dtype), weight=w, reduction=reduction)

    def dfn(p):
        w = dg(BCE_WEIGHT, p.dtype) if weight else None
        return DF.binary_cross_entropy(p, dg(tgt, p.dtype), weight=w, reduction=reduction)
    helper_test_op([(4, 3)], tfn, dfn, low=0.05, high=0.95)


@pytest.mark.parametrize("pos_weight", [False, True])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction, weight, pos_weight):
    def kw(lib, dt):
        f = (lambda a: th(a, dt)) if lib is torch else (lambda a: dg(a, dt))
        return dict(weight=f(BCE_WEIGHT) if weight else None, pos_weight=f(POS_WEIGHT) if pos_weight else None,
                    reduction=reduction)
    for tgt in (BCE_TARGET, BCE_SOFT):
        helper_test_op([(4, 3)],
                       lambda x: TF.binary_cross_entropy_with_logits(x, th(tgt, x.dtype), **kw(torch, x.dtype)),
                       lambda x: DF.binary_cross_entropy_with_logits(x, dg(tgt, x.dtype), **kw(dagrad, x.dtype)),
                       low=-4, high=4)


def test_binary_losses_non_contiguous_input():
    helper_test_op([(3, 4)], lambda x: TF.binary_cross_entropy_with_logits(x.T, th(BCE_SOFT, x.dtype)),
                   lambda x: DF.binary_cross_entropy_with_logits(x.T, dg(BCE_SOFT, x.dtype)))
    helper_test_op([(3, 4)], lambda p: TF.binary_cross_entropy(p.T, th(BCE_SOFT, p.dtype)),
                   lambda p: DF.binary_cross_entropy(p.T, dg(BCE_SOFT, p.dtype)), low=0.05, high=0.95)


# ----------------------------------------------------------------------------- stability at +-1000

LOGITS_1000 = np.array([[1000.0, -1000.0, 0.0, 999.0], [-1000.0, -1000.0, -1000.0, -999.0],
                        [1000.0, 1000.0, -1000.0, 1000.0], [-1000.0, 1000.0, 0.5, -0.5]])
T_1000 = np.array([1, 0, 2, 1])  # often the class with the smallest logit: the largest loss


def _stable_cases():
    soft = _soft_targets((4, 4), 12)
    bt = (rng(13).random((4, 4)) < 0.5).astype(np.float64)
    pw = np.array([2.0, 0.5, 1.0, 3.0])
    tw = np.array([1.0, 2.0, 0.5, 1.0])
    return {
        "cross_entropy": (lambda x, r: TF.cross_entropy(x, th(T_1000), reduction=r),
                          lambda x, r: DF.cross_entropy(x, dg(T_1000), reduction=r)),
        "cross_entropy_smoothing_weight": (
            lambda x, r: TF.cross_entropy(x, th(T_1000), weight=th(tw, x.dtype), label_smoothing=0.1, reduction=r),
            lambda x, r: DF.cross_entropy(x, dg(T_1000), weight=dg(tw, x.dtype), label_smoothing=0.1, reduction=r)),
        "cross_entropy_probs": (lambda x, r: TF.cross_entropy(x, th(soft, x.dtype), reduction=r),
                                lambda x, r: DF.cross_entropy(x, dg(soft, x.dtype), reduction=r)),
        "nll_of_log_softmax": (lambda x, r: TF.nll_loss(TF.log_softmax(x, 1), th(T_1000), reduction=r),
                               lambda x, r: DF.nll_loss(DF.log_softmax(x, 1), dg(T_1000), reduction=r)),
        "bce_with_logits": (lambda x, r: TF.binary_cross_entropy_with_logits(x, th(bt, x.dtype), reduction=r),
                            lambda x, r: DF.binary_cross_entropy_with_logits(x, dg(bt, x.dtype), reduction=r)),
        "bce_with_logits_pos_weight": (
            lambda x, r: TF.binary_cross_entropy_with_logits(x, th(bt, x.dtype), pos_weight=th(pw, x.dtype),
                                                             reduction=r),
            lambda x, r: DF.binary_cross_entropy_with_logits(x, dg(bt, x.dtype), pos_weight=dg(pw, x.dtype),
                                                             reduction=r)),
        "bce_of_sigmoid": (lambda x, r: TF.binary_cross_entropy(torch.sigmoid(x), th(bt, x.dtype), reduction=r),
                           lambda x, r: DF.binary_cross_entropy(DF.sigmoid(x), dg(bt, x.dtype), reduction=r)),
        "mse": (lambda x, r: TF.mse_loss(x, th(-LOGITS_1000, x.dtype), reduction=r),
                lambda x, r: DF.mse_loss(x, dg(-LOGITS_1000, x.dtype), reduction=r)),
        "l1": (lambda x, r: TF.l1_loss(x, th(-LOGITS_1000 + 0.5, x.dtype), reduction=r),
               lambda x, r: DF.l1_loss(x, dg(-LOGITS_1000 + 0.5, x.dtype), reduction=r)),
        "smooth_l1": (lambda x, r: TF.smooth_l1_loss(x, th(-LOGITS_1000 + 0.5, x.dtype), reduction=r),
                      lambda x, r: DF.smooth_l1_loss(x, dg(-LOGITS_1000 + 0.5, x.dtype), reduction=r)),
    }


STABLE = _stable_cases()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", list(STABLE))
def test_losses_are_stable_for_logits_of_1000(loss, reduction):
    tfn, dfn = STABLE[loss]
    for dt in (dagrad.float32, dagrad.float64):
        x = dg(LOGITS_1000, dt, requires_grad=True)
        y = dfn(x, reduction)
        R = rng(14).standard_normal(y.shape)
        y.backward(dg(R, dt))
        assert np.all(np.isfinite(to_np(y))), f"{dt}: loss {to_np(y)}"
        assert np.all(np.isfinite(to_np(x.grad))), f"{dt}: gradient {to_np(x.grad)}"
    # And equal to PyTorch (no gradcheck: +-1000 sits on saturated, piecewise pieces).
    helper_test_op(None, lambda x: tfn(x, reduction), lambda x: dfn(x, reduction), vals=[LOGITS_1000],
                   gradcheck=False)


# ----------------------------------------------------------------- the fused cross-entropy node

def test_fused_cross_entropy_is_one_node_each_way_and_matches_torch_at_any_thread_count(restore_threads):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((300, 17)).astype(np.float32) * 4
    target = rng.integers(0, 17, 300)
    target[::7] = -100  # ignored rows
    xt = torch.tensor(logits, requires_grad=True)
    lt = TF.cross_entropy(xt, torch.tensor(target))
    lt.backward()
    results = []
    for threads in (1, 2, 4):
        dagrad.set_num_threads(threads)
        x = dagrad.tensor(logits, requires_grad=True)
        loss = DF.cross_entropy(x, dagrad.tensor(target))
        with dagrad.profiler.profile() as prof:
            loss.backward()
        assert sorted(e["op"] for e in prof.events) == ["cross_entropy", "cross_entropy_backward"]
        results.append((loss.item(), x.grad.numpy().copy()))
    np.testing.assert_allclose(results[0][0], lt.item(), rtol=1e-6)
    np.testing.assert_allclose(results[0][1], xt.grad.numpy(), rtol=1e-5, atol=1e-7)
    for loss, g in results[1:]:
        assert loss == results[0][0]
        np.testing.assert_array_equal(g, results[0][1])


def test_fused_cross_entropy_with_every_row_ignored_is_nan_for_the_mean():
    x = dagrad.tensor(np.zeros((3, 4)), requires_grad=True)
    t = dagrad.tensor(np.array([-100, -100, -100]))
    assert np.isnan(DF.cross_entropy(x, t).item())
    assert DF.cross_entropy(x, t, reduction="sum").item() == 0.0


def test_fused_cross_entropy_second_order_matches_torch():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((5, 6))
    target = np.array([0, 5, -100, 2, 2])
    v = rng.standard_normal((5, 6))
    xt = torch.tensor(logits, requires_grad=True)
    (gt,) = torch.autograd.grad(TF.cross_entropy(xt, torch.tensor(target)), xt, create_graph=True)
    (ht,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), xt)
    x = dagrad.tensor(logits, requires_grad=True)
    (g,) = dagrad.autograd.grad(DF.cross_entropy(x, dagrad.tensor(target)), x, create_graph=True)
    (h,) = dagrad.autograd.grad((g * dagrad.tensor(v)).sum(), x)
    np.testing.assert_allclose(g.numpy(), gt.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.numpy(), ht.numpy(), rtol=1e-10, atol=1e-14)


def test_fused_cross_entropy_rechecks_targets_written_in_place():
    x = dagrad.tensor(np.zeros((2, 3)))
    t = dagrad.tensor(np.array([0, 1]))
    loss = DF.cross_entropy(x, t)
    t.copy_(dagrad.tensor(np.array([0, 7])))
    with pytest.raises((IndexError, RuntimeError)):
        loss.item()
