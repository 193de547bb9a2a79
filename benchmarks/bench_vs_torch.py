"""dagrad vs PyTorch (and numpy for GEMM): interleaved worker processes, ratios measured side by side.

Run:  python benchmarks/bench_vs_torch.py [--quick] [--only a,b,c,d,e] [--rounds N] [--json PATH]

  (a) a 10,000-node scalar graph x = relu(x*w + b), forward and forward+backward, us per node, 1 thread
  (b) MLP training steps (zero_grad, forward, loss, backward, SGD momentum 0.9), dagrad eager and
      dagrad.compile vs eager PyTorch, 1 thread
  (c) 8 independent branches of 10 matmuls (tanh), n = 64 and 256, forward and forward+backward,
      each framework at 1 and 2 threads: the 2-thread/1-thread speedup
  (d) GEMM GFLOP/s, dagrad matmul vs numpy a @ b, 1 thread
  (e) CNN and RNN training steps (a LeNet-style CNN, an LSTM, examples/char_rnn.py's step and
      examples/digits_cnn.py's step), dagrad vs eager PyTorch from the same initial parameters,
      each framework at 1 and at 2 threads

Each framework runs in its own worker process (python benchmarks/_bench_worker.py), which imports
only that framework, with its thread count set in the environment before the import
(DAGRAD_NUM_THREADS / OMP_NUM_THREADS / torch.set_num_threads / OPENBLAS_NUM_THREADS). The workers
stay alive for the whole run; the driver asks them for timed rounds in turn (dagrad, torch,
torch, dagrad, ...), so slow phases of the machine (another process taking a core) hit both
sides alike. Times are medians over the rounds; ratios (torch time / dagrad time, > 1: dagrad is
faster; numpy / dagrad for GEMM) are medians of the per-round ratios, each pair measured back to
back. The other processes' CPU use is measured from /proc/stat in every round: the medians use
the quiet rounds (a busy second core makes 2-thread figures meaningless), and (c) waits a little
for quiet before each round, as does (e). Versions, machine, date and per-round samples go to --json.

Thread notes: dagrad sets OMP_WAIT_POLICY=PASSIVE itself; torch keeps its default (libgomp spins
a few ms after a parallel region), so (c) and (e) pause 20 ms before each timed call. The numpy worker
runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment (they slow numpy's
OpenBLAS where the machine sets them); the dagrad worker keeps the environment as it is.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_bench_worker.py")

THREAD_VARS = ("DAGRAD_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "BENCH_THREADS")
NUMPY_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ------------------------------------------------------------------------------- workers

class WorkerError(RuntimeError):
    pass


class Worker:
    """One long-lived worker process: one framework, one thread count."""

    def __init__(self, framework, threads):
        self.framework, self.threads = framework, threads
        self.name = f"{framework}@{threads}t"
        env = dict(os.environ)
        for v in THREAD_VARS:
            env[v] = str(threads)
        if framework == "numpy":
            for v in NUMPY_UNSET:
                env.pop(v, None)
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, WORKER, framework], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     bufsize=1, env=env, cwd=HERE)
        self.info = None
        self._keys = set()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise WorkerError(f"worker {self.name} died:\n{self.stderr.read()[-4000:]}")
        line = line.rstrip("\n")
        if line.startswith("@@OK "):
            return json.loads(line[5:])
        if line.startswith("@@ERR "):
            raise WorkerError(f"worker {self.name}: " + line[6:].replace("\\n", "\n"))
        raise WorkerError(f"worker {self.name}: unexpected line {line!r}")

    def ready(self):
        if self.info is None:
            self.info = self._read()
        return self.info

    def call(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def cpu_seconds(self):
        """User+system CPU time of the worker so far (from /proc), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call(op="quit")
            except (WorkerError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Pool:
    def __init__(self):
        self.workers = {}

    def start(self, specs):
        """Starts the workers (framework, threads) not yet running, all at once, then waits."""
        new = []
        for fw, t in specs:
            if (fw, t) not in self.workers:
                self.workers[(fw, t)] = Worker(fw, t)
                new.append(self.workers[(fw, t)])
        for w in new:
            w.ready()

    def __getitem__(self, key):
        return self.workers[key]

    def cpu_seconds(self):
        total = 0.0
        for w in self.workers.values():
            c = w.cpu_seconds()
            total += c or 0.0
        t = os.times()
        return total + t.user + t.system

    def close(self):
        for w in self.workers.values():
            w.close()


# ------------------------------------------------------------------------------- load meter

def _proc_stat_busy():
    """(busy, total) jiffies of the whole machine, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals[:8]) - idle, sum(vals[:8])


class LoadMeter:
    """CPU the rest of the machine used while a section ran, in cores (0 = quiet, 1 = one core busy)."""

    def __init__(self, pool):
        self.pool = pool
        self.t0 = time.perf_counter()
        self.s0 = _proc_stat_busy()
        self.c0 = pool.cpu_seconds()

    def other_cores(self):
        s1 = _proc_stat_busy()
        if self.s0 is None or s1 is None:
            return None
        wall = time.perf_counter() - self.t0
        busy = (s1[0] - self.s0[0]) / os.sysconf("SC_CLK_TCK")
        ours = self.pool.cpu_seconds() - self.c0
        return max(0.0, (busy - ours) / wall) if wall > 0 else None


# ------------------------------------------------------------------------------- measuring

QUIET = 0.3   # cores used by other processes below which a round counts as quiet


def wait_quiet(pool, max_wait_s, budget):
    """Waits (up to max_wait_s, and within budget["s"]) until the rest of the machine is quiet."""
    deadline = time.perf_counter() + min(max_wait_s, max(0.0, budget["s"]))
    t0 = time.perf_counter()
    quiet = False
    while True:
        m = LoadMeter(pool)
        time.sleep(0.2)
        load = m.other_cores()
        if load is None or load < QUIET:
            quiet = True
            break
        if time.perf_counter() >= deadline:
            break
    budget["s"] -= time.perf_counter() - t0
    return quiet


def measure(pool, case, variants, rounds, target_s, max_reps=5000, fixed_reps=None,
            quiet_wait_s=0.0, budget=None, settle_s=0.0, warm_s=0.3):
    """Sets a case up on each variant's worker, then runs interleaved rounds.

    variants: list of (label, (framework, threads), extra case fields). The setup repeats the
    case for warm_s seconds (at least twice) before timing: the first runs of a process pay for
    memory it has never touched (page faults, slower still in a VM). Each round runs every
    variant once (the order reversed every other round) and records the other processes' load.
    The figures are medians over the quiet rounds (other load < QUIET cores) when at least a
    third of the rounds were quiet, else over all rounds. With quiet_wait_s, each round first
    waits (bounded by the shared budget) for the machine to be quiet. settle_s: a pause before
    each variant, so that the OpenMP threads of the previous worker (libgomp spins a few ms after
    a parallel region unless OMP_WAIT_POLICY=passive) are asleep when the next one starts. Returns
    ({label: {"median_s", "min_s", "samples_s", "used", "reps", "check", ...}}, round info).
    """
    key = json.dumps(case, sort_keys=True)
    out = {}
    loads = []
    try:
        for label, wkey, extra in variants:
            spec = dict(case, **extra)
            ans = pool[wkey].call(op="setup", key=key + label, case=spec, warm_s=warm_s)
            t_one = max(ans["t_one"], 1e-7)
            reps = fixed_reps or max(1, min(max_reps, int(round(target_s / t_one))))
            out[label] = {"reps": reps, "check": ans["check"], "setup_s": ans["setup_s"],
                          "samples_s": [], "t_one_s": ans["t_one"]}
            if "signature" in ans:
                out[label]["signature"] = ans["signature"]
        order = list(variants)
        # Time cap: a busy machine can make a round many times slower than the warm-up said
        # (libgomp threads spinning on a taken core); then fewer reps and fewer rounds (>= 3).
        expected = sum(v["reps"] * v["t_one_s"] for v in out.values())
        cap_s, spent = 3.0 * rounds * expected + 1.0, 0.0
        for r in range(rounds):
            if r >= min(3, rounds) and spent > cap_s:
                break
            if quiet_wait_s > 0 and budget is not None:
                wait_quiet(pool, quiet_wait_s, budget)
            t0 = time.perf_counter()
            meter = LoadMeter(pool)
            seq = order if r % 2 == 0 else order[::-1]
            for label, wkey, _ in seq:
                if settle_s:
                    time.sleep(settle_s)
                v = out[label]
                ans = pool[wkey].call(op="run", key=key + label, reps=v["reps"])
                v["samples_s"].append(ans["t"])
                if not fixed_reps and v["reps"] > 1 and ans["t"] * v["reps"] > 4 * target_s:
                    v["reps"] = max(1, int(round(target_s / ans["t"])))
            loads.append(meter.other_cores())
            spent += time.perf_counter() - t0
    finally:
        for label, wkey, _ in variants:
            try:
                pool[wkey].call(op="drop", key=key + label)
            except WorkerError:
                pass
    quiet = [i for i, load in enumerate(loads) if load is None or load < QUIET]
    use = quiet if quiet and len(quiet) * 3 >= len(loads) else list(range(len(loads)))
    for v in out.values():
        xs = [v["samples_s"][i] for i in use] or [float("nan")]
        v["used"] = use
        v["median_s"] = statistics.median(xs)
        v["min_s"] = min(xs)
    info = {"round_other_load_cores": loads, "quiet_rounds": len(quiet), "rounds": len(loads),
            "rounds_asked": rounds,
            "used_rounds": use, "quiet_only": use == quiet}
    return out, info


def row_record(res, info, check):
    """The fields every section's result row ends with: the correctness verdict, the values it
    compared, the rounds used, and the raw samples."""
    return {"check": check, "check_values": {k: v["check"] for k, v in res.items()},
            "rounds": info, "raw": res}


def ratio(res, num, den):
    """Median over the used rounds of time[num] / time[den], each pair measured back to back.

    More robust than a ratio of medians when the machine has slow and fast phases (the pairs
    share a phase)."""
    a, b = res[num], res[den]
    xs = [a["samples_s"][i] / b["samples_s"][i] for i in a["used"]]
    return statistics.median(xs) if xs else float("nan")


def _rounds_str(info):
    return f"{info['quiet_rounds']}/{info['rounds']}" + ("" if info["quiet_only"] else "*")


def _cut_rounds_note(rows):
    cut = [r for r in rows if r["rounds"]["rounds"] < r["rounds"]["rounds_asked"]]
    if cut:
        print(f"    ({len(cut)} case(s) stopped early: the rounds took more than 3x the time the warm-up "
              f"predicted, the machine being busy)")


def _close(a, b, rtol, atol):
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    return abs(a - b) <= atol + rtol * abs(b)


def compare_checks(ca, cb, rtol, atol=1e-6):
    """Whether two workers' check values agree (None when there is nothing to compare)."""
    if not ca or not cb:
        return None
    return all(_close(ca[k], cb[k], rtol, atol) for k in ca if k in cb)


def fmt_ok(ok):
    return "MET" if ok else "NOT MET"


def fmt_check(ok):
    return {True: "agree", False: "DISAGREE", None: "n/a"}[ok]


# ------------------------------------------------------------------------------- sections

def section_a(pool, args, report):
    iters = 3333
    nodes = 3 * iters
    pool.start([("dagrad", 1), ("torch", 1)])
    meter = LoadMeter(pool)
    rows = []
    for backward in (False, True):
        case = {"kind": "scalar_chain", "iters": iters, "backward": backward,
                "x0": 0.5, "w": 0.9, "b": 0.1}
        res, info = measure(pool, case, [("dagrad", ("dagrad", 1), {}), ("torch", ("torch", 1), {})],
                            args.rounds, args.target, warm_s=args.warm)
        d, t = res["dagrad"], res["torch"]
        ok = compare_checks(d["check"], t["check"], rtol=1e-4)
        rows.append({"pass": "forward+backward" if backward else "forward",
                     "dagrad_us_per_node": d["median_s"] / nodes * 1e6,
                     "torch_us_per_node": t["median_s"] / nodes * 1e6,
                     "speedup": ratio(res, "torch", "dagrad"), **row_record(res, info, ok)})
    load = meter.other_cores()
    print(f"\n(a) scalar graph x = relu(x*w + b), {iters} iterations = {nodes} op nodes, 1 thread "
          f"(graph building + run, us per op node)")
    print(f"    {'pass':18s} {'dagrad us/node':>15s} {'torch us/node':>14s} {'torch/dagrad':>13s} "
          f"{'quiet':>6s}  values")
    for r in rows:
        print(f"    {r['pass']:18s} {r['dagrad_us_per_node']:15.3f} {r['torch_us_per_node']:14.3f} "
              f"{r['speedup']:12.2f}x {_rounds_str(r['rounds']):>6s}  {fmt_check(r['check'])}")
    goals = []
    for r in rows:
        met = r["speedup"] >= 12.0
        goals.append({"goal": f"(a) {r['pass']}: dagrad >= 12x faster per node", "value": r["speedup"],
                      "met": met})
    _cut_rounds_note(rows)
    _print_goals(goals)
    _print_load(load)
    report["a"] = {"nodes": nodes, "rows": rows, "goals": goals, "other_load_cores": load}


# Goals per kind (torch eager time / dagrad time): issue #14's table for the first three and the
# 2-thread row of the big MLP; the 1-16-16-1 compiled goal and the big MLP's 1-thread "no slower" are
# the first round's.
MLPS = [
    {"name": "1-16-16-1", "sizes": [1, 16, 16, 1], "batch": 32, "act": "tanh", "loss": "mse",
     "goal": {"eager": 8.0, "compiled": 5.0}},
    {"name": "784-128-64-10", "sizes": [784, 128, 64, 10], "batch": 64, "act": "relu", "loss": "ce",
     "goal": {"eager": 2.5, "compiled": 2.5}},
    {"name": "784-512-512-10", "sizes": [784, 512, 512, 10], "batch": 256, "act": "relu", "loss": "ce",
     "goal": {"eager": 1.2, "compiled": 1.2}},
    {"name": "2048-4096-4096-2048", "sizes": [2048, 4096, 4096, 2048], "batch": 128, "act": "relu",
     "loss": "mse", "goal": {"eager": 1.0, "compiled": 1.0}, "big": True, "goal_2t": 1.1},
]


def section_b(pool, args, report):
    pool.start([("dagrad", 1), ("torch", 1)])
    meter = LoadMeter(pool)
    rows = []
    skipped = []
    for m in MLPS:
        big = m.get("big", False)
        if big and args.quick:
            skipped.append(m["name"])
            continue
        case = {"kind": "mlp", "sizes": m["sizes"], "batch": m["batch"], "act": m["act"],
                "loss": m["loss"], "warmup": 2, "seed": 0}
        variants = [("dagrad eager", ("dagrad", 1), {"compiled": False}),
                    ("dagrad compiled", ("dagrad", 1), {"compiled": True}),
                    ("torch eager", ("torch", 1), {})]
        rounds = min(args.rounds, 3) if big else args.rounds
        res, info = measure(pool, case, variants, rounds, args.target, fixed_reps=1 if big else None,
                            warm_s=0.0 if big else args.warm)
        de, dc, te = res["dagrad eager"], res["dagrad compiled"], res["torch eager"]
        checks = [compare_checks(de["check"], te["check"], rtol=1e-3),
                  compare_checks(dc["check"], te["check"], rtol=1e-3)]
        rows.append({"mlp": m["name"], "batch": m["batch"], "act": m["act"], "loss": m["loss"],
                     "n_rounds": rounds, "steps_per_round": {k: v["reps"] for k, v in res.items()},
                     "dagrad_eager_ms": de["median_s"] * 1e3, "dagrad_compiled_ms": dc["median_s"] * 1e3,
                     "torch_eager_ms": te["median_s"] * 1e3,
                     "speedup_eager": ratio(res, "torch eager", "dagrad eager"),
                     "speedup_compiled": ratio(res, "torch eager", "dagrad compiled"),
                     "goal": m["goal"],
                     **row_record(res, info, None if None in checks else all(checks))})
    # The big MLP again at 2 threads (each framework's own threads), as issue #14 asks: torch at 2
    # threads against dagrad at 2 threads.
    rows_2t = []
    for m in MLPS:
        if "goal_2t" not in m or args.quick:
            continue
        case = {"kind": "mlp", "sizes": m["sizes"], "batch": m["batch"], "act": m["act"],
                "loss": m["loss"], "warmup": 2, "seed": 0}
        variants = [("dagrad eager 2t", ("dagrad", 2), {"compiled": False}),
                    ("dagrad compiled 2t", ("dagrad", 2), {"compiled": True}),
                    ("torch eager 2t", ("torch", 2), {})]
        rounds = min(args.rounds, 3)
        res, info = measure(pool, case, variants, rounds, args.target, fixed_reps=1, warm_s=0.0, settle_s=0.02)
        de, dc, te = res["dagrad eager 2t"], res["dagrad compiled 2t"], res["torch eager 2t"]
        checks = [compare_checks(de["check"], te["check"], rtol=1e-3),
                  compare_checks(dc["check"], te["check"], rtol=1e-3)]
        rows_2t.append({"mlp": m["name"], "batch": m["batch"], "n_rounds": rounds,
                        "dagrad_eager_ms": de["median_s"] * 1e3, "dagrad_compiled_ms": dc["median_s"] * 1e3,
                        "torch_eager_ms": te["median_s"] * 1e3,
                        "speedup_eager": ratio(res, "torch eager 2t", "dagrad eager 2t"),
                        "speedup_compiled": ratio(res, "torch eager 2t", "dagrad compiled 2t"),
                        "goal": m["goal_2t"], **row_record(res, info, None if None in checks else all(checks))})
    load = meter.other_cores()
    print("\n(b) MLP training step (zero_grad, forward, loss, backward, SGD lr=0.01 momentum=0.9), "
          "float32, 1 thread; ms per step; torch = eager (torch.compile not used); loss@1 = first-step "
          "losses of the three agree")
    print(f"    {'MLP':20s} {'batch':>5s} {'act/loss':>9s} {'dagrad eager':>13s} {'dagrad compiled':>16s} "
          f"{'torch eager':>12s} {'speedup eager':>14s} {'speedup compiled':>17s} {'quiet':>6s}  loss@1")
    for r in rows:
        print(f"    {r['mlp']:20s} {r['batch']:5d} {r['act'] + '/' + r['loss']:>9s} "
              f"{r['dagrad_eager_ms']:13.3f} {r['dagrad_compiled_ms']:16.3f} {r['torch_eager_ms']:12.3f} "
              f"{r['speedup_eager']:13.2f}x {r['speedup_compiled']:16.2f}x {_rounds_str(r['rounds']):>6s}  "
              f"{fmt_check(r['check'])}")
    for r in rows_2t:
        print(f"    {r['mlp'] + ' 2t':20s} {r['batch']:5d} {'':>9s} "
              f"{r['dagrad_eager_ms']:13.3f} {r['dagrad_compiled_ms']:16.3f} {r['torch_eager_ms']:12.3f} "
              f"{r['speedup_eager']:13.2f}x {r['speedup_compiled']:16.2f}x {_rounds_str(r['rounds']):>6s}  "
              f"{fmt_check(r['check'])}   (both at 2 threads)")
    if skipped:
        print(f"    (skipped in --quick: {', '.join(skipped)})")
    for r in rows:
        if r["mlp"].startswith("2048"):
            print(f"    ({r['mlp']}: {r['n_rounds']} timed steps per variant after warm-up, one per round)")
    goals = []
    for r in rows:
        for kind in ("eager", "compiled"):
            v = r["speedup_" + kind]
            need = r["goal"][kind]
            goals.append({"goal": f"(b) {r['mlp']} {kind}: >= {need}x torch", "value": v, "met": v >= need})
    for r in rows_2t:
        goals.append({"goal": f"(b) {r['mlp']} 2 threads: >= {r['goal']}x torch 2t", "value": r["speedup_eager"],
                      "met": r["speedup_eager"] >= r["goal"]})
    _cut_rounds_note(rows + rows_2t)
    _print_goals(goals)
    _print_load(load)
    report["b"] = {"rows": rows, "rows_2t": rows_2t, "goals": goals, "skipped": skipped, "other_load_cores": load}


def section_c(pool, args, report):
    pool.start([("dagrad", 1), ("dagrad", 2), ("torch", 1), ("torch", 2)])
    meter = LoadMeter(pool)
    ns = [64] if args.quick else [64, 256]
    budget = {"s": args.quiet_budget}
    rows = []
    for n in ns:
        for backward in (False, True):
            case = {"kind": "branches", "n": n, "branches": 8, "depth": 10, "backward": backward}
            variants = [("dagrad 1t", ("dagrad", 1), {}), ("dagrad 2t", ("dagrad", 2), {}),
                        ("torch 1t", ("torch", 1), {}), ("torch 2t", ("torch", 2), {})]
            res, info = measure(pool, case, variants, args.rounds, args.target,
                                quiet_wait_s=args.quiet_wait, budget=budget, settle_s=0.02,
                                warm_s=args.warm)
            ms = {k: v["median_s"] * 1e3 for k, v in res.items()}
            checks = [compare_checks(res[k]["check"], res["torch 1t"]["check"], rtol=2e-3, atol=1e-4)
                      for k in ("dagrad 1t", "dagrad 2t", "torch 2t")]
            rows.append({"n": n, "pass": "fwd+bwd" if backward else "fwd", "ms": ms,
                         "dagrad_2t_speedup": ratio(res, "dagrad 1t", "dagrad 2t"),
                         "torch_2t_speedup": ratio(res, "torch 1t", "torch 2t"),
                         "torch_over_dagrad_1t": ratio(res, "torch 1t", "dagrad 1t"),
                         "torch_over_dagrad_2t": ratio(res, "torch 2t", "dagrad 2t"),
                         **row_record(res, info, None if None in checks else all(checks))})
    load = meter.other_cores()
    print("\n(c) 8 independent branches x 10 matmuls (x = tanh(x @ W)), n x n float32; ms per run "
          "(fwd: under no_grad, dagrad realizes the 8 outputs at once; fwd+bwd: backward of the sum of "
          "the 8 outputs); 2t/1t = each framework's 2-thread speedup")
    print(f"    {'n':>4s} {'pass':8s} {'dagrad 1t':>10s} {'dagrad 2t':>10s} {'2t/1t':>6s} {'torch 1t':>10s} "
          f"{'torch 2t':>10s} {'2t/1t':>6s} {'torch/dagrad 1t':>16s} {'2t':>6s} {'quiet':>6s}  values")
    for r in rows:
        ms = r["ms"]
        print(f"    {r['n']:4d} {r['pass']:8s} {ms['dagrad 1t']:10.3f} {ms['dagrad 2t']:10.3f} "
              f"{r['dagrad_2t_speedup']:5.2f}x {ms['torch 1t']:10.3f} {ms['torch 2t']:10.3f} "
              f"{r['torch_2t_speedup']:5.2f}x {r['torch_over_dagrad_1t']:15.2f}x "
              f"{r['torch_over_dagrad_2t']:5.2f}x {_rounds_str(r['rounds']):>6s}  {fmt_check(r['check'])}")
    goals = []
    for r in rows:
        if r["pass"] != "fwd+bwd":
            continue
        need = 1.85 if r["n"] == 256 else 1.6  # issue #14's goals
        goals.append({"goal": f"(c) dagrad fwd+bwd 2-thread speedup at n={r['n']} >= {need}x",
                      "value": r["dagrad_2t_speedup"], "met": r["dagrad_2t_speedup"] >= need})
    _cut_rounds_note(rows)
    _print_goals(goals)
    _print_load(load, two_threads=True)
    report["c"] = {"rows": rows, "goals": goals, "other_load_cores": load}


GEMMS = [(512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 128, 4096)]


def section_d(pool, args, report):
    pool.start([("dagrad", 1), ("numpy", 1)])
    meter = LoadMeter(pool)
    rows = []
    skipped = []
    for m, k, n in GEMMS:
        if args.quick and m == 2048:
            skipped.append(f"{m}x{k}x{n}")
            continue
        case = {"kind": "gemm", "m": m, "k": k, "n": n}
        res, info = measure(pool, case, [("dagrad", ("dagrad", 1), {}), ("numpy", ("numpy", 1), {})],
                            args.rounds, args.target, warm_s=args.warm)
        flop = 2.0 * m * n * k
        d, p = res["dagrad"], res["numpy"]
        rows.append({"shape": f"({m}x{k}) @ ({k}x{n})", "m": m, "k": k, "n": n,
                     "dagrad_gflops": flop / d["median_s"] / 1e9, "numpy_gflops": flop / p["median_s"] / 1e9,
                     "dagrad_ms": d["median_s"] * 1e3, "numpy_ms": p["median_s"] * 1e3,
                     "ratio": ratio(res, "numpy", "dagrad"),
                     **row_record(res, info, compare_checks(d["check"], p["check"], rtol=1e-3, atol=1e-3))})
    load = meter.other_cores()
    np_env = pool[("numpy", 1)].info.get("env", {})
    print("\n(d) GEMM C = A @ B, float32, 1 thread: dagrad (realize of a @ b) vs numpy (a @ b), "
          "each with a fresh output")
    print(f"    {'shape':24s} {'dagrad GFLOP/s':>15s} {'numpy GFLOP/s':>14s} {'dagrad/numpy':>13s} "
          f"{'dagrad ms':>10s} {'numpy ms':>9s} {'quiet':>6s}  values")
    for r in rows:
        print(f"    {r['shape']:24s} {r['dagrad_gflops']:15.1f} {r['numpy_gflops']:14.1f} {r['ratio']:12.2f}x "
              f"{r['dagrad_ms']:10.2f} {r['numpy_ms']:9.2f} {_rounds_str(r['rounds']):>6s}  {fmt_check(r['check'])}")
    if skipped:
        print(f"    (skipped in --quick: {', '.join(skipped)})")
    was = {v: os.environ.get(v) for v in NUMPY_UNSET}
    print("    numpy worker: OPENBLAS_NUM_THREADS=1; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in its "
          "environment (here they were: " + ", ".join(f"{k}={v!r}" for k, v in was.items()) + ")")
    if any(was.values()):
        print("    dagrad worker: keeps them as set (as a user would run it)")
    pools = pool[("numpy", 1)].info.get("blas_pools")
    if pools:
        print("    numpy BLAS: " + "; ".join(f"{p.get('internal_api')} {p.get('version')} "
                                           f"{p.get('architecture')} threads={p.get('num_threads')}"
                                           for p in pools))
    goals = [{"goal": f"(d) {r['shape']}: dagrad >= 0.95x numpy GFLOP/s", "value": r["ratio"],
              "met": r["ratio"] >= 0.95} for r in rows]
    _cut_rounds_note(rows)
    _print_goals(goals)
    _print_load(load)
    report["d"] = {"rows": rows, "goals": goals, "skipped": skipped, "other_load_cores": load,
                   "numpy_env": np_env, "parent_env_unset_for_numpy": was}


NETS = [
    {"net": "lenet", "label": "LeNet CNN 1x28x28", "batch": 64, "opt": "SGD m0.9", "goal": 1.2},
    {"net": "lstm", "label": "LSTM 32->128, 35 steps", "batch": 32, "opt": "SGD m0.9", "goal": 1.5},
    {"net": "char_rnn", "label": "char_rnn.py (compiled)", "batch": 16, "opt": "Adam", "goal": 1.5,
     "eager_too": True},
    {"net": "digits_cnn", "label": "digits_cnn.py 8x8", "batch": 64, "opt": "Adam", "goal": 1.2},
]


def section_e(pool, args, report):
    pool.start([("dagrad", 1), ("dagrad", 2), ("torch", 1), ("torch", 2)])
    meter = LoadMeter(pool)
    budget = {"s": args.quiet_budget}
    rows = []
    for m in NETS:
        eager_too = m.get("eager_too", False)
        case = {"kind": "net", "net": m["net"], "warmup": 2, "seed": 0}
        variants = []
        for t in (1, 2):
            variants.append((f"dagrad {t}t", ("dagrad", t), {"compiled": eager_too}))
            if eager_too:
                variants.append((f"dagrad eager {t}t", ("dagrad", t), {"compiled": False}))
            variants.append((f"torch {t}t", ("torch", t), {}))
        res, info = measure(pool, case, variants, args.rounds, args.target,
                            quiet_wait_s=args.quiet_wait, budget=budget, settle_s=0.02, warm_s=args.warm)
        ref = res["torch 1t"]
        checks = [compare_checks(v["check"], ref["check"], rtol=1e-3) for k, v in res.items() if k != "torch 1t"]
        # the same names and shapes in every variant: the parameters were filled alike
        same_params = all(v.get("signature") == ref.get("signature") for v in res.values())
        ok = None if None in checks else all(checks) and same_params
        row = {"step": m["net"], "label": m["label"], "batch": m["batch"], "optimizer": m["opt"],
               "goal": m["goal"], "dagrad_mode": "compiled" if eager_too else "eager",
               "same_parameters": same_params, "n_parameters": len(ref.get("signature") or []),
               "ms": {k: v["median_s"] * 1e3 for k, v in res.items()}}
        for t in (1, 2):
            row[f"speedup_{t}t"] = ratio(res, f"torch {t}t", f"dagrad {t}t")
            if eager_too:
                row[f"speedup_eager_{t}t"] = ratio(res, f"torch {t}t", f"dagrad eager {t}t")
        row["dagrad_2t_over_1t"] = ratio(res, "dagrad 1t", "dagrad 2t")
        row["torch_2t_over_1t"] = ratio(res, "torch 1t", "torch 2t")
        if eager_too:
            row["dagrad_eager_2t_over_1t"] = ratio(res, "dagrad eager 1t", "dagrad eager 2t")
        rows.append({**row, **row_record(res, info, ok)})
    load = meter.other_cores()
    print("\n(e) CNN and RNN training steps (zero_grad, forward, cross-entropy, backward, optimizer step), "
          "float32, each framework at 1 and 2 threads; ms per step; torch = eager; torch/dagrad = torch time / "
          "dagrad time at the same thread count; 2t/1t = a framework's 2-thread speedup; loss@1,2 = the first "
          "step's and the second step's (after one update) losses agree with torch 1t's to rtol 1e-3, all "
          "variants starting from the same parameters (names and shapes compared)")
    print(f"    {'step':24s} {'batch':>5s} {'optim':>8s} {'dagrad 1t':>10s} {'torch 1t':>9s} {'torch/dagrad':>13s} "
          f"{'dagrad 2t':>10s} {'torch 2t':>9s} {'torch/dagrad':>13s} {'dagrad 2t/1t':>13s} {'torch 2t/1t':>12s} "
          f"{'quiet':>6s}  loss@1,2")
    for r in rows:
        ms = r["ms"]
        print(f"    {r['label']:24s} {r['batch']:5d} {r['optimizer']:>8s} {ms['dagrad 1t']:10.3f} "
              f"{ms['torch 1t']:9.3f} {r['speedup_1t']:12.2f}x {ms['dagrad 2t']:10.3f} {ms['torch 2t']:9.3f} "
              f"{r['speedup_2t']:12.2f}x {r['dagrad_2t_over_1t']:12.2f}x {r['torch_2t_over_1t']:11.2f}x "
              f"{_rounds_str(r['rounds']):>6s}  {fmt_check(r['check'])}")
        if "speedup_eager_1t" in r:
            print(f"    {'  same, dagrad eager':24s} {'':5s} {'':>8s} {ms['dagrad eager 1t']:10.3f} {'':9s} "
                  f"{r['speedup_eager_1t']:12.2f}x {ms['dagrad eager 2t']:10.3f} {'':9s} "
                  f"{r['speedup_eager_2t']:12.2f}x {r['dagrad_eager_2t_over_1t']:12.2f}x")
    bad = [r["label"] for r in rows if not r["same_parameters"]]
    if bad:
        print(f"    PARAMETER NAMES/SHAPES DIFFER between frameworks in: {', '.join(bad)}")
    goals = []
    for r in rows:
        for t in (1, 2):
            v = r[f"speedup_{t}t"]
            goals.append({"goal": f"(e) {r['label']} {t}t: >= {r['goal']}x torch", "value": v,
                          "met": v >= r["goal"]})
    _cut_rounds_note(rows)
    _print_goals(goals)
    _print_load(load, two_threads=True)
    report["e"] = {"rows": rows, "goals": goals, "other_load_cores": load}


def _print_goals(goals):
    for g in goals:
        print(f"    goal {g['goal']:64s} {g['value']:6.2f}x  {fmt_ok(g['met'])}")


def _print_load(load, two_threads=False):
    if load is None:
        return
    note = ""
    if load > 0.25:
        note = ("  (another process was busy: " + ("the 2-thread figures are unreliable"
                                                   if two_threads else "figures are noisier") + ")")
    print(f"    other processes on the machine: {load:.2f} cores on average during this section{note}")


# ------------------------------------------------------------------------------- main

def machine_info():
    info = {"cpu_model": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k == "Model name":
                info["cpu_model"] = v
            elif k == "CPU(s)":
                info["cpus"] = int(v)
            elif k == "Core(s) per socket":
                info["cores_per_socket"] = int(v)
            elif k == "Socket(s)":
                info["sockets"] = int(v)
            elif k == "Thread(s) per core":
                info["threads_per_core"] = int(v)
            elif k == "Hypervisor vendor":
                info["hypervisor"] = v
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if "cores_per_socket" in info and "sockets" in info:
        info["cores"] = info["cores_per_socket"] * info["sockets"]
    info["affinity"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    return info


def git_commit(path):
    """The commit checked out where dagrad's sources live (read-only git call), or None."""
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None):
    p = argparse.ArgumentParser(description="dagrad vs PyTorch / numpy, interleaved worker processes")
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    p.add_argument("--only", default="a,b,c,d,e", help="sections to run, e.g. a,c")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per case (default 9; 1 with --quick)")
    p.add_argument("--json", default=None, metavar="PATH", help="write all results as JSON")
    p.add_argument("--quiet-wait", type=float, default=None, metavar="S",
                   help="(c, e) before each round, wait up to S seconds for the other processes to leave "
                        "the second core free (default 3; 0 with --quick)")
    p.add_argument("--quiet-budget", type=float, default=None, metavar="S",
                   help="(c, e) total seconds such waits may take in each section (default 30; 0 with --quick)")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 9
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    args.target = 0.005 if args.quick else 0.2   # seconds of work per variant per round
    args.warm = 0.0 if args.quick else 0.4        # warm-up seconds per variant before timing
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 3.0
    if args.quiet_budget is None:
        args.quiet_budget = 0.0 if args.quick else 30.0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in "abcde" or len(s) != 1]
    if bad:
        p.error(f"--only: unknown sections {bad} (use a, b, c, d, e)")

    t_start = time.perf_counter()
    mach = machine_info()
    now = datetime.datetime.now().astimezone()
    pool = Pool()
    report = {"date": now.isoformat(timespec="seconds"), "machine": mach,
              "rounds": args.rounds, "quick": args.quick, "sections": only}
    try:
        need = []
        if set(only) & set("abcde"):
            need += [("dagrad", 1)]
        if set(only) & set("abce"):
            need += [("torch", 1)]
        if set(only) & set("ce") or ("b" in only and not args.quick):
            need += [("dagrad", 2), ("torch", 2)]
        if "d" in only:
            need += [("numpy", 1)]
        t0 = time.perf_counter()
        pool.start(need)
        report["worker_start_s"] = time.perf_counter() - t0
        versions = {f"{fw}@{t}t": pool[(fw, t)].info for fw, t in need}
        report["workers"] = versions
        dver = pool[("dagrad", 1)].info
        tver = pool[("torch", 1)].info["version"] if ("torch", 1) in pool.workers else "(not run)"
        nver = pool[("numpy", 1)].info["version"] if ("numpy", 1) in pool.workers else None
        print("dagrad vs PyTorch benchmark (benchmarks/bench_vs_torch.py)")
        print(f"  date:     {report['date']}")
        print(f"  machine:  {mach['cpu_model']}, {mach.get('cores')} cores "
              f"({mach.get('cpus', '?')} CPUs, {mach.get('threads_per_core', '?')} thread/core"
              + (f", {mach['hypervisor']} guest" if mach.get("hypervisor") else "") + f"), "
              f"{mach['platform']}, Python {mach['python']}")
        commit = git_commit(dver.get("package_dir", HERE))
        report["dagrad_commit"] = commit
        print(f"  versions: dagrad {dver['version']}" + (f" (commit {commit})" if commit else "")
              + f", BLAS {dver.get('blas', '?')}; torch {tver}" + (f"; numpy {nver}" if nver else ""))
        print(f"  dagrad:   {dver.get('core_path', '?')} (built {dver.get('core_mtime', '?')})")
        print(f"  method:   one worker process per framework and thread count, thread env set before import; "
              f"interleaved rounds (dagrad, torch, torch, dagrad, ...), {args.rounds} rounds; times are "
              f"medians over rounds, ratios (torch time / dagrad time, > 1: dagrad faster) medians of "
              f"the per-round ratios"
              + ("; --quick: fewer rounds, the largest sizes skipped" if args.quick else ""))
        print(f"  quiet:    rounds in which other processes used < {QUIET} cores / rounds; the medians use "
              f"the quiet rounds only (* = fewer than a third were quiet: all rounds used)")
        for s in "abcde":
            if s in only:
                t0 = time.perf_counter()
                {"a": section_a, "b": section_b, "c": section_c, "d": section_d,
                 "e": section_e}[s](pool, args, report)
                report[s]["elapsed_s"] = time.perf_counter() - t0
                print(f"    section time {report[s]['elapsed_s']:.1f} s")
                sys.stdout.flush()
    finally:
        pool.close()
    goals = [g for s in "abcde" if s in report for g in report[s]["goals"]]
    met = sum(g["met"] for g in goals)
    report["goals_met"] = met
    report["goals_total"] = len(goals)
    report["elapsed_s"] = time.perf_counter() - t_start
    print(f"\ngoals met: {met} of {len(goals)}; total time {report['elapsed_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
