"""Worker process of bench_vs_torch.py: imports one framework only and runs timed workloads.

Run by the driver as ``python _bench_worker.py FRAMEWORK`` with FRAMEWORK one of dagrad, torch,
numpy. The driver sets the thread variables (DAGRAD_NUM_THREADS, OMP_NUM_THREADS, ...) in the
environment before this process starts, so they are in place before the framework is imported.

Protocol: one JSON command per line on stdin; one line per answer on the original stdout,
``@@OK {json}`` or ``@@ERR message``. Anything the libraries print goes to stderr.
Commands: {"op": "setup", "key": K, "case": {...}, "warm_s": S} builds the case, repeats it for
S seconds (warm-up) and answers the fastest time of one repetition (and, for a case that has
one, its parameter "signature": [[name, shape], ...]); {"op": "run", "key": K,
"reps": R} answers the mean time of R repetitions (seconds); {"op": "drop", "key": K};
{"op": "quit"}.
"""
import gc
import json
import os
import sys
import time
import traceback

FW = sys.argv[1]

# The protocol keeps the real stdout; stray prints from the libraries go to stderr.
_proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

import numpy as np  # noqa: E402  (needed by every worker: the shared random data)

THREADS = int(os.environ.get("BENCH_THREADS", "1"))

if FW == "dagrad":
    import dagrad
    import dagrad.nn.functional as DF
    dagrad.set_num_threads(THREADS)
    INFO = {"framework": "dagrad", "version": dagrad.__version__, "threads": dagrad.get_num_threads()}
    try:
        cfg = dagrad._core._config()
        INFO["blas"] = str(cfg.get("blas"))
        INFO["compiler"] = str(cfg.get("compiler"))
    except Exception:  # pragma: no cover - informational only
        pass
    INFO["core_path"] = os.path.realpath(dagrad._core.__file__)
    INFO["core_mtime"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(os.path.getmtime(INFO["core_path"])))
    INFO["package_dir"] = os.path.dirname(os.path.realpath(dagrad.__file__))
elif FW == "torch":
    import torch
    import torch.nn.functional as TF
    torch.set_num_threads(THREADS)
    INFO = {"framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads()}
elif FW == "numpy":
    INFO = {"framework": "numpy", "version": np.__version__, "threads": THREADS}
    try:  # informational only: the env var set by the driver is what limits the threads
        import threadpoolctl
        INFO["blas_pools"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "version",
                                                      "architecture")}
                              for p in threadpoolctl.threadpool_info()]
    except Exception:
        pass
else:
    raise SystemExit(f"unknown framework {FW!r}")
INFO["env"] = {k: os.environ.get(k) for k in (
    "DAGRAD_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY")}


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _to(a, requires_grad=False):
    """A numpy array as a leaf of this worker's framework."""
    if FW == "dagrad":
        return dagrad.tensor(a, requires_grad=requires_grad)
    if FW == "torch":
        return torch.from_numpy(np.ascontiguousarray(a)).clone().requires_grad_(requires_grad)
    return np.ascontiguousarray(a)


def _no_grad():
    return dagrad.no_grad() if FW == "dagrad" else torch.no_grad()


# ----------------------------------------------------------------------------------- cases
# Each case: build from a dict of parameters, then `once()` runs one repetition; `check` holds
# values that the driver compares between frameworks (free correctness checks).

class ScalarChain:
    """(a) x = relu(x*w + b) repeated `iters` times: 3 op nodes per iteration."""

    def __init__(self, p):
        self.iters, self.backward = p["iters"], p["backward"]
        relu = dagrad.relu if FW == "dagrad" else torch.relu
        self.relu = relu
        self.x0 = _to(np.float32(p["x0"]), True)
        self.w = _to(np.float32(p["w"]), True)
        self.b = _to(np.float32(p["b"]), True)
        self.check = None
        self.once()
        self.check = {"out": self.last_out}
        if self.backward:
            self.check.update({"dx0": float(self.x0.grad.item()), "dw": float(self.w.grad.item()),
                               "db": float(self.b.grad.item())})

    def once(self):
        x0, w, b, relu = self.x0, self.w, self.b, self.relu
        if self.backward:
            x0.grad = None
            w.grad = None
            b.grad = None
        x = x0
        for _ in range(self.iters):
            x = relu(x * w + b)
        if self.backward:
            x.backward()          # dagrad: forward and backward in one scheduler run
        self.last_out = x.item()  # dagrad (forward only): the forward run happens here


def _mlp_params(sizes, seed):
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        out.append((_f32(rng.uniform(-bound, bound, (fan_out, fan_in))),
                    _f32(rng.uniform(-bound, bound, (fan_out,)))))
    return out


class MLPStep:
    """(b) one training step: zero_grad, forward, loss, backward, SGD(lr=0.01, momentum=0.9)."""

    def __init__(self, p):
        sizes, batch, act, loss = p["sizes"], p["batch"], p["act"], p["loss"]
        compiled = p.get("compiled", False)
        rng = np.random.default_rng(p.get("seed", 0) + 1)
        x_np = _f32(rng.standard_normal((batch, sizes[0])))
        if loss == "mse":
            y_np = _f32(rng.standard_normal((batch, sizes[-1])))
        else:
            y_np = rng.integers(0, sizes[-1], size=batch).astype(np.int64)
        params = _mlp_params(sizes, p.get("seed", 0))
        nn = dagrad.nn if FW == "dagrad" else torch.nn
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh() if act == "tanh" else nn.ReLU())
        model = nn.Sequential(*layers)
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        with _no_grad():
            for lin, (w, b) in zip(linears, params):
                if FW == "dagrad":
                    lin.weight.copy_(dagrad.tensor(w))
                    lin.bias.copy_(dagrad.tensor(b))
                else:
                    lin.weight.copy_(torch.from_numpy(w))
                    lin.bias.copy_(torch.from_numpy(b))
        del params
        if FW == "dagrad":
            opt = dagrad.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            lossf = DF.mse_loss if loss == "mse" else DF.cross_entropy
        else:
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            lossf = TF.mse_loss if loss == "mse" else TF.cross_entropy
        self.x, self.y = _to(x_np), _to(y_np)

        def train_step(x, y):
            opt.zero_grad()
            out = lossf(model(x), y)
            out.backward()
            opt.step()
            return out

        self.model, self.opt = model, opt
        if compiled:
            step = dagrad.compile(train_step)
            self.losses = [step(self.x, self.y).item()]     # the trace (runs the step once)
        else:
            step = train_step
            self.losses = []
        self.step = step
        self.check = None
        # warm-up: at least one step past the trace (2 for the small models)
        for _ in range(p.get("warmup", 2)):
            self.losses.append(float(self.step(self.x, self.y).item()))
        self.check = {"loss_step1": self.losses[0]}

    def once(self):
        self.step(self.x, self.y)


class Branches:
    """(c) `branches` independent chains x_{k+1} = tanh(x_k @ W_k), `depth` matmuls each."""

    def __init__(self, p):
        n, nb, depth = p["n"], p["branches"], p["depth"]
        self.backward = p["backward"]
        rng = np.random.default_rng(7)
        self.xs = [_to(_f32(rng.standard_normal((n, n)))) for _ in range(nb)]
        self.ws = [[_to(_f32(rng.standard_normal((n, n)) * (1.0 / np.sqrt(n))), self.backward)
                    for _ in range(depth)] for _ in range(nb)]
        self.tanh = dagrad.tanh if FW == "dagrad" else torch.tanh
        self.check = None
        self.once()
        if self.backward:
            g = self.ws[0][0].grad
            self.check = {"grad_w00_sum": float(g.sum().item()),
                          "grad_w00_first": [float(v) for v in np.asarray(g.numpy() if FW == "dagrad"
                                                                          else g.detach().numpy())[0, :4]]}
        else:
            self.check = {"out0_sum": float(self.outs[0].sum().item())}

    def _forward(self):
        tanh = self.tanh
        outs = []
        for x, ws in zip(self.xs, self.ws):
            for w in ws:
                x = tanh(x @ w)
            outs.append(x)
        return outs

    def once(self):
        if self.backward:
            for ws in self.ws:
                for w in ws:
                    w.grad = None
            outs = self._forward()
            total = outs[0].sum()
            for o in outs[1:]:
                total = total + o.sum()
            total.backward()      # dagrad: all 8 branches, forward and backward, in one run
        else:
            with _no_grad():
                outs = self._forward()
                if FW == "dagrad":
                    dagrad.realize(*outs)   # all 8 outputs in one scheduler run
        self.outs = outs


class Gemm:
    """(d) C = A @ B, float32: dagrad realizes one matmul node; numpy calls a @ b."""

    def __init__(self, p):
        m, k, n = p["m"], p["k"], p["n"]
        rng = np.random.default_rng(11)
        a, b = _f32(rng.standard_normal((m, k))), _f32(rng.standard_normal((k, n)))
        self.a, self.b = _to(a), _to(b)
        self.check = None
        self.once()
        c = self.c.numpy() if FW == "dagrad" else self.c
        self.check = {"c_row0": [float(v) for v in c[0, :4]], "c_last": float(c[-1, -1])}
        self.c = None

    def once(self):
        if FW == "dagrad":
            c = self.a @ self.b
            dagrad.realize(c)
        else:
            c = self.a @ self.b
        self.c = c


EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


def _char_rnn_text():
    """examples/char_rnn.py's TEXT, read from the source: importing the example imports dagrad,
    which the torch worker must not do."""
    import ast
    with open(os.path.join(EXAMPLES, "char_rnn.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TEXT" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("examples/char_rnn.py has no TEXT = ... assignment")


def _example(name):
    """A module of examples/ (dagrad worker only: the examples import dagrad)."""
    import importlib
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


def _build_net(name, vocab=None):
    """(e) the model of one training step, in this worker's framework.

    dagrad runs the examples' own classes (char_rnn.CharRNN, digits_cnn.DigitsCNN); torch runs
    the same layers written with torch.nn. Parameter names and shapes are PyTorch's in both
    (the driver compares them)."""
    nn = dagrad.nn if FW == "dagrad" else torch.nn
    relu = DF.relu if FW == "dagrad" else TF.relu
    if name == "lenet":
        return nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "lstm":
        class LSTMNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(32, 128)
                self.fc = nn.Linear(128, 10)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.fc(out[-1])
        return LSTMNet()
    if name == "char_rnn":
        if FW == "dagrad":
            return _example("char_rnn").CharRNN(vocab, 128)

        class CharRNN(nn.Module):   # examples/char_rnn.py's CharRNN, in torch
            def __init__(self, vocab, hidden):
                super().__init__()
                self.embed = nn.Embedding(vocab, 32)
                self.rnn = nn.RNN(32, hidden, batch_first=True)
                self.head = nn.Linear(hidden, vocab)

            def forward(self, idx, h=None):
                out, h = self.rnn(self.embed(idx), h)
                return self.head(out), h
        return CharRNN(vocab, 128)
    if name == "digits_cnn":
        if FW == "dagrad":
            return _example("digits_cnn").DigitsCNN()

        class DigitsCNN(nn.Module):   # examples/digits_cnn.py's DigitsCNN, in torch
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
                self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
                self.pool = nn.MaxPool2d(2)
                self.fc = nn.Linear(32 * 2 * 2, 10)

            def forward(self, x):
                x = x.reshape(-1, 1, 8, 8)
                x = self.pool(relu(self.conv1(x)))
                x = self.pool(relu(self.conv2(x)))
                return self.fc(x.flatten(1))
        return DigitsCNN()
    raise ValueError(f"unknown net {name!r}")


def _fill_params(model, seed):
    """Sets every parameter, in sorted name order, from one seeded numpy RNG: U(-b, b) with
    b = 1/sqrt(fan_in), fan_in = prod(shape[1:]) (shape[0] for 1-d). The same names and shapes in
    both frameworks give the same values. Returns [[name, shape], ...] for the driver to compare."""
    rng = np.random.default_rng(seed)
    sig = []
    with _no_grad():
        for name, prm in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            shape = tuple(int(d) for d in prm.shape)
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            bound = 1.0 / np.sqrt(fan_in)
            w = _f32(rng.uniform(-bound, bound, shape))
            prm.copy_(dagrad.tensor(w) if FW == "dagrad" else torch.from_numpy(w))
            sig.append([name, list(shape)])
    return sig


class NetStep:
    """(e) one training step of a CNN or RNN: zero_grad, forward, cross-entropy, backward, optimizer
    step. p["net"]: lenet (SGD 0.01 m0.9, batch 64 of 1x28x28), lstm (SGD 0.01 m0.9, 35 steps of
    batch 32 x 32 features, seq-first), char_rnn (examples/char_rnn.py's step: Adam 3e-3, batch 16
    of 32 characters), digits_cnn (examples/digits_cnn.py's step: Adam 2e-3, batch 64 of 8x8).
    p["compiled"]: dagrad only, the step under dagrad.compile."""

    def __init__(self, p):
        net, compiled = p["net"], p.get("compiled", False)
        rng = np.random.default_rng(p.get("seed", 0) + 1)
        vocab = None
        if net == "lenet":
            x_np = _f32(rng.standard_normal((64, 1, 28, 28)))
            y_np = rng.integers(0, 10, size=64).astype(np.int64)
        elif net == "lstm":
            x_np = _f32(rng.standard_normal((35, 32, 32)))
            y_np = rng.integers(0, 10, size=32).astype(np.int64)
        elif net == "char_rnn":
            # as examples/char_rnn.py builds a batch: 16 windows of 32 characters and the next ones
            text = _char_rnn_text()
            chars = sorted(set(text))
            vocab = len(chars)
            stoi = {c: i for i, c in enumerate(chars)}
            data = np.array([stoi[c] for c in text], dtype=np.int64)
            starts = rng.integers(0, len(data) - 32 - 1, size=16)
            x_np = np.stack([data[s:s + 32] for s in starts])
            y_np = np.stack([data[s + 1:s + 33] for s in starts])
        elif net == "digits_cnn":
            x_np = _f32(rng.standard_normal((64, 64)))   # the example feeds flat 64-feature rows
            y_np = rng.integers(0, 10, size=64).astype(np.int64)
        else:
            raise ValueError(f"unknown net {net!r}")
        model = _build_net(net, vocab)
        self.signature = _fill_params(model, p.get("seed", 0))
        optim = dagrad.optim if FW == "dagrad" else torch.optim
        lossf = DF.cross_entropy if FW == "dagrad" else TF.cross_entropy
        if net in ("lenet", "lstm"):
            opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        else:
            opt = optim.Adam(model.parameters(), lr=3e-3 if net == "char_rnn" else 2e-3)
        self.x, self.y = _to(x_np), _to(y_np)

        if net == "char_rnn":
            def train_step(x, y):      # examples/char_rnn.py's step
                opt.zero_grad()
                logits, _ = model(x)
                loss = lossf(logits.reshape(-1, vocab), y.reshape(-1))
                loss.backward()
                opt.step()
                return loss
        else:
            def train_step(x, y):
                opt.zero_grad()
                loss = lossf(model(x), y)
                loss.backward()
                opt.step()
                return loss

        self.model, self.opt = model, opt
        if compiled:
            if FW != "dagrad":
                raise ValueError("compiled: dagrad only")
            step = dagrad.compile(train_step)
            self.losses = [step(self.x, self.y).item()]     # the trace (runs the step once)
        else:
            step = train_step
            self.losses = []
        self.step = step
        self.check = None
        for _ in range(max(2, p.get("warmup", 2))):
            self.losses.append(float(self.step(self.x, self.y).item()))
        # step 2's loss comes after one optimizer step: it checks the gradients and the update too
        self.check = {"loss_step1": self.losses[0], "loss_step2": self.losses[1]}

    def once(self):
        self.step(self.x, self.y)


CASES = {"scalar_chain": ScalarChain, "mlp": MLPStep, "branches": Branches, "gemm": Gemm, "net": NetStep}


def _time(fn, reps):
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        t1 = time.perf_counter()
    finally:
        if was:
            gc.enable()
    return (t1 - t0) / reps


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def _warm_up():
    """First-use costs (lazy module loading, allocator, thread pool start) paid before timing."""
    if FW == "numpy":
        np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)
        return
    MLPStep({"sizes": [8, 8, 2], "batch": 4, "act": "relu", "loss": "ce", "warmup": 2,
             "compiled": False})
    if FW == "dagrad":
        MLPStep({"sizes": [8, 8, 2], "batch": 4, "act": "tanh", "loss": "mse", "warmup": 2,
                 "compiled": True})
    Branches({"n": 8, "branches": 2, "depth": 2, "backward": True})


def main():
    live = {}
    _warm_up()
    _proto.write("@@OK " + json.dumps(INFO) + "\n")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                _proto.write("@@OK {}\n")
                break
            if op == "setup":
                spec = cmd["case"]
                t0 = time.perf_counter()
                obj = CASES[spec["kind"]](spec)
                setup_s = time.perf_counter() - t0
                # warm-up: repeat for warm_s seconds (at least twice when warm_s > 0)
                warm_s, t_one, n, t_warm = float(cmd.get("warm_s", 0.0)), None, 0, time.perf_counter()
                while True:
                    t = _time(obj.once, 1)
                    t_one = t if t_one is None else min(t_one, t)
                    n += 1
                    if warm_s <= 0 or (n >= 2 and time.perf_counter() - t_warm >= warm_s):
                        break
                live[cmd["key"]] = obj
                ans = {"t_one": t_one, "setup_s": setup_s, "warm_runs": n, "check": obj.check}
                if getattr(obj, "signature", None) is not None:
                    ans["signature"] = obj.signature
            elif op == "run":
                obj = live[cmd["key"]]
                c0 = _cpu_seconds()
                t = _time(obj.once, int(cmd["reps"]))
                ans = {"t": t, "cpu_s": _cpu_seconds() - c0}
            elif op == "drop":
                live.pop(cmd["key"], None)
                gc.collect()
                ans = {}
            else:
                raise ValueError(f"unknown op {op!r}")
            _proto.write("@@OK " + json.dumps(ans) + "\n")
        except Exception:
            msg = traceback.format_exc().replace("\n", "\\n")
            _proto.write("@@ERR " + msg + "\n")


if __name__ == "__main__":
    main()
