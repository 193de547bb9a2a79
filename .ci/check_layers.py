#!/usr/bin/env python3
"""Checks that the core's #include lines run one way, from the top layer down.

Layers, top first (issue #9; README "Layers of the core"):

    bindings -> autodiff -> observers -> scheduler -> fusion, optim -> ops -> graph -> kernels -> common

A file under csrc/ may include dagrad headers of its own layer or of a layer below it, never
above. The observers (compile's trace, the profiler) sit above the scheduler and reach it only
through its observer interface (scheduler/observer.h). Exit status 1 lists every include that
runs up the layers.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"

# (layer, path prefixes relative to csrc/), bottom first.
LAYERS = [
    ("common", ["dagrad/common.", "dagrad/small_vector.h", "dagrad/op_list.h"]),
    ("kernels", ["dagrad/kernels/"]),
    ("graph", ["dagrad/graph."]),
    ("ops", ["dagrad/ops.h", "dagrad/ops/"]),
    ("fusion, optim", ["dagrad/fusion.", "dagrad/optim."]),
    ("scheduler", ["dagrad/scheduler.h", "dagrad/scheduler/"]),
    ("observers", ["dagrad/trace.", "dagrad/profiler."]),
    ("autodiff", ["dagrad/autodiff.", "dagrad/runtime."]),
    ("bindings", ["bindings/"]),
]

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(rel):
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(rel.startswith(p) for p in prefixes):
            return i
    return None


def resolve(src_rel, target):
    """The include's path relative to csrc/ (quoted includes: csrc/ first, then the file's folder)."""
    if (CSRC / target).exists():
        return target
    local = (CSRC / src_rel).parent / target
    if local.exists():
        return local.resolve().relative_to(CSRC).as_posix()
    return None


def main():
    errors = []
    files = sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cpp"))
    for path in files:
        rel = path.relative_to(CSRC).as_posix()
        own = layer_of(rel)
        if own is None:
            errors.append(f"{rel}: not in any layer of .ci/check_layers.py; add it to one")
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = resolve(rel, m.group(1))
            if target is None:
                errors.append(f"{rel}:{lineno}: includes {m.group(1)}, which is not under csrc/")
                continue
            other = layer_of(target)
            if other is None:
                errors.append(f"{rel}:{lineno}: includes {target}, which is in no layer")
            elif other > own:
                errors.append(f"{rel}:{lineno}: includes {target} ({LAYERS[other][0]}) from below it "
                              f"({LAYERS[own][0]}): includes run from the top layer down")
    if errors:
        print("\n".join(errors))
        print(f"{len(errors)} include(s) break the layer order", file=sys.stderr)
        return 1
    print(f"layers: {len(files)} files, every include runs down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
