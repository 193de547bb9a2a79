"""GEMM tiles (Note [GEMM tiles] in csrc/dagrad/kernels/gemm.cpp): products split into row or
column blocks fixed by the shape give the same bits at 1, 2, 4 and 8 threads, and the right values.

Shapes are chosen to land in each tiling: one call (small), row blocks (M > 128), and column
blocks (M <= 128 and a large product: every forward GEMM and dX of an MLP step with batch 128),
each with a ragged last block.
"""
import numpy as np
import pytest

import dagrad
from dagrad import _core

THREADS = [1, 2, 4, 8]

# (M, N, K): C is M x N.
SHAPES = [
    (64, 96, 80),  # one call
    (512, 96, 96),  # 4 row blocks (too small to split columns)
    (128, 1536, 256),  # 1 row block, a large product: 3 column blocks of 512
    (100, 1100, 400),  # ragged columns: 1 row block x 3 column blocks (512 + 512 + 76)
    (256, 2048, 128),  # 2 row blocks; its columns stay whole
    (130, 1100, 300),  # ragged rows: 2 row blocks (128 + 2 rows)
]


def _operands(m, n, k, ta, tb, dtype, seed=0):
    g = np.random.default_rng(seed)
    a = g.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = g.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("flags", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["nn", "tn", "nt", "tt"])
def test_gemm_tiles_bitwise_across_threads_and_correct(shape, flags, restore_threads):
    m, n, k = shape
    ta, tb = flags
    a, b = _operands(m, n, k, ta, tb, np.float32)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    outs = {}
    for t in THREADS:
        dagrad.set_num_threads(t)
        c = _core.matmul_t(dagrad.tensor(a), dagrad.tensor(b), ta, tb)
        outs[t] = c.numpy()
    assert outs[1].shape == (m, n)
    # float32 products of K terms of size ~1: error ~ sqrt(K) * 6e-8 * |terms|
    np.testing.assert_allclose(outs[1], ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    for t in THREADS[1:]:
        assert outs[t].tobytes() == outs[1].tobytes(), f"{shape} {flags}: {t} threads differ from 1"


def test_gemm_tiles_float64_matches_numpy(restore_threads):
    m, n, k = 128, 1536, 256
    a, b = _operands(m, n, k, False, True, np.float64, seed=3)
    ref = a @ b.T
    for t in THREADS:
        dagrad.set_num_threads(t)
        got = _core.matmul_t(dagrad.tensor(a), dagrad.tensor(b), False, True).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


@pytest.fixture
def fusion_flag():
    prev = dagrad._core._fusion_enabled()
    yield
    dagrad._core._set_fusion_enabled(prev)


def _mlp_step_grads(threads, fusion):
    """Loss and gradients of a batch-128 MLP whose layers are wide enough for column tiles."""
    dagrad.set_num_threads(threads)
    dagrad._core._set_fusion_enabled(fusion)
    g = np.random.default_rng(5)
    x = dagrad.tensor(g.standard_normal((128, 384)).astype(np.float32))
    y = dagrad.tensor(g.standard_normal((128, 64)).astype(np.float32))
    sizes = [384, 1024, 1024, 64]
    params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        w = dagrad.tensor((g.standard_normal((fo, fi)) / np.sqrt(fi)).astype(np.float32), requires_grad=True)
        bias = dagrad.tensor((g.standard_normal(fo) * 0.1).astype(np.float32), requires_grad=True)
        params += [w, bias]
    h = x
    for i in range(3):
        h = dagrad.nn.functional.linear(h, params[2 * i], params[2 * i + 1])
        if i < 2:
            h = h.relu()
    loss = dagrad.nn.functional.mse_loss(h, y)
    loss.backward()
    return [loss.numpy()] + [p.grad.numpy() for p in params]


def test_wide_mlp_step_bitwise_across_threads_and_fusion(restore_threads, fusion_flag):
    ref = _mlp_step_grads(1, False)
    for t in THREADS:
        for fusion in (False, True):
            got = _mlp_step_grads(t, fusion)
            for i, (r, v) in enumerate(zip(ref, got)):
                assert v.tobytes() == r.tobytes(), f"output {i} differs at {t} threads, fusion {fusion}"


@pytest.mark.parametrize("shape", [(100, 1100, 400), (128, 1536, 256), (130, 1100, 300), (512, 96, 96)],
                         ids=lambda s: "x".join(map(str, s)))
def test_linear_with_bias_epilogue_matches_torch(shape, restore_threads):
    """linear adds its bias inside the GEMM's tiles (kernels::gemm_bias): forward and gradients
    against PyTorch in float64 (1e-10) at tile-splitting shapes, on 2 threads. (float32 is checked
    above against float64 products; the helper's float32 tolerance is sized for sums of ~100
    terms, and these gradients sum 130 to 512.)"""
    pytest.importorskip("torch")
    from torch_helpers import helper_test_op
    m, n, k = shape
    dagrad.set_num_threads(2)
    helper_test_op([(m, k), (n, k), (n,)], _linear, gradcheck=False, dtypes=("float64",))


def _linear(x, w, b):
    if isinstance(x, dagrad.Tensor):
        return dagrad.nn.functional.linear(x, w, b)
    import torch.nn.functional as tf
    return tf.linear(x, w, b)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_bias_epilogue_is_bitwise_gemm_then_add(shape, restore_threads, fusion_flag):
    """The fused bias gives the bits of the product followed by a separate add."""
    m, n, k = shape
    g = np.random.default_rng(9)
    x = g.standard_normal((m, k)).astype(np.float32)
    w = g.standard_normal((n, k)).astype(np.float32)
    b = g.standard_normal(n).astype(np.float32)
    dagrad._core._set_fusion_enabled(False)
    for t in THREADS:
        dagrad.set_num_threads(t)
        fused = dagrad.nn.functional.linear(dagrad.tensor(x), dagrad.tensor(w), dagrad.tensor(b)).numpy()
        product = _core.matmul_t(dagrad.tensor(x), dagrad.tensor(w), False, True)
        separate = (product + dagrad.tensor(b)).numpy()
        assert fused.tobytes() == separate.tobytes(), f"{shape}: {t} threads"


# ---- Note [GEMM epilogue fusion]: activation_backward(g @ W, x) in one node --------------------

ACTS = ["relu", "tanh", "sigmoid"]


def _two_layer(lib, x, w1, w2, act, use_matmul):
    """linear -> act -> linear (or x @ w1 -> act -> @ w2): its backward computes
    act_backward(g @ W2, h), which fuses into the product's tile epilogue."""
    if lib == "dagrad":
        lin = dagrad.nn.functional.linear
    else:
        import torch.nn.functional as tf
        lin = tf.linear
    h = (x @ w1.T) if use_matmul else lin(x, w1)
    h = getattr(h, act)()
    return (h @ w2.T) if use_matmul else lin(h, w2)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("use_matmul", [False, True], ids=["linear", "matmul"])
def test_gemm_epilogue_matches_torch(act, use_matmul, restore_threads):
    """The fused backward against PyTorch in float64 (1e-10), on 1 and 2 threads. (float32 is
    checked bitwise against the unfused graph below; the helper's float32 tolerance is sized for
    ~100-term sums of small values and fails this two-layer chain with fusion off as well.)"""
    pytest.importorskip("torch")
    from torch_helpers import helper_test_op
    for t in (1, 2):
        dagrad.set_num_threads(t)
        helper_test_op([(64, 48), (96, 48), (24, 96)],
                       lambda x, w1, w2: _two_layer("dagrad" if isinstance(x, dagrad.Tensor) else "torch", x, w1,
                                                    w2, act, use_matmul),
                       gradcheck=False, kinks=(0.0,) if act == "relu" else (), dtypes=("float64",))


def _fused_grads(act, threads, fusion, shape=(130, 200, 300)):
    dagrad.set_num_threads(threads)
    dagrad._core._set_fusion_enabled(fusion)
    m, k, hdim = shape
    g = np.random.default_rng(11)
    x = dagrad.tensor(g.standard_normal((m, k)).astype(np.float32))
    w1 = dagrad.tensor((g.standard_normal((hdim, k)) / np.sqrt(k)).astype(np.float32), requires_grad=True)
    w2 = dagrad.tensor((g.standard_normal((40, hdim)) / np.sqrt(hdim)).astype(np.float32), requires_grad=True)
    r = dagrad.tensor(g.standard_normal((m, 40)).astype(np.float32))
    with dagrad.profiler.profile() as prof:
        (_two_layer("dagrad", x, w1, w2, act, False) * r).sum().backward()
    fused = [[mem["op"] for mem in e["fused"]] for e in prof.events if e["fused"]]
    return [w1.grad.numpy(), w2.grad.numpy()], fused


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", [(130, 200, 300), (128, 300, 1200)], ids=["row-blocks", "column-blocks"])
def test_gemm_epilogue_bitwise_fusion_on_off_and_threads(act, shape, restore_threads, fusion_flag):
    ref, fused = _fused_grads(act, 1, False, shape)
    assert fused == []
    for t in THREADS:
        got, fused = _fused_grads(act, t, True, shape)
        assert fused == [["matmul"]], fused  # the dX product ran inside the activation's backward
        for r, v in zip(ref, got):
            assert v.tobytes() == r.tobytes(), f"{act} {shape}: fused at {t} threads differs from unfused"


def test_gemm_epilogue_not_taken_when_the_gradient_is_retained(restore_threads, fusion_flag):
    """The product (the gradient of the activation's output) is also what retain_grad keeps:
    it has another holder, so it keeps its own node; the values are the same either way."""
    grads = {}
    for retain in (False, True):
        dagrad.set_num_threads(1)
        dagrad._core._set_fusion_enabled(True)
        g = np.random.default_rng(2)
        x = dagrad.tensor(g.standard_normal((64, 48)).astype(np.float32))
        w1 = dagrad.tensor(g.standard_normal((96, 48)).astype(np.float32), requires_grad=True)
        w2 = dagrad.tensor(g.standard_normal((24, 96)).astype(np.float32), requires_grad=True)
        z = dagrad.nn.functional.linear(x, w1)
        h = z.relu()
        if retain:
            h.retain_grad()
        with dagrad.profiler.profile() as prof:
            dagrad.nn.functional.linear(h, w2).sum().backward()
        fused = [[m["op"] for m in e["fused"]] for e in prof.events if e["fused"]]
        if retain:
            assert fused == []
            np.testing.assert_allclose(h.grad.numpy(), np.ones((64, 24)) @ w2.numpy().astype(np.float64), rtol=1e-5)
        else:
            assert fused == [["matmul"]]
        grads[retain] = w1.grad.numpy()
    assert grads[True].tobytes() == grads[False].tobytes()
