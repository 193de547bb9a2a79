"""The 2048-4096-4096-2048 training step (batch 128, ReLU, MSE, SGD momentum 0.9) at 2 threads:
torch at 2 threads / dagrad at 2 threads (issue #14's goal: >= 1.1x), measured the way
bench_vs_torch.py's section (b) measures its MLP rows (its worker processes, interleaved rounds,
one step per variant per round after a warm-up), plus each framework at 1 thread for its scaling.

    python benchmarks/bench_big_2t.py [--rounds 5] [--no-1t]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_vs_torch as bvt  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-1t", action="store_true", help="2-thread variants only")
    args = p.parse_args(argv)
    specs = [("dagrad", 2), ("torch", 2)] + ([] if args.no_1t else [("dagrad", 1), ("torch", 1)])
    pool = bvt.Pool()
    try:
        pool.start(specs)
        meter = bvt.LoadMeter(pool)
        case = {"kind": "mlp", "sizes": [2048, 4096, 4096, 2048], "batch": 128, "act": "relu", "loss": "mse",
                "warmup": 2, "seed": 0}
        variants = [(f"{fw} {kind} {t}t", (fw, t), {"compiled": kind == "compiled"} if fw == "dagrad" else {})
                    for fw, t in specs for kind in (("eager", "compiled") if fw == "dagrad" else ("eager",))]
        # settle_s: torch's libgomp threads spin a few ms after a parallel region (as section (c)).
        res, info = bvt.measure(pool, case, variants, args.rounds, 0.2, fixed_reps=1, warm_s=0.0, settle_s=0.02)
        load = meter.other_cores()
    finally:
        pool.close()
    load_s = "unknown" if load is None else f"{load:.2f} cores"
    print("2048-4096-4096-2048, batch 128, relu/mse, SGD momentum; ms per step (median over rounds), "
          f"{info['rounds']} rounds, {info['quiet_rounds']} quiet, other processes' load {load_s}")
    for label, v in res.items():
        print(f"  {label:24s} {v['median_s'] * 1e3:9.1f} ms   samples {[round(s * 1e3, 1) for s in v['samples_s']]}")
    for t in (2, 1):
        if f"torch eager {t}t" not in res:
            continue
        for kind in ("eager", "compiled"):
            r = bvt.ratio(res, f"torch eager {t}t", f"dagrad {kind} {t}t")
            print(f"  torch {t}t / dagrad {kind} {t}t: {r:.2f}x" + ("   (goal >= 1.1x)" if t == 2 else ""))
    if "dagrad eager 1t" in res:
        print(f"  dagrad eager 2t/1t speedup: {bvt.ratio(res, 'dagrad eager 1t', 'dagrad eager 2t'):.2f}x, "
              f"torch: {bvt.ratio(res, 'torch eager 1t', 'torch eager 2t'):.2f}x")


if __name__ == "__main__":
    main()
