"""Peak resident memory of a training step, dagrad vs PyTorch, each measured above its own
import footprint (model, optimizer and data created, then the peak growth over the steps).

Run: python benchmarks/bench_memory.py [--sizes 784,512,512,10] [--batch 256] [--steps 5]
Each framework runs in its own fresh process, one thread, so neither sees the other's memory.
"""
import argparse
import json
import os
import subprocess
import sys

WORKER = r'''
import json, os, resource, sys
import numpy as np
fw, sizes, batch, steps = sys.argv[1], [int(v) for v in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
x_np = rng.standard_normal((batch, sizes[0])).astype(np.float32)
y_np = rng.integers(0, sizes[-1], size=batch)
def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
if fw == "dagrad":
    import dagrad
    from dagrad import nn
    import dagrad.nn.functional as F
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    opt = dagrad.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = dagrad.tensor(x_np), dagrad.tensor(y_np)
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
else:
    import torch
    torch.set_num_threads(1)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
base = rss_kb()
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step()  # the first step creates optimizer state: part of the training footprint
for _ in range(steps):
    step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "peak_growth_kb": max(0, peak - max(base, 0)), "peak_kb": peak}))
'''


def run(fw, sizes, batch, steps):
    env = dict(os.environ, DAGRAD_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", WORKER, fw, sizes, str(batch), str(steps)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# Issue #12's figures: RSS after a 1,000,000-element x 40-op chain, its backward and `del`
# (no empty_cache), and RSS growth over 3,000 training steps of a small MLP; each framework in
# its own process, with glibc told to return freed memory (MALLOC_MMAP_THRESHOLD_=65536,
# MALLOC_TRIM_THRESHOLD_=0), so what stays is what the framework keeps.
RETURN_WORKER = r'''
import gc, json, sys
fw = sys.argv[1]
def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
if fw == "dagrad":
    import dagrad as lib
    randn = lambda n: lib.randn(n, requires_grad=True)
else:
    import torch as lib
    lib.set_num_threads(1)
    randn = lambda n: lib.randn(n, requires_grad=True)
start = rss_mib()
x = randn(1_000_000)
h = x
for i in range(40):
    h = (h * 1.0001).tanh() if i % 2 else h + 0.5
h.sum().backward()
after_backward = rss_mib()
del x, h
gc.collect()
chain_left = rss_mib() - start
import numpy as np
rng = np.random.default_rng(0)
nn = lib.nn
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
xb = lib.tensor(rng.standard_normal((64, 32)).astype(np.float32))
yb = lib.tensor(rng.integers(0, 10, 64))
def step():
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
for _ in range(200):
    step()
s0 = rss_mib()
for _ in range(3000):
    step()
print(json.dumps({"chain_left_mib": chain_left, "chain_peak_mib": after_backward - start,
                  "steps_growth_mib": rss_mib() - s0}))
'''


def run_return(fw):
    env = dict(os.environ, DAGRAD_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run([sys.executable, "-c", RETURN_WORKER, fw], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="784,512,512,10")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    res = {fw: run(fw, args.sizes, args.batch, args.steps) for fw in ("dagrad", "torch")}
    print(f"MLP {args.sizes}, batch {args.batch}, {args.steps} steps, peak RSS above the footprint after setup:")
    for fw, r in res.items():
        print(f"  {fw:7s} footprint {r['base_kb'] / 1024:8.1f} MiB   "
              f"training peak growth {r['peak_growth_kb'] / 1024:8.1f} MiB")
    d, t = res["dagrad"]["peak_growth_kb"], res["torch"]["peak_growth_kb"]
    print(f"  ratio dagrad/torch: {d / max(t, 1):.2f} (goal: <= 1.00)")
    ret = {fw: run_return(fw) for fw in ("dagrad", "torch")}
    print("Giving memory back (#12): 1,000,000 x 40-op chain, backward, del (no empty_cache); 3,000 MLP steps")
    for fw, r in ret.items():
        print(f"  {fw:7s} chain peak {r['chain_peak_mib']:7.1f} MiB   left after del {r['chain_left_mib']:6.1f} MiB "
              f"(goal < 64)   3,000 steps grow RSS {r['steps_growth_mib']:5.1f} MiB (goal < 20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
