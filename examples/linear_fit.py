"""dagrad's first demo: a graph, its gradients, and gradient descent fitting f(x) = 3x + 7.

Run: python examples/linear_fit.py [--lr 0.05] [--steps 2000] [--html fit.html]

A learning rate that is too large diverges (--lr 1.5) or oscillates without the loss going
down (--lr 1.0); one that is too small has not converged when the steps run out (--lr 0.001).
Each is reported, and exits with status 1.
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


def data(n=64, seed=0):
    """The training set: n samples of x in [-1, 1] and y = 3x + 7, as numpy arrays (n, 1)."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.0, 1.0, size=(n, 1))
    return xs, 3.0 * xs + 7.0


def fit(lr, steps, n=64, seed=0, log_every=None, out=None, history=None):
    """Fits y = w*x + b to samples of 3x + 7 by full-batch gradient descent on the MSE.

    Appends {"step", "loss", "w", "b"} to ``history`` (a list) for every step, if given.
    Returns (w, b, diverged).
    """
    out = out or sys.stdout
    xs, ys = data(n, seed)
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
        if history is not None:
            history.append({"step": step, "loss": value, "w": w.item(), "b": b.item()})
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


def diagnose(history, lr, tol=1e-8):
    """What went wrong with a run that did not diverge, or None if it converged.

    ``history`` is fit's list of per-step records. A run that ends with the loss above ``tol``
    either still goes down (not converged: the learning rate is too small or the steps too few)
    or does not: the loss at the end is more than half of what it was halfway, and the
    parameters step back and forth (oscillating: the learning rate is too large).
    """
    losses = [h["loss"] for h in history]
    steps = history[-1]["step"]
    if losses[-1] <= tol:
        return None
    half = losses[len(losses) // 2]
    if len(losses) >= 4 and losses[-1] > 0.5 * half:
        tail = history[-min(len(history), 21):]
        moves = [(q["w"] - p["w"], q["b"] - p["b"]) for p, q in zip(tail, tail[1:])]
        flips = sum(1 for (a, c), (a2, c2) in zip(moves, moves[1:]) if a * a2 < 0 or c * c2 < 0)
        where = f"the loss is {losses[-1]:.3e} after {steps} steps and was {half:.3e} halfway"
        if flips >= len(moves) // 2:
            return (f"oscillating / loss not decreasing: {where}. The learning rate {lr} is too large: "
                    "each step overshoots the minimum about as much as it corrects. Try a smaller --lr.")
        return (f"stalled / loss not decreasing: {where}, and the parameters hardly move. Try a larger "
                "--lr.")
    return (f"not converged after {steps} steps: the loss is {losses[-1]:.3e} (target {tol:g}) and still "
            f"going down. The learning rate {lr} is too small for {steps} steps: try a larger --lr or "
            "more --steps.")


def training_view(path, history, n=64, seed=0):
    """Writes the explorer for the fit (dagrad.viz.html): the last step's graph, the loss curve
    and the fitted line against the data over the steps."""
    xs, ys = data(n, seed)
    x, y = dagrad.tensor(xs), dagrad.tensor(ys)
    w = dagrad.tensor([[history[-1]["w"]]], dtype=dagrad.float64, requires_grad=True)
    b = dagrad.tensor([history[-1]["b"]], dtype=dagrad.float64, requires_grad=True)
    loss = ((x @ w + b - y) ** 2).mean()
    dagrad.viz.html(loss, path, names={"x": x, "y": y, "w": w, "b": b},
                    history={"steps": history, "xs": xs.ravel().tolist(), "ys": ys.ravel().tolist()})
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.1,
                   help="learning rate (try 1.5 to see divergence, 1.0 oscillation, 0.001 too slow)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--html", metavar="PATH", help="write the training view (loss curve, fitted line) here")
    args = p.parse_args(argv)
    chain_rule_demo()
    print(f"\nfitting f(x) = 3x + 7 with lr = {args.lr}")
    history = []
    w, b, diverged = fit(args.lr, args.steps, history=history)
    if args.html and history:
        if hasattr(dagrad.viz, "html"):
            print(f"training view: {training_view(args.html, history)}")
        else:
            print("training view skipped: this dagrad has no dagrad.viz.html")
    if diverged:
        return 1
    problem = diagnose(history, args.lr)
    if problem:
        print(problem)
        return 1
    print(f"learned w = {w:.6f}, b = {b:.6f} (target 3, 7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
