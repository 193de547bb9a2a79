"""A small CNN on scikit-learn's bundled 8x8 digits (no download), trained with Adam.

Run: python examples/digits_cnn.py [--epochs 15] [--compile]
conv(1->16, 3x3) - relu - maxpool 2 - conv(16->32, 3x3) - relu - maxpool 2 - linear(128 -> 10);
reaches about 97-98% test accuracy.
"""
import argparse
import sys

import dagrad
import dagrad.nn.functional as F
from dagrad import nn
from digits_mlp import fit


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
    dagrad.manual_seed(seed)
    return fit(DigitsCNN(), epochs, batch_size, lr, compile_step, seed, out or sys.stdout, log_every=5)


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
