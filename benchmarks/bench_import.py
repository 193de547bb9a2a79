"""What a user pays to start: `import dagrad` against `import torch` (and `import numpy`, which
both import), each timed inside a fresh interpreter, the three interleaved round by round; the
median and the spread over the rounds. With --wheel, also the wheel's size and what it holds.

Run: python benchmarks/bench_import.py [--rounds 15] [--python PATH] [--wheel dist/dagrad-*.whl]
`--python` picks the interpreter whose dagrad is measured (a venv with the installed wheel).
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import zipfile

CHILD = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def time_import(python, mod):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the installed package, never a checkout's python/
    out = subprocess.run([python, "-c", CHILD.format(mod=mod)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def wheel_report(path):
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    unpacked = sum(i.file_size for i in infos)
    largest = sorted(infos, key=lambda i: -i.file_size)[:4]
    print(f"\nwheel {os.path.basename(path)}: {os.path.getsize(path) / 2**20:.2f} MiB, "
          f"{unpacked / 2**20:.2f} MiB unpacked, {len(infos)} files; largest:")
    for i in largest:
        print(f"  {i.file_size / 2**20:7.2f} MiB  {i.filename}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--wheel", default=None)
    args = ap.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")

    probe = subprocess.run([args.python, "-c", "import dagrad, torch, numpy; "
                            "print(dagrad.__version__, dagrad.__file__, torch.__version__, numpy.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:  # both are measured: say which one is missing
        raise SystemExit(f"{args.python} cannot import dagrad, torch and numpy (pip install torch==2.13.0):\n"
                         + probe.stderr.strip().splitlines()[-1])
    info = probe.stdout.split()
    print(f"{datetime.date.today()}  {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"dagrad {info[0]} from {info[1]}, torch {info[2]}, numpy {info[3]}")

    mods = ["numpy", "dagrad", "torch"]
    for m in mods:  # a first, cold import (files not yet in the page cache) is not counted
        time_import(args.python, m)
    times = {m: [] for m in mods}
    for _ in range(args.rounds):
        for m in mods:
            times[m].append(time_import(args.python, m))

    print(f"\nimport time, fresh interpreter each, {args.rounds} interleaved rounds (ms)")
    print(f"{'module':8} {'median':>8} {'min':>8} {'max':>8}")
    for m in mods:
        t = [1e3 * v for v in times[m]]
        print(f"{m:8} {statistics.median(t):8.1f} {min(t):8.1f} {max(t):8.1f}")
    ratio = statistics.median(times["torch"]) / statistics.median(times["dagrad"])
    print(f"torch / dagrad (medians): {ratio:.1f}x")
    if args.wheel:
        wheel_report(args.wheel)


if __name__ == "__main__":
    main()
