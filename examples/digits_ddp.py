"""The digits MLP of examples/digits_mlp.py, trained data-parallel on several processes with MPI.

Run: mpiexec -n 2 python examples/digits_ddp.py [--epochs 40] [--compile]
     (python examples/digits_ddp.py alone is a job of one rank)

Every rank reads its shard of each epoch (DistributedSampler) and computes the gradient of its
part of the global batch; DistributedDataParallel averages the gradients, so each step is the
step one process takes on the whole global batch (64 samples, split across the ranks) and the
accuracy is the same as one process's. It prints the time per step, the share of the
communication that overlapped the rest of backward, and the scaling efficiency against one
rank, which it measures in the same job (rank 0 alone, the others asleep).
"""
import argparse
import os
import sys
import time

import numpy as np

import dagrad
import dagrad.distributed as dist
import dagrad.nn.functional as F
from dagrad import nn
from digits_mlp import accuracy, load_digits  # the same data and split (this script's folder is on sys.path)


def make_model(seed):
    dagrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def make_step(model, opt, compile_step):
    def step(xb, yb):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss
    return dagrad.compile(step) if compile_step else step


def wait_sleeping(req):
    """Waits for a nonblocking MPI request without spinning a core (MPI's own wait polls)."""
    while not req.Test():
        time.sleep(0.002)


def baseline_step_time(xtr, ytr, batch, lr, steps, compile_step):
    """Seconds per step of the same training in one process on the global batch, measured on
    rank 0 with every core while the other ranks sleep; every rank gets the figure."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    t = np.zeros(1)
    if comm.rank == 0:
        threads = dagrad.get_num_threads()
        dagrad.set_num_threads(os.cpu_count() or 1)  # one process has the machine to itself
        model = make_model(seed=0)
        step = make_step(model, dagrad.optim.Adam(model.parameters(), lr=lr), compile_step)
        rng = np.random.default_rng(1)
        batches = [rng.choice(len(xtr), batch, replace=False) for _ in range(steps + 5)]
        for i, idx in enumerate(batches):
            if i == 5:  # after the warm-up (and the trace, when compiled)
                t0 = time.perf_counter()
            step(dagrad.tensor(xtr[idx]), dagrad.tensor(ytr[idx])).item()
        t[0] = (time.perf_counter() - t0) / steps
        dagrad.set_num_threads(threads)
    wait_sleeping(comm.Ibarrier())
    comm.Bcast(t, root=0)
    return float(t[0])


def train(epochs=40, batch_size=64, lr=1e-3, compile_step=False, bucket_mb=0.25, seed=0, baseline_steps=200):
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    if batch_size % world:
        raise ValueError(f"the global batch ({batch_size}) must split evenly over {world} ranks")
    (xtr, ytr), (xte, yte) = load_digits(seed)
    model = dist.DistributedDataParallel(make_model(seed + rank), bucket_mb=bucket_mb)  # rank 0's weights win
    opt = dagrad.optim.Adam(model.parameters(), lr=lr)
    step = make_step(model, opt, compile_step)
    ds = dagrad.data.TensorDataset(xtr, ytr)
    sampler = dist.DistributedSampler(ds, shuffle=True, seed=seed)
    loader = dagrad.data.DataLoader(ds, batch_size=batch_size // world, sampler=sampler)
    dist.print_rank0(f"{world} rank(s), {dagrad.get_num_threads()} thread(s) each, global batch {batch_size}, "
                     f"{len(model.buckets)} gradient bucket(s)")

    step_times = []
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        losses = []
        for xb, yb in loader:
            t0 = time.perf_counter()
            losses.append(step(xb, yb).item())
            step_times.append(time.perf_counter() - t0)
        if epoch % 10 == 0 or epoch == epochs:
            m = dist.reduce_metrics({"loss": float(np.mean(losses))})
            dist.print_rank0(f"epoch {epoch:3d}  loss {m['loss'] if m else 0:.4f}  "
                             f"test accuracy {accuracy(model, xte, yte):.4f}")
    acc = accuracy(model, xte, yte)
    timed = step_times[len(step_times) // 5:] or step_times  # past the warm-up
    t_step = float(np.mean(timed))

    report = {"accuracy": acc, "step_ms": 1e3 * t_step}
    if world > 1:
        # Overlap: the step time with communication, against the same step with none (no_sync),
        # against the time the reductions spent in MPI. The share of communication hidden behind
        # backward is 1 - exposed / total.
        xb, yb = next(iter(loader))
        probe = make_model(seed)
        ddp = dist.DistributedDataParallel(probe, bucket_mb=bucket_mb)
        popt = dagrad.optim.SGD(ddp.parameters(), lr=0.0)

        def timed_steps(sync, n=100):
            t = time.perf_counter()
            for _ in range(n):
                popt.zero_grad()
                if sync:
                    F.cross_entropy(ddp(xb), yb).backward()
                else:
                    with ddp.no_sync():
                        F.cross_entropy(ddp(xb), yb).backward()
                dist.barrier()
            return (time.perf_counter() - t) / n

        timed_steps(True, 10)
        ddp.comm_seconds, ddp.comm_calls = 0.0, 0
        t_sync = timed_steps(True)
        comm = ddp.comm_seconds / 100
        t_local = timed_steps(False)
        exposed = max(0.0, t_sync - t_local)
        report["comm_ms"] = 1e3 * comm
        report["overlap"] = 0.0 if comm == 0 else min(1.0, max(0.0, 1.0 - exposed / comm))
    if baseline_steps:
        t1 = baseline_step_time(xtr, ytr, batch_size, lr, baseline_steps, compile_step)
        report["step_ms_1rank"] = 1e3 * t1
        report["efficiency"] = t1 / (world * t_step)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch, split over the ranks")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--bucket-mb", type=float, default=0.025)
    p.add_argument("--compile", action="store_true", help="replay a compiled training step")
    p.add_argument("--threads", type=int, default=None,
                   help="dagrad threads per rank (default: DAGRAD_NUM_THREADS, else the cores shared among "
                        "the ranks on this machine)")
    p.add_argument("--baseline-steps", type=int, default=200, help="steps of the 1-rank baseline (0: skip it)")
    args = p.parse_args(argv)
    if args.threads is not None:
        dagrad.set_num_threads(args.threads)
    elif "DAGRAD_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("MPI_LOCALNRANKS", os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", "1")))
        dagrad.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    r = train(args.epochs, args.batch_size, args.lr, args.compile, args.bucket_mb, baseline_steps=args.baseline_steps)
    dist.print_rank0(f"time per step: {r['step_ms']:.3f} ms")
    if "overlap" in r:
        dist.print_rank0(f"communication per step: {r['comm_ms']:.3f} ms, overlapped with backward: "
                         f"{100 * r['overlap']:.0f}%")
    if "efficiency" in r:
        dist.print_rank0(f"1 rank: {r['step_ms_1rank']:.3f} ms per step; scaling efficiency at "
                         f"{dist.world_size()} rank(s): {100 * r['efficiency']:.0f}%")
    dist.print_rank0(f"final test accuracy: {r['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
