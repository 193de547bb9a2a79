"""Every view of two small graphs, z = x*w + b and a small MLP: the DOT picture, a Chrome
trace of the run, the work/span statistics and the HTML explorer.

Run: python examples/visualize.py [--out viz_out]
Then open the .html files by double-click, the traces in ui.perfetto.dev (or chrome://tracing),
and draw the .dot files with `dot -Tsvg z.dot -o z.svg` (or dagrad.viz.render).
"""
import argparse
import os
import sys

import dagrad
import dagrad.nn.functional as F
from dagrad import nn


def chain_rule():
    """z = x * w + b at x = 2, w = 3, b = 1 (the source material's first graph)."""
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    b = dagrad.tensor(1.0, requires_grad=True)
    return x * w + b, {"x": x, "w": w, "b": b}


def mlp():
    """A small classifier's loss: 16 samples, 4 features, 8 hidden units, 3 classes."""
    dagrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x = dagrad.randn(16, 4)
    y = dagrad.tensor([i % 3 for i in range(16)])
    names = {"x": x, "y": y, **{name: p for name, p in model.named_parameters()}}
    return F.cross_entropy(model(x), y), names


def write_views(name, out, names, out_dir, log=print):
    """Writes name.dot, name_stats.txt, name_trace.json and name.html (if dagrad.viz.html is
    there) for the graph of ``out``; returns the paths written."""
    paths = {}

    def path(suffix):
        p = os.path.join(out_dir, name + suffix)
        paths[suffix] = p
        return p

    # Before anything runs: the forward and backward graph, and what it promises.
    with open(path(".dot"), "w") as f:
        f.write(dagrad.viz.to_dot(out, show_backward=True, names=names))
    predicted = dagrad.viz.stats(out, backward=True)

    # The run, forward and backward in one scheduler run, forced onto the thread pool so that
    # independent nodes (the two multiplies of z's backward) can run side by side.
    with dagrad.schedule("parallel"), dagrad.profile() as prof:
        out.backward(retain_graph=True)
    prof.export_chrome_trace(path("_trace.json"))
    measured = dagrad.viz.stats(prof)

    with open(path("_stats.txt"), "w") as f:
        f.write(f"{name}: predicted from dagrad's cost model (forward and backward)\n{predicted}\n\n")
        f.write(f"{name}: measured on {len(prof.threads())} thread(s)\n{measured}\n\n")
        prof.summary(file=f)
    with open(path("_values.dot"), "w") as f:  # after the run: values and gradients in the labels
        f.write(dagrad.viz.to_dot(out, show_values=True, names=names))

    dagrad.viz.html(out, path(".html"), profile=prof, names=names)
    for p in paths.values():
        log(f"  wrote {p}")
    return list(paths.values())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="viz_out", help="directory for the files (created if missing)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = []
    for name, make in (("z", chain_rule), ("mlp", mlp)):
        out, names = make()
        print(f"{name}:")
        written += write_views(name, out, names, args.out)
    print(f"\n{len(written)} files in {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
