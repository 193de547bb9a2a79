"""The training examples run as tests: each must reach its stated result (and, run as a
script, finish in under a minute on 2 cores)."""
import importlib.util
import io
import math
import pathlib
import sys

import pytest

from mpi_helpers import mpiexec_run, needs_mpi

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

pytest.importorskip("sklearn")


def load(name):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # the examples import each other's helpers
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_mlp_reaches_95_percent():
    acc = load("digits_mlp").train(out=io.StringIO())
    assert acc >= 0.95


def test_digits_mlp_compiled_equals_eager():
    mod = load("digits_mlp")
    eager = mod.train(epochs=3, out=io.StringIO())
    compiled = mod.train(epochs=3, compile_step=True, out=io.StringIO())
    assert compiled == eager


def test_digits_cnn_reaches_95_percent():
    acc = load("digits_cnn").train(out=io.StringIO())
    assert acc >= 0.95


def test_char_rnn_loss_falls_well_below_uniform():
    out = io.StringIO()
    losses, uniform = load("char_rnn").train(steps=300, out=out)
    assert abs(losses[0] - uniform) < 0.5  # starts near ln(vocabulary)
    assert sum(losses[-50:]) / 50 < 0.5 * uniform
    assert all(math.isfinite(v) for v in losses)
    assert "sample: " in out.getvalue()


@needs_mpi
def test_digits_ddp_on_two_ranks_reaches_the_accuracy_of_one():
    # Two ranks take the steps one process takes on the same global batches (up to float32
    # rounding and the sampler's one padded sample), so the accuracy is the same.
    accs = []
    for n in (1, 2):
        _, out = mpiexec_run(n, EXAMPLES / "digits_ddp.py", "--epochs", 10, "--baseline-steps", 20, threads=1)
        accs.append(float(out.rsplit("final test accuracy:", 1)[1].split()[0]))
        assert "time per step:" in out and "scaling efficiency" in out
        assert ("overlapped with backward" in out) == (n > 1)
    assert accs[0] >= 0.95 and abs(accs[0] - accs[1]) <= 0.01, accs
