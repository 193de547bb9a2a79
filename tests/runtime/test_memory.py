"""Memory you can see and give back: memory_stats, empty_cache, the pool's limit
(Note [The pool keeps no more than the program uses]), no reference cycles."""
import gc
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import dagrad

# Under AddressSanitizer (.ci/sanitize preloads it) RSS measures ASan's quarantine and shadow
# memory, not dagrad's: the RSS figures are checked in the ordinary build.
rss_test = pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                              reason="RSS under AddressSanitizer measures its quarantine, not dagrad")

RSS = textwrap.dedent("""
    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
""")


def _run(code):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    r = subprocess.run([sys.executable, "-c", RSS + textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_memory_stats_track_live_cached_and_peak():
    dagrad.empty_cache()
    dagrad.reset_peak_memory_stats()
    s0 = dagrad.memory_stats()
    x = dagrad.ones(1 << 20)  # 4 MiB
    y = (x * 2.0).numpy()
    s1 = dagrad.memory_stats()
    assert s1["live_bytes"] - s0["live_bytes"] >= 4 << 20
    assert s1["peak_bytes"] >= s1["live_bytes"] and s1["allocations"] > s0["allocations"]
    del x, y
    s2 = dagrad.memory_stats()
    assert s2["live_bytes"] <= s1["live_bytes"] - (4 << 20) and s2["frees"] > s1["frees"]
    dagrad.empty_cache()
    assert dagrad.memory_stats()["cached_bytes"] == 0
    dagrad.reset_peak_memory_stats()
    assert dagrad.memory_stats()["peak_bytes"] == dagrad.memory_stats()["live_bytes"]


@rss_test
def test_rss_comes_back_after_a_large_chain_without_empty_cache():
    out = _run("""
        import gc, dagrad
        start = rss_mib()
        x = dagrad.randn(1_000_000, requires_grad=True)
        h = x
        for i in range(40):
            h = (h * 1.0001).tanh() if i % 2 else h + 0.5
        h.sum().backward()
        del x, h
        gc.collect()
        print(rss_mib() - start)
    """)
    assert float(out) < 64, out


@rss_test
def test_training_steps_do_not_grow_rss():
    out = _run("""
        import numpy as np, dagrad
        from dagrad import nn
        rng = np.random.default_rng(0)
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
        opt = dagrad.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = dagrad.tensor(rng.standard_normal((64, 32)).astype(np.float32))
        y = dagrad.tensor(rng.integers(0, 10, 64))
        def step():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        for _ in range(200):
            step()
        start = rss_mib()
        for _ in range(3000):
            step()
        print(rss_mib() - start)
    """)
    assert float(out) < 20, out


def test_an_intermediate_dies_after_backward_without_gc():
    gc.disable()
    try:
        x = dagrad.tensor(np.ones(4, np.float32), requires_grad=True)
        y = (x * 2.0).tanh()
        ref = weakref.ref(y)
        y.sum().backward()
        del y
        assert ref() is None
    finally:
        gc.enable()
