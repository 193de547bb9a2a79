"""An MLP on scikit-learn's bundled 8x8 digits (no download), trained with Adam.

Run: python examples/digits_mlp.py [--epochs 40] [--compile]
Reaches about 97% test accuracy in a few seconds on 2 cores.
"""
import argparse
import sys

import numpy as np

import dagrad
import dagrad.nn.functional as F
from dagrad import nn


def progress(iterable, desc, total=None):
    """A tqdm bar when tqdm is installed and stdout is a terminal; the plain iterable otherwise."""
    if sys.stdout.isatty():
        try:
            from tqdm import tqdm
            return tqdm(iterable, desc=desc, total=total, leave=False)
        except ImportError:
            pass
    return iterable


def load_digits(seed=0):
    """Standardised features, int64 labels, and a fixed 80/20 train/test split."""
    from sklearn.datasets import load_digits as sk_digits
    d = sk_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_train = int(0.8 * len(x))
    mean, std = x[:n_train].mean(0), x[:n_train].std(0) + 1e-6
    x = (x - mean) / std
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def accuracy(model, x, y):
    model.eval()
    with dagrad.no_grad():
        pred = model(dagrad.tensor(x)).argmax(dim=1).numpy()
    model.train()
    return float((pred == y).mean())


def fit(model, epochs, batch_size, lr, compile_step, seed, out, log_every):
    """Trains `model` on the digits with Adam and cross-entropy; returns the test accuracy."""
    (xtr, ytr), (xte, yte) = load_digits(seed)
    opt = dagrad.optim.Adam(model.parameters(), lr=lr)
    loader = dagrad.data.DataLoader(dagrad.data.TensorDataset(xtr, ytr), batch_size=batch_size,
                                    shuffle=True, seed=seed)

    def step(xb, yb):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    if compile_step:
        step = dagrad.compile(step)
    for epoch in progress(range(1, epochs + 1), "epochs", total=epochs):
        losses = [step(xb, yb).item() for xb, yb in loader]
        if epoch % log_every == 0 or epoch == epochs:
            print(f"epoch {epoch:3d}  loss {np.mean(losses):.4f}  test accuracy {accuracy(model, xte, yte):.4f}",
                  file=out)
    return accuracy(model, xte, yte)


def train(epochs=40, batch_size=64, lr=1e-3, compile_step=False, seed=0, out=None):
    dagrad.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    return fit(model, epochs, batch_size, lr, compile_step, seed, out or sys.stdout, log_every=10)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--compile", action="store_true", help="replay a compiled training step")
    args = p.parse_args(argv)
    acc = train(args.epochs, lr=args.lr, compile_step=args.compile)
    print(f"final test accuracy: {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
