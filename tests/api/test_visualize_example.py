"""examples/visualize.py writes the DOT, the trace, the stats and the explorer of z = x*w + b
and of a small MLP, and says where."""
import importlib.util
import json
from pathlib import Path

import pytest

import dagrad

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "visualize.py"


@pytest.fixture(scope="module")
def visualize():
    spec = importlib.util.spec_from_file_location("visualize_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_visualize_writes_every_view(visualize, tmp_path, capsys):
    assert visualize.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("z", "mlp"):
        dot = (tmp_path / f"{name}.dot").read_text()
        assert dot.startswith("digraph") and "rankdir=LR" in dot and dagrad.viz.COLORS["backward"] in dot
        values = (tmp_path / f"{name}_values.dot").read_text()
        assert "value" in values and "grad" in values
        trace = json.loads((tmp_path / f"{name}_trace.json").read_text())
        assert any(e["ph"] == "X" for e in trace["traceEvents"])
        stats = (tmp_path / f"{name}_stats.txt").read_text()
        assert "parallelism" in stats and "measured" in stats and "calls" in stats
        assert str(tmp_path / f"{name}.dot") in out
        if hasattr(dagrad.viz, "html"):
            assert (tmp_path / f"{name}.html").read_text().lstrip().lower().startswith("<!doctype html")
        else:
            assert "HTML explorer skipped" in out
    z_values = (tmp_path / "z_values.dot").read_text()
    assert "value 7" in z_values and "grad 3" in z_values and "grad 2" in z_values
