"""Note [Fork]: a child forked after parallel work runs its graphs (serially), never hangs."""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")

PARENT_THEN_CHILDREN = textwrap.dedent("""
    import multiprocessing as mp, os, sys
    import numpy as np
    import dagrad

    def step(seed):
        rng = np.random.default_rng(seed)
        x = dagrad.tensor(rng.standard_normal((128, 128)).astype(np.float32), requires_grad=True)
        loss = sum(((x @ x).tanh() * k).sum() for k in (1.0, 2.0, 3.0, 4.0))
        loss.backward()
        return loss.item(), float(x.grad.numpy().sum()), dagrad.get_num_threads()

    def batches(i):  # a DataLoader-style worker: builds a batch with dagrad ops
        rng = np.random.default_rng(i)
        b = dagrad.tensor(rng.standard_normal((32, 8)).astype(np.float32))
        return ((b - b.mean(dim=0)) / (b.std(dim=0) + 1e-5)).numpy()

    dagrad.set_num_threads(2)
    parent = [step(s) for s in range(3)]
    assert dagrad.last_run_stats()["parallel"], dagrad.last_run_stats()
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        children = pool.map(step, range(3))
        loaded = list(pool.imap(batches, range(6)))
    assert [c[:2] for c in children] == [p[:2] for p in parent], (children, parent)
    assert all(c[2] == 1 for c in children)  # serial in the child
    ref = [batches(i) for i in range(6)]
    assert all(np.array_equal(a, b) for a, b in zip(loaded, ref))
    # a bare os.fork, with set_num_threads(4) asked in the child
    pid = os.fork()
    if pid == 0:
        dagrad.set_num_threads(4)
        ok = step(0)[:2] == parent[0][:2] and dagrad.get_num_threads() == 1
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, status
    # the parent still runs in parallel
    step(1)
    assert dagrad.last_run_stats()["threads_used"] >= 1 and dagrad.get_num_threads() == 2
    print("ok")
""")


def test_forked_children_after_a_parallel_backward_work():
    r = subprocess.run([sys.executable, "-c", PARENT_THEN_CHILDREN], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("ok")
