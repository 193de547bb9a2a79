"""Regression tests for the families of issue #15 (adversarial findings), each reproducer with
its neighbours. References: PyTorch 2.13 (where installed) and numpy."""
import os
import subprocess
import sys

import numpy as np
import pytest

import dagrad
import dagrad.nn.functional as F

torch = pytest.importorskip("torch")


def _outcome(fn):
    try:
        r = fn()
    except (IndexError, ValueError, RuntimeError, TypeError) as e:
        return type(e)
    if isinstance(r, (tuple, list)):
        return [np.asarray(v.tolist()) for v in r]
    return np.asarray(r.tolist()) if hasattr(r, "tolist") else r


# --- 1. 0-d tensors given a dim (Note [Dims of 0-d tensors]) ----------------------------------
# (name, call taking (module, x, index_fn)); every dim-taking op, dims 0, -1 and out of range.
_DIM_OPS = {
    "sum": lambda M, x, d, T: x.sum(d),
    "mean": lambda M, x, d, T: x.mean(d),
    "prod": lambda M, x, d, T: x.prod(d),
    "amax": lambda M, x, d, T: x.amax(d),
    "amin": lambda M, x, d, T: x.amin(d),
    "argmax": lambda M, x, d, T: x.argmax(d),
    "argmin": lambda M, x, d, T: x.argmin(d),
    "max": lambda M, x, d, T: x.max(d)[0],
    "min": lambda M, x, d, T: x.min(d)[0],
    "max_idx": lambda M, x, d, T: x.max(d)[1],
    "var": lambda M, x, d, T: x.var(d),
    "std": lambda M, x, d, T: x.std(d),
    "logsumexp": lambda M, x, d, T: x.logsumexp(d),
    "softmax": lambda M, x, d, T: x.softmax(d),
    "log_softmax": lambda M, x, d, T: x.log_softmax(d),
    "squeeze": lambda M, x, d, T: x.squeeze(d),
    "unsqueeze": lambda M, x, d, T: x.unsqueeze(d),
    "flatten": lambda M, x, d, T: x.flatten(d),
    "transpose": lambda M, x, d, T: x.transpose(d, 0),
    "gather": lambda M, x, d, T: x.gather(d, T(0)),
    "gather_1d_index": lambda M, x, d, T: x.gather(d, T([0, 0])),
    "chunk": lambda M, x, d, T: x.chunk(1, d),
    "split": lambda M, x, d, T: x.split(1, d),
    "stack": lambda M, x, d, T: M.stack([x, x], d),
    "cat": lambda M, x, d, T: M.cat([x, x], d),
    "size": lambda M, x, d, T: M.tensor(x.size(d)),
}


@pytest.mark.parametrize("dim", [0, -1, 1, -2])
@pytest.mark.parametrize("name", sorted(_DIM_OPS))
def test_dim_ops_on_0d_follow_torch(name, dim):
    f = _DIM_OPS[name]
    ref = _outcome(lambda: f(torch, torch.tensor(5.0), dim, torch.tensor))
    got = _outcome(lambda: f(dagrad, dagrad.tensor(5.0), dim, dagrad.tensor))
    if isinstance(ref, type):
        # torch refuses: dagrad refuses too, with IndexError for a dim (ValueError where torch
        # refuses the 0-d input itself, as cat does).
        assert isinstance(got, type), f"{name}({dim}) on 0-d: torch raises {ref.__name__}, dagrad gives {got}"
        assert got in (IndexError, ValueError)
    else:
        assert not isinstance(got, type), f"{name}({dim}) on 0-d: torch works, dagrad raises {got.__name__}"
        if isinstance(ref, list):
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a, b)
        else:
            np.testing.assert_allclose(got, ref)


def test_gather_and_scatter_on_0d_match_torch_with_gradient():
    x = dagrad.tensor(5.0, requires_grad=True)
    y = x.gather(0, dagrad.tensor([0, 0]))
    (y * dagrad.tensor([2.0, 3.0])).sum().backward()
    assert y.tolist() == [5.0, 5.0]
    assert x.grad.item() == 5.0
    out = dagrad._core.scatter_add(dagrad.tensor(3.0), 0, dagrad.tensor(0), [])
    assert out.shape == () and out.item() == 3.0
    with pytest.raises(IndexError):
        dagrad.tensor(5.0).gather(0, dagrad.tensor(1)).item()


# --- 2. shape arithmetic that overflows ----------------------------------------------------------
_BIG = [2**31 - 2, 2**31, 2**32, 2**62, 2**63 - 1]
_WINDOWED = {
    "unfold_padding": lambda v: F.unfold(dagrad.ones(1, 1, 4, 4), 1, padding=v),
    "unfold_kernel": lambda v: F.unfold(dagrad.ones(1, 1, 4, 4), v),
    "unfold_dilation": lambda v: F.unfold(dagrad.ones(1, 1, 4, 4), 2, dilation=v),
    "unfold_stride": lambda v: F.unfold(dagrad.ones(1, 1, 4, 4), 2, stride=v),
    "fold_kernel": lambda v: F.fold(dagrad.ones(1, 1, 1), (2, 2), v),
    "fold_padding": lambda v: F.fold(dagrad.ones(1, 1, 1), (2, 2), 1, padding=v),
    "fold_output": lambda v: F.fold(dagrad.ones(1, 1, 1), (v, v), 1),
    "conv2d_padding": lambda v: F.conv2d(dagrad.ones(1, 1, 4, 4), dagrad.ones(1, 1, 1, 1), padding=v),
    "conv2d_stride": lambda v: F.conv2d(dagrad.ones(1, 1, 4, 4), dagrad.ones(1, 1, 1, 1), stride=v),
    "conv2d_dilation": lambda v: F.conv2d(dagrad.ones(1, 1, 4, 4), dagrad.ones(1, 1, 2, 2), dilation=v),
    "conv1d_padding": lambda v: F.conv1d(dagrad.ones(1, 1, 4), dagrad.ones(1, 1, 1), padding=v),
    "avg_pool2d_kernel": lambda v: F.avg_pool2d(dagrad.ones(1, 1, 4, 4), v, padding=v // 2),
    "avg_pool2d_stride": lambda v: F.avg_pool2d(dagrad.ones(1, 1, 4, 4), 2, stride=v),
    "max_pool2d_kernel": lambda v: F.max_pool2d(dagrad.ones(1, 1, 4, 4), v, padding=v // 2),
    "max_pool2d_dilation": lambda v: F.max_pool2d(dagrad.ones(1, 1, 4, 4), 2, dilation=v),
}


@pytest.mark.parametrize("big", _BIG)
@pytest.mark.parametrize("name", sorted(_WINDOWED))
def test_windowed_ops_with_huge_sizes_raise_or_compute(name, big):
    """Never a crash or a buffer of the wrong size: either a typed error naming the op, or a
    result whose every element is what the window reads (a huge stride keeps one window)."""
    try:
        y = _WINDOWED[name](big)
        n = int(np.prod(y.shape, dtype=object))
        assert 0 < n < 2**63
        if n > 10**7:
            return  # a legal shape, too large to compute here (a padding of 2**31 on one axis)
        v = y.numpy()
    except (ValueError, MemoryError) as e:
        assert str(e).split(":")[0] in ("unfold", "fold", "conv2d", "conv1d", "avg_pool2d", "max_pool2d")
        return
    assert v.size == n
    assert np.isfinite(v).all()


@pytest.mark.parametrize("output_size", [(-1, -3), (0, 2), (2, -1)])
def test_fold_refuses_non_positive_output_size(output_size):
    with pytest.raises(ValueError, match="fold"):
        F.fold(dagrad.ones(1, 1, 1), output_size, 1)


def test_sizes_that_overflow_int64_are_value_errors():
    x = dagrad.ones(2, 2)
    with pytest.raises(ValueError):
        x.expand(2**62, 2**62, 2)
    with pytest.raises(ValueError):
        F.pad(x, (2**62, 2**62))


# --- 3. thread counts (Note [Thread cap]) -------------------------------------------------------
@pytest.mark.parametrize("n", [0, -1, 65536, 8192, 2**40])
def test_set_num_threads_refuses_out_of_range(n):
    before = dagrad.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        dagrad.set_num_threads(n)
    assert dagrad.get_num_threads() == before
    x = dagrad.ones(3, requires_grad=True)
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_set_num_threads_refuses_non_integers():
    with pytest.raises(TypeError, match="set_num_threads"):
        dagrad.set_num_threads(2.5)


def test_the_cap_itself_works():
    before = dagrad.get_num_threads()
    try:
        cap = dagrad._core.max_threads()
        assert cap >= 64
        dagrad.set_num_threads(cap)
        x = dagrad.ones(3, requires_grad=True)
        ((x * 2).sum() + (x * 3).sum()).backward()
        assert x.grad.tolist() == [5.0, 5.0, 5.0]
    finally:
        dagrad.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "65536", "abc", "-3", "99999999999999999999999"])
def test_bad_DAGRAD_NUM_THREADS_is_a_value_error_at_import(value):
    env = dict(os.environ, DAGRAD_NUM_THREADS=value)
    p = subprocess.run([sys.executable, "-c", "import dagrad"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "ValueError: DAGRAD_NUM_THREADS" in p.stderr


# --- 4, 5. tracing from several threads (Notes [No thread waits for a dagrad lock holding the
# GIL], [Tracing belongs to the tracing thread]). Run in a subprocess: a deadlock must fail the
# test, not hang the suite.
def _run_script(code, timeout=120):
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


_THREADS_PRELUDE = """
import threading, time
import numpy as np
import dagrad
import dagrad.nn.functional as F
def run_threads(fns, timeout=60):
    errors = []
    def wrap(f):
        def g():
            try:
                f()
            except BaseException as e:
                errors.append(e)
        return g
    ts = [threading.Thread(target=wrap(f), daemon=True) for f in fns]
    for t in ts: t.start()
    for t in ts:
        t.join(timeout)
        assert not t.is_alive(), "deadlock: a thread did not finish"
    if errors: raise errors[0]
"""


def test_two_threads_tracing_their_own_steps_do_not_deadlock():
    out = _run_script(_THREADS_PRELUDE + """
results = {}
def worker(k):
    def f():
        w = dagrad.tensor([1.0, 2.0], requires_grad=True)
        opt = dagrad.optim.SGD([w], lr=0.1)
        @dagrad.compile
        def step(x):
            opt.zero_grad()
            time.sleep(0.05)           # the other thread traces meanwhile
            loss = ((w * x) ** 2).sum()
            loss.backward()
            opt.step()
            return loss
        losses = [step(dagrad.tensor([float(k), 1.0])).item() for _ in range(5)]
        results[k] = (losses, w.tolist())
    return f
run_threads([worker(1), worker(2)])
# the same steps eagerly, one thread
for k in (1, 2):
    w = dagrad.tensor([1.0, 2.0], requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.1)
    ref = []
    for _ in range(5):
        opt.zero_grad(); loss = ((w * dagrad.tensor([float(k), 1.0])) ** 2).sum(); loss.backward(); opt.step()
        ref.append(loss.item())
    assert results[k] == (ref, w.tolist()), (k, results[k], ref)
print("ok")
""")
    assert "ok" in out


def test_tracing_thread_does_not_block_or_poison_other_threads():
    out = _run_script(_THREADS_PRELUDE + """
inside = threading.Event(); release = threading.Event()
def tracer():
    w = dagrad.tensor([1.0], requires_grad=True)
    @dagrad.compile
    def step(x):
        y = (w * x).sum()
        inside.set()
        assert release.wait(30)
        y.backward()
        return y
    step(dagrad.tensor([3.0]))
    assert dagrad._core.is_tracing() is False
def other():
    assert inside.wait(30)
    try:
        assert dagrad._core.is_tracing() is False
        # values, .grad assignment, dropout and a not-yet-computed target while the other traces
        x = dagrad.tensor([1.0, 2.0], requires_grad=True)
        assert (x * 2).sum().item() == 6.0
        x.grad = dagrad.zeros(2)
        F.dropout(dagrad.ones(4), 0.5, training=True).numpy()
        logits = dagrad.randn(3, 4)
        target = dagrad.tensor([0, 1, 2]) + 0   # pending: cross_entropy must realize it
        assert np.isfinite(F.cross_entropy(logits, target).item())
        dagrad._core.last_run_stats()
    finally:
        release.set()
run_threads([tracer, other])
print("ok")
""")
    assert "ok" in out


# --- 6, 7. .grad aliasing (Note [Accumulating into .grad]) ---------------------------------------
@pytest.mark.parametrize("alias", [
    lambda x: x,
    lambda x: x.detach(),
    lambda x: x.detach().reshape(3, 1).reshape(3),
    lambda x: x.reshape(3),
    lambda x: x.data,
])
def test_a_tensor_cannot_be_its_own_grad(alias):
    x = dagrad.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="own grad"):
        x.grad = alias(x)
    (x * 2).sum().backward()
    assert x.tolist() == [1.0, 1.0, 1.0]
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_torch_refuses_the_same_assignment():
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        x.grad = x


@pytest.mark.parametrize("pending", [False, True])
@pytest.mark.parametrize("n_params", [2, 3])
def test_shared_grad_buffer_accumulates_every_update_as_torch(n_params, pending):
    coeffs = [2.0, 3.0, 5.0][:n_params]
    init = np.array([1.0, -1.0, 0.5])

    def run(M, make_g):
        ps = [M.ones(3, requires_grad=True) for _ in coeffs]
        g = make_g(M)
        for p in ps:
            p.grad = g
        loss = sum((p * c).sum() for p, c in zip(ps, coeffs))
        loss.backward()
        return [np.asarray(p.grad.tolist()) for p in ps], np.asarray(g.tolist())

    mk = (lambda M: M.tensor(init.tolist()) * 1.0) if pending else (lambda M: M.tensor(init.tolist()))
    got, got_g = run(dagrad, mk)
    ref, ref_g = run(torch, lambda M: M.tensor(init.tolist()))
    np.testing.assert_array_equal(got_g, ref_g)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got_g, init + sum(coeffs))


def test_shared_grad_buffer_under_compile_matches_eager():
    def make():
        a = dagrad.tensor([1.0, 2.0], requires_grad=True)
        b = dagrad.tensor([3.0, 4.0], requires_grad=True)
        g = dagrad.zeros(2)
        a.grad = g
        b.grad = g
        return a, b, g

    def step(a, b, x):
        loss = (a * x).sum() + (b * x * x).sum()
        loss.backward()
        return loss

    ea, eb, eg = make()
    for k in range(3):
        step(ea, eb, dagrad.tensor([1.0, float(k)]))
    ca, cb, cg = make()
    compiled = dagrad.compile(lambda x: step(ca, cb, x))
    for k in range(3):
        compiled(dagrad.tensor([1.0, float(k)]))
    assert cg.tolist() == eg.tolist()
    assert ca.grad.tolist() == ea.grad.tolist() and cb.grad.tolist() == eb.grad.tolist()
