"""The demo in examples/linear_fit.py: the chain rule on z = x*w + b, and a linear fit."""
import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "linear_fit.py"


@pytest.fixture(scope="module")
def linear_fit():
    # Examples are scripts, not part of the package: load this one from its path.
    spec = importlib.util.spec_from_file_location("linear_fit_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(text, name):
    m = re.search(re.escape(name) + r"\s*=\s*(-?[0-9.eE+-]+)", text)
    assert m, f"{name!r} not found in output:\n{text}"
    return float(m.group(1))


def test_chain_rule_demo(linear_fit, capsys):
    linear_fit.chain_rule_demo()
    out = capsys.readouterr().out
    assert _numbers(out, "z = x*w + b") == 7.0
    assert _numbers(out, "dz/dx") == 3.0
    assert _numbers(out, "dz/dw") == 2.0
    assert _numbers(out, "dz/db") == 1.0


def test_fit_converges(linear_fit):
    log = io.StringIO()
    w, b, diverged = linear_fit.fit(lr=0.1, steps=1000, out=log)
    assert not diverged
    assert abs(w - 3.0) < 1e-3, w
    assert abs(b - 7.0) < 1e-3, b
    assert "Diverged" not in log.getvalue()
    # The logged loss goes down.
    losses = [float(x) for x in re.findall(r"loss ([0-9.eE+-]+)", log.getvalue())]
    assert len(losses) >= 2 and losses[-1] < 1e-6 < losses[0]


def test_fit_with_too_large_learning_rate_reports_divergence(linear_fit):
    log = io.StringIO()
    w, b, diverged = linear_fit.fit(lr=1.5, steps=1000, out=log)
    assert diverged
    assert "Diverged" in log.getvalue() and "1.5" in log.getvalue()


def test_main_exit_codes(linear_fit, capsys):
    assert linear_fit.main(["--lr", "0.1", "--steps", "1000"]) == 0
    out = capsys.readouterr().out
    assert "learned w = 3.000" in out or "learned w = 2.999" in out
    assert linear_fit.main(["--lr", "1.5"]) == 1


def test_main_output_follows_redirected_stdout(linear_fit):
    # Everything the demo prints, the training log and the divergence message included,
    # goes to the sys.stdout of the moment (so redirect_stdout and pytest capture see it).
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = linear_fit.main(["--lr", "1.5"])
    assert rc == 1
    out = buf.getvalue()
    assert "dz/dx = 3" in out
    assert "step     0" in out and "Diverged" in out
