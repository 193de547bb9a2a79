"""One rank of the jobs tests/api/test_distributed.py launches with mpiexec.

    mpiexec -n N python tests/dist_worker.py SCENARIO OUT_DIR [options]

Each rank writes what the test checks to OUT_DIR/<scenario>-rank<r>.npz (or raises). The data
and model are small and defined here once, so the test can rebuild the same run in one process
(the single-process reference on the global batch).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

import dagrad
import dagrad.distributed as dist

N_SAMPLES, N_IN, N_HIDDEN, N_OUT = 23, 5, 6, 2  # 23: uneven shards for 2 and 3 ranks


def make_data():
    rng = np.random.default_rng(1234)
    return rng.normal(size=(N_SAMPLES, N_IN)), rng.normal(size=(N_SAMPLES, N_OUT))


def make_model(seed):
    dagrad.manual_seed(seed)
    return dagrad.nn.Sequential(dagrad.nn.Linear(N_IN, N_HIDDEN), dagrad.nn.Tanh(),
                                dagrad.nn.Linear(N_HIDDEN, N_OUT)).double()


def make_optimizer(name, params):
    if name == "sgd":
        return dagrad.optim.SGD(params, lr=0.05, momentum=0.9)
    return dagrad.optim.Adam(params, lr=0.01)


def loss_fn(model, x, y):
    return ((model(x) - y) ** 2).mean()


def params_of(model):
    return {f"p{i}": p.numpy().copy() for i, p in enumerate(model.parameters())}


def train(args, out):
    """DDP training from a different initialisation on each rank; saves parameters, the
    initial (broadcast) parameters and the sampler's indices."""
    r = dist.rank()
    X, Y = make_data()
    model = make_model(seed=100 + r)  # different on every rank: broadcast_parameters unifies them
    ddp = dist.DistributedDataParallel(model, bucket_mb=args.bucket_mb)
    initial = params_of(ddp)
    opt = make_optimizer(args.optim, ddp.parameters())
    ds = dagrad.data.TensorDataset(X, Y)
    sampler = dist.DistributedSampler(ds, shuffle=True, seed=7)
    loader = dagrad.data.DataLoader(ds, batch_size=args.batch, sampler=sampler)
    seen = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        seen.append(np.array(list(sampler)))
        batches = list(loader)
        for k in range(0, len(batches), args.accum):
            group = batches[k:k + args.accum]
            opt.zero_grad()
            for j, (x, y) in enumerate(group):
                if j < len(group) - 1:
                    with ddp.no_sync():
                        loss_fn(ddp, x, y).backward()
                else:
                    loss_fn(ddp, x, y).backward()
            opt.step()
    res = params_of(ddp)
    res.update({f"init_{k}": v for k, v in initial.items()})
    res.update({f"seen{e}": s for e, s in enumerate(seen)})
    res["comm_calls"] = np.array(ddp.comm_calls)
    np.savez(out / f"train-rank{r}.npz", **res)


def compiled(args, out):
    """The same DDP steps eager and compiled, from the same start; saves both results."""
    r = dist.rank()
    X, Y = make_data()
    results = {}
    for mode in ("eager", "compiled"):
        ddp = dist.DistributedDataParallel(make_model(seed=100 + r), bucket_mb=args.bucket_mb)
        opt = make_optimizer(args.optim, ddp.parameters())

        def step(x, y, ddp=ddp, opt=opt):
            opt.zero_grad()
            loss = loss_fn(ddp, x, y)
            loss.backward()
            opt.step()
            return loss

        fn = dagrad.compile(step) if mode == "compiled" else step
        losses = []
        for s in range(args.steps):
            idx = [(s * 4 + r * 2 + i) % N_SAMPLES for i in range(2)]
            losses.append(fn(dagrad.tensor(X[idx]), dagrad.tensor(Y[idx])).item())
        if mode == "compiled":  # replays, not traces (the second call traces again: the optimizer's state is new)
            assert fn.cache_info().hits >= args.steps - 2 >= 1, fn.cache_info()
        results.update({f"{mode}_{k}": v for k, v in params_of(ddp).items()})
        results[f"{mode}_losses"] = np.array(losses)
        results[f"{mode}_comm_calls"] = np.array(ddp.comm_calls)
    np.savez(out / f"compiled-rank{r}.npz", **results)


def collectives(args, out):
    r = dist.rank()
    v = np.arange(4.0) * (r + 1) + r / 3
    res = {}
    for op in ("sum", "mean", "max", "min"):
        t = dagrad.tensor(v, dtype=dagrad.float64)
        got = dist.all_reduce(t, op=op)
        assert got is t
        res[op] = t.numpy().copy()
    ti = dagrad.tensor(np.array([r, 10 * r]))
    res["sum_int"] = dist.all_reduce(ti).numpy().copy()
    parts = dist.all_gather(dagrad.tensor(v, dtype=dagrad.float32))
    res["gather"] = np.stack([p.numpy() for p in parts])
    b = dagrad.tensor(v) if r == 0 else dagrad.zeros(4, dtype=dagrad.float64)
    res["bcast"] = dist.broadcast(b, root=0).numpy().copy()
    m = dist.reduce_metrics({"loss": float(r), "acc": dagrad.tensor(0.5 + r)})
    if r == 0:
        res["metrics"] = np.array([m["acc"], m["loss"]])
    else:
        assert m is None
    for fn in (dist.all_gather, dist.broadcast):
        try:
            fn(dagrad.zeros(r + 1))
        except ValueError as e:
            res[f"{fn.__name__}_error"] = np.array(str(e))
    ddp = dist.DistributedDataParallel(dagrad.nn.Linear(2, 1))
    dist.finalize()
    try:
        ddp(dagrad.ones(1, 2)).sum().backward()
    except RuntimeError as e:
        res["finalized_error"] = np.array(str(e))
    dist.init()
    dist.save_rank0({"w": dagrad.tensor(v)}, str(out / "ckpt.dg"))
    res["ckpt"] = dagrad.load(str(out / "ckpt.dg"))["w"].numpy()  # every rank reads rank 0's file
    dist.barrier()
    np.savez(out / f"collectives-rank{r}.npz", **res)


def order(args, out):
    """The order a serial run computes one DDP backward in: op names, and the number of buckets."""
    r = dist.rank()
    dagrad.set_schedule("serial")
    dagrad.manual_seed(0)
    nn = dagrad.nn
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))
    ddp = dist.DistributedDataParallel(model, bucket_mb=1e-3)
    loss = (ddp(dagrad.ones(8, 20)) ** 2).mean()
    dagrad.realize(loss)
    with dagrad.profile() as prof:
        loss.backward()
    ops = [e["op"] for e in sorted(prof.events, key=lambda e: e["start_ns"])]
    np.savez(out / f"order-rank{r}.npz", ops=np.array(ops), buckets=np.array(len(ddp.buckets)))


def overlap(args, out):
    """Rank 1 starts its backward late, so rank 0's first bucket waits in MPI; rank 0 (2 threads)
    records when each node ran, to show the rest of its backward running during that wait."""
    import time
    r = dist.rank()
    dagrad.set_num_threads(2)
    dagrad.manual_seed(0)
    nn = dagrad.nn
    # Big enough that backward lasts tens of milliseconds, longer than a sleeping worker takes to wake.
    layers = [nn.Linear(64, 768)]
    for _ in range(4):
        layers += [nn.Tanh(), nn.Linear(768, 768)]
    model = nn.Sequential(*layers, nn.Tanh(), nn.Linear(768, 4))
    ddp = dist.DistributedDataParallel(model, bucket_mb=0.1)  # the last layer alone in the first bucket
    loss = (ddp(dagrad.ones(256, 64)) ** 2).mean()
    dagrad.realize(loss)
    dist.barrier()
    if r == 1:
        time.sleep(0.5)
    with dagrad.profile() as prof:
        loss.backward()
    ev = prof.events
    np.savez(out / f"overlap-rank{r}.npz", ops=np.array([e["op"] for e in ev]),
             start=np.array([e["start_ns"] for e in ev]), end=np.array([e["end_ns"] for e in ev]),
             thread=np.array([e["thread"] for e in ev]))


def fail(args, out):
    """Rank 1 raises mid-training while the others are inside a reduction."""
    r = dist.rank()
    X, Y = make_data()
    ddp = dist.DistributedDataParallel(make_model(seed=0))
    for step in range(1000):
        if r == 1 and step == 2:
            raise ValueError("rank 1 fails on purpose")
        loss_fn(ddp, dagrad.tensor(X[:4]), dagrad.tensor(Y[:4])).backward()


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["train", "compiled", "collectives", "order", "overlap", "fail"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--optim", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--bucket-mb", type=float, default=1e-4)  # ~100 bytes: one bucket per parameter or so
    args = ap.parse_args(argv)
    dist.init()
    # Every run on the worker pool, so bucket nodes call MPI from worker threads
    # (Note [MPI thread level]).
    dagrad.set_schedule("parallel")
    globals()[args.scenario](args, args.out)
    dist.finalize()


if __name__ == "__main__":
    main(sys.argv[1:])
