"""The parallel scheduler: thread-count-independent results, real parallelism, errors."""
import os

import numpy as np
import pytest

import dagrad
from torch_helpers import make_input, to_np

THREAD_COUNTS = [1, 2, 8]


def _mlp_params(dtype, seed=0):
    g = np.random.default_rng(seed)
    params = {"x": g.standard_normal((64, 96))}
    for i in range(4):  # independent branches that share the input x
        params[f"w1_{i}"] = g.standard_normal((96, 128)) / np.sqrt(96)
        params[f"b1_{i}"] = g.standard_normal((128,)) * 0.1
        params[f"w2_{i}"] = g.standard_normal((128, 32)) / np.sqrt(128)
    params["big"] = g.standard_normal((300, 1000))  # a large reduction
    return {k: v.astype(dtype) for k, v in params.items()}


def _mlp_grads(params, threads):
    """Loss and every gradient of an MLP-like graph with several branches, as raw arrays."""
    dagrad.set_num_threads(threads)
    assert dagrad.get_num_threads() == threads
    t = {k: dagrad.tensor(v, requires_grad=True) for k, v in params.items()}
    x = t["x"]
    outs = []
    for i in range(4):
        h = (x @ t[f"w1_{i}"] + t[f"b1_{i}"]).tanh()
        if i % 2:
            h = h.relu() + h.sigmoid() * 0.5
        outs.append((h @ t[f"w2_{i}"]).exp().mean(dim=0))
    loss = outs[0].sum()
    for o in outs[1:]:
        loss = loss + (o * o).sum()
    loss = loss + (t["big"].tanh() ** 2).mean() + t["big"].sum(dim=0).sigmoid().sum()
    loss.backward()
    result = {"loss": to_np(loss)}
    result.update({k: to_np(v.grad) for k, v in t.items()})
    return result


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_gradients_bit_identical_across_thread_counts(dtype, restore_threads):
    params = _mlp_params(dtype)
    runs = {n: _mlp_grads(params, n) for n in THREAD_COUNTS}
    ref = runs[THREAD_COUNTS[0]]
    for name, value in ref.items():
        assert value.dtype == dtype and np.all(np.isfinite(value)), name
    for n in THREAD_COUNTS[1:]:
        for name, value in ref.items():
            got = runs[n][name]
            assert got.shape == value.shape
            assert got.tobytes() == value.tobytes(), f"{name} differs at {n} threads vs 1"


def test_gradients_repeatable_at_same_thread_count(restore_threads):
    params = _mlp_params(np.float64, seed=1)
    a, b = _mlp_grads(params, 8), _mlp_grads(params, 8)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name


def test_threaded_gradients_are_correct(restore_threads):
    # Bitwise agreement could hide a shared mistake: check one branch against numpy too.
    g = np.random.default_rng(2)
    xa, wa = g.standard_normal((64, 96)), g.standard_normal((96, 128)) / 10
    for n in THREAD_COUNTS:
        dagrad.set_num_threads(n)
        x, w = dagrad.tensor(xa, requires_grad=True), dagrad.tensor(wa, requires_grad=True)
        y = (x @ w).tanh()
        (y.sum() + x.exp().sum()).backward()
        dy = 1 - np.tanh(xa @ wa) ** 2
        np.testing.assert_allclose(to_np(x.grad), dy @ wa.T + np.exp(xa), rtol=1e-10)
        np.testing.assert_allclose(to_np(w.grad), xa.T @ dy, rtol=1e-10, atol=1e-12)


def _wide_graph(branches=64, size=20_000, depth=12, seed=3):
    g = np.random.default_rng(seed)
    inputs = [g.uniform(-1, 1, size) for _ in range(branches)]
    outs = []
    for a in inputs:
        t = dagrad.tensor(a)
        for _ in range(depth // 2):
            t = (t * 0.5).tanh().exp()
        outs.append(t)
    return inputs, outs


def _wide_reference(a, depth=12):
    for _ in range(depth // 2):
        a = np.exp(np.tanh(a * 0.5))
    return a


def test_wide_graph_runs_on_several_threads(restore_threads):
    dagrad.set_num_threads(4)
    seen = []
    for attempt in range(5):
        inputs, outs = _wide_graph(seed=attempt)
        with dagrad.profiler.profile() as prof:
            dagrad.realize(*outs)
        stats = dagrad._core.last_run_stats()
        threads = prof.threads()
        seen.append((len(threads), stats["threads_used"]))
        # Every node ran once (a node fused into its consumer's group runs inside the group's
        # event, Note [Elementwise fusion]) and the values are right whatever the interleaving.
        assert len(prof.events) + stats["fused"] == stats["nodes"] >= 64 * 18
        for a, t in zip(inputs[:4], outs[:4]):
            np.testing.assert_allclose(to_np(t), _wide_reference(a), rtol=1e-12)
        if len(threads) > 1 and stats["threads_used"] > 1:
            break
    else:
        pytest.fail(f"a 64-branch graph never ran on more than one thread at 4 threads: {seen}")
    assert threads <= set(range(4))


def test_wide_backward_runs_on_several_threads(restore_threads):
    dagrad.set_num_threads(4)
    seen = []
    for attempt in range(5):
        g = np.random.default_rng(attempt)
        xs = [dagrad.tensor(g.uniform(-1, 1, 20_000), requires_grad=True) for _ in range(32)]
        loss = None
        for x in xs:
            t = x
            for _ in range(4):
                t = (t * 0.5).tanh().exp()
            loss = t.sum() if loss is None else loss + t.sum()
        with dagrad.profiler.profile() as prof:
            loss.backward()
        seen.append(len(prof.threads()))
        assert all(x.grad is not None for x in xs)
        if len(prof.threads()) > 1:
            break
    else:
        pytest.fail(f"a 32-branch backward never ran on more than one thread: {seen}")


def test_chrome_trace_export(tmp_path, restore_threads):
    import json
    dagrad.set_num_threads(2)
    with dagrad.profiler.profile() as prof:
        doubled = dagrad.ones(100) * 2  # held here, so not fused into the add
        dagrad.realize(doubled + 1)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())["traceEvents"]
    slices = [e for e in trace if e["ph"] == "X"]  # besides thread names, flows and counters
    assert sorted(e["name"] for e in slices) == sorted(e["op"] for e in prof.events)
    assert {"mul", "add"} <= {e["name"] for e in slices}
    assert all(e["dur"] >= 0 for e in slices)


HUGE = 2 ** 25  # 2**50 elements: cannot be allocated, but its shape is representable


@pytest.mark.parametrize("threads", [1, 4])
def test_exception_in_parallel_run_is_raised_and_next_run_works(threads, restore_threads):
    dagrad.set_num_threads(threads)
    inputs, outs = _wide_graph(branches=16, size=20_000, depth=6)
    bad = dagrad.ones(1).expand(HUGE, HUGE).exp()  # shape inference is fine; allocation is not
    assert bad.shape == (HUGE, HUGE)
    with pytest.raises(MemoryError):
        dagrad.realize(*outs[:8], bad, *outs[8:])
    # The library is usable: a fresh graph runs.
    a = make_input((50, 40), seed=4)
    x = dagrad.tensor(a, requires_grad=True)
    y = (x.tanh() @ x.T).sum()
    y.backward()
    assert y.item() == pytest.approx(np.sum(np.tanh(a) @ a.T), rel=1e-12)
    assert x.grad.shape == (50, 40)
    # The branches that did not fail can still be realized, with the right values.
    dagrad.realize(*outs)
    for a, t in zip(inputs, outs):
        np.testing.assert_allclose(to_np(t), _wide_reference(a, depth=6), rtol=1e-12)
    # And the failing node fails again, the same way, rather than crashing.
    with pytest.raises(MemoryError):
        dagrad.realize(bad)


def test_exception_in_backward_run(restore_threads):
    dagrad.set_num_threads(4)
    x = dagrad.tensor(np.ones(3), requires_grad=True)
    bad = dagrad.ones(1, dtype=dagrad.float64).expand(HUGE, HUGE)
    # The gradient of x needs bad's value (d/ds of (bad * s).sum() is bad.sum()), so the
    # backward run must compute it and fail; a forward-only term nobody needs may be skipped.
    with pytest.raises(MemoryError):
        (x.exp().sum() + (bad * x.sum()).sum()).backward()
    x2 = dagrad.tensor(np.ones(3), requires_grad=True)
    y = (x2 * 3.0).sum()
    y.backward()
    np.testing.assert_array_equal(to_np(x2.grad), np.full(3, 3.0))
    assert y.item() == 9.0


def test_set_num_threads_rejects_nonsense(restore_threads):
    with pytest.raises((ValueError, RuntimeError)):
        dagrad.set_num_threads(0)
    with pytest.raises((ValueError, RuntimeError)):
        dagrad.set_num_threads(-3)
    assert dagrad.get_num_threads() >= 1
    assert (dagrad.ones(3) * 2).sum().item() == 6.0


def test_concurrent_python_threads(restore_threads):
    # Runs release the GIL; graphs built and run from several Python threads at once must
    # each get their own right answer.
    import threading
    dagrad.set_num_threads(4)
    errors = []

    def work(seed):
        try:
            g = np.random.default_rng(seed)
            a, b = g.standard_normal((48, 48)), g.standard_normal((48, 48))
            for _ in range(15):
                x, w = dagrad.tensor(a, requires_grad=True), dagrad.tensor(b, requires_grad=True)
                y = ((x @ w).tanh() * x).sum()
                y.backward()
                t = np.tanh(a @ b)
                np.testing.assert_allclose(to_np(x.grad), ((1 - t ** 2) * a) @ b.T + t, rtol=1e-10)
                np.testing.assert_allclose(y.item(), np.sum(t * a), rtol=1e-10)
        except Exception as e:  # reported on the main thread below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_grad_mode_is_thread_local():
    import threading
    seen = []
    with dagrad.no_grad():
        t = threading.Thread(target=lambda: seen.append(dagrad.is_grad_enabled()))
        t.start()
        t.join()
        assert not dagrad.is_grad_enabled()
    assert seen == [True]


def test_import_starts_no_blas_threads():
    # Note [BLAS threads]: dagrad's OpenBLAS is loaded single-threaded, so importing dagrad
    # adds no (spinning) pool thread beside numpy's own. Counted in a fresh process, with
    # OPENBLAS_NUM_THREADS unset so that a pool would start if the library were loaded plainly.
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "def n(): return len(os.listdir('/proc/self/task'))\n"
        "import numpy; before = n()\n"
        "import dagrad; x = dagrad.ones(64, 64); (x @ x).numpy(); after = n()\n"
        "print(before, after)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["DAGRAD_NUM_THREADS"] = "1"
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs Linux /proc")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert after == before, f"importing dagrad and running a matmul added {after - before} threads"
