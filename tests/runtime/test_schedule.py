"""dagrad.set_schedule / schedule, fusion that keeps parallel branches, last_run_stats, the
profiler's events and the backward graph builder the views read."""
import numpy as np
import pytest

import dagrad


@pytest.fixture
def two_threads():
    prev = dagrad.get_num_threads()
    dagrad.set_num_threads(2)
    yield
    dagrad.set_num_threads(prev)


def test_schedule_modes_and_context_manager(two_threads):
    assert dagrad.get_schedule() == "auto"
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    b = dagrad.tensor(1.0, requires_grad=True)
    z = x * w + b
    z.numpy()
    with dagrad.schedule("parallel"):
        assert dagrad.get_schedule() == "parallel"
        with dagrad.profiler.profile() as prof:
            z.backward()
        stats = dagrad.last_run_stats()
    assert dagrad.get_schedule() == "auto"
    # The two backward multiplies are independent: the run goes to the pool (which thread
    # runs which depends on the machine giving the second core; the schedule does not).
    assert stats["parallel"] is True and stats["nodes"] == 2
    assert sorted(e["op"] for e in prof.events) == ["mul", "mul"]
    assert all(e["pass"] == "backward" for e in prof.events)
    assert (x.grad.item(), w.grad.item(), b.grad.item()) == (3.0, 2.0, 1.0)

    x.grad = w.grad = b.grad = None
    z = x * w + b
    with dagrad.schedule("serial"):
        z.backward()
        assert dagrad.last_run_stats()["parallel"] is False
    assert (x.grad.item(), w.grad.item(), b.grad.item()) == (3.0, 2.0, 1.0)
    dagrad.set_schedule("auto")
    with pytest.raises(ValueError, match="set_schedule"):
        dagrad.set_schedule("fast")


def test_results_are_the_same_bits_under_every_schedule(two_threads):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    out = {}
    for mode in ("auto", "parallel", "serial"):
        with dagrad.schedule(mode):
            x = dagrad.tensor(a, requires_grad=True)
            w = dagrad.tensor(b, requires_grad=True)
            loss = sum(((x @ w).tanh() * k).sum() for k in (1.0, 2.0, 3.0))
            loss.backward()
            out[mode] = (loss.item(), x.grad.numpy().copy(), w.grad.numpy().copy())
    for mode in ("parallel", "serial"):
        assert out[mode][0] == out["auto"][0]
        np.testing.assert_array_equal(out[mode][1], out["auto"][1])
        np.testing.assert_array_equal(out[mode][2], out["auto"][2])


def test_fusion_keeps_parallel_branches(two_threads):
    # Note [Fusion keeps parallel branches]: the add must not pull both branches' tails into
    # its group when the run goes to the pool; on one thread it still fuses them.
    rng = np.random.default_rng(1)
    A, B, C, D = (dagrad.tensor(rng.standard_normal((384, 384)).astype(np.float32)) for _ in range(4))
    with dagrad.no_grad():
        with dagrad.profiler.profile() as prof:
            r2 = ((A @ B).tanh() + (C @ D).sigmoid()).numpy()
        s2 = dagrad.last_run_stats()
        dagrad.set_num_threads(1)
        r1 = ((A @ B).tanh() + (C @ D).sigmoid()).numpy()
        s1 = dagrad.last_run_stats()
    assert s2["parallel"] is True and s2["fused"] == 0
    assert sorted(e["op"] for e in prof.events) == ["add", "matmul", "matmul", "sigmoid", "tanh"]
    assert s1["parallel"] is False and s1["fused"] == 2
    np.testing.assert_array_equal(r1, r2)  # the same bits, fused or not


def test_profiler_events_carry_pass_shape_inputs_and_fused_members():
    prev = dagrad.get_num_threads()
    dagrad.set_num_threads(1)
    try:
        a = dagrad.tensor(np.linspace(-1, 1, 4096).astype(np.float32))
        with dagrad.no_grad(), dagrad.profiler.profile() as prof:
            (dagrad.relu(a * 2.0 + 1.0)).numpy()
    finally:
        dagrad.set_num_threads(prev)
    assert len(prof.events) == 1  # one fused group: relu(add(mul))
    e = prof.events[0]
    assert e["op"] == "relu" and e["pass"] == "forward" and e["shape"] == (4096,) and e["dtype"] == "float32"
    assert [m["op"] for m in e["fused"]] == ["mul", "add"]
    assert e["ready"] == -1 and e["end_ns"] >= e["start_ns"] and isinstance(e["run"], int)
    assert isinstance(e["inputs"], list)


def test_peak_bytes_counts_the_runs_buffers():
    with dagrad.no_grad():
        x = dagrad.ones(1 << 16)
        (x * 2.0 + 1.0).exp().numpy()
    assert dagrad.last_run_stats()["peak_bytes"] >= (1 << 16) * 4


def test_gradient_graph_builds_without_running_or_touching_grad():
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    b = dagrad.tensor(1.0, requires_grad=True)
    z = x * w + b
    pairs = dagrad._core._gradient_graph([z])
    assert {leaf._id for leaf, _ in pairs} == {x._id, w._id, b._id}
    grads = {leaf._id: g for leaf, g in pairs}
    assert grads[x._id]._op == "mul" and grads[x._id]._is_backward and not grads[x._id]._realized
    assert x.grad is None and not z._is_backward
    assert grads[x._id].item() == 3.0 and grads[w._id].item() == 2.0
    z.backward()  # the graph is intact
    assert x.grad.item() == 3.0


def test_auto_schedule_gives_a_chain_of_wide_kernels_the_threads_and_branches_the_pool(two_threads):
    """Note [Serial or parallel run]: a LeNet step (wide kernels, a little fan-out in backward)
    runs on the calling thread, where its kernels split over both threads; independent matmul
    branches go to the pool. Same bits either way."""
    import dagrad.nn.functional as F
    from dagrad import nn
    rng = np.random.default_rng(0)
    dagrad.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10))
    x = dagrad.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
    y = dagrad.tensor(rng.integers(0, 10, 64))

    def step():
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        return [p.grad.numpy().copy() for p in model.parameters()], dagrad._core.last_run_stats()

    grads, stats = step()
    assert stats["parallel"] is False
    with dagrad.schedule("parallel"):
        forced, stats = step()
    assert stats["parallel"] is True
    for a, b in zip(grads, forced):
        assert a.tobytes() == b.tobytes()

    xs = [dagrad.tensor(rng.standard_normal((256, 256)).astype(np.float32)) for _ in range(8)]
    ws = [[dagrad.tensor(rng.standard_normal((256, 256)).astype(np.float32) / 16, requires_grad=True)
           for _ in range(10)] for _ in range(8)]
    total = None
    for h, wb in zip(xs, ws):
        for w in wb:
            h = (h @ w).tanh()
        total = h.sum() if total is None else total + h.sum()
    total.backward()
    assert dagrad._core.last_run_stats()["parallel"] is True
