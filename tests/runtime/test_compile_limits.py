"""What dagrad.compile refuses to trace, and that a failed trace leaves everything usable."""
import pytest

import dagrad
import dagrad.nn.functional as F


def test_dropout_in_training_mode_cannot_be_traced_and_library_recovers():
    @dagrad.compile
    def step(x):
        return F.dropout(x, 0.5, training=True).sum()

    with pytest.raises(RuntimeError, match="dropout.*dagrad.compile"):
        step(dagrad.ones(4))
    # The failed trace released everything: eager work and a new compiled function still run.
    assert (dagrad.ones(3) * 2).sum().item() == 6.0

    @dagrad.compile
    def ok(x):
        return (x * 3).sum()

    assert ok(dagrad.ones(2)).item() == 6.0
    assert ok(dagrad.full((2,), 2.0)).item() == 12.0


def test_dropout_in_eval_mode_is_identity_inside_compile():
    @dagrad.compile
    def step(x):
        return F.dropout(x, 0.5, training=False).sum()

    assert step(dagrad.ones(4)).item() == 4.0
