"""The three demos' computations: plain functions and one class, dagrad and numpy only (no web
framework), so they can be called and tested on their own. Each takes the page's raw inputs,
checks them (``InputError`` names the field, the value and the allowed range) and returns plain
JSON-ready data. The server (``_app.py``) only moves that data.

Caps (the server never runs unbounded work; the page shows them next to the inputs): see ``CAPS``.
"""
import math
import os
import time

import numpy as np

import dagrad
from dagrad import nn
from dagrad.viz import stats as graph_stats
from dagrad.viz.html import _profile as profile_data, explorer_data


class InputError(ValueError):
    """Bad input from the page: the message says which field, what it got and what it takes."""


# The largest inputs the demos accept. Every run is bounded by them: the execution demo's
# biggest graph (16 branches of two 256 x 256 products) runs in well under a second per run on
# one core, and a training run stops by itself after MAX_TRAIN_STEPS.
CAPS = {
    "branches": 16,          # execution, the wide graph: independent branches
    "size": 256,             # execution, the wide graph: n of the n x n matrices
    "batch": 512,            # execution, the MLP step: samples
    "hidden": 256,           # execution, the MLP step: hidden units
    "repeats": 3,            # execution: timed runs per thread count (the fastest is kept)
    "samples": 1000,         # training: data points
    "noise": 10.0,           # training: standard deviation of the noise
    "train_steps": 20000,    # training: steps in one run, then it pauses
    "steps_per_tick": 50,    # training: steps per streamed update
    "compare_rates": 8,      # training: learning rates side by side
    "compare_steps": 2000,   # training: steps per compared run
    "digits_hidden": 128,    # training, digits: hidden units
    "lr_min": 1e-5,
    "lr_max": 10.0,
    "value": 1e6,            # backprop: |x|, |w|, ... at most this
}


def max_threads():
    """The thread counts offered: 1 to the cores of this machine."""
    return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- input checks

def number(params, name, lo, hi, default=None, integer=False, label=None):
    """``params[name]`` as a float (an int when ``integer``) in [lo, hi], else InputError."""
    label = label or name
    v = params.get(name, default)
    if v is None:
        raise InputError(f"{label}: a value is required")
    if isinstance(v, bool):
        raise InputError(f"{label}: expected a number, got {v!r}")
    if isinstance(v, str):
        s = v.strip()
        try:
            v = float(s)
        except ValueError:
            raise InputError(f"{label}: {s[:40]!r} is not a number") from None
    if not isinstance(v, (int, float)):
        raise InputError(f"{label}: expected a number, got {type(v).__name__}")
    try:
        v = float(v)
    except OverflowError:  # an int of hundreds of digits
        raise InputError(f"{label}: {str(v)[:12]}... is out of range; it takes {_fmt(lo)} to {_fmt(hi)}") from None
    if not math.isfinite(v):
        raise InputError(f"{label}: expected a finite number, got {v}")
    if integer:
        if v != int(v):
            raise InputError(f"{label}: expected a whole number, got {_fmt(v)}")
        v = int(v)
    if not lo <= v <= hi:
        raise InputError(f"{label}: {_fmt(v)} is out of range; it takes {_fmt(lo)} to {_fmt(hi)}")
    return v


def choice(params, name, options, default):
    v = params.get(name, default)
    if v not in options:
        raise InputError(f"{name}: {str(v)[:40]!r} is not one of {', '.join(options)}")
    return v


def _fmt(v):
    v = float(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


# ----------------------------------------------------------------------------- 1. execution

GRAPHS = ("z", "wide", "mlp")
SCHEDULES = ("auto", "parallel", "serial")


def _build(graph, p, seed):
    """(roots, names, run) for one fresh copy of the chosen graph; run() computes it."""
    dagrad.manual_seed(seed)
    if graph == "z":
        x = dagrad.tensor(2.0, requires_grad=True)
        w = dagrad.tensor(3.0, requires_grad=True)
        b = dagrad.tensor(1.0, requires_grad=True)
        z = x * w + b
        return [z], {"x": x, "w": w, "b": b, "z": z}, lambda: z.backward(retain_graph=True)
    if graph == "wide":
        k, n = p["branches"], p["size"]
        names, ys = {}, []
        for i in range(k):
            a, b = dagrad.randn(n, n), dagrad.randn(n, n)
            names[f"A{i}"], names[f"B{i}"] = a, b
            ys.append((a @ b).tanh())
        out = ys[0]
        for y in ys[1:]:
            out = out + y
        names["out"] = out
        return [out], names, lambda: dagrad.realize(out)
    model = nn.Sequential(nn.Linear(8, p["hidden"]), nn.Tanh(), nn.Linear(p["hidden"], 1))
    xb, yb = dagrad.randn(p["batch"], 8), dagrad.randn(p["batch"], 1)
    loss = ((model(xb) - yb) ** 2).mean()
    names = {"x": xb, "y": yb, "loss": loss, **dict(model.named_parameters())}
    return [loss], names, lambda: loss.backward(retain_graph=True)


def execution(params):
    """Runs the chosen graph with the profiler on at the chosen thread count and schedule, and
    times it against a 1-thread run. Returns the explorer data of the profiled run (graph,
    layout and events: what the page replays) and the numbers.

    Note [One thread count at a time]: the thread budget and the schedule are process-wide, so
    this runs only on the server's single dagrad worker (Note [One dagrad worker] in _app.py)
    and puts both back as they were when it is done.
    """
    graph = choice(params, "graph", GRAPHS, "wide")
    threads = number(params, "threads", 1, max_threads(), 2, integer=True, label="threads")
    schedule = choice(params, "schedule", SCHEDULES, "auto")
    p = {}
    if graph == "wide":
        p["branches"] = number(params, "branches", 1, CAPS["branches"], 8, integer=True, label="branches (K)")
        p["size"] = number(params, "size", 2, CAPS["size"], 128, integer=True, label="matrix size (n)")
    elif graph == "mlp":
        p["batch"] = number(params, "batch", 1, CAPS["batch"], 64, integer=True, label="batch")
        p["hidden"] = number(params, "hidden", 1, CAPS["hidden"], 32, integer=True, label="hidden units")
    before = dagrad.get_num_threads()
    try:
        with dagrad.schedule(schedule):
            dagrad.set_num_threads(threads)
            roots, names, run = _build(graph, p, seed=0)
            if graph == "wide":
                # Described before it runs: a run that needs no gradient frees the branches
                # once the sum has read them, and only the sum would be left to draw.
                data = explorer_data(roots, names=names, title=_TITLES[graph])
            with dagrad.profile() as prof:
                run()
            if graph == "wide":
                data["profile"] = profile_data(prof, data["nodes"], data["edges"], data["order"])
            else:  # the graph is kept (backward(retain_graph=True)): described with its backward pass
                data = explorer_data(roots, profile=prof, names=names, title=_TITLES[graph])
            times = {}
            for k in sorted({1, threads}):
                dagrad.set_num_threads(k)
                best = math.inf
                for r in range(CAPS["repeats"]):
                    _, _, again = _build(graph, p, seed=r + 1)
                    t0 = time.perf_counter()
                    again()
                    best = min(best, time.perf_counter() - t0)
                times[k] = best
    finally:
        dagrad.set_num_threads(before)
    measured = graph_stats(prof)
    predicted = measured.predicted_speedup(threads)
    used = sorted({e["thread"] for e in prof.events})
    return {
        "graph": graph, "threads": threads, "schedule": schedule, "params": p,
        "explorer": data,
        "threads_used": used,
        "events": len(prof.events),
        "stats": {
            "work_ns": measured.work, "span_ns": measured.span, "parallelism": measured.parallelism,
            "nodes": measured.nodes,
            "predicted_speedup": predicted.estimate, "predicted_low": predicted.low, "predicted_high": predicted.high,
            "time_1_s": times[1], "time_k_s": times[threads],
            "measured_speedup": times[1] / times[threads] if times[threads] > 0 else None,
        },
    }


_TITLES = {"z": "z = x * w + b, forward and backward", "wide": "K independent branches: tanh(A @ B), summed",
           "mlp": "one training step of a small MLP (forward and backward)"}


# ----------------------------------------------------------------------------- 2. backprop

# The examples: the leaves the page edits, with their defaults, and how to build the graph.
EXAMPLES = {
    "z": {"title": "z = x * w + b", "inputs": {"x": 2.0, "w": 3.0, "b": 1.0}},
    "net": {"title": "a 2-layer scalar network: h = tanh(w1 x + b1), y = sigmoid(w2 h + b2), L = (y - t)²",
            "inputs": {"x": 0.5, "w1": 1.5, "b1": -0.5, "w2": 2.0, "b2": 0.1, "t": 1.0}},
}


def _graph_of(example, v):
    leaf = {k: dagrad.tensor(val, dtype=dagrad.float64, requires_grad=(k != "t")) for k, val in v.items()}
    if example == "z":
        z = leaf["x"] * leaf["w"] + leaf["b"]
        return z, {**leaf, "z": z}
    h = (leaf["w1"] * leaf["x"] + leaf["b1"]).tanh()
    y = (leaf["w2"] * h + leaf["b2"]).sigmoid()
    loss = (y - leaf["t"]) ** 2
    return loss, {**leaf, "h": h, "y": y, "L": loss}


def _val(s):
    return None if s is None or not s.get("values") else s["values"][0]


def _num(v):
    if v is None:
        return "?"
    return f"{v:.4g}" if v == v else "nan"


def _local(op, ins, out, k):
    """(words, arithmetic of d out / d input k with the values, its value) for a scalar op."""
    a = ins[0]
    if op == "add":
        return "passes the gradient on", "1", 1.0
    if op == "sub":
        return ("passes the gradient on", "1", 1.0) if k == 0 else ("passes it on negated", "−1", -1.0)
    if op == "mul":
        other = ins[1 - k]
        return "swaps its inputs: each gets the gradient times the other", _num(other), other
    if op == "tanh":
        return "multiplies by 1 − tanh²", f"(1 − {_num(out)}²)", 1.0 - out * out
    if op == "sigmoid":
        return "multiplies by σ(1 − σ)", f"{_num(out)} × (1 − {_num(out)})", out * (1.0 - out)
    if op == "pow":  # the examples square: (y - t) ** 2
        return "multiplies by 2a", f"2 × {_num(a)}", 2.0 * a
    raise ValueError(f"backprop demo: no local rule written for {op!r}")


def backprop(params):
    """Forward then backward through a small scalar graph, node by node, every number computed
    by dagrad: the forward values, the gradient arriving at each node and what it passes to each
    input (dagrad.autograd.grad, via the explorer data), the local rule written out with the
    values, and the final gradients from dagrad's own ``backward()``."""
    example = choice(params, "example", tuple(EXAMPLES), "z")
    spec = EXAMPLES[example]
    given = params.get("inputs") or {}
    if not isinstance(given, dict):
        raise InputError("inputs: expected a mapping of name to number")
    v = {k: number(given, k, -CAPS["value"], CAPS["value"], d) for k, d in spec["inputs"].items()}
    out, names = _graph_of(example, v)
    data = explorer_data(out, names=names, title=spec["title"])
    nodes = data["nodes"]
    ins = {i: [] for i in nodes}
    for e in sorted(data["edges"], key=lambda e: e["index"]):
        ins[e["dst"]].append(e["src"])
    value = {i: _val(n["value"]) for i, n in nodes.items()}
    forward = []
    for i in data["order"]:
        n = nodes[i]
        if n["op"] == "leaf":
            continue
        args = [nodes[j]["name"] for j in ins[i]]
        forward.append({"node": i, "op": n["op"], "value": value[i],
                        "text": f"{n['name']} = {n['op']}({', '.join(args)}) = {_num(value[i])}"})
    backward, local = [], {}
    for s in data["backprop"]["steps"]:
        i, n = s["node"], nodes[s["node"]]
        g = _val(s["grad"])
        step = {"node": i, "grad": g, "root": s["root"], "passes": []}
        if n["op"] == "leaf":
            step["rule"] = f"{n['name']} is a leaf: backward adds the {_num(g)} that arrived to {n['name']}.grad"
        elif s["root"] and not s["passes"]:
            step["rule"] = "the output: backprop starts with gradient 1"
        else:
            words = None
            for p in s["passes"]:
                k = ins[i].index(p["to"])
                words, arith, d = _local(n["op"], [value[j] for j in ins[i]], value[i], k)
                local[(p["to"], i)] = (arith, d)
                got = _val(p["grad"])
                step["passes"].append({
                    "to": p["to"], "grad": got, "text": f"{_num(g)} × {arith} = {_num(got)}",
                    "check": g * d if g is not None else None,
                })
            step["rule"] = f"{n['op']} {words}" if words else n["op"]
            if s["root"]:
                step["rule"] = "the output: backprop starts with gradient 1; " + step["rule"]
        backward.append(step)
    out.backward()  # the final gradients, from dagrad's own backward
    grads, chains = {}, {}
    outs = {i: [] for i in nodes}
    for e in data["edges"]:
        outs[e["src"]].append(e["dst"])
    out_id = data["outputs"][0]
    for name in spec["inputs"]:
        t = names[name]
        if not t.requires_grad:
            continue
        grads[name] = t.grad.item()
        # the chain rule along the leaf's one path to the output (each example uses a leaf once)
        node = next(i for i, n in nodes.items() if n["name"] == name)
        factors, prod = [], 1.0
        while node != out_id and outs[node]:
            nxt = outs[node][0]
            arith, d = local[(node, nxt)]
            factors.insert(0, arith)  # written from the output back to the leaf, as backprop goes
            prod *= d
            node = nxt
        chains[name] = {"text": f"∂{nodes[out_id]['name']}/∂{name} = " + " × ".join(factors or ["1"])
                        + f" = {_num(prod)}", "value": prod}
    return {"example": example, "title": spec["title"], "inputs": v, "explorer": data,
            "forward": forward, "backward": backward, "grads": grads, "chains": chains,
            "output": {"name": nodes[out_id]["name"], "value": value[out_id]}}


# ----------------------------------------------------------------------------- 3. training

# Note [Naming the training state]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Full-batch gradient descent on a line's mean squared error is a quadratic: each step
# multiplies the distance to the best fit along each eigenvector of the Hessian by 1 - lr*h.
# What a run is doing is read off the last WINDOW steps since the learning rate last changed,
# from the excess loss e = loss - loss* (loss* is the least-squares optimum, computed by numpy:
# with noise the loss never reaches 0) and the sign of each step's change of w and b:
# - diverging: the loss is not finite, or e grows by more than 1% a step;
# - converged: e is at most 1e-9 of what it was at the start (or below 1e-12);
# - oscillating: e does not go down by 0.5% a step and most steps reverse the last one's
#   direction (|1 - lr*h| near 1: the step overshoots the minimum by about what it corrects);
# - too slow: e goes down, but at its rate it needs more than SLOW_STEPS more steps to converge;
# - converging: otherwise (if most steps reverse direction, it converges by overshooting).
WINDOW = 12
SLOW_STEPS = 2000

STATES = {
    "starting": "a few steps more before the trend is clear",
    "converging": "the loss falls steadily towards the best fit",
    "converged": "at the best fit the data allow: only the noise is left",
    "too slow": "the loss falls, but so slowly it would need thousands more steps: raise the learning rate",
    "oscillating": "each step overshoots the minimum about as much as it corrects: lower the learning rate",
    "diverging": ("each step overshoots by more than it corrects, so the loss grows without bound: "
                  "lower the learning rate"),
}


def training_data(n, noise, seed=0):
    """n samples of f(x) = 3x + 7 on x in [-1, 1], with Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.0, 1.0, size=n)
    return xs, 3.0 * xs + 7.0 + noise * rng.standard_normal(n)


class LineFit:
    """Fits y = w x + b to noisy samples of 3x + 7 with dagrad (float64 parameters, MSE loss,
    dagrad.optim.SGD), one step at a time, and names what the run is doing.

    >>> fit = LineFit(n=32, noise=0.0, lr=0.5)
    >>> _ = fit.step(300)
    >>> round(fit.w.item(), 3), round(fit.b.item(), 3), fit.state()
    (3.0, 7.0, 'converged')
    """

    def __init__(self, n=64, noise=0.5, lr=0.1, seed=0):
        self.n, self.noise = int(n), float(noise)
        xs, ys = training_data(self.n, self.noise, seed)
        self.xs, self.ys = xs, ys
        self.x, self.y = dagrad.tensor(xs), dagrad.tensor(ys)
        self.w = nn.Parameter(dagrad.tensor(0.0, dtype=dagrad.float64))
        self.b = nn.Parameter(dagrad.tensor(0.0, dtype=dagrad.float64))
        self.opt = dagrad.optim.SGD([self.w, self.b], lr=lr)
        a = np.stack([xs, np.ones_like(xs)], axis=1)
        (self.w_star, self.b_star), *_ = np.linalg.lstsq(a, ys, rcond=None)
        self.loss_star = float(np.mean((a @ np.array([self.w_star, self.b_star]) - ys) ** 2))
        self.history = []     # {"step", "loss", "w", "b", "lr"}: loss at (w, b) before that step's update
        self._since = 0       # where the current learning rate began
        self.stopped = None   # why the run stopped, or None

    @property
    def lr(self):
        return self.opt.param_groups[0]["lr"]

    def set_lr(self, lr):
        """Changes the learning rate of the running optimizer: the next step uses it."""
        self.opt.param_groups[0]["lr"] = float(lr)
        self._since = len(self.history)

    def step(self, k=1):
        """Takes up to k steps (fewer if the loss stops being finite or the step cap is reached);
        returns the records of the steps taken."""
        out = []
        for _ in range(k):
            if self.stopped:
                break
            if len(self.history) >= CAPS["train_steps"]:
                self.stopped = f"stopped at the cap of {CAPS['train_steps']} steps; press Reset to start again"
                break
            self.opt.zero_grad()
            loss = ((self.x * self.w + self.b - self.y) ** 2).mean()
            loss.backward()
            rec = {"step": len(self.history), "loss": _finite(loss.item()), "w": _finite(self.w.item()),
                   "b": _finite(self.b.item()), "lr": self.lr}
            self.history.append(rec)
            out.append(rec)
            if rec["loss"] is None or rec["w"] is None or rec["b"] is None:
                self.stopped = "the loss overflowed: the run diverged; lower the learning rate and press Reset"
                break
            self.opt.step()
        return out

    def state(self):
        """One of STATES (Note [Naming the training state])."""
        h = self.history
        if any(r["loss"] is None for r in h[-1:]):
            return "diverging"
        win = h[max(self._since, len(h) - WINDOW):]
        if not h:
            return "starting"
        first = max(h[0]["loss"] - self.loss_star, 1e-300)
        e = [max(r["loss"] - self.loss_star, 0.0) for r in win]
        if e and (e[-1] <= 1e-9 * first or e[-1] < 1e-12):
            return "converged"
        if len(win) < 5:
            return "starting"
        if e[-1] > 1e6 * max(first, 1.0):
            return "diverging"
        rate = (max(e[-1], 1e-300) / max(e[0], 1e-300)) ** (1.0 / (len(e) - 1))
        if rate > 1.01:
            return "diverging"
        moves = [(q["w"] - p["w"], q["b"] - p["b"]) for p, q in zip(win, win[1:])]
        flips = sum(1 for (a, c), (a2, c2) in zip(moves, moves[1:]) if a * a2 < 0 or c * c2 < 0)
        overshooting = flips * 2 >= len(moves) - 1
        if rate > 0.995 and overshooting:
            return "oscillating"
        if rate >= 1.0 or math.log(max(1e-9 * first, 1e-12) / e[-1]) / math.log(rate) > SLOW_STEPS:
            return "too slow"
        return "converging"

    def summary(self):
        st = self.state()
        return {"state": st, "why": STATES[st], "lr": self.lr, "steps": len(self.history),
                "w": _finite(self.w.item()), "b": _finite(self.b.item()), "stopped": self.stopped}

    def data(self):
        return {"task": "line", "xs": self.xs.tolist(), "ys": self.ys.tolist(), "target": {"w": 3.0, "b": 7.0},
                "best": {"w": float(self.w_star), "b": float(self.b_star), "loss": self.loss_star}}


def _finite(v):
    return v if math.isfinite(v) else None


def training_params(params):
    """The training inputs, checked: samples, noise, learning rate."""
    return {
        "n": number(params, "samples", 2, CAPS["samples"], 64, integer=True, label="samples"),
        "noise": number(params, "noise", 0.0, CAPS["noise"], 0.5, label="noise"),
        "lr": learning_rate(params.get("lr", 0.1)),
    }


TASKS = ("line", "digits")


def new_run(params):
    """A new training run for the page's inputs: a LineFit, or a DigitsFit for task "digits"."""
    task = choice(params, "task", TASKS, "line")
    if task == "digits":
        hidden = number(params, "hidden", 1, CAPS["digits_hidden"], 32, integer=True, label="hidden units")
        return DigitsFit(hidden=hidden, lr=learning_rate(params.get("lr", 0.1)))
    p = training_params(params)
    return LineFit(p["n"], p["noise"], p["lr"])


def learning_rate(v, label="learning rate"):
    return number({"lr": v}, "lr", CAPS["lr_min"], CAPS["lr_max"], label=label)


def compare(params):
    """Several learning rates side by side: one LineFit each on the same data, run for the same
    number of steps (a diverged run stops early). Returns each run's losses and state."""
    p = training_params(params)
    rates = params.get("rates", "0.01, 0.1, 0.5, 1.0, 1.05")
    if isinstance(rates, str):
        rates = [r for r in rates.replace(";", ",").split(",") if r.strip()]
    if not isinstance(rates, list) or not rates:
        raise InputError("learning rates: give one or more numbers separated by commas")
    if len(rates) > CAPS["compare_rates"]:
        raise InputError(f"learning rates: {len(rates)} given, at most {CAPS['compare_rates']}")
    rates = [learning_rate(r, label="learning rates") for r in rates]
    steps = number(params, "steps", 1, CAPS["compare_steps"], 200, integer=True, label="steps")
    runs = []
    for lr in rates:
        fit = LineFit(p["n"], p["noise"], lr)
        fit.step(steps)
        runs.append({"lr": lr, "losses": [r["loss"] for r in fit.history], **fit.summary()})
    return {"steps": steps, "runs": runs, "best_loss": fit.loss_star}


# ----------------------------------------------------------------------------- 3b. digits

def digits_data(seed=0):
    """(x_train, y_train, x_test, y_test, source): scikit-learn's 8 x 8 digits scaled to [0, 1]
    (bundled with scikit-learn, nothing is downloaded), 80% to train; without scikit-learn,
    generated data of the same shape: ten clusters in 64 dimensions."""
    rng = np.random.default_rng(seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        centres = rng.uniform(0.0, 1.0, size=(10, 64))
        y = np.arange(1797) % 10
        x = np.clip(centres[y] + 0.35 * rng.standard_normal((1797, 64)), 0.0, 1.0)
        source = "generated data (scikit-learn is not installed): 10 clusters in 64 dimensions"
    else:
        d = load_digits()
        x, y = d.data / 16.0, d.target
        source = "scikit-learn's 8x8 digits"
    order = rng.permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = order[:cut], order[cut:]
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    return f32(x[tr]), y[tr].astype(np.int64), f32(x[te]), y[te].astype(np.int64), source


class DigitsFit:
    """A small MLP (64 inputs, ``hidden`` tanh units, 10 classes) trained on the digits by
    full-batch gradient descent on the cross-entropy, with dagrad (dagrad.optim.SGD), one step
    at a time; each step records the loss and the train and test accuracy.

    >>> fit = DigitsFit(hidden=16, lr=0.5)
    >>> _ = fit.step(100)
    >>> fit.history[-1]["test_acc"] > 0.5
    True
    """

    def __init__(self, hidden=32, lr=0.1, seed=0):
        import dagrad.nn.functional as F
        self._F = F
        xtr, ytr, xte, yte, self.source = digits_data(seed)
        self.x, self.y = dagrad.tensor(xtr), dagrad.tensor(ytr)
        self.x_test, self.y_test = dagrad.tensor(xte), yte
        dagrad.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))
        self.opt = dagrad.optim.SGD(self.model.parameters(), lr=lr)
        self.sizes = (len(ytr), len(yte))
        self.history = []
        self._since = 0
        self.stopped = None

    lr = LineFit.lr
    set_lr = LineFit.set_lr

    def step(self, k=1):
        """Takes up to k steps; returns their records (as LineFit.step)."""
        out = []
        for _ in range(k):
            if self.stopped:
                break
            if len(self.history) >= CAPS["train_steps"]:
                self.stopped = f"stopped at the cap of {CAPS['train_steps']} steps; press Reset to start again"
                break
            self.opt.zero_grad()
            logits = self.model(self.x)
            loss = self._F.cross_entropy(logits, self.y)
            loss.backward()
            with dagrad.no_grad():
                train_acc = float((logits.argmax(1).numpy() == self.y.numpy()).mean())
                test_acc = float((self.model(self.x_test).argmax(1).numpy() == self.y_test).mean())
            rec = {"step": len(self.history), "loss": _finite(loss.item()), "lr": self.lr,
                   "train_acc": train_acc, "test_acc": test_acc}
            self.history.append(rec)
            out.append(rec)
            if rec["loss"] is None:
                self.stopped = "the loss overflowed: the run diverged; lower the learning rate and press Reset"
                break
            self.opt.step()
        return out

    def state(self):
        """The run's state read off the loss alone (no best fit is known here): diverging if it
        is not finite, grows by 1% a step or is over 3 times where it began, oscillating if it
        rises in at least 40% of the last steps without falling 0.5% a step, converged below
        1e-3, too slow if it falls by less than 0.1% a step, else converging."""
        h = self.history
        if h and h[-1]["loss"] is None:
            return "diverging"
        win = [r["loss"] for r in h[max(self._since, len(h) - WINDOW):]]
        if len(win) < 5:
            return "starting"
        rate = (max(win[-1], 1e-300) / max(win[0], 1e-300)) ** (1.0 / (len(win) - 1))
        ups = sum(1 for a, b in zip(win, win[1:]) if b > a)
        # tanh saturates, so the loss of a rate far too large stays finite: it jumps far above
        # where it began (ln 10 for 10 classes) and bounces there
        if rate > 1.01 or win[-1] > 3 * h[0]["loss"]:
            return "diverging"
        if ups >= 0.4 * (len(win) - 1) and rate > 0.995:
            return "oscillating"
        if win[-1] < 1e-3:
            return "converged"
        if rate > 0.999:
            return "too slow"
        return "converging"

    def summary(self):
        st = self.state()
        why = {"converged": "the training loss is near 0: the network fits the training set",
               "converging": "the loss falls steadily"}.get(st, STATES[st])
        last = self.history[-1] if self.history else {}
        return {"state": st, "why": why, "lr": self.lr, "steps": len(self.history), "stopped": self.stopped,
                "train_acc": last.get("train_acc"), "test_acc": last.get("test_acc"), "w": None, "b": None}

    def data(self):
        return {"task": "digits", "source": self.source, "train": self.sizes[0], "test": self.sizes[1]}
