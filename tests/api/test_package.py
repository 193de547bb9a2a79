"""The package's face (issue #17): one version everywhere, the typing files shipped with the
package, show_config, and the message when OpenBLAS's library cannot be loaded."""
import contextlib
import importlib.metadata
import importlib.resources
import io
import pathlib
import re
import subprocess
import sys

import pytest

import dagrad
from dagrad import _core

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_version_is_written_once():
    text = (ROOT / "python" / "dagrad" / "_version.py").read_text()
    (written,) = re.findall(r'^__version__ = "([^"]+)"$', text, re.M)
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", written)
    assert dagrad.__version__ == written
    assert _core._config()["version"] == written  # compiled in from the same file (CMakeLists.txt)
    assert importlib.metadata.version("dagrad") == written  # the installed metadata
    if sys.version_info >= (3, 11):  # tomllib
        import tomllib

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert "version" not in project and "version" in project["dynamic"]


def test_typing_files_ship_with_the_package():
    pkg = importlib.resources.files("dagrad")
    assert (pkg / "py.typed").is_file()
    stub = (pkg / "_core.pyi").read_text()
    assert "class Tensor" in stub


def test_show_config_names_version_location_and_runtimes():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        dagrad.show_config()
    text = out.getvalue()
    assert text.startswith(f"dagrad {dagrad.__version__}\n")  # no "(compiled core: ...)": not stale
    assert f"location:  {pathlib.Path(_core.__file__).resolve().parent}" in text
    assert f"threads:   {dagrad.get_num_threads()}" in text
    assert "OpenMP:" in text and "BLAS:" in text and "compiler:" in text


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _core._config()["blas"].startswith("OpenBLAS"),
                    reason="the module binds OpenBLAS at import on Linux only")
def test_missing_openblas_says_what_to_install():
    # Note [OpenBLAS comes from the scipy-openblas32 wheel]: without the package, importing
    # dagrad fails with an ImportError that names it.
    child = "import sys; sys.modules['scipy_openblas32'] = None\nimport dagrad"
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "ImportError: dagrad's compiled core needs the OpenBLAS library of the scipy-openblas32 package" in p.stderr
    assert "pip install scipy-openblas32" in p.stderr
