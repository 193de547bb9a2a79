"""Worker process of bench_vs_torch.py: imports one framework only and runs timed workloads.

Run by the driver as ``python _bench_worker.py FRAMEWORK`` with FRAMEWORK one of dagrad, torch,
numpy. The driver sets the thread variables (DAGRAD_NUM_THREADS, OMP_NUM_THREADS, ...) in the
environment before this process starts, so they are in place before the framework is imported.

Protocol: one JSON command per line on stdin; one line per answer on the original stdout,
``@@OK {json}`` or ``@@ERR message``. Anything the libraries print goes to stderr.
Commands: {"op": "setup", "key": K, "case": {...}, "warm_s": S} builds the case, repeats it for
S seconds (warm-up) and answers the fastest time of one repetition; {"op": "run", "key": K,
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


CASES = {"scalar_chain": ScalarChain, "mlp": MLPStep, "branches": Branches, "gemm": Gemm}


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
