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
    return 0


if __name__ == "__main__":
    sys.exit(main())
