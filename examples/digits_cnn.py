"""A small CNN on scikit-learn's bundled 8x8 digits (no download), trained with Adam.

Run: python examples/digits_cnn.py [--epochs 15] [--compile]
conv(1->16, 3x3) - relu - maxpool 2 - conv(16->32, 3x3) - relu - maxpool 2 - linear(128 -> 10);
reaches about 97-98% test accuracy.
"""
import argparse
import sys

import numpy as np

import dagrad
from dagrad import nn
import dagrad.nn.functional as F

from digits_mlp import accuracy, load_digits, progress


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 8, 8)
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


def train(epochs=15, batch_size=64, lr=2e-3, compile_step=False, seed=0, out=None):
    out = out or sys.stdout
    dagrad.manual_seed(seed)
    (xtr, ytr), (xte, yte) = load_digits(seed)
    model = DigitsCNN()
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
        if epoch % 5 == 0 or epoch == epochs:
            print(f"epoch {epoch:3d}  loss {np.mean(losses):.4f}  test accuracy {accuracy(model, xte, yte):.4f}",
                  file=out)
    return accuracy(model, xte, yte)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--compile", action="store_true", help="replay a compiled training step")
    args = p.parse_args(argv)
    acc = train(args.epochs, lr=args.lr, compile_step=args.compile)
    print(f"final test accuracy: {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
