"""dagrad.distributed: jobs of 2 and 3 ranks (3 oversubscribed on a 2-core machine, for uneven
shards) launched with mpiexec, checked against a single-process run on the global batch.

Each job runs tests/dist_worker.py under a timeout; on a timeout the whole process group is
killed and the test fails, so a hang never blocks the suite. Without mpi4py or mpiexec the MPI
tests skip and say why; the sampler's tests against PyTorch and the errors need neither.

Tolerances: the averaged gradient differs from the single-process one only by the order of
float64 additions (each rank's mean, then the mean over ranks, against one mean over the
global batch), so parameters after training agree to 1e-12 relative; across ranks they must
be the same bits.
"""
import math
import sys

import numpy as np
import pytest

import dagrad
import dagrad.distributed as dist
import dist_worker  # the worker's data and model, for the single-process reference (tests/ is on pythonpath)
from mpi_helpers import mpiexec_run, needs_mpi


def launch(n, *args, tmp_path, expect_ok=True):
    return mpiexec_run(n, dist_worker.__file__, *args, tmp_path, expect_ok=expect_ok)


def load(tmp_path, scenario, n):
    return [dict(np.load(tmp_path / f"{scenario}-rank{r}.npz")) for r in range(n)]


def params(res):
    return [res[f"p{i}"] for i in range(4)]


# ----------------------------------------------------------------------------- the reference

def reference_train(world, optim, epochs=2, batch=3, accum=1):
    """The worker's training in one process: every step on the union of the ranks' batches,
    starting from rank 0's initialisation (what broadcast_parameters gives every rank)."""
    X, Y = dist_worker.make_data()
    model = dist_worker.make_model(seed=100)
    opt = dist_worker.make_optimizer(optim, model.parameters())
    for epoch in range(epochs):
        shards = []
        for r in range(world):
            s = dist.DistributedSampler(range(len(X)), num_replicas=world, rank=r, shuffle=True, seed=7)
            s.set_epoch(epoch)
            idx = list(s)
            shards.append([idx[k:k + batch] for k in range(0, len(idx), batch)])
        steps = len(shards[0])
        for k in range(0, steps, accum):
            opt.zero_grad()
            for j in range(k, min(k + accum, steps)):
                glob = [i for r in range(world) for i in shards[r][j]]
                dist_worker.loss_fn(model, dagrad.tensor(X[glob]), dagrad.tensor(Y[glob])).backward()
            opt.step()
    return [p.numpy() for p in model.parameters()]


def assert_close_rel(got, want, rtol=1e-12):
    for g, w in zip(got, want):
        err = np.max(np.abs(g - w)) / np.max(np.abs(w))
        assert err <= rtol, f"relative error {err:.3g} > {rtol}"


# ----------------------------------------------------------------------------- training

@needs_mpi
@pytest.mark.parametrize("world,optim,accum", [(1, "sgd", 1), (2, "sgd", 1), (3, "sgd", 1), (2, "adam", 1),
                                               (3, "adam", 1), (2, "sgd", 2), (3, "adam", 2)])
def test_ddp_matches_one_process_on_the_global_batch(tmp_path, world, optim, accum):
    launch(world, "train", "--optim", optim, "--accum", str(accum), tmp_path=tmp_path)
    res = load(tmp_path, "train", world)
    # Every rank holds the same bits, from the start (broadcast) to the end.
    for r in range(1, world):
        for a, b in zip(params(res[0]), params(res[r])):
            assert np.array_equal(a, b), f"rank {r} differs from rank 0"
        for i in range(4):
            assert np.array_equal(res[0][f"init_p{i}"], res[r][f"init_p{i}"])
    # broadcast_parameters unified different initialisations: rank 0's is the one everywhere.
    rank0_init = [p.numpy() for p in dist_worker.make_model(seed=100).parameters()]
    other_init = [p.numpy() for p in dist_worker.make_model(seed=101).parameters()]
    assert not all(np.array_equal(a, b) for a, b in zip(rank0_init, other_init))
    for i in range(4):
        assert np.array_equal(res[0][f"init_p{i}"], rank0_init[i])
    assert_close_rel(params(res[0]), reference_train(world, optim, accum=accum))
    # One reduction per bucket per synchronised step (with --accum 2 half the backwards are local).
    steps = 2 * math.ceil(math.ceil(dist_worker.N_SAMPLES / world) / 3 / accum)
    assert int(res[0]["comm_calls"]) == steps * 4  # bucket_mb=1e-4: one bucket per parameter


@needs_mpi
@pytest.mark.parametrize("world", [2, 3])
def test_sampler_shards_cover_the_dataset_once_per_epoch(tmp_path, world):
    launch(world, "train", "--epochs", "2", tmp_path=tmp_path)
    res = load(tmp_path, "train", world)
    n = dist_worker.N_SAMPLES
    per_rank = math.ceil(n / world)
    orders = []
    for e in range(2):
        shards = [res[r][f"seen{e}"] for r in range(world)]
        assert all(len(s) == per_rank for s in shards)
        padded = np.empty(per_rank * world, dtype=np.int64)
        for r, s in enumerate(shards):
            padded[r::world] = s
        # The first n indices are a permutation of the dataset; the rest repeat its beginning.
        assert sorted(padded[:n].tolist()) == list(range(n))
        assert padded[n:].tolist() == padded[:len(padded) - n].tolist()
        orders.append(padded[:n].tolist())
    assert orders[0] != orders[1]  # set_epoch reshuffles


@needs_mpi
@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_compiled_ddp_step_matches_eager(tmp_path, optim):
    launch(2, "compiled", "--optim", optim, tmp_path=tmp_path)
    res = load(tmp_path, "compiled", 2)
    for r in range(2):
        for i in range(4):
            assert np.array_equal(res[r][f"compiled_p{i}"], res[r][f"eager_p{i}"])
            assert np.array_equal(res[r][f"compiled_p{i}"], res[0][f"compiled_p{i}"])
        assert np.array_equal(res[r]["compiled_losses"], res[r]["eager_losses"])
        # The replays reduced the buckets too: 4 steps x 4 buckets, as eager.
        assert int(res[r]["compiled_comm_calls"]) == int(res[r]["eager_comm_calls"]) == 16


@needs_mpi
def test_collectives_and_rank0_helpers(tmp_path):
    world = 3
    launch(world, "collectives", tmp_path=tmp_path)
    res = load(tmp_path, "collectives", world)
    vs = np.stack([np.arange(4.0) * (r + 1) + r / 3 for r in range(world)])
    for r in range(world):
        got = res[r]
        assert np.allclose(got["sum"], vs.sum(0), rtol=1e-15, atol=0)
        assert np.allclose(got["mean"], vs.sum(0) / world, rtol=1e-15, atol=0)
        assert np.array_equal(got["max"], vs.max(0))
        assert np.array_equal(got["min"], vs.min(0))
        assert got["sum_int"].tolist() == [sum(range(world)), 10 * sum(range(world))]
        assert np.array_equal(got["gather"], vs.astype(np.float32))
        assert np.array_equal(got["bcast"], vs[0])
        assert np.array_equal(got["ckpt"], vs[0])
        for fn in ("all_gather", "broadcast"):
            assert f"{fn}(): every rank must pass a tensor of the same shape" in str(got[f"{fn}_error"])
        assert "has been finalized" in str(got["finalized_error"])
        for op in ("sum", "mean", "max", "min"):  # the same bits on every rank
            assert np.array_equal(got[op], res[0][op])
    assert res[0]["metrics"].tolist() == [0.5 + 1.0, 1.0]  # acc mean of 0.5, 1.5, 2.5; loss mean of 0, 1, 2


@needs_mpi
def test_each_bucket_is_reduced_as_soon_as_its_gradients_are_final(tmp_path):
    # In a serial run (the order is the schedule's, not a race) each bucket's node comes right
    # after its own gradients, before the backward of the earlier layers: the first reduction
    # precedes the last weight gradient's matmul, and the buckets interleave with backward.
    launch(2, "order", tmp_path=tmp_path)
    for res in load(tmp_path, "order", 2):
        ops = res["ops"].tolist()
        buckets = [i for i, op in enumerate(ops) if op == "custom"]
        matmuls = [i for i, op in enumerate(ops) if op == "matmul"]
        assert len(buckets) == int(res["buckets"]) >= 3
        assert buckets[0] < matmuls[-1] and buckets[1] < matmuls[-1], ops


@needs_mpi
def test_backward_goes_on_while_a_bucket_waits_in_mpi(tmp_path):
    # Rank 1 starts backward 0.5 s late, so rank 0's first bucket (the last layer) waits inside
    # its reduction that long; with 2 threads, rank 0's other worker computes the earlier layers'
    # gradients meanwhile (tens of ms of matmuls): nodes that start and end inside the wait, on
    # another thread. The margin is the 0.5 s sleep, not a speed.
    launch(2, "overlap", tmp_path=tmp_path)
    d = load(tmp_path, "overlap", 2)[0]
    ops, start, end, thread = d["ops"].tolist(), d["start"], d["end"], d["thread"]
    bucket = min((i for i, op in enumerate(ops) if op == "custom"), key=lambda i: start[i])
    during = [ops[i] for i in range(len(ops)) if ops[i] == "matmul" and thread[i] != thread[bucket]
              and start[bucket] < start[i] and end[i] < end[bucket]]
    assert len(during) >= 2, (ops, during)


@needs_mpi
def test_a_rank_that_raises_ends_the_whole_job(tmp_path):
    code, out = launch(2, "fail", tmp_path=tmp_path, expect_ok=False)
    assert code != 0
    assert "rank 1 fails on purpose" in out


# ----------------------------------------------------------------------------- without MPI

def test_sampler_matches_pytorch_index_lists():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler
    for n in (0, 1, 2, 5, 7, 10, 23):
        for world in (1, 2, 3, 4, 8):
            for drop_last in (False, True):
                for r in range(world):
                    ours = dist.DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False,
                                                   drop_last=drop_last)
                    theirs = TorchSampler(range(n), num_replicas=world, rank=r, shuffle=False, drop_last=drop_last)
                    assert list(ours) == list(theirs), (n, world, r, drop_last)
                    assert len(ours) == len(theirs)
                    # Shuffled: PyTorch's rule applied to our permutation (its own comes from torch's RNG).
                    s = dist.DistributedSampler(range(n), num_replicas=world, rank=r, seed=3, drop_last=drop_last)
                    s.set_epoch(2)
                    perm = np.random.default_rng(5).permutation(n).tolist()
                    theirs.shuffle, theirs.epoch = False, 0
                    expect = [perm[i] for i in theirs]
                    assert list(s) == expect, (n, world, r, drop_last)
    del torch


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="invalid rank 2"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        dist.DistributedSampler(range(4), num_replicas=0, rank=0)
    with pytest.raises(TypeError, match="seed"):
        dist.DistributedSampler(range(4), num_replicas=1, rank=0, seed="a")
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="init"):
            dist.DistributedSampler(range(4))


def test_dataloader_reads_a_sampler_in_its_order():
    X = np.arange(10.0).reshape(5, 2)
    ds = dagrad.data.TensorDataset(X)
    loader = dagrad.data.DataLoader(ds, batch_size=2, sampler=[4, 0, 3])
    assert len(loader) == 2
    assert [b[0].numpy()[:, 0].tolist() for b in loader] == [[8.0, 0.0], [6.0]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        dagrad.data.DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(TypeError, match="sampler"):
        dagrad.data.DataLoader(ds, sampler=3)


def test_without_init_the_calls_say_to_init():
    if dist.is_initialized():
        pytest.skip("the process group is initialized in this process")
    for call in (dist.rank, dist.world_size, dist.barrier, lambda: dist.all_reduce(dagrad.ones(2)),
                 lambda: dist.DistributedDataParallel(dagrad.nn.Linear(2, 2))):
        with pytest.raises(RuntimeError, match=r"call dagrad.distributed.init\(\) first"):
            call()
    assert dist.is_main_process()


def test_without_mpi4py_init_says_what_to_install(monkeypatch):
    from dagrad.distributed import _group
    monkeypatch.setattr(_group, "_MPI", None)
    monkeypatch.setattr(_group, "_comm", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'dagrad\[distributed\]'"):
        dist.init()
    assert not dist.is_available()


def test_ddp_argument_errors():
    with pytest.raises(TypeError, match="module"):
        dist.DistributedDataParallel("model")
    with pytest.raises(ValueError, match="bucket_mb"):
        dist.DistributedDataParallel(dagrad.nn.Linear(2, 2), bucket_mb=0)
    with pytest.raises(TypeError, match="bucket_mb"):
        dist.DistributedDataParallel(dagrad.nn.Linear(2, 2), bucket_mb="a")
    with pytest.raises(ValueError, match="op"):
        dist.all_reduce(dagrad.ones(2), op="prod")
    with pytest.raises(TypeError, match="bool"):
        dist.all_reduce(dagrad.ones(2) > 0, op="sum")
    with pytest.raises(TypeError, match="floating"):
        dist.all_reduce(dagrad.tensor([1, 2]), op="mean")
    with pytest.raises(TypeError, match="tensor"):
        dist.all_reduce([1.0, 2.0])
