"""docs/tutorial.md: every Python block runs as written (each on its own, as a reader would
paste it), and the tutorial links to the playground's three demos."""
import pathlib
import re

import pytest

import dagrad

TUTORIAL = pathlib.Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
BLOCKS = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.S)


def test_the_tutorial_has_a_block_for_most_sections():
    sections = re.findall(r"^## (\d+)\. ", TUTORIAL.read_text(encoding="utf-8"), flags=re.M)
    assert sections == [str(i) for i in range(1, 12)]
    assert len(BLOCKS) >= 11


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_tutorial_block_runs(block, restore_threads):
    with dagrad.schedule("auto"):
        exec(compile(block, str(TUTORIAL), "exec"), {"__name__": "tutorial"})


def test_the_tutorial_links_to_each_demo_and_names_no_private_module():
    text = TUTORIAL.read_text(encoding="utf-8")
    for demo in ("execution", "backprop", "training"):
        assert f"http://127.0.0.1:8765/#{demo}" in text
    assert re.findall(r"dagrad[./]_(?!_)\w+", text) == []
