"""GEMM GFLOP/s at the MLP steps' shapes (issue #14): dagrad (one matmul node, its tiles of
scipy-openblas32 calls), numpy (its own OpenBLAS), torch (MKL), and the same OpenBLAS called
once for the whole product (what dagrad's fixed tiles cost, Note [GEMM tiles]). One thread, one
process, the four interleaved round by round (order reversed every other round); medians.

    python benchmarks/bench_gemm_shapes.py [784-128-64-10 784-512-512-10 2048-4096-4096-2048] [--rounds 5]
"""
import argparse
import ctypes
import glob
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy_openblas32  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402

import dagrad  # noqa: E402
from dagrad import _core  # noqa: E402

MLPS = {"784-128-64-10": ([784, 128, 64, 10], 64), "784-512-512-10": ([784, 512, 512, 10], 256),
        "2048-4096-4096-2048": ([2048, 4096, 4096, 2048], 128)}


def step_gemms(sizes, batch):
    """(label, M, N, K, transpose A, transpose B) of every product of a training step."""
    out = []
    for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        out.append((f"fwd L{i + 1} x@W^T", batch, fo, fi, False, True))
        out.append((f"dW{i + 1} g^T@x", fo, fi, batch, True, False))
        if i > 0:
            out.append((f"dX{i + 1} g@W", batch, fi, fo, False, False))
    return out


def _openblas():
    lib = ctypes.CDLL(glob.glob(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas*.so"))[0])
    lib.scipy_openblas_set_num_threads(1)
    f = lib.scipy_cblas_sgemm
    i, p, fl = ctypes.c_int, ctypes.c_void_p, ctypes.c_float
    f.argtypes = [i, i, i, i, i, i, fl, p, i, p, i, fl, p, i]
    return f


def timeit(f, target=0.05):
    f()
    t = time.perf_counter()
    f()
    one = max(time.perf_counter() - t, 1e-6)
    reps = max(1, int(target / one))
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / reps


def measure_shape(sgemm, rng, m, n, k, ta, tb, rounds):
    """GFLOP/s of dagrad, numpy, torch and one whole OpenBLAS call for one product."""
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    da, db = dagrad.tensor(a), dagrad.tensor(b)
    na, nb = (a.T if ta else a), (b.T if tb else b)
    tta, ttb = torch.from_numpy(a), torch.from_numpy(b)
    tta, ttb = (tta.t() if ta else tta), (ttb.t() if tb else ttb)
    fns = {
        "dagrad": lambda: dagrad.realize(_core.matmul_t(da, db, ta, tb)),
        "numpy": lambda: na @ nb,
        "torch": lambda: torch.mm(tta, ttb),
        "one": lambda: sgemm(101, 112 if ta else 111, 112 if tb else 111, m, n, k, 1.0, a.ctypes.data,
                             a.shape[1], b.ctypes.data, b.shape[1], 0.0, c.ctypes.data, n),
    }
    times = {key: [] for key in fns}
    for r in range(rounds):
        for key in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            times[key].append(timeit(fns[key]))
    g = {key: 2.0 * m * n * k / statistics.median(v) / 1e9 for key, v in times.items()}
    return g


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mlps", nargs="*", default=["784-128-64-10", "784-512-512-10"])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    threadpoolctl.threadpool_limits(1)
    torch.set_num_threads(1)
    dagrad.set_num_threads(1)
    sgemm = _openblas()
    rng = np.random.default_rng(0)
    print(f"load {os.getloadavg()[0]:.2f}; GFLOP/s, median of {args.rounds} interleaved rounds, 1 thread")
    for name in args.mlps:
        sizes, batch = MLPS[name]
        print(f"\n{name}, batch {batch}")
        print(f"  {'product':16s} {'M':>5s} {'N':>5s} {'K':>5s}  {'dagrad':>7s} {'numpy':>7s} {'torch':>7s} "
              f"{'1 call':>7s}  tiles/1 call")
        for label, m, n, k, ta, tb in step_gemms(sizes, batch):
            g = measure_shape(sgemm, rng, m, n, k, ta, tb, args.rounds)
            print(f"  {label:16s} {m:5d} {n:5d} {k:5d}  {g['dagrad']:7.1f} {g['numpy']:7.1f} {g['torch']:7.1f} "
                  f"{g['one']:7.1f}  {g['dagrad'] / g['one']:.3f}")


if __name__ == "__main__":
    main()
