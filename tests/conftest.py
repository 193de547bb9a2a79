"""pytest's fixtures and Hypothesis profiles for dagrad's Python tests.

The helpers that tests import by name (``torch_helpers``, ``arg_probe``, ``fuzz_ops``) sit next
to this file, on pytest's ``pythonpath`` (pyproject.toml).
"""
import pytest

import dagrad


@pytest.fixture
def restore_threads():
    """Restores dagrad's thread budget after a test that changes it."""
    n = dagrad.get_num_threads()
    yield
    dagrad.set_num_threads(n)


@pytest.fixture(autouse=True)
def _grad_mode_guard():
    """A failing test must not leave grad mode off for the next one."""
    prev = dagrad.is_grad_enabled()
    yield
    dagrad.set_grad_enabled(prev)


# Hypothesis profiles for tests/ops/test_properties.py. "ci" (the default) is small and derandomized,
# so every CI run draws the same examples (about 20 s for the file when it passes) -- with the same
# Hypothesis: .ci/run and the README pin its version, since another version draws other
# examples; "long" searches for real:
#     python -m pytest tests/ops/test_properties.py --hypothesis-profile=long
try:
    from hypothesis import HealthCheck, settings as _hyp_settings
except ImportError:  # the property tests skip themselves
    pass
else:
    _slow_ok = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
    _hyp_settings.register_profile("ci", max_examples=100, derandomize=True, deadline=None,
                                   database=None, print_blob=True, suppress_health_check=_slow_ok)
    _hyp_settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True,
                                   suppress_health_check=_slow_ok)
    _hyp_settings.load_profile("ci")
