"""Times the three wrapper prototypes (see CMakeLists.txt): ns per `x * w` for a chain (each
result kept as the next input, as in a scalar graph) and for a discarded result (create and
destroy), interleaved in rounds; prints medians and the per-round spread."""
import statistics
import sys
import time

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "build/wrapper_proto")
import proto_capi  # noqa: E402
import proto_nanobind  # noqa: E402
import proto_pybind  # noqa: E402

N = 200_000


def chain(mod):
    x, w = mod.make(1.0), mod.make(1.0)
    t0 = time.perf_counter_ns()
    for _ in range(N):
        x = x * w
    t1 = time.perf_counter_ns()
    del x
    return (t1 - t0) / N


def discard(mod):
    x, w = mod.make(1.0), mod.make(1.0)
    t0 = time.perf_counter_ns()
    for _ in range(N):
        x * w
    return (time.perf_counter_ns() - t0) / N


def loop():
    x = w = 1
    t0 = time.perf_counter_ns()
    for _ in range(N):
        x * w
    return (time.perf_counter_ns() - t0) / N


mods = {"pybind11": proto_pybind, "capi": proto_capi, "nanobind": proto_nanobind}
res = {(k, f.__name__): [] for k in mods for f in (chain, discard)}
base = []
for r in range(9):
    base.append(loop())
    for k, m in (mods.items() if r % 2 else reversed(mods.items())):
        for f in (chain, discard):
            res[k, f.__name__].append(f(m))
print(f"python loop with int*int: {statistics.median(base):.0f} ns")
for (k, f), v in res.items():
    print(f"{k:9s} {f:8s} median {statistics.median(v):6.0f} ns  (min {min(v):.0f}, max {max(v):.0f})")
