"""Shared helpers for dagrad's Python tests.

The references are independent of dagrad: numpy for forward values and central finite
differences in float64 for gradients, with PyTorch ``gradcheck``'s tolerances
(eps 1e-6, rtol 1e-3, atol 1e-5). Gradients are checked through a random output
gradient, loss = (f(x) * R).sum() with a fixed random R (needle's ``backward_check``),
so a wrong broadcast, transpose or sign in a backward rule cannot hide behind ``.sum()``.
Inputs are moved away from kinks (relu at 0, log/sqrt/pow near 0) instead of loosening.
"""
import numpy as np
import pytest

import dagrad

# PyTorch gradcheck's defaults. Do not loosen: move the inputs instead.
FD_EPS = 1e-6
FD_RTOL = 1e-3
FD_ATOL = 1e-5

# Forward tolerances against numpy, by dtype.
FWD_TOL = {
    np.float64: dict(rtol=1e-10, atol=1e-12),
    np.float32: dict(rtol=1e-5, atol=1e-6),
}


def rng(seed=0):
    return np.random.default_rng(seed)


def rand_array(shape, seed=0, low=-2.0, high=2.0, dtype=np.float64):
    """Uniform random data on [low, high)."""
    return np.asarray(rng(seed).uniform(low, high, size=shape), dtype=dtype)


def positive_array(shape, seed=0, low=0.5, high=2.0, dtype=np.float64):
    """Data well away from 0, for log, sqrt, fractional and negative powers, division."""
    return np.asarray(rng(seed).uniform(low, high, size=shape), dtype=dtype)


def nonzero_array(shape, seed=0, low=0.5, high=2.0, dtype=np.float64):
    """Magnitudes in [low, high) with random signs: a denominator away from 0."""
    g = rng(seed)
    mag = g.uniform(low, high, size=shape)
    sign = np.where(g.random(size=shape) < 0.5, -1.0, 1.0)
    return np.asarray(mag * sign, dtype=dtype)


def to_np(t):
    """A tensor's value as a numpy array (a copy; dagrad hands out read-only views)."""
    return np.array(t.numpy(), copy=True)


def assert_forward(got, expected, dtype=np.float64):
    """Checks a dagrad result's shape, dtype and values against a numpy reference."""
    expected = np.asarray(expected)
    got_np = to_np(got)
    assert got.shape == expected.shape, f"shape {got.shape} != numpy's {expected.shape}"
    assert got_np.dtype == np.dtype(dtype), f"dtype {got_np.dtype} != {np.dtype(dtype)}"
    np.testing.assert_allclose(got_np, expected.astype(np.float64), **FWD_TOL[np.dtype(dtype).type])


def random_output_grad(shape, seed=1234):
    """The fixed random R in loss = (f(x) * R).sum()."""
    return rng(seed).standard_normal(size=shape)


def numerical_grads(fn, arrays, R, eps=FD_EPS):
    """Central finite differences of L(x) = sum(fn(*x) * R), one array per input.

    ``fn`` takes float64 dagrad tensors and returns a tensor; it is evaluated through
    dagrad itself (as ``gradcheck`` does) and the loss is summed in numpy in float64.
    """
    def loss(xs):
        ts = [dagrad.tensor(x) for x in xs]
        return float(np.sum(to_np(fn(*ts)) * R))

    xs = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    grads = []
    for k, x in enumerate(xs):
        g = np.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = loss(xs)
            flat[i] = orig - eps
            minus = loss(xs)
            flat[i] = orig
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def check_backward(fn, arrays, seed=1234, rtol=FD_RTOL, atol=FD_ATOL):
    """Checks dagrad's backward of ``fn`` against float64 finite differences.

    loss = (fn(*x) * R).sum() with a fixed random R; every input requires grad and its
    ``.grad`` must match d(loss)/dx in shape, dtype (float64) and value.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    ts = [dagrad.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    R = random_output_grad(out.shape, seed)
    (out * dagrad.tensor(R)).sum().backward()
    expected = numerical_grads(fn, arrays, R)
    for i, (t, e) in enumerate(zip(ts, expected)):
        assert t.grad is not None, f"input {i} got no gradient"
        assert t.grad.shape == t.shape, f"input {i}: grad shape {t.grad.shape} != {t.shape}"
        assert t.grad.dtype == dagrad.float64, f"input {i}: grad dtype {t.grad.dtype}"
        np.testing.assert_allclose(to_np(t.grad), e, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")


def check_backward_float32(fn, arrays, seed=1234, rtol=1e-4, atol=1e-5):
    """float32 gradients against the float64 gradients of the float32-rounded inputs.

    float32 carries ~7 digits; a few elementwise roundings plus short sums stay well
    inside rtol 1e-4.
    """
    a32 = [np.asarray(a, dtype=np.float32) for a in arrays]
    grads = {}
    for dt in (np.float32, np.float64):
        ts = [dagrad.tensor(a.astype(dt), requires_grad=True) for a in a32]
        out = fn(*ts)
        R = random_output_grad(out.shape, seed).astype(dt)
        (out * dagrad.tensor(R)).sum().backward()
        grads[dt] = [to_np(t.grad) for t in ts]
    for i, (g32, g64) in enumerate(zip(grads[np.float32], grads[np.float64])):
        assert g32.dtype == np.float32, f"input {i}: float32 input got a {g32.dtype} gradient"
        np.testing.assert_allclose(g32, g64, rtol=rtol, atol=atol,
                                   err_msg=f"float32 gradient of input {i}")


def check_double_backward(fn, arrays, seed=1234, rtol=FD_RTOL, atol=FD_ATOL):
    """Second derivatives (create_graph=True) against finite differences of the first.

    h(x) = sum(grad_x[sum(fn(x) * R)] * R2); its gradient from a second backward must match
    central differences of h, where the first gradient comes from dagrad (itself checked
    against finite differences by check_backward).
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out_shape = fn(*[dagrad.tensor(a) for a in arrays]).shape
    R = dagrad.tensor(random_output_grad(out_shape, seed))
    R2 = [random_output_grad(a.shape, seed + 1 + i) for i, a in enumerate(arrays)]

    def first_grads(ts, create_graph):
        return dagrad.autograd.grad((fn(*ts) * R).sum(), ts, create_graph=create_graph,
                                    allow_unused=True)

    def h(*ts):
        gs = first_grads(list(ts), create_graph=True)
        total = None
        for g, r in zip(gs, R2):
            if g is None:
                continue
            term = (g * dagrad.tensor(r)).sum()
            total = term if total is None else total + term
        return total

    ts = [dagrad.tensor(a, requires_grad=True) for a in arrays]
    hv = h(*ts)
    if hv is None or not hv.requires_grad:
        analytic = [np.zeros_like(a) for a in arrays]  # second derivative is zero
    else:
        got = dagrad.autograd.grad(hv, ts, allow_unused=True)
        analytic = [np.zeros_like(a) if g is None else to_np(g) for a, g in zip(arrays, got)]

    def h_value(*ts):
        with_grad = [dagrad.tensor(to_np(t), requires_grad=True) for t in ts]
        gs = first_grads(with_grad, create_graph=False)
        return dagrad.tensor(np.array(sum(float(np.sum(to_np(g) * r))
                                          for g, r in zip(gs, R2) if g is not None)))

    numeric = numerical_grads(h_value, arrays, np.array(1.0))
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(a, n, rtol=rtol, atol=atol,
                                   err_msg=f"second derivative of input {i}")


def helper_test_op(arrays, dagrad_fn, numpy_fn, grad=True, float32=True):
    """One line per op: float64 forward vs numpy, float64 backward vs finite differences,
    and float32 forward (vs numpy) and backward (vs float64) with float32 tolerances."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out = dagrad_fn(*[dagrad.tensor(a) for a in arrays])
    assert_forward(out, numpy_fn(*arrays), np.float64)
    if float32:
        a32 = [a.astype(np.float32) for a in arrays]
        out32 = dagrad_fn(*[dagrad.tensor(a) for a in a32])
        # Reference in float64 from the float32-rounded inputs.
        assert_forward(out32, numpy_fn(*[a.astype(np.float64) for a in a32]), np.float32)
    if grad:
        check_backward(dagrad_fn, arrays)
        if float32:
            check_backward_float32(dagrad_fn, arrays)


@pytest.fixture
def restore_threads():
    """Restores dagrad's thread budget after a test that changes it."""
    n = dagrad.get_num_threads()
    yield
    dagrad.set_num_threads(n)


@pytest.fixture(autouse=True)
def _grad_mode_guard():
    """A failing test must not leave grad mode off for the next one."""
    prev = dagrad.is_grad_enabled()
    yield
    dagrad.set_grad_enabled(prev)


def library_still_works():
    """A small forward and backward after an error: the library must stay usable."""
    x = dagrad.tensor([1.0, 2.0, 3.0], dtype=dagrad.float64, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    assert y.item() == 14.0
    np.testing.assert_array_equal(to_np(x.grad), [2.0, 4.0, 6.0])


# Hypothesis profiles for tests/ops/test_properties.py. "ci" (the default) is small and derandomized,
# so every CI run draws the same examples (about 20 s for the file when it passes) -- with the same
# Hypothesis: .ci/run and the README pin its version, since another version draws other
# examples; "long" searches for real:
#     python -m pytest tests/ops/test_properties.py --hypothesis-profile=long
try:
    from hypothesis import HealthCheck, settings as _hyp_settings
except ImportError:  # the property tests skip themselves
    pass
else:
    _slow_ok = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
    _hyp_settings.register_profile("ci", max_examples=100, derandomize=True, deadline=None,
                                   database=None, print_blob=True, suppress_health_check=_slow_ok)
    _hyp_settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True,
                                   suppress_health_check=_slow_ok)
    _hyp_settings.load_profile("ci")
