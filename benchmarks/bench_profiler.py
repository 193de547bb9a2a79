"""What the profiler costs: the wide graph of bench_vs_torch (c), 8 independent branches of 10
matmuls (x = tanh(x @ W)), forward + backward, with the profiler off and on, interleaved in one
process (rounds alternate off, on, off, on, ...), medians over the rounds.

Run: python benchmarks/bench_profiler.py [--n 64,256] [--rounds 15] [--threads 1,2]

"off" is dagrad as a user runs it: no observer registered, so a run reads one relaxed counter
and a node tests one bool (Note [Run observers]). "on" records every node (op, thread, times,
pass, shape, inputs, fused members, ready-list length) into per-thread buffers; the events are
taken after each round, outside the timing.
"""
import argparse
import statistics
import time

import numpy as np

import dagrad


def wide_step(xs, ws):
    outs = []
    for x, branch in zip(xs, ws):
        h = x
        for w in branch:
            h = (h @ w).tanh()
        outs.append(h)
    loss = outs[0].sum()
    for o in outs[1:]:
        loss = loss + o.sum()
    loss.backward()
    return loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="64,256")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("profiler cost on 8 branches x 10 matmuls (tanh), forward + backward; ms per step, median")
    print(f"{'n':>5} {'threads':>7} {'off':>9} {'on':>9} {'on/off':>7}  events/step")
    for n in (int(v) for v in args.n.split(",")):
        xs = [dagrad.tensor(rng.standard_normal((n, n)).astype(np.float32) * 0.1) for _ in range(8)]
        ws = [[dagrad.tensor((rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32), requires_grad=True)
               for _ in range(10)] for _ in range(8)]
        for threads in (int(v) for v in args.threads.split(",")):
            dagrad.set_num_threads(threads)
            times = {False: [], True: []}
            events = 0
            for r in range(2 * args.rounds + 2):
                on = r % 2 == 1
                for branch in ws:
                    for w in branch:
                        w.grad = None
                if on:
                    with dagrad.profiler.profile() as prof:
                        t0 = time.perf_counter()
                        wide_step(xs, ws)
                        dt = time.perf_counter() - t0
                    events = len(prof.events)
                else:
                    t0 = time.perf_counter()
                    wide_step(xs, ws)
                    dt = time.perf_counter() - t0
                if r >= 2:  # the first pair warms up
                    times[on].append(dt * 1e3)
            off, on_ = statistics.median(times[False]), statistics.median(times[True])
            print(f"{n:>5} {threads:>7} {off:>9.3f} {on_:>9.3f} {on_ / off:>6.3f}x  {events}")


if __name__ == "__main__":
    main()
