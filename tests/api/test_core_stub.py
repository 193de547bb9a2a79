"""python/dagrad/_core.pyi declares every binding of the compiled module (.ci/gen_core_stub.py
writes it; rerun that script after adding a binding)."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_core_stub", ROOT / ".ci" / "gen_core_stub.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_stub_declares_every_binding():
    gen = _generator()
    want_top, want_methods = gen.declared(gen.generate())
    top, methods = gen.declared((ROOT / "python" / "dagrad" / "_core.pyi").read_text())
    assert want_top - top == set(), "run python .ci/gen_core_stub.py"
    assert want_methods - methods == set(), "run python .ci/gen_core_stub.py"
    # The ops of the binding table are there, with their first parameter's name.
    assert "tanh" in top and "relu" in methods and "Tensor" in top


def test_the_stub_is_valid_python():
    compile((ROOT / "python" / "dagrad" / "_core.pyi").read_text(), "_core.pyi", "exec")
