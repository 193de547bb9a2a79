"""The README's Python examples run as written, and it points only at public API."""
import pathlib
import re

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
    private = re.findall(r"dagrad[./]_\w+", README.read_text())
    assert private == [], f"the README names private modules: {private}"
