"""A character-level RNN, unrolled over time into dagrad's graph, learns a short text and
then writes some of its own.

Run: python examples/char_rnn.py [--steps 400] [--hidden 128]
The loss starts near ln(vocabulary size) (guessing uniformly) and falls well below it.
"""
import argparse
import math
import sys

import numpy as np

import dagrad
import dagrad.nn.functional as F
from dagrad import nn
from digits_mlp import progress

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be "
    "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    "their daughters. My dear Mr. Bennet, said his lady to him one day, have you heard that "
    "Netherfield Park is let at last? Mr. Bennet replied that he had not. But it is, returned "
    "she; for Mrs. Long has just been here, and she told me all about it. Mr. Bennet made no "
    "answer. Do you not want to know who has taken it? cried his wife impatiently. You want to "
    "tell me, and I have no objection to hearing it. This was invitation enough. "
)


class CharRNN(nn.Module):
    def __init__(self, vocab, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.rnn = nn.RNN(32, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx, h=None):
        out, h = self.rnn(self.embed(idx), h)
        return self.head(out), h


def sample(model, stoi, itos, start, length, temperature=0.8, seed=0):
    rng = np.random.default_rng(seed)
    model.eval()
    out = list(start)
    with dagrad.no_grad():
        logits, h = model(dagrad.tensor([[stoi[c] for c in start]]))
        for _ in range(length):
            p = F.softmax(logits[0, -1] / temperature, dim=0).numpy().astype(np.float64)
            c = int(rng.choice(len(p), p=p / p.sum()))
            out.append(itos[c])
            logits, h = model(dagrad.tensor([[c]]), h)
    model.train()
    return "".join(out)


def train(steps=400, hidden=128, seq_len=32, batch_size=16, lr=3e-3, seed=0, out=None):
    out = out or sys.stdout
    dagrad.manual_seed(seed)
    chars = sorted(set(TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    itos = dict(enumerate(chars))
    data = np.array([stoi[c] for c in TEXT], dtype=np.int64)
    vocab = len(chars)
    model = CharRNN(vocab, hidden)
    opt = dagrad.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)

    @dagrad.compile
    def step(x, y):
        opt.zero_grad()
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    print(f"vocabulary {vocab} characters: uniform guessing costs ln({vocab}) = {math.log(vocab):.3f}", file=out)
    losses = []
    for i in progress(range(1, steps + 1), "steps", total=steps):
        starts = rng.integers(0, len(data) - seq_len - 1, size=batch_size)
        x = np.stack([data[s:s + seq_len] for s in starts])
        y = np.stack([data[s + 1:s + seq_len + 1] for s in starts])
        losses.append(step(x, y).item())
        if i == 1 or i % 100 == 0:
            print(f"step {i:4d}  loss {np.mean(losses[-50:]):.3f}", file=out)
    print("sample: " + sample(model, stoi, itos, "It is ", 120, seed=seed), file=out)
    return losses, math.log(vocab)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--hidden", type=int, default=128)
    args = p.parse_args(argv)
    train(args.steps, args.hidden)
    return 0


if __name__ == "__main__":
    sys.exit(main())
