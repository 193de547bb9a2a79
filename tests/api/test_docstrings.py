"""Every docstring example in the dagrad package runs as written: what ``--doctest-modules``
checks, run from the suite so that ``python -m pytest tests`` covers it, against the installed
package.

One test per docstring with examples. Each runs in its module's namespace with ``dagrad``
imported, under pytest's default doctest option (ELLIPSIS). A module whose import needs an
optional dependency that is missing is skipped, not failed.
"""
import doctest
import importlib
import pkgutil

import pytest

import dagrad


def _modules():
    """(name, module or the reason it is skipped) for dagrad and every module under it."""
    names = ["dagrad"] + sorted(m.name for m in pkgutil.walk_packages(dagrad.__path__, "dagrad."))
    for name in names:
        try:
            yield name, importlib.import_module(name)
        except ImportError as e:
            if (e.name or "").split(".")[0] == "dagrad":
                raise  # a broken module of our own, not a missing optional dependency
            yield name, f"{name} needs {e.name}, which is not installed"


def _docstring_tests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name, mod in _modules():
        if isinstance(mod, str):
            yield pytest.param(None, id=name, marks=pytest.mark.skip(reason=mod))
            continue
        for test in finder.find(mod, name, extraglobs={"dagrad": dagrad}):
            if test.examples:
                yield pytest.param(test, id=test.name)


DOCTESTS = list(_docstring_tests())


def test_the_package_has_docstring_examples():
    assert len(DOCTESTS) > 50


@pytest.fixture
def _same_random_stream():
    """Examples may call manual_seed or draw random numbers: the tests after them draw what
    they drew before this file existed."""
    from dagrad import _creation
    rng = _creation._rng
    state = rng.bit_generator.state
    yield
    rng.bit_generator.state = state
    _creation._rng = rng


@pytest.mark.parametrize("test", DOCTESTS)
def test_docstring_examples(test, _same_random_stream):
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=report.append)
    assert runner.failures == 0, f"{test.name} ({test.filename}:{test.lineno}):\n{''.join(report)}"
