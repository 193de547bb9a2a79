"""dagrad.compile's trace cache (issue #15, item 13): at most cache_size_limit traces per
function, least recently used evicted first, a RecompileWarning on the first eviction, the
buffers of an evicted trace freed, and results after an eviction and re-trace equal to eager
ones. See Note [Trace cache] in dagrad/compile.py."""
import gc
import os
import subprocess
import sys
import textwrap
import warnings
import weakref

import numpy as np
import pytest

import dagrad
import dagrad.nn.functional as F


def _double_sum():
    return dagrad.compile(lambda x: (x * 2).sum(), cache_size_limit=2)


def test_lru_order_and_counts():
    f = _double_sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dagrad.RecompileWarning)
        assert f(dagrad.ones(1)).item() == 2.0   # trace (1,)
        assert f(dagrad.ones(2)).item() == 4.0   # trace (2,)
        assert f(dagrad.ones(1)).item() == 2.0   # hit: (1,) is now the most recent
        assert f(dagrad.ones(3)).item() == 6.0   # trace (3,), evicts (2,), the least recent
    assert [k[0][0] for k in f.traces] == [(1,), (3,)]
    assert f.cache_info() == (1, 3, 1, 2, 2)
    assert f(dagrad.ones(1)).item() == 2.0       # still cached
    assert f.cache_info().hits == 2


def test_first_eviction_warns_once_naming_function_and_limit():
    def my_step(x):
        return (x + 1).sum()

    f = dagrad.compile(my_step, cache_size_limit=2)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        f(dagrad.ones(1))
        f(dagrad.ones(2))
        assert not w  # within the limit: no warning
        f(dagrad.ones(3))
        f(dagrad.ones(4))
    assert [x.category for x in w] == [dagrad.RecompileWarning]
    assert issubclass(dagrad.RecompileWarning, RuntimeWarning)
    msg = str(w[0].message)
    assert "my_step" in msg and "cache_size_limit" in msg and "2" in msg and "(1,)" in msg
    assert w[0].filename == __file__  # points at the caller's line
    assert f.cache_info().evictions == 2


def test_global_limit_default_and_setter():
    assert dagrad.get_compile_cache_size_limit() == 8  # torch.compile's default
    f = dagrad.compile(lambda x: x.sum())
    g = dagrad.compile(lambda x: x.sum(), cache_size_limit=None)
    try:
        dagrad.set_compile_cache_size_limit(3)
        assert f.cache_size_limit == 3 and g.cache_size_limit is None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dagrad.RecompileWarning)
            for n in range(1, 7):
                assert f(dagrad.ones(n)).item() == n
                assert g(dagrad.ones(n)).item() == n
        assert len(f.traces) == 3 and len(g.traces) == 6
        dagrad.set_compile_cache_size_limit(None)
        assert f.cache_size_limit is None
    finally:
        dagrad.set_compile_cache_size_limit(8)


def test_lowering_a_function_limit_evicts_at_once_and_clear_drops_all():
    f = dagrad.compile(lambda x: x.sum(), cache_size_limit=None)
    for n in range(1, 6):
        f(dagrad.ones(n))
    with pytest.warns(dagrad.RecompileWarning):
        f.cache_size_limit = 2
    assert [k[0][0] for k in f.traces] == [(4,), (5,)]
    f.cache_clear()
    assert len(f.traces) == 0 and f(dagrad.ones(2)).item() == 2.0


def test_decorator_forms():
    @dagrad.compile(cache_size_limit=1)
    def a(x):
        return x * 3

    @dagrad.compile()
    def b(x):
        return x * 4

    assert a.cache_size_limit == 1 and b.cache_size_limit == 8
    assert a(dagrad.ones(2)).tolist() == [3.0, 3.0] and b(dagrad.ones(1)).tolist() == [4.0]
    assert a.__name__ == "a"


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-3, ValueError), ("8", TypeError),
                                     (2.0, TypeError), (True, TypeError)])
def test_bad_limits_are_refused(bad, exc):
    with pytest.raises(exc, match="cache_size_limit"):
        dagrad.compile(lambda x: x, cache_size_limit=bad)
    with pytest.raises(exc, match="cache_size_limit"):
        dagrad.set_compile_cache_size_limit(bad)
    assert dagrad.get_compile_cache_size_limit() == 8
    f = dagrad.compile(lambda x: x)
    with pytest.raises(exc, match="cache_size_limit"):
        f.cache_size_limit = bad


def test_compile_of_a_non_callable_is_a_type_error():
    with pytest.raises(TypeError, match="compile"):
        dagrad.compile(3)


def test_evicted_traces_are_freed():
    lin = dagrad.nn.Linear(8, 4)
    opt = dagrad.optim.SGD(lin.parameters(), lr=0.01)

    def step(x):
        opt.zero_grad()
        loss = lin(x).sum()
        loss.backward()
        opt.step()
        return loss

    f = dagrad.compile(step, cache_size_limit=2)
    refs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dagrad.RecompileWarning)
        for n in range(1, 6):
            f(dagrad.ones(n, 8))
            tr = f.traces[next(reversed(f.traces))]
            refs.append([weakref.ref(tr), weakref.ref(tr.program)] + [weakref.ref(t) for t in tr.inputs])
            del tr
    gc.collect()
    alive = [any(r() is not None for r in rs) for rs in refs]
    assert alive == [False, False, False, True, True]


def _eager_and_compiled_training(limit, shapes, seed=0):
    """The same SGD training run eagerly and compiled; returns both parameter lists."""
    g = np.random.default_rng(seed)
    w0, b0 = g.standard_normal((3, 5)), g.standard_normal(3)
    data = [(g.standard_normal((n, 5)), g.integers(0, 3, n)) for n in shapes]
    out = []
    for compiled in (False, True):
        w = dagrad.tensor(w0, requires_grad=True)
        b = dagrad.tensor(b0, requires_grad=True)
        opt = dagrad.optim.SGD([w, b], lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(F.linear(x, w, b), y)
            loss.backward()
            opt.step()
            return loss

        fn = dagrad.compile(step, cache_size_limit=limit) if compiled else step
        losses = [fn(dagrad.tensor(x), dagrad.tensor(y)).item() for x, y in data]
        out.append((losses, w.numpy().copy(), b.numpy().copy(), fn))
    return out


def test_results_after_eviction_and_retrace_equal_eager_bitwise():
    shapes = [4, 5, 4, 5, 6, 6, 4, 4, 7, 5, 5, 4, 8, 8, 6, 4, 6]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dagrad.RecompileWarning)
        (le, we, be, _), (lc, wc, bc, fn) = _eager_and_compiled_training(2, shapes)
    assert fn.cache_info().evictions > 5 and fn.cache_info().hits > 0
    assert le == lc
    np.testing.assert_array_equal(we, wc)
    np.testing.assert_array_equal(be, bc)


_RSS_SCRIPT = textwrap.dedent("""
    import gc, os, sys, warnings
    import dagrad
    warnings.simplefilter("ignore")
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    lin = dagrad.nn.Linear(64, 4096)
    opt = dagrad.optim.SGD(lin.parameters(), lr=0.01)
    @dagrad.compile(cache_size_limit=2)
    def step(x):
        opt.zero_grad(); loss = lin(x).relu().sum(); loss.backward(); opt.step(); return loss
    # 257..296 rows: every activation (about 4.5 MB) falls in the same buffer-pool size class,
    # so the buffers of an evicted trace are what the next trace reuses.
    marks = []
    for i in range(40):
        before = rss_mb()
        step(dagrad.ones(257 + i, 64)).item()
        if i == 0:
            one_trace = rss_mb() - before
        if i in (7, 39):
            gc.collect()
            marks.append(rss_mb())
    print(one_trace, marks[1] - marks[0], len(step.traces))
""")


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's quarantine keeps freed memory mapped")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memory_held_is_bounded_by_the_limit():
    # Unbounded, the 32 traces after the 8th kept about 630 MB; with a limit of 2 the process
    # must not grow by more than a few traces' worth.
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    one_trace, growth, kept = out.stdout.split()
    assert int(kept) == 2
    assert float(one_trace) > 10.0, out.stdout  # one trace really holds buffers (~20 MB)
    assert float(growth) < 2 * float(one_trace), out.stdout
