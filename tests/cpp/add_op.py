#!/usr/bin/env python3
"""Adds a throwaway elementwise primitive, softsign(x) = x / (1 + |x|), the way README.md's
"Adding an op" section says, and proves that its five places are all it takes.

The repository is copied to a scratch folder; five edits are made there (the op list, the
family file, the functor, the binding table and the docs) and nothing else; the core and the
Python module are built from the copy; then, with no Python file edited:

  * dagrad.softsign and Tensor.softsign exist and dagrad.__all__ names softsign;
  * values match numpy in float32 and float64, and gradients pass dagrad.autograd.gradcheck;
  * a no-grad chain through softsign is fused (Note [Elementwise fusion]) with the same bits
    as unfused.

Run by ctest (CMakeLists.txt, DAGRAD_BUILD_TESTS) or by hand: python tests/cpp/add_op.py
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The five places, as README.md shows them: (file, anchor, text, inserted before the anchor?).
EDITS = [
    ("csrc/dagrad/op_list.h", '  X(Erf, "erf", elementwise)          \\\n',
     '  X(Softsign, "softsign", elementwise) \\\n', False),
    ("csrc/dagrad/op_list.h", "  X(Erf, erf, 1)                           \\\n",
     "  X(Softsign, softsign, 1)                 \\\n", False),
    # before the end of the primitives, where the composites begin
    ("csrc/dagrad/ops/elementwise.cpp", "}  // namespace dagrad\n\n// =====",
     """Tensor softsign(const Tensor& x) { return float_unary(OpKind::Softsign, x); }
void Softsign_forward(Node& out) {
  DAGRAD_DISPATCH_FLOAT(out.dtype, "softsign", unary_forward<T>(out, fn::Softsign{}));
}
// d/dx x / (1 + |x|) = 1 / (1 + |x|)^2.
std::vector<Tensor> Softsign_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  Tensor d = add(abs(input(out, 0)), scalar_like(g, 1.0));
  return {div(g, mul(d, d))};
}

""", True),
    ("csrc/dagrad/kernels/elementwise_fns.h", "}  // namespace fn\n",
     """struct Softsign {
  template <class T>
  T operator()(T v) const { return v / (T(1) + std::abs(v)); }
};

""", True),
    ("csrc/bindings/init_ops.cpp", '  t.unary<&dagrad::rsqrt>("rsqrt", kBoth);\n',
     '  t.unary<&dagrad::softsign>("softsign", kBoth);\n', False),
    ("README.md", "`rsqrt`", ", `softsign`", False),
]

CHECK = r"""
import os
import sys

# The copy's package, not an editable install of the checkout (its import hook comes first).
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
import numpy as np
import dagrad

assert dagrad.__file__.startswith(os.environ["PYTHONPATH"]), dagrad.__file__

assert "softsign" in dagrad.__all__, "dagrad.__all__ lacks softsign"
for dt, np_dt in ((dagrad.float32, np.float32), (dagrad.float64, np.float64)):
    a = np.linspace(-4, 4, 5000).astype(np_dt)
    x = dagrad.tensor(a, dtype=dt)
    ref = a / (1 + np.abs(a))
    np.testing.assert_allclose(dagrad.softsign(x).numpy(), ref, rtol=1e-6 if np_dt is np.float32 else 1e-12)
    np.testing.assert_array_equal(x.softsign().numpy(), dagrad.softsign(x).numpy())

x = dagrad.tensor(np.linspace(-3, 3, 13), dtype=dagrad.float64, requires_grad=True)
assert dagrad.autograd.gradcheck(lambda t: dagrad.softsign(t) * 2.0, (x,)) is True
x.grad = None
dagrad.softsign(x).sum().backward()
np.testing.assert_allclose(x.grad.numpy(), 1 / (1 + np.abs(x.detach().numpy())) ** 2, rtol=1e-12)

# A no-grad chain through the new op fuses, with the same bits as unfused.
big = dagrad.tensor(np.linspace(-5, 5, 1 << 14).astype(np.float32))
with dagrad.no_grad():
    fused = dagrad.softsign(big * 3.0).exp()
    fused.numpy()
    assert dagrad._core.last_run_stats()["fused"] >= 1, dagrad._core.last_run_stats()
    dagrad._core._set_fusion_enabled(False)
    plain = dagrad.softsign(big * 3.0).exp().numpy()
    dagrad._core._set_fusion_enabled(True)
np.testing.assert_array_equal(fused.numpy(), plain)
print("add_op: softsign works from its five places")
"""


def main():
    with tempfile.TemporaryDirectory(prefix="dagrad-add-op-") as tmp:
        src = pathlib.Path(tmp) / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("build", ".git", "__pycache__", "*.so",
                                                                 ".pytest_cache", "*.egg-info"))
        changed = set()
        for rel, anchor, text, before in EDITS:
            path = src / rel
            s = path.read_text()
            assert s.count(anchor) == 1, f"{rel}: the anchor {anchor!r} must occur once (README's 'Adding an op')"
            path.write_text(s.replace(anchor, text + anchor if before else anchor + text))
            changed.add(rel)
        assert len(changed) == 5, f"softsign should take 5 files, took {sorted(changed)}"

        build = pathlib.Path(tmp) / "build"
        subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        "-DDAGRAD_BUILD_PYTHON=ON", f"-DPython_EXECUTABLE={sys.executable}",
                        f"-Dpybind11_DIR={pybind11_dir()}"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, stdout=subprocess.DEVNULL)

        pkg = pathlib.Path(tmp) / "pkg"
        shutil.copytree(src / "python" / "dagrad", pkg / "dagrad")
        for so in build.glob("_core*.so"):
            shutil.copy(so, pkg / "dagrad")
        env = dict(os.environ, PYTHONPATH=str(pkg))
        subprocess.run([sys.executable, "-c", CHECK], check=True, env=env, cwd=tmp)


def pybind11_dir():
    import pybind11
    return pybind11.get_cmake_dir()


if __name__ == "__main__":
    main()
