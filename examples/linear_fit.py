"""dagrad's first demo: a graph, its gradients, and gradient descent fitting f(x) = 3x + 7.

Run: python examples/linear_fit.py [--lr 0.05] [--steps 2000]
"""
import argparse
import math
import sys

import numpy as np

import dagrad


def chain_rule_demo():
    """z = x * w + b at x = 2, w = 3, b = 1: the value and its three partial derivatives."""
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    b = dagrad.tensor(1.0, requires_grad=True)
    z = x * w + b
    z.backward()
    print(f"z = x*w + b = {z.item():g}")
    print(f"dz/dx = {x.grad.item():g}   dz/dw = {w.grad.item():g}   dz/db = {b.grad.item():g}")


def fit(lr, steps, n=64, seed=0, log_every=None, out=None):
    """Fits y = w*x + b to samples of 3x + 7 by full-batch gradient descent on the MSE.

    Returns (w, b, diverged).
    """
    out = out or sys.stdout
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.0, 1.0, size=(n, 1))
    ys = 3.0 * xs + 7.0
    x = dagrad.tensor(xs)  # float64: the fit is checked to 1e-3
    y = dagrad.tensor(ys)
    w = dagrad.zeros(1, 1, dtype=dagrad.float64, requires_grad=True)
    b = dagrad.zeros(1, dtype=dagrad.float64, requires_grad=True)
    log_every = log_every or max(1, steps // 10)
    first = None
    for step in range(steps + 1):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        value = loss.item()
        first = value if first is None else first
        if not math.isfinite(value) or value > 1e6 * max(first, 1e-12):
            print(f"step {step}: loss = {value:.3e}. Diverged: the learning rate {lr} is too large "
                  "(each step overshoots the minimum by more than it corrects). Try a smaller --lr.",
                  file=out)
            return w.item(), b.item(), True
        if step % log_every == 0 or step == steps:
            print(f"step {step:5d}  loss {value:.3e}  w {w.item():.6f}  b {b.item():.6f}", file=out)
        if step == steps:
            break
        with dagrad.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad = None
        b.grad = None
    return w.item(), b.item(), False


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (try 1.5 to see divergence)")
    p.add_argument("--steps", type=int, default=1000)
    args = p.parse_args(argv)
    chain_rule_demo()
    print(f"\nfitting f(x) = 3x + 7 with lr = {args.lr}")
    w, b, diverged = fit(args.lr, args.steps)
    if not diverged:
        print(f"learned w = {w:.6f}, b = {b:.6f} (target 3, 7)")
    return 1 if diverged else 0


if __name__ == "__main__":
    sys.exit(main())
