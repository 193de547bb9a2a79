"""Issue #16's kernels: direct max / average pooling (Note [Direct pooling]), the unfold / fold
fast paths, and the vectorised float32 sigmoid / exp; against PyTorch in float64 (first and
second order), gradcheck, ties and NaN like PyTorch, and the same bits at 1 to 8 threads."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import dagrad
import dagrad.nn.functional as DF
from torch_helpers import to_np

POOLS = {
    "max_k2": (lambda F, x: F.max_pool2d(x, 2), (2, 3, 8, 8)),
    "max_k3_s2_p1": (lambda F, x: F.max_pool2d(x, 3, 2, 1), (2, 2, 9, 7)),
    "max_k3_s1_overlap": (lambda F, x: F.max_pool2d(x, 3, 1), (1, 2, 6, 6)),
    "max_dilation": (lambda F, x: F.max_pool2d(x, 2, 1, 0, 2), (1, 2, 7, 7)),
    "avg_k2": (lambda F, x: F.avg_pool2d(x, 2), (2, 3, 8, 8)),
    "avg_k3_s2_p1": (lambda F, x: F.avg_pool2d(x, 3, 2, 1), (2, 2, 9, 7)),
    "avg_k3_s1_p1_exclude": (lambda F, x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), (1, 2, 6, 5)),
    "avg_asym": (lambda F, x: F.avg_pool2d(x, (3, 2), (1, 2), (1, 0)), (1, 2, 6, 7)),
}


def _pair(shape, seed):
    a = np.random.default_rng(seed).standard_normal(shape)
    return dagrad.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


@pytest.mark.parametrize("case", list(POOLS))
def test_pool_first_and_second_order_match_torch_float64(case):
    fn, shape = POOLS[case]
    xd, xt = _pair(shape, 1)
    yd, yt = fn(DF, xd), fn(TF, xt)
    np.testing.assert_allclose(to_np(yd), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    gout = np.random.default_rng(2).standard_normal(yt.shape)
    (gd,) = dagrad.autograd.grad(yd, xd, dagrad.tensor(gout), create_graph=True)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(gout), create_graph=True)
    np.testing.assert_allclose(to_np(gd), gt.detach().numpy(), rtol=1e-10, atol=1e-12)
    # Second order: the gradient of <dL/dx, v> with respect to the output gradient (the route's
    # adjoint, select) and through it: d/dgout of sum(g * v).
    v = np.random.default_rng(3).standard_normal(shape)
    god = dagrad.tensor(gout, requires_grad=True)
    got_ = torch.tensor(gout, requires_grad=True)
    (gd2,) = dagrad.autograd.grad(yd, xd, god, create_graph=True)
    (gt2,) = torch.autograd.grad(yt, xt, got_, create_graph=True)
    (hd,) = dagrad.autograd.grad((gd2 * dagrad.tensor(v)).sum(), god)
    (ht,) = torch.autograd.grad((gt2 * torch.tensor(v)).sum(), got_)
    np.testing.assert_allclose(to_np(hd), ht.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", list(POOLS))
def test_pool_gradcheck(case):
    fn, shape = POOLS[case]
    # Distinct values well apart, so that a finite difference never moves a window's maximum.
    vals = np.random.default_rng(4).permutation(int(np.prod(shape))).reshape(shape) * 0.01
    x = dagrad.tensor(vals, requires_grad=True)
    assert dagrad.autograd.gradcheck(lambda t: fn(DF, t), (x,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_max_pool_ties_and_nan_route_like_torch():
    a = np.zeros((1, 1, 4, 4))
    a[0, 0, 0, 1] = 5.0
    a[0, 0, 1, 0] = 5.0           # a tie inside the first window: the first in row-major order wins
    a[0, 0, 2, 2] = np.nan         # a NaN is the maximum of its window
    a[0, 0, 3, 3] = np.nan
    a[0, 0, 0, 3] = -np.inf        # a window of -inf and zeros
    for k, s, p in [(2, 2, 0), (3, 1, 1), (2, 1, 0)]:
        xd, xt = dagrad.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        yd, yt = DF.max_pool2d(xd, k, s, p), TF.max_pool2d(xt, k, s, p)
        np.testing.assert_array_equal(to_np(yd), yt.detach().numpy())
        yd.sum().backward()
        yt.sum().backward()
        np.testing.assert_array_equal(to_np(xd.grad), xt.grad.numpy(), err_msg=f"k={k} s={s} p={p}")


def _cnn_grads(threads, dtype):
    dagrad.set_num_threads(threads)
    g = np.random.default_rng(0)
    x = dagrad.tensor(g.standard_normal((8, 3, 20, 20)).astype(dtype), requires_grad=True)
    w1 = dagrad.tensor((g.standard_normal((8, 3, 5, 5)) * 0.2).astype(dtype), requires_grad=True)
    w2 = dagrad.tensor((g.standard_normal((12, 8, 3, 3)) * 0.2).astype(dtype), requires_grad=True)
    h = DF.max_pool2d(DF.conv2d(x, w1, padding=1).relu(), 2)                    # 18 -> 9
    h = DF.avg_pool2d(DF.conv2d(h, w2, stride=1, padding=1).sigmoid(), 3, 2, 1)  # 9 -> 5
    loss = (h * h).sum() + DF.max_pool2d(x, 3, 1, 1).exp().mean()
    loss.backward()
    return [to_np(t) for t in (loss, x.grad, w1.grad, w2.grad)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_conv_pool_step_is_bitwise_the_same_at_1_to_8_threads(dtype, restore_threads):
    ref = _cnn_grads(1, dtype)
    assert all(np.isfinite(r).all() for r in ref)
    for n in (2, 3, 4, 8):
        for a, b in zip(ref, _cnn_grads(n, dtype)):
            assert a.tobytes() == b.tobytes(), f"differs at {n} threads"


@pytest.mark.parametrize("k,s,p,d", [(5, 1, 0, 1), (3, 2, 1, 1), (3, 1, 2, 2), (2, 3, 1, 1), (4, 1, 3, 1)])
def test_unfold_fold_match_torch(k, s, p, d):
    xd, xt = _pair((2, 3, 9, 11), 5)
    yd = DF.unfold(xd, k, dilation=d, padding=p, stride=s)
    yt = TF.unfold(xt, k, dilation=d, padding=p, stride=s)
    np.testing.assert_array_equal(to_np(yd), yt.detach().numpy())  # a copy: exact
    gout = np.random.default_rng(6).standard_normal(yt.shape)
    yd.backward(dagrad.tensor(gout))
    yt.backward(torch.tensor(gout))
    np.testing.assert_allclose(to_np(xd.grad), xt.grad.numpy(), rtol=1e-12, atol=1e-12)  # fold


def test_vectorised_sigmoid_and_exp_float32_against_float64():
    v = np.concatenate([np.linspace(-110, 110, 200_001), [0.0, -0.0, np.inf, -np.inf, np.nan]]).astype(np.float32)
    x = dagrad.tensor(v)
    ref_sig = np.where(v >= 0, 1 / (1 + np.exp(-v.astype(np.float64))),
                       np.exp(v.astype(np.float64)) / (1 + np.exp(v.astype(np.float64))))
    with np.errstate(over="ignore"):
        ref_exp = np.exp(v.astype(np.float64))
    got_sig, got_exp = to_np(dagrad.sigmoid(x)), to_np(dagrad.exp(x))
    np.testing.assert_allclose(got_sig, ref_sig, rtol=3 * 2**-23, atol=1.5e-45)
    fin = ref_exp < np.finfo(np.float32).max
    np.testing.assert_allclose(got_exp[fin], ref_exp[fin], rtol=2**-23, atol=1.5e-45)
    assert np.isposinf(got_exp[~fin & ~np.isnan(v)]).all()
    assert np.isnan(got_sig[-1]) and np.isnan(got_exp[-1])


# ---- direct convolution (Note [Direct convolution]) --------------------------------------------
# (input shape, weight shape, stride, padding, dilation): the stride-1 paths with fixed-width
# rows (widths 4, 8, 24) and with any width (5), padded planes, samples batched per GEMM (small
# layers) and one by one, the general im2col (stride, dilation, asymmetric), and 1x1 kernels
# whose input is its own im2col.
CONVS = {
    "lenet1_k5": ((3, 1, 28, 28), (4, 1, 5, 5), 1, 0, 1),
    "lenet2_k5": ((3, 5, 12, 12), (6, 5, 5, 5), 1, 0, 1),
    "digits_k3_p1_4x4": ((7, 3, 4, 4), (5, 3, 3, 3), 1, 1, 1),
    "k3_p1_width5": ((2, 2, 5, 7), (3, 2, 3, 3), 1, 1, 1),
    "k3_p2_wide": ((2, 2, 6, 6), (3, 2, 3, 3), 1, 2, 1),
    "stride2_p1": ((2, 3, 9, 8), (4, 3, 3, 3), 2, 1, 1),
    "dilation2": ((2, 2, 9, 9), (3, 2, 3, 3), 1, 1, 2),
    "asym_k3x2_s(2,1)_p(1,0)": ((2, 2, 7, 6), (3, 2, 3, 2), (2, 1), (1, 0), 1),
    "1x1_small": ((9, 4, 3, 3), (5, 4, 1, 1), 1, 0, 1),
    "1x1_large": ((2, 3, 9, 9), (4, 3, 1, 1), 1, 0, 1),
    "1x1_stride2": ((2, 3, 7, 7), (4, 3, 1, 1), 2, 0, 1),
}


def _conv_inputs(case, seed=10, bias=True):
    xs, ws, s, p, d = CONVS[case]
    g = np.random.default_rng(seed)
    arrs = [g.standard_normal(xs), g.standard_normal(ws) * 0.3] + ([g.standard_normal(ws[0])] if bias else [])
    dg = [dagrad.tensor(a, requires_grad=True) for a in arrs]
    tt = [torch.tensor(a, requires_grad=True) for a in arrs]
    return dg, tt, dict(stride=s, padding=p, dilation=d)


@pytest.mark.parametrize("case", list(CONVS))
def test_conv2d_forward_and_gradients_match_torch_float64(case):
    (xd, wd, bd), (xt, wt, bt), kw = _conv_inputs(case)
    yd, yt = DF.conv2d(xd, wd, bd, **kw), TF.conv2d(xt, wt, bt, **kw)
    np.testing.assert_allclose(to_np(yd), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    gout = np.random.default_rng(11).standard_normal(yt.shape)
    gd = dagrad.autograd.grad(yd, [xd, wd, bd], dagrad.tensor(gout))
    gt = torch.autograd.grad(yt, [xt, wt, bt], torch.tensor(gout))
    for name, a, b in zip("xwb", gd, gt):
        np.testing.assert_allclose(to_np(a), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"d{name}")


@pytest.mark.parametrize("case", ["lenet2_k5", "digits_k3_p1_4x4", "stride2_p1", "dilation2", "1x1_small"])
def test_conv2d_second_order_matches_torch_float64(case):
    # Through the gradient nodes' own gradients: d/d(x, w, gout) of <dL/dx, u> + <dL/dw, v>
    # (the input gradient's backward is a conv2d and a weight gradient, the weight gradient's a
    # conv2d and an input gradient).
    (xd, wd, bd), (xt, wt, bt), kw = _conv_inputs(case, seed=12)
    yd, yt = DF.conv2d(xd, wd, bd, **kw), TF.conv2d(xt, wt, bt, **kw)
    r = np.random.default_rng(13)
    gout = r.standard_normal(yt.shape)
    u, v = r.standard_normal(xt.shape), r.standard_normal(wt.shape)
    god, got_ = dagrad.tensor(gout, requires_grad=True), torch.tensor(gout, requires_grad=True)
    dxd, dwd = dagrad.autograd.grad(yd, [xd, wd], god, create_graph=True)
    dxt, dwt = torch.autograd.grad(yt, [xt, wt], got_, create_graph=True)
    sd = (dxd * dagrad.tensor(u)).sum() + (dwd * dagrad.tensor(v)).sum() + (dxd * dxd).sum()
    st = (dxt * torch.tensor(u)).sum() + (dwt * torch.tensor(v)).sum() + (dxt * dxt).sum()
    hd = dagrad.autograd.grad(sd, [xd, wd, god])
    ht = torch.autograd.grad(st, [xt, wt, got_])
    for name, a, b in zip(["x", "w", "gout"], hd, ht):
        np.testing.assert_allclose(to_np(a), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"d/d{name}")


@pytest.mark.parametrize("case", ["digits_k3_p1_4x4", "stride2_p1", "asym_k3x2_s(2,1)_p(1,0)", "1x1_small"])
def test_conv2d_gradcheck(case):
    xs, ws, s, p, d = CONVS[case]
    g = np.random.default_rng(14)
    args = tuple(dagrad.tensor(a, requires_grad=True)
                 for a in (g.standard_normal((2,) + xs[1:]), g.standard_normal(ws) * 0.3, g.standard_normal(ws[0])))
    assert dagrad.autograd.gradcheck(lambda x, w, b: DF.conv2d(x, w, b, stride=s, padding=p, dilation=d), args,
                                     eps=1e-6, atol=1e-7, rtol=1e-6)


def test_conv2d_without_bias_and_empty_batch_match_torch():
    (xd, wd), (xt, wt), kw = _conv_inputs("k3_p1_width5", bias=False)
    yd, yt = DF.conv2d(xd, wd, **kw), TF.conv2d(xt, wt, **kw)
    np.testing.assert_allclose(to_np(yd), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    x0d = dagrad.tensor(np.zeros((0, 2, 5, 7)), requires_grad=True)
    x0t = torch.zeros((0, 2, 5, 7), dtype=torch.float64, requires_grad=True)
    y0d, y0t = DF.conv2d(x0d, wd, **kw), TF.conv2d(x0t, wt, **kw)
    assert tuple(y0d.shape) == tuple(y0t.shape)
    (gw0,) = dagrad.autograd.grad(y0d.sum(), [wd])
    np.testing.assert_array_equal(to_np(gw0), np.zeros(wt.shape))   # an empty batch sums to zero


def _conv_bits(threads, dtype, fused, n, hw, k, p):
    dagrad.set_num_threads(threads)
    dagrad._core._set_fusion_enabled(fused)
    g = np.random.default_rng(15)
    x = dagrad.tensor(g.standard_normal((n, 3, hw, hw)).astype(dtype), requires_grad=True)
    w1 = dagrad.tensor((g.standard_normal((8, 3, k, k)) * 0.2).astype(dtype), requires_grad=True)
    b1 = dagrad.tensor(g.standard_normal(8).astype(dtype), requires_grad=True)
    w2 = dagrad.tensor((g.standard_normal((6, 8, 1, 1)) * 0.2).astype(dtype), requires_grad=True)
    h = DF.conv2d(x, w1, b1, padding=p).relu()
    y = DF.conv2d(h, w2)
    loss = (y * y).sum()
    gx, gw1, gb1, gw2 = dagrad.autograd.grad(loss, [x, w1, b1, w2], create_graph=True)
    # and a second-order term through the gradient nodes
    (hx,) = dagrad.autograd.grad((gx * gx).sum() + (gw1 * gw1).sum(), [x])
    return [to_np(t) for t in (y, gx, gw1, gb1, gw2, hx)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n,hw,k,p", [(37, 4, 3, 1), (37, 12, 5, 0), (5, 28, 5, 0), (70, 8, 3, 1)])
def test_conv2d_is_bitwise_the_same_at_1_to_8_threads_and_with_fusion_on_and_off(dtype, n, hw, k, p,
                                                                                 restore_threads):
    # Batches that are not a multiple of the samples per GEMM or of the weight gradient's
    # chunks, and more chunks than groups (Note [Direct convolution]).
    prev = dagrad._core._fusion_enabled()
    try:
        ref = _conv_bits(1, dtype, True, n, hw, k, p)
        assert all(np.isfinite(r).all() for r in ref)
        for threads in (1, 2, 3, 4, 8):
            for fused in (True, False):
                for a, b in zip(ref, _conv_bits(threads, dtype, fused, n, hw, k, p)):
                    assert a.tobytes() == b.tobytes(), f"differs at {threads} threads, fusion {fused}"
    finally:
        dagrad._core._set_fusion_enabled(prev)
