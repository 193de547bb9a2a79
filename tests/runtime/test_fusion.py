"""Elementwise fusion (Note [Elementwise fusion]): fused chains give the same bits as the same
ops run one by one, match numpy, happen only where nobody else can see an intermediate, and
keep the in-place checks."""
import numpy as np
import pytest

import dagrad
from torch_helpers import to_np

UNARY = {
    "neg": (lambda t: -t, np.negative),
    "exp": (dagrad.exp, np.exp),
    "tanh": (dagrad.tanh, np.tanh),
    "sigmoid": (dagrad.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    "relu": (dagrad.relu, lambda a: np.maximum(a, 0)),
    "abs": (dagrad.abs, np.abs),
    "sin": (dagrad.sin, np.sin),
    "cos": (dagrad.cos, np.cos),
    "square": (lambda t: t ** 2, np.square),
    "expm1": (dagrad.expm1, np.expm1),
    "erf": (dagrad.erf, None),
}
MIN_FUSED = 1024  # fusion::kMinElements: smaller outputs are not worth a fused kernel

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.fixture
def fusion_flag():
    prev = dagrad._core._fusion_enabled()
    yield
    dagrad._core._set_fusion_enabled(prev)


def _chain(x, others, plan, fw):
    """Applies `plan` (a list of op names) to x; binary ops take the next of `others`."""
    k = 0
    for name in plan:
        if name in UNARY:
            f = UNARY[name][0] if fw == "dagrad" else UNARY[name][1]
            x = f(x)
        else:
            f = BINARY[name][0] if fw == "dagrad" else BINARY[name][1]
            x = f(x, others[k])
            k += 1
    return x


def _random_plan(rng, length):
    names = list(UNARY) + list(BINARY) * 2
    names.remove("erf")  # no numpy reference; covered by the on/off comparison below
    return [names[i] for i in rng.integers(0, len(names), length)]


def _run(plan, x_np, others_np, dtype, fused):
    dagrad._core._set_fusion_enabled(fused)
    with dagrad.no_grad():
        x = dagrad.tensor(x_np)
        others = [o if np.isscalar(o) else dagrad.tensor(o) for o in others_np]
        y = _chain(x, others, plan, "dagrad")
        out = to_np(y)
    return out, dagrad._core.last_run_stats()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(12))
def test_fused_chain_is_bitwise_the_unfused_chain_and_matches_numpy(dtype, seed, fusion_flag):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 7, 1000, 1024, 1300, 70_000]))  # unfused sizes, blocks, tails, threads
    plan = _random_plan(rng, int(rng.integers(2, 9)))
    x_np = rng.uniform(-1.5, 1.5, n).astype(dtype)
    others_np = []
    for _ in plan:
        if rng.random() < 0.4:
            others_np.append(float(rng.uniform(0.5, 2.0)))          # a Python scalar
        elif rng.random() < 0.5:
            others_np.append(rng.uniform(0.5, 2.0, ()).astype(dtype))  # a 0-d tensor
        else:
            others_np.append(rng.uniform(0.5, 2.0, n).astype(dtype))   # full shape
    on, stats = _run(plan, x_np, others_np, dtype, True)
    off, stats_off = _run(plan, x_np, others_np, dtype, False)
    if n >= MIN_FUSED:
        assert stats["fused"] > 0, f"nothing fused in {plan}"
    else:
        assert stats["fused"] == 0, "tiny outputs are not fused"
    assert stats_off["fused"] == 0
    assert on.dtype == off.dtype == dtype
    np.testing.assert_array_equal(on, off, err_msg=f"plan {plan}")
    with np.errstate(all="ignore"):
        ref = _chain(x_np.astype(np.float64), [np.float64(o) if np.isscalar(o) else o.astype(np.float64)
                                               for o in others_np], plan, "numpy")
    tol = 2e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(on, ref, rtol=tol, atol=tol, err_msg=f"plan {plan}")


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_fused_results_do_not_depend_on_thread_count(threads, restore_threads, fusion_flag):
    rng = np.random.default_rng(5)
    a = rng.standard_normal(300_000).astype(np.float32)
    b = rng.standard_normal(300_000).astype(np.float32)

    def run():
        with dagrad.no_grad():
            x, y = dagrad.tensor(a), dagrad.tensor(b)
            return to_np(dagrad.tanh(x * y + 0.5).exp() - dagrad.sigmoid(y)), dagrad._core.last_run_stats()

    dagrad.set_num_threads(1)
    ref, _ = run()
    dagrad.set_num_threads(threads)
    got, stats = run()
    assert stats["fused"] >= 4
    np.testing.assert_array_equal(got, ref)


def test_an_intermediate_held_by_python_is_not_fused(fusion_flag):
    with dagrad.no_grad():
        a = np.linspace(-1, 1, 4096)
        x = dagrad.tensor(a)
        held = x * 2.0
        y = dagrad.exp(held)
        y.numpy()
        assert dagrad._core.last_run_stats()["fused"] == 0
        np.testing.assert_array_equal(held.numpy(), a * 2.0)
        np.testing.assert_allclose(y.numpy(), np.exp(a * 2.0), rtol=1e-15)
        z = dagrad.exp(x * 2.0)  # the same chain with nobody holding the product: fused
        z.numpy()
        assert dagrad._core.last_run_stats()["fused"] == 1


def test_nodes_that_need_grad_are_not_fused_and_gradients_agree(fusion_flag):
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, 1000)
    results = {}
    for fused in (True, False):
        dagrad._core._set_fusion_enabled(fused)
        x = dagrad.tensor(a, requires_grad=True)
        y = (dagrad.tanh(x * 1.5 + 0.25) * x).exp().sum()
        y.backward()
        results[fused] = (y.item(), x.grad.numpy().copy())
    np.testing.assert_array_equal(results[True][1], results[False][1])
    assert results[True][0] == results[False][0]
    t = np.tanh(a * 1.5 + 0.25)
    inner = t * a
    ref = np.exp(inner) * (t + a * 1.5 * (1 - t ** 2))
    np.testing.assert_allclose(results[True][1], ref, rtol=1e-12)


def test_backward_chains_fuse(fusion_flag):
    # The backward of a chain of elementwise ops is itself such a chain, and its nodes need no
    # grad: some of it fuses, and the gradient is the same bits as unfused.
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, 5000)
    grads, fused = {}, {}
    for on in (True, False):
        dagrad._core._set_fusion_enabled(on)
        x = dagrad.tensor(a, requires_grad=True)
        w = dagrad.tensor(0.7, requires_grad=True)
        h = x
        for _ in range(4):
            h = dagrad.relu(h * w + 0.1)
        h.sum().backward()
        fused[on] = dagrad._core.last_run_stats()["fused"]
        grads[on] = (x.grad.numpy().copy(), w.grad.item())
    assert fused[True] > 0 and fused[False] == 0
    np.testing.assert_array_equal(grads[True][0], grads[False][0])
    assert grads[True][1] == grads[False][1]


def test_in_place_change_of_a_fused_groups_input_is_detected(fusion_flag):
    with dagrad.no_grad():
        x = dagrad.tensor(np.ones(2048))
        y = dagrad.exp(x * 2.0) + 1.0  # recorded with x at version 0
        x.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an in-place operation"):
            y.numpy()
        # The library still works, and a fresh chain sees the new value.
        z = dagrad.exp(x * 2.0) + 1.0
        np.testing.assert_allclose(z.numpy(), np.full(2048, np.exp(4.0) + 1.0), rtol=1e-15)
        assert dagrad._core.last_run_stats()["fused"] > 0
