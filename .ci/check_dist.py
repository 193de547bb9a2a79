"""Checks what the release artifacts hold (issue #17); run by .ci/wheel.

    python .ci/check_dist.py sdist dist/dagrad-0.1.0.tar.gz
    python .ci/check_dist.py wheel wheelhouse/dagrad-0.1.0-...-manylinux_2_35_x86_64.whl

sdist: exactly what a build needs (CMakeLists.txt, csrc/, python/, pyproject.toml, README,
LICENSE, CHANGELOG), no tests, benchmarks, build folders or compiled files.
wheel: the package with its stub, py.typed, the license and the vendored OpenMP runtime; the
extension needs nothing outside the manylinux policy but the runtime it carries (OpenBLAS comes
from the scipy-openblas32 wheel at import: Note [OpenBLAS comes from the scipy-openblas32 wheel]).
"""
import fnmatch
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

SDIST_TOP = {"CMakeLists.txt", "CHANGELOG.md", "LICENSE", "PKG-INFO", "README.md", "pyproject.toml", "csrc", "python"}
JUNK = ("*/build/*", "*/__pycache__/*", "*.so", "*.o", "*.pyc", "*/.pytest_cache/*", "*/tests/*", "*/_skbuild/*")
# The libraries of the manylinux policy (PEP 600, glibc's and the compiler's runtime) that an
# extension may need from the system.
POLICY = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6", "libpthread.so.0", "libdl.so.2",
          "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


def fail(msg):
    raise SystemExit(f"check_dist: {msg}")


def check_sdist(path):
    with tarfile.open(path) as t:
        names = [m.name for m in t.getmembers() if m.isfile()]
    roots = {n.split("/")[0] for n in names}
    if len(roots) != 1:
        fail(f"{path}: more than one top folder: {sorted(roots)}")
    top = {n.split("/")[1] for n in names}
    if top != SDIST_TOP:
        fail(f"{path}: top level {sorted(top)}, want {sorted(SDIST_TOP)}")
    junk = [n for n in names if any(fnmatch.fnmatch(n, p) for p in JUNK)]
    if junk:
        fail(f"{path}: build junk in the sdist: {junk[:10]}")
    root = roots.pop()
    for need in ("csrc/dagrad/common.cpp", "csrc/bindings/module.cpp", "python/dagrad/__init__.py",
                 "python/dagrad/_version.py", "python/dagrad/_core.pyi", "python/dagrad/py.typed"):
        if f"{root}/{need}" not in names:
            fail(f"{path}: {need} is missing")
    print(f"sdist ok: {len(names)} files, top level {sorted(top)}")


def check_wheel(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        with tempfile.TemporaryDirectory() as tmp:
            core = [n for n in names if re.fullmatch(r"dagrad/_core\..*\.so", n)]
            if len(core) != 1:
                fail(f"{path}: want one dagrad/_core*.so, found {core}")
            so = Path(z.extract(core[0], tmp))
            dyn = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    for need in ("dagrad/__init__.py", "dagrad/_version.py", "dagrad/_core.pyi", "dagrad/py.typed",
                 "dagrad/viz/static/explorer.css"):
        if need not in names:
            fail(f"{path}: {need} is missing")
    if not any(re.fullmatch(r"dagrad-[^/]+\.dist-info/(licenses/)?LICENSE", n) for n in names):
        fail(f"{path}: no LICENSE in the .dist-info")
    gomp = [n for n in names if re.fullmatch(r"dagrad\.libs/libgomp-[0-9a-f]+\.so[.0-9]*", n)]
    if len(gomp) != 1:
        fail(f"{path}: want one vendored libgomp in dagrad.libs/, found {gomp}")
    if any("openblas" in n for n in names):
        fail(f"{path}: scipy-openblas32's library must not be vendored (it is a dependency)")
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn))
    rpath = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]", dyn)
    extra = needed - POLICY - {gomp[0].split("/")[1]}
    if extra:
        fail(f"{path}: _core needs libraries outside the policy: {sorted(extra)}")
    if gomp[0].split("/")[1] not in needed:
        fail(f"{path}: _core does not use its vendored libgomp (NEEDED: {sorted(needed)})")
    paths = ":".join(rpath).split(":")
    if "$ORIGIN/../dagrad.libs" not in paths:
        fail(f"{path}: _core's RPATH {rpath} lacks $ORIGIN/../dagrad.libs")
    print(f"wheel ok: {len(names)} files; _core needs {sorted(needed)}; RPATH {paths}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("sdist", "wheel"):
        raise SystemExit(__doc__)
    (check_sdist if sys.argv[1] == "sdist" else check_wheel)(sys.argv[2])
