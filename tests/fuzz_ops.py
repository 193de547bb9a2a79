"""A fuzz target for dagrad: random op sequences, run in a subprocess, that must never crash.

Each sequence is drawn from one integer seed. It creates tensors of random shapes (0-d and
empty ones included) and dtypes, and applies random ops to them: elementwise ops with tensors
and Python scalars, indexing, reductions over random dims, reshape/permute/squeeze, matmul,
cat/stack/split/chunk, gather, windowed ops (conv, pool, unfold, fold, pad) with random and
sometimes overflowing sizes, losses, in-place ops, backward, no_grad, realize, compile, threads.
Arguments are mostly valid and sometimes not (dims out of range, shapes that do not fit,
indices out of bounds, sizes that overflow int64).

A sequence passes when every line either works or raises one of dagrad's documented exception
types (ValueError, TypeError, IndexError, RuntimeError, MemoryError). It fails on any other
exception, on a signal (segfault, SIGFPE, abort, a sanitizer report) and on a hang.

Usage:

    python tests/fuzz_ops.py --seconds 600 --seed 1000    # seeds 1000, 1001, ... for 10 minutes
    python tests/fuzz_ops.py --replay 1234                # one sequence here, printing each line
    python tests/fuzz_ops.py --print 1234                 # the sequence as a Python script
    python tests/fuzz_ops.py --minimize 1234              # cut a failing one down to a few lines

A failure prints the seed, how the worker ended, and the sequence up to the failing line as a
self-contained Python script (lines that raised an allowed exception are commented out).
Sequences are generated from the tensors' actual shapes as they run, so a seed replays the
same lines as long as dagrad behaves the same. Several sequences share one worker process (a
process start costs more than a sequence); the failing seed is re-run alone to check that it
fails by itself, and otherwise the whole range of seeds the worker ran is printed.
"""
import argparse
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
import traceback

ALLOWED = (ValueError, TypeError, IndexError, RuntimeError, MemoryError)

# Exit codes of the worker.
EXIT_OK = 0
EXIT_UNEXPECTED = 3  # an exception outside ALLOWED

# Executed before every sequence (and printed at the top of every reproducer).
PRELUDE = '''\
import numpy as np
import dagrad
import dagrad.nn.functional as F


def mk(shape, dtype="float32", seed=0, special=False, low=-6, high=7):
    """Random data: normal floats (NaN, +-inf, -0.0 and 1e30 sprinkled in when special),
    ints in [low, high), or booleans. Data past 2**28 elements is refused as a MemoryError:
    drawing gigabytes of random numbers tests numpy, not dagrad, and under ASan (no address
    cap there) it would pass for a hang."""
    if int(np.prod(shape, dtype=object)) > 2**28:
        raise MemoryError(f"mk: {shape} is too large to draw")
    g = np.random.default_rng(seed)
    if dtype == "bool":
        return dagrad.tensor(g.random(shape) < 0.5)
    if dtype == "int64":
        return dagrad.tensor(g.integers(low, high, size=shape, dtype=np.int64))
    a = g.standard_normal(shape) * 3
    if special and a.size:
        flat = a.reshape(-1)
        k = g.integers(0, flat.size, size=max(1, flat.size // 4))
        flat[k] = g.choice([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e30], size=k.size)
    return dagrad.tensor(a.astype(dtype))


def _grad_step(a):
    y = (a * a).sum()
    if a.requires_grad:
        y.backward()
    return y


c_sum = dagrad.compile(lambda a: (a * 2.0).sum())
c_grad = dagrad.compile(_grad_step)
'''

DTYPES = ("float32", "float64", "int64", "bool")
# Sizes that are negative, or that no machine can allocate, or whose products overflow int64
# (or wrap to 0). None of them may be something a machine could actually allocate: a fuzz run
# must not fill the memory of the machine it runs on.
HOSTILE_SIZES = (-1, -2**31, 2**62, 2**63 - 1, 2**64)
# Kernel sizes, paddings, strides and dilations of 2-d windowed ops: a padding of 2**31 - 2 on
# both sides of both dims gives an output of 2**64 elements.
HOSTILE_WINDOW = HOSTILE_SIZES + (2**31 - 2, 2**32)
# Tensors up to this many elements are used by later lines; bigger ones are only realized, and
# only when they are too big to exist (then realizing them must raise).
MAX_LIVE = 10**5
MIN_IMPOSSIBLE = 2**45


class Fuzzer:
    """Draws one sequence from ``seed``; each line is chosen from the live tensors' shapes."""

    def __init__(self, seed, n_lines=None):
        self.seed = seed
        self.r = random.Random(seed)
        self.n_lines = n_lines if n_lines is not None else self.r.randint(8, 40)
        self.env = {}
        self.names = []
        self.impossible = []  # tensors whose shape no machine can hold
        self.counter = 0

    # ----------------------------------------------------------------- small draws
    def chance(self, p):
        return self.r.random() < p

    def new(self):
        self.counter += 1
        return f"t{self.counter}"

    def pick(self, pred=None):
        names = [n for n in self.names if pred is None or pred(self.env[n])]
        return self.r.choice(names) if names else None

    def shape(self, max_dims=4):
        nd = self.r.choice((0, 1, 1, 2, 2, 2, 3, 3, 4)[: max_dims * 2 + 1])
        return tuple(self.r.choice((0, 1, 1, 2, 3, 3, 4, 5)) for _ in range(nd))

    def size(self):
        if self.chance(0.03):
            return self.r.choice(HOSTILE_SIZES)
        return self.r.choice((0, 1, 2, 3, 4, 5))

    def dim(self, nd):
        if self.chance(0.1):
            return self.r.choice((nd, -nd - 1, 2**31, -2**63, 5))
        n = max(nd, 1)
        return self.r.randint(-n, n - 1)

    def dims(self, nd):
        c = self.r.random()
        if c < 0.2:
            return None
        if c < 0.7 or nd == 0:
            return self.dim(nd)
        k = self.r.randint(1, nd)
        out = self.r.sample(range(nd), k)
        if self.chance(0.1):
            out.append(out[0])
        return tuple(d - nd if self.chance(0.3) else d for d in out)

    def scalar(self):
        return repr(self.r.choice((0, 1, -1, 2, 3, 0.5, -2.5, True, False, 2**53 + 1, -2**62,
                                   1e30, float("nan"), float("inf"), -0.0, 1e-30)))\
            .replace("nan", 'float("nan")').replace("inf", 'float("inf")')

    def mk(self, shape=None, dtype=None, requires_grad=None):
        shape = self.shape() if shape is None else shape
        dtype = dtype or self.r.choice(DTYPES)
        special = dtype.startswith("float") and self.chance(0.3)
        src = f"mk({shape!r}, {dtype!r}, {self.r.randrange(10**6)}" + (", special=True)" if special else ")")
        if requires_grad is None:
            requires_grad = dtype.startswith("float") and self.chance(0.4)
        return src + (".requires_grad_()" if requires_grad else "")

    def tensor_src(self, pred=None):
        n = self.pick(pred)
        return n if n is not None and self.chance(0.8) else self.mk()

    def float_var(self):
        return self.pick(lambda t: t.dtype.name.startswith("float"))

    # ----------------------------------------------------------------- line generators
    def g_create(self):
        t = self.new()
        c = self.r.random()
        if c < 0.6:
            return t, f"{t} = {self.mk()}"
        sizes = [str(self.size()) for _ in range(self.r.randint(0, 3))]
        dt = self.r.choice(("", "dtype=dagrad.float64", "dtype=dagrad.int64", "dtype=dagrad.bool"))
        args = ", ".join(sizes + [dt] if dt else sizes)
        tup = "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"
        return t, self.r.choice((
            f"{t} = dagrad.zeros({args})",
            f"{t} = dagrad.ones({args})",
            f"{t} = dagrad.full({tup}, {self.scalar()}{', ' + dt if dt else ''})",
            f"{t} = dagrad.empty({args})",
            f"{t} = dagrad.randn({', '.join(sizes)})",
            f"{t} = dagrad.arange({self.r.randint(-3, 3)}, {self.r.randint(-3, 8)}, {self.r.choice((1, 2, -1, 0.5))})",
            f"{t} = dagrad.linspace(0, 1, {self.r.choice((0, 1, 5, -1))})",
            f"{t} = dagrad.tensor({self.scalar()})",
        ))

    UNARY = ("exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "sign", "sin", "cos", "neg",
             "log1p", "expm1", "erf", "square", "rsqrt")
    F_UNARY = ("relu6", "gelu", "silu", "elu", "leaky_relu", "softplus")

    def g_unary(self):
        a, t = self.tensor_src(), self.new()
        c = self.r.random()
        if c < 0.6:
            return t, f"{t} = dagrad.{self.r.choice(self.UNARY)}({a})"
        if c < 0.8:
            return t, f"{t} = F.{self.r.choice(self.F_UNARY)}({a})"
        op = self.r.choice(("softmax", "log_softmax", "logsumexp"))
        x = self.env.get(a)
        nd = x.ndim if x is not None else 2
        return t, f"{t} = {a}.{op}({self.dim(nd)})"

    BINARY = ("+", "-", "*", "/", "==", "<", ">=", "!=")

    def g_binary(self):
        a, t = self.tensor_src(), self.new()
        c = self.r.random()
        if c < 0.35:
            return t, f"{t} = {a} {self.r.choice(self.BINARY)} {self.tensor_src()}"
        if c < 0.6:
            s = self.scalar()
            op = self.r.choice(self.BINARY)
            return t, f"{t} = {a} {op} {s}" if self.chance(0.5) else f"{t} = {s} {op} {a}"
        if c < 0.7:
            return t, f"{t} = {a} ** {self.r.choice((0, 1, 2, 3, -1, 0.5, -0.5, 2**40))}"
        if c < 0.85:
            return t, f"{t} = dagrad.{self.r.choice(('maximum', 'minimum'))}({a}, {self.tensor_src()})"
        if c < 0.93:
            lo, hi = self.r.choice(("None", self.scalar())), self.r.choice(("None", self.scalar()))
            return t, f"{t} = {a}.clamp({lo}, {hi})"
        cond = self.tensor_src(lambda x: x.dtype.name == "bool")
        b = self.tensor_src() if self.chance(0.5) else self.scalar()
        return t, f"{t} = dagrad.where({cond}, {a}, {b})"

    def key_part(self, size):
        c = self.r.random()
        if c < 0.25:
            return str(self.r.randint(-size - 1, size) if not self.chance(0.05) else self.r.choice((2**63 - 1, -2**63)))
        if c < 0.5:
            b = lambda: self.r.choice(("None", str(self.r.randint(-size - 2, size + 2))))  # noqa: E731
            step = self.r.choice(("None", "1", "2", "3", "-1", "0"))
            return f"slice({b()}, {b()}, {step})"
        if c < 0.6:
            return "None"
        if c < 0.65:
            return "..."
        n = self.r.randint(0, 3)
        idx = [self.r.randint(-size - 1, size) for _ in range(n)]
        if c < 0.8:
            return repr(idx)
        if c < 0.9:
            return f"dagrad.tensor({idx!r}, dtype=dagrad.int64)"
        return f"dagrad.tensor({[self.chance(0.5) for _ in range(size)]!r}, dtype=dagrad.bool)"

    def g_index(self):
        a = self.pick()
        if a is None:
            return self.g_create()
        shape = self.env[a].shape
        parts = [self.key_part(shape[i] if i < len(shape) else 1) for i in range(self.r.randint(0, len(shape) + 1))]
        t = self.new()
        key = ", ".join(parts) + ("," if len(parts) == 1 else "") if parts else "()"
        return t, f"{t} = {a}[{key}]"

    REDUCTIONS = ("sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "var", "std")

    def g_reduce(self):
        a = self.pick()
        if a is None:
            return self.g_create()
        t, op = self.new(), self.r.choice(self.REDUCTIONS)
        nd = self.env[a].ndim
        d = self.dims(nd) if op in ("sum", "mean", "amax", "amin", "var", "std") else (
            None if self.chance(0.25) else self.dim(nd))
        if d is None:
            return t, f"{t} = {a}.{op}()"
        extra = f", correction={self.r.choice((0, 1, 2, -1))}" if op in ("var", "std") and self.chance(0.5) else ""
        sel = "[0]" if op in ("max", "min") else ""
        return t, f"{t} = {a}.{op}({d!r}, keepdim={self.chance(0.5)}{extra}){sel}"

    def g_shape(self):
        a = self.pick()
        if a is None:
            return self.g_create()
        x, t = self.env[a], self.new()
        nd, n = x.ndim, math.prod(x.shape)
        c = self.r.random()
        if c < 0.25:
            if self.chance(0.7) and n > 0:  # n <= MAX_LIVE
                f = self.r.choice([d for d in range(1, n + 1) if n % d == 0])
                shape = self.r.choice(((f, -1), (-1, f), (n,), (f, n // f, 1), (-1,)))
            else:
                shape = tuple(self.size() if self.chance(0.5) else -1 for _ in range(self.r.randint(0, 3)))
            return t, f"{t} = {a}.{self.r.choice(('reshape', 'view'))}{shape!r}"
        if c < 0.4:
            perm = list(range(nd))
            self.r.shuffle(perm)
            if self.chance(0.15):
                perm = perm[:-1] or [0, 0]
            return t, f"{t} = {a}.permute({', '.join(map(str, perm))})"
        if c < 0.5:
            return t, f"{t} = {a}.transpose({self.dim(nd)}, {self.dim(nd)})"
        if c < 0.6:
            return t, f"{t} = {a}.squeeze({'' if self.chance(0.3) else self.dim(nd)})"
        if c < 0.7:
            return t, f"{t} = {a}.unsqueeze({self.dim(nd + 1)})"
        if c < 0.8:
            return t, f"{t} = {a}.flatten({self.dim(nd)}, {self.dim(nd)})"
        if c < 0.9:
            shape = tuple(s if self.chance(0.6) else self.r.choice((1, 2, 3, -1, 0)) for s in x.shape)
            if self.chance(0.5):
                shape = (self.r.choice((1, 2, 3)),) + shape
            return t, f"{t} = {a}.expand{shape!r}" if self.chance(0.5) else f"{t} = {a}.broadcast_to({shape!r})"
        return t, f"{t} = {a}.T"

    def g_matmul(self):
        a = self.pick(lambda x: x.ndim >= 1) or self.mk((self.r.randint(0, 4), self.r.randint(0, 4)), "float32")
        t = self.new()
        if self.chance(0.4):
            return t, f"{t} = {a} @ {self.tensor_src()}"
        x = self.env.get(a)
        k = x.shape[-1] if x is not None else 0
        if x is not None and not self.chance(0.1):
            dt = x.dtype.name
        else:
            dt = self.r.choice(DTYPES)
        shape = self.r.choice(((k,), (k, self.r.randint(0, 4)), (self.r.randint(1, 3), k, self.r.randint(0, 4))))
        return t, f"{t} = {a} @ {self.mk(shape, dt)}"

    def g_join(self):
        a = self.pick()
        if a is None:
            return self.g_create()
        x, t = self.env[a], self.new()
        nd = x.ndim
        c = self.r.random()
        if c < 0.5:
            others = [a] + [self.tensor_src() if self.chance(0.3) else self.mk(x.shape, x.dtype.name)
                            for _ in range(self.r.randint(0, 2))]
            fn = self.r.choice(("cat", "stack"))
            return t, f"{t} = dagrad.{fn}([{', '.join(others)}], {self.dim(nd + (fn == 'stack'))})"
        k = self.r.randint(0, 2)
        if c < 0.75:
            arg = self.r.choice((self.r.randint(-1, 4), [self.r.randint(-1, 3) for _ in range(self.r.randint(0, 3))]))
            return t, f"{t} = {a}.split({arg!r}, {self.dim(nd)})[{k}]"
        return t, f"{t} = {a}.chunk({self.r.randint(-1, 5)}, {self.dim(nd)})[{k}]"

    def g_gather(self):
        a = self.pick()
        if a is None:
            return self.g_create()
        x, t = self.env[a], self.new()
        d = self.dim(x.ndim)
        shape = tuple(max(0, s - self.r.randint(0, 1)) for s in x.shape) if self.chance(0.8) else self.shape()
        hi = (x.shape[d] if -x.ndim <= d < x.ndim else 1) + (1 if self.chance(0.1) else 0)
        lo = -1 if self.chance(0.1) else 0
        return t, f"{t} = {a}.gather({d}, {self.mk(shape, 'int64')[:-1]}, low={lo}, high={max(hi, lo + 1)}))"

    def g_window(self):
        t = self.new()
        hostile = self.chance(0.15)
        def v(lo, hi):
            return self.r.choice(HOSTILE_WINDOW) if hostile and self.chance(0.5) else self.r.randint(lo, hi)
        x4 = self.pick(lambda x: x.ndim == 4 and x.dtype.name.startswith("float")) or self.mk(
            (self.r.randint(0, 2), self.r.randint(1, 3), self.r.randint(0, 6), self.r.randint(0, 6)),
            self.r.choice(("float32", "float64")))
        c = self.r.random()
        if c < 0.25:
            cin = self.env[x4].shape[1] if x4 in self.env else 2
            w = self.mk((self.r.randint(1, 3), cin, v(1, 3), v(1, 3)), "float32")
            return t, (f"{t} = F.conv2d({x4}, {w}, None, stride={v(1, 2)}, padding={v(0, 2)}, "
                       f"dilation={v(1, 2)}, groups={self.r.choice((1, 1, 2))})")
        if c < 0.4:
            return t, f"{t} = F.max_pool2d({x4}, {v(1, 3)}, stride={v(1, 2)}, padding={v(0, 1)})"
        if c < 0.55:
            return t, f"{t} = F.avg_pool2d({x4}, {v(1, 3)}, stride={v(1, 2)}, padding={v(0, 1)})"
        if c < 0.7:
            return t, f"{t} = F.unfold({x4}, {v(1, 3)}, dilation={v(1, 2)}, padding={v(0, 2)}, stride={v(1, 2)})"
        if c < 0.8:
            x3 = self.mk((self.r.randint(1, 2), self.r.randint(1, 8), self.r.randint(1, 8)), "float32")
            # (an output size of 2**31 - 2 by 4 could be allocated: sizes from HOSTILE_SIZES)
            def o():
                return self.r.choice(HOSTILE_SIZES) if hostile and self.chance(0.5) else self.r.randint(1, 4)
            return t, f"{t} = F.fold({x3}, ({o()}, {o()}), {v(1, 2)}, stride={v(1, 2)})"
        a = self.tensor_src()
        pads = [self.r.choice(HOSTILE_SIZES) if hostile and self.chance(0.3) else self.r.randint(-1, 2)
                for _ in range(self.r.choice((2, 4, 6, 1, 3)))]
        return t, f"{t} = F.pad({a}, {pads!r}, value={self.scalar()})"

    def g_loss(self):
        t = self.new()
        n, k = self.r.randint(0, 4), self.r.randint(1, 4)
        logits = self.pick(lambda x: x.ndim == 2 and x.dtype.name.startswith("float")) or self.mk((n, k), "float32")
        n = self.env[logits].shape[0] if logits in self.env else n
        k = self.env[logits].shape[1] if logits in self.env else k
        lo, hi = self.r.choice((0, 0, -1)), k + (1 if self.chance(0.1) else 0)
        tgt = self.mk((n + (1 if self.chance(0.1) else 0),), "int64")[:-1] + f", low={lo}, high={hi})"
        c = self.r.random()
        if c < 0.35:
            return t, (f"{t} = F.cross_entropy({logits}, {tgt}, ignore_index={self.r.choice((-100, 0, 1))}, "
                       f"label_smoothing={self.r.choice((0.0, 0.1))})")
        if c < 0.5:
            return t, f"{t} = F.nll_loss({logits}, {tgt})"
        if c < 0.65:
            return t, f"{t} = F.mse_loss({self.tensor_src()}, {self.tensor_src()})"
        if c < 0.8:
            return t, f"{t} = F.embedding({tgt}, {self.mk((self.r.randint(0, 5), self.r.randint(0, 3)), 'float32')})"
        if c < 0.9:
            return t, f"{t} = F.one_hot({tgt}, {self.r.choice((-1, 0, 3, 5))})"
        a = self.tensor_src()
        x = self.env.get(a)
        ns = tuple(x.shape[-self.r.randint(0, x.ndim):]) if x is not None and x.ndim else (self.r.randint(0, 3),)
        return t, f"{t} = F.layer_norm({a}, {ns!r})"

    def g_inplace(self):
        a = self.pick()
        if a is None:
            return self.g_create()
        c = self.r.random()
        other = self.scalar() if self.chance(0.5) else self.tensor_src()
        if c < 0.4:
            return None, f"{a} {self.r.choice(('+=', '-=', '*=', '/='))} {other}"
        if c < 0.6:
            return None, f"{a}.{self.r.choice(('add_', 'sub_', 'mul_', 'div_', 'copy_'))}({other})"
        if c < 0.75:
            return None, f"{a}.fill_({self.scalar()})"
        if c < 0.85:
            return None, f"{a}.zero_()"
        return None, f"{a}.data = {self.tensor_src()}"

    def g_autograd(self):
        a = self.float_var()
        if a is None:
            return self.g_create()
        c = self.r.random()
        if c < 0.35:
            return None, f"{a}.sum().backward(retain_graph={self.chance(0.3)})"
        if c < 0.45:
            return None, f"{a}.backward({self.tensor_src()})"
        if c < 0.55:
            t = self.new()
            return t, f"{t} = dagrad.autograd.grad({a}.sum(), [{self.tensor_src()}], allow_unused=True)[0]"
        if c < 0.65:
            return None, f"{a}.requires_grad_({self.chance(0.8)})"
        if c < 0.75:
            return None, f"{a}.grad = {self.r.choice(('None', self.tensor_src()))}"
        if c < 0.85:
            t = self.new()
            return t, f"{t} = {a}.grad if {a}.grad is not None else {a}.detach()"
        t = self.new()
        line = self.g_binary()[1] if self.chance(0.5) else self.g_unary()[1]
        return t, f"with dagrad.no_grad():\n    {t} = {line.split(' = ', 1)[1]}"

    def g_realize(self):
        names = self.r.sample(self.names, min(len(self.names), self.r.randint(1, 3))) if self.names else []
        c = self.r.random()
        if not names:
            return self.g_create()
        if c < 0.4:
            return None, f"dagrad.realize({', '.join(names)})"
        if c < 0.6:
            return None, f"_ = {names[0]}.numpy()"
        if c < 0.75:
            return None, f"_ = {names[0]}.item()"
        if c < 0.85:
            return None, f"_ = repr({names[0]})"
        return None, f"_ = {names[0]}.tolist()"

    def g_misc(self):
        c = self.r.random()
        a = self.pick()
        if c < 0.4 and a is not None:
            t = self.new()
            return t, f"{t} = {self.r.choice(('c_sum', 'c_grad'))}({a})"
        if c < 0.6:
            return None, f"dagrad.set_num_threads({self.r.choice((1, 2, 3, 4, 0, -1, 2**40))})"
        if c < 0.8 and a is not None:
            return None, f"with dagrad.profiler.profile():\n    dagrad.realize({a})"
        return None, f"_ = dagrad.autograd.gradcheck(lambda x: (x * x).sum(), [{self.mk((2,), 'float64', True)}])"

    GENERATORS = (("g_create", 10), ("g_unary", 8), ("g_binary", 12), ("g_index", 10), ("g_reduce", 10),
                  ("g_shape", 10), ("g_matmul", 5), ("g_join", 6), ("g_gather", 4), ("g_window", 5),
                  ("g_loss", 4), ("g_inplace", 6), ("g_autograd", 8), ("g_realize", 6), ("g_misc", 3))

    def next_line(self):
        names, weights = zip(*self.GENERATORS)
        if not self.names:
            return self.g_create()
        return getattr(self, self.r.choices(names, weights)[0])()

    def lines(self):
        """Yields (line, target) pairs; ``record(target)`` must be called after each ran."""
        for _ in range(self.n_lines):
            yield self.next_line()
        # Realize every tensor left, one at a time, so that every pending kernel runs.
        for n in self.names + self.impossible:
            yield None, f"_ = {n}.numpy()"

    def record(self, target):
        import dagrad
        x = self.env.get(target) if target else None
        if not isinstance(x, dagrad.Tensor):
            return
        n = math.prod(x.shape)
        if n <= MAX_LIVE:
            self.names.append(target)
        elif n >= MIN_IMPOSSIBLE:
            self.impossible.append(target)


# --------------------------------------------------------------------------- the worker

def _emit(tag, text=""):
    sys.stdout.write(f"{tag} {text.replace(chr(10), chr(92) + 'n')}\n")
    sys.stdout.flush()


def run_sequence(seed, verbose=False, emit=_emit):
    """Runs one sequence in this process. Returns normally or raises SystemExit(EXIT_UNEXPECTED)."""
    import dagrad
    threads = dagrad.get_num_threads()
    dagrad.set_grad_enabled(True)
    dagrad.manual_seed(seed)
    fz = Fuzzer(seed)
    exec(PRELUDE, fz.env)
    emit("S", str(seed))
    try:
        for target, line in fz.lines():
            emit("L", line)
            if verbose:
                print(line, file=sys.stderr, flush=True)
            try:
                exec(line, fz.env)
            except ALLOWED as e:
                emit("E", f"{type(e).__name__}: {str(e)[:300]}")
                if verbose:
                    print(f"    # -> {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                continue
            except Exception:  # noqa: BLE001
                emit("X", traceback.format_exc())
                if verbose:
                    traceback.print_exc()
                raise SystemExit(EXIT_UNEXPECTED) from None
            fz.record(target)
    finally:
        dagrad.set_grad_enabled(True)
        dagrad.set_num_threads(threads)
    emit("D", str(seed))


def worker(first, count):
    for seed in range(first, first + count):
        run_sequence(seed)
    sys.stdout.flush()
    os._exit(EXIT_OK)  # skip interpreter teardown: a crash there would be blamed on no sequence


# --------------------------------------------------------------------------- the driver

class Failure:
    def __init__(self, seed, how, lines, errors, stderr, first, alone):
        self.seed, self.how, self.lines, self.errors = seed, how, lines, errors
        self.stderr, self.first, self.alone = stderr, first, alone

    def script(self):
        out = [f"# dagrad fuzz_ops seed {self.seed}: {self.how}", PRELUDE]
        for i, line in enumerate(self.lines):
            err = self.errors.get(i)
            if err is not None:
                out.append("# " + line.replace("\n", "\n# ") + f"    # raised {err}")
            else:
                out.append(line)
        return "\n".join(out)

    def report(self):
        where = (f"it fails alone: python tests/fuzz_ops.py --replay {self.seed}; "
                 f"cut it down with --minimize {self.seed}" if self.alone else
                 f"it did not fail alone; run the worker's range: python tests/fuzz_ops.py "
                 f"--seed {self.first} --count {self.seed - self.first + 1}")
        tail = "\n".join(self.stderr.strip().splitlines()[-40:])
        return (f"=== fuzz failure: seed {self.seed}: {self.how}\n({where})\n"
                f"--- the sequence up to the failing line:\n{self.script()}\n"
                f"--- stderr (last lines):\n{tail}\n")


def _describe(rc, hung, timeout):
    if hung:
        return f"hang: no progress for {timeout} s"
    if rc is None:
        return "the worker stopped"
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    if rc == EXIT_UNEXPECTED:
        return "an exception outside ValueError, TypeError, IndexError, RuntimeError, MemoryError"
    return f"the worker exited with status {rc} (a sanitizer report, or os._exit)"


def _limit_memory():
    # A safety net in case some op allocates what it was asked for: an address-space cap makes
    # a huge allocation fail (MemoryError) instead of filling the machine. AddressSanitizer
    # reserves terabytes of address space, so it runs without the cap (and caps allocations
    # itself, with allocator_may_return_null=1 in .ci/sanitize).
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return
    try:
        import resource
        cap = 8 << 30
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, ValueError, OSError):
        pass


def _spawn(first, count):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed", str(first), "--count", str(count)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)


def _run_worker(first, count, deadline, line_timeout):
    """Runs seeds [first, first + count) in one worker. Returns (seeds done, failure info or None)."""
    proc = _spawn(first, count)
    buf = b""
    seed, lines, errors, done = None, [], {}, 0
    stderr_chunks = []
    hung = False
    last = time.monotonic()
    fds = [proc.stdout, proc.stderr]
    while fds:
        ready, _, _ = select.select(fds, [], [], 0.5)
        now = time.monotonic()
        for f in ready:
            chunk = os.read(f.fileno(), 65536)
            if not chunk:
                fds.remove(f)
                continue
            if f is proc.stderr:
                stderr_chunks.append(chunk)
                continue
            last = now
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                tag, _, text = raw.decode("utf-8", "replace").partition(" ")
                text = text.replace("\\n", "\n")
                if tag == "S":
                    seed, lines, errors = int(text), [], {}
                elif tag == "L":
                    lines.append(text)
                elif tag == "E":
                    errors[len(lines) - 1] = text
                elif tag == "X":
                    stderr_chunks.append(text.encode())
                elif tag == "D":
                    done += 1
                    seed = None
                    if now > deadline:  # out of time: stop after a whole sequence
                        proc.kill()
                        proc.wait()
                        return done, None
        if now - last > line_timeout and proc.poll() is None:
            hung = True
            proc.kill()
            break
    rc = proc.wait()
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
    if rc == EXIT_OK and not hung and seed is None:
        return done, None
    if seed is None:  # died between sequences (at start-up, or at exit)
        seed = first + done
    return done, (seed, _describe(rc, hung, line_timeout), lines, errors, stderr)


def run_fuzz(first_seed=0, max_sequences=None, seconds=60.0, line_timeout=20.0, per_worker=50,
             max_failures=5, log=None):
    """Runs sequences from ``first_seed`` on until ``max_sequences`` or ``seconds`` are used up.
    Returns (number of sequences run, list of Failure)."""
    deadline = time.monotonic() + seconds
    seed, ran, failures = first_seed, 0, []
    while time.monotonic() < deadline and (max_sequences is None or ran < max_sequences):
        count = per_worker if max_sequences is None else min(per_worker, max_sequences - ran)
        done, fail = _run_worker(seed, count, deadline, line_timeout)
        ran += done
        if fail is None:
            seed += done
            continue
        fseed, how, lines, errors, stderr = fail
        alone = _fails_alone(fseed, line_timeout)
        failures.append(Failure(fseed, how, lines, errors, stderr, seed, alone))
        if log:
            log(failures[-1].report())
        ran += 1
        seed = fseed + 1
        if len(failures) >= max_failures:
            break
    return ran, failures


def _fails_alone(seed, line_timeout):
    _, fail = _run_worker(seed, 1, float("inf"), line_timeout)
    return fail is not None


_CAP = ("import os, resource\n"
        "if 'asan' not in os.environ.get('LD_PRELOAD', ''):\n"
        "    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))\n")


def _as_script(lines):
    """The lines as a script that, like the fuzz, goes on after an allowed exception."""
    return (_CAP + PRELUDE + f"\n_LINES = {lines!r}\n" + "for _line in _LINES:\n    try:\n"
            "        exec(_line, globals())\n"
            "    except (ValueError, TypeError, IndexError, RuntimeError, MemoryError) as _e:\n"
            "        print('#', _line.replace(chr(10), ' '), '->', type(_e).__name__, _e)\n")


def _script_outcome(lines, timeout):
    """How the lines end as a script: 'ok', 'signal N', 'status N', 'hang', 'exception Type',
    or 'broken' (a line needs a variable that a removed line made)."""
    try:
        r = subprocess.run([sys.executable, "-c", _as_script(lines)], capture_output=True,
                           timeout=timeout, text=True)
    except subprocess.TimeoutExpired:
        return "hang"
    if r.returncode == 0:
        return "ok"
    if r.returncode < 0:
        return f"signal {-r.returncode}"
    last = (r.stderr.strip().splitlines() or [""])[-1]
    name = last.split(":", 1)[0]
    if r.returncode == 1 and name.isidentifier():
        if name in ("NameError", "SyntaxError", "IndentationError"):
            return "broken"  # a line removed something a later one needs
        return f"exception {name}"
    return f"status {r.returncode}"


def minimize(seed, line_timeout=20.0, log=print):
    """Delta-debugs the sequence of ``seed`` down to the lines its failure needs."""
    _, fail = _run_worker(seed, 1, float("inf"), line_timeout)
    if fail is None:
        log(f"seed {seed} does not fail")
        return None
    _, how, lines, _, _ = fail
    kept = list(lines)
    target = _script_outcome(kept, line_timeout)
    if target in ("ok", "broken"):
        log(f"seed {seed} ({how}) does not fail as a plain script ({target}); not minimized")
        return None
    log(f"seed {seed}: {how}; as a script: {target}; {len(kept)} lines")
    chunk = max(1, len(kept) // 2)
    while chunk >= 1:
        i = len(kept) - chunk
        changed = False
        while i >= 0:
            trial = kept[:i] + kept[i + chunk:]
            if trial and _script_outcome(trial, line_timeout) == target:
                kept, changed = trial, True
            i -= chunk
        if not changed:
            chunk //= 2
    script = "\n".join(kept)
    log(f"--- the lines the failure needs ({target}); run after the prelude, a line that raises "
        f"ValueError, TypeError, IndexError, RuntimeError or MemoryError is skipped, as in the fuzz:"
        f"\n{PRELUDE}\n{script}")
    return script


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    p.add_argument("--count", type=int, default=None, help="at most this many sequences")
    p.add_argument("--line-timeout", type=float, default=20.0, help="seconds without progress that count as a hang")
    p.add_argument("--max-failures", type=int, default=5, help="stop after this many failures (default 5)")
    p.add_argument("--replay", type=int, metavar="SEED", help="run one sequence in this process, printing each line")
    p.add_argument("--print", type=int, metavar="SEED", dest="print_seed",
                   help="print one sequence as a script (it runs the sequence to draw it)")
    p.add_argument("--minimize", type=int, metavar="SEED",
                   help="cut a failing sequence down to the lines its failure needs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker or a.replay is not None or a.print_seed is not None:
        _limit_memory()
    if a.worker:
        worker(a.seed, a.count or 1)
        return 0
    if a.minimize is not None:
        return 0 if minimize(a.minimize, a.line_timeout) is not None else 1
    if a.replay is not None:
        run_sequence(a.replay, verbose=True, emit=lambda tag, text="": None)
        print(f"seed {a.replay}: no failure", file=sys.stderr)
        return 0
    if a.print_seed is not None:
        lines, errors = [], {}

        def collect(tag, text=""):
            if tag == "L":
                lines.append(text)
            elif tag == "E":
                errors[len(lines) - 1] = text
            elif tag == "X":
                print(text, file=sys.stderr)
        try:
            run_sequence(a.print_seed, emit=collect)
        except SystemExit:
            print(Failure(a.print_seed, "an unexpected exception", lines, errors, "", a.print_seed, True).script())
            raise
        print(Failure(a.print_seed, "no failure", lines, errors, "", a.print_seed, True).script())
        return 0
    ran, failures = run_fuzz(a.seed, a.count, a.seconds, a.line_timeout,
                             max_failures=a.max_failures, log=lambda text: print(text, flush=True))
    print(f"{ran} sequences from seed {a.seed}, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
