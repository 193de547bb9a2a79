"""How much of DistributedDataParallel's communication hides behind backward, on the
784-512-512-10 MLP: forward+backward with the bucket reductions, against forward+backward alone
(no_sync) plus the same reductions alone.

Run: mpiexec -n 2 python benchmarks/bench_ddp.py [--batch 64] [--rounds 30] [--threads 1,2] [--bucket-mb 0.5,4,25]
(run without mpiexec it starts itself on 2 ranks).

overlap = (compute + comm - both) / comm: the share of the reductions' time that ran while
backward was still computing (0: none, 1: all of it hidden). Each figure is the median of
--rounds timed steps after warm-up, the three interleaved round by round, every rank
synchronised (a barrier) before each. A rank that reaches a reduction late makes the others
wait inside it: that wait counts as communication in "both", never in "reduce".
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="784,512,512,10")
    p.add_argument("--batch", type=int, default=64, help="samples per rank")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", default="1,2", help="dagrad threads per rank, comma-separated")
    p.add_argument("--bucket-mb", default="0.5,4,25", help="bucket sizes to try, comma-separated")
    args = p.parse_args(argv)
    if "PMI_RANK" not in os.environ and "OMPI_COMM_WORLD_RANK" not in os.environ:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", "2", sys.executable, __file__,
               *(argv if argv is not None else sys.argv[1:])]
        return subprocess.call(cmd)

    import dagrad
    import dagrad.distributed as dist
    import dagrad.nn.functional as F
    from dagrad import nn
    from dagrad.distributed import _group

    dist.init()
    rank, world = dist.rank(), dist.world_size()
    sizes = [int(v) for v in args.sizes.split(",")]
    rng = np.random.default_rng(rank)
    x = dagrad.tensor(rng.standard_normal((args.batch, sizes[0])).astype(np.float32))
    y = dagrad.tensor(rng.integers(0, sizes[-1], size=args.batch))

    def medians(*fns):
        """The median time of each fn, run in turn round after round (so that a noisy machine
        slows each alike), every rank starting each call together."""
        times = [[] for _ in fns]
        for i in range(args.rounds + 3):
            for fn, ts in zip(fns, times):
                dist.barrier()
                t = time.perf_counter()
                fn()
                if i >= 3:
                    ts.append(time.perf_counter() - t)
        return [float(np.median(ts)) for ts in times]

    def measure(mb):
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        ddp = dist.DistributedDataParallel(nn.Sequential(*layers[:-1]), bucket_mb=mb)
        params = list(ddp.parameters())

        def step(sync):
            for q in params:
                q.grad = None
            if sync:
                F.cross_entropy(ddp(x), y).backward()
            else:
                with ddp.no_sync():
                    F.cross_entropy(ddp(x), y).backward()
            dagrad.realize(*[q.grad for q in params])

        flats = [np.zeros(b.padded, dtype=np.float32) for b in ddp._buckets]

        def comm_alone():
            for f in flats:
                _group._reduce_inplace(f, "mean", ddp._comm)

        both, compute, comm = medians(lambda: step(True), lambda: step(False), comm_alone)
        overlap = (compute + comm - both) / comm if comm > 0 else 0.0
        return len(ddp._buckets), compute, comm, both, overlap

    rows = []
    for threads in [int(v) for v in args.threads.split(",")]:
        dagrad.set_num_threads(threads)
        for mb in [float(v) for v in args.bucket_mb.split(",")]:
            rows.append((threads, mb, *measure(mb)))
    if rank == 0:
        print(f"{world} ranks, MLP {args.sizes}, batch {args.batch} per rank, float32, median of {args.rounds} steps")
        print(f"{'threads':>7} {'bucket MB':>9} {'buckets':>7} {'fwd+bwd ms':>10} {'reduce ms':>9} "
              f"{'both ms':>8} {'sum ms':>7} {'overlap':>7}")
        for t, mb, nb, c, m, b, o in rows:
            print(f"{t:>7} {mb:>9g} {nb:>7} {1e3 * c:>10.2f} {1e3 * m:>9.2f} {1e3 * b:>8.2f} "
                  f"{1e3 * (c + m):>7.2f} {100 * o:>6.0f}%")
    dist.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
