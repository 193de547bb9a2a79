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


def test_too_small_learning_rate_is_reported_as_not_converged(linear_fit, capsys):
    # lr 0.001: after 1000 steps w is still near 1.45; the loss still goes down.
    assert linear_fit.main(["--lr", "0.001", "--steps", "1000"]) == 1
    out = capsys.readouterr().out
    assert "not converged after 1000 steps" in out and "0.001" in out
    assert "learned" not in out and "oscillating" not in out


def test_oscillating_learning_rate_is_reported(linear_fit, capsys):
    # lr 1.0: b steps back and forth across 7 and the loss grows slowly (no divergence yet).
    assert linear_fit.main(["--lr", "1.0", "--steps", "1000"]) == 1
    out = capsys.readouterr().out
    assert "oscillating / loss not decreasing" in out and "1.0" in out
    assert "learned" not in out and "Diverged" not in out


def test_diagnose_reads_the_history(linear_fit):
    good, slow, swinging = [], [], []
    linear_fit.fit(0.1, 1000, out=io.StringIO(), history=good)
    linear_fit.fit(0.001, 1000, out=io.StringIO(), history=slow)
    linear_fit.fit(1.0, 1000, out=io.StringIO(), history=swinging)
    assert len(good) == 1001 and set(good[0]) == {"step", "loss", "w", "b"}
    assert linear_fit.diagnose(good, 0.1) is None
    assert linear_fit.diagnose(slow, 0.001).startswith("not converged after 1000 steps")
    assert linear_fit.diagnose(swinging, 1.0).startswith("oscillating / loss not decreasing")


def test_failure_exit_status_of_the_script():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(EXAMPLE), "--lr", "1.0", "--steps", "200"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "oscillating / loss not decreasing" in r.stdout


def test_html_training_view(linear_fit, tmp_path, capsys):
    import dagrad
    if not hasattr(dagrad.viz, "html"):
        pytest.skip("dagrad.viz.html is not there")
    out = tmp_path / "fit.html"
    assert linear_fit.main(["--lr", "0.1", "--steps", "200", "--html", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text()
    assert text.lstrip().lower().startswith("<!doctype html")
    assert 'src="http' not in text  # self-contained: nothing to fetch
