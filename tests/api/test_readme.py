"""The README's Python examples run as written, and it points only at public API."""
import pathlib
import re

import dagrad

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def test_readme_examples_run(capsys):
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "7.0 3.0 2.0 1.0" in out  # the first look prints z and the three gradients


def test_readme_names_no_private_module():
    # dagrad._core, dagrad._tensor, python/dagrad/_args.py, ...: what users may rely on is public.
    private = re.findall(r"dagrad[./]_(?!_)\w+", README.read_text())
    assert private == [], f"the README names private modules: {private}"


def test_readme_ops_table_lists_every_op_the_core_binds():
    # The fifth of an op's five places (README, "Adding an op"): the "Ops" table.
    table = README.read_text().split("## Ops", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(\w+)`", table))
    missing = sorted(set(dagrad._core._FUNCTIONS) - listed)
    assert missing == [], f"the README's Ops table lacks {missing}"
