"""Nested and overlapping profilers (issue #15, item 12): each active profiler sees every node
run while it is active, recording stays on until the last one leaves, and leaving an inner
profiler loses none of the outer one's events. See Note [Nested profilers]."""
import pytest

import dagrad
from dagrad import _core
from dagrad.profiler import profile


def _run(op):
    x = dagrad.ones(3)
    y = {"add": lambda: x + 1, "mul": lambda: x * 2, "sub": lambda: x - 3, "div": lambda: x / 4}[op]()
    dagrad.realize(y)


def _ops(prof):
    return [e["op"] for e in prof.events]


def test_inner_profiler_keeps_outer_events_and_recording():
    with profile() as outer:
        _run("add")
        with profile() as inner:
            _run("mul")
        _run("sub")  # recorded after the inner one left: the outer one still records
    assert _ops(outer) == ["add", "mul", "sub"]
    assert _ops(inner) == ["mul"]
    mul = [e for e in outer.events if e["op"] == "mul"][0]
    assert mul == inner.events[0] and mul is not inner.events[0]


def test_three_levels():
    with profile() as a:
        _run("add")
        with profile() as b:
            _run("mul")
            with profile() as c:
                _run("sub")
            _run("div")
        _run("add")
    assert _ops(a) == ["add", "mul", "sub", "div", "add"]
    assert _ops(b) == ["mul", "sub", "div"]
    assert _ops(c) == ["sub"]


def test_overlapping_profilers_that_do_not_nest():
    a, b = profile(), profile()
    a.__enter__()
    _run("add")
    b.__enter__()
    _run("mul")
    a.__exit__(None, None, None)  # the first one leaves first: b keeps recording
    _run("sub")
    b.__exit__(None, None, None)
    assert _ops(a) == ["add", "mul"]
    assert _ops(b) == ["mul", "sub"]


def test_recording_stops_when_the_last_profiler_leaves():
    with profile():
        with profile():
            _run("add")
    _run("mul")
    assert list(_core._profiler_take_events()) == []
    with profile() as p:  # a new profiler sees nothing from before it started
        _run("sub")
    assert _ops(p) == ["sub"]


def test_events_are_ordered_by_start_time():
    with profile() as outer:
        for op in ("add", "mul", "sub"):
            with profile():
                _run(op)
            _run("div")
    starts = [e["start_ns"] for e in outer.events]
    assert starts == sorted(starts) and len(starts) == 6


def test_error_inside_nested_profilers_leaves_both_consistent():
    with profile() as outer:
        with pytest.raises(ValueError):
            with profile():
                _run("add")
                raise ValueError("boom")
        _run("mul")
    assert _ops(outer) == ["add", "mul"]


def test_same_profiler_cannot_be_entered_twice():
    p = profile()
    with p:
        with pytest.raises(RuntimeError, match="already active"):
            p.__enter__()
        _run("add")
    assert _ops(p) == ["add"]
    with p:  # entering it again later starts a fresh record
        _run("mul")
    assert _ops(p) == ["mul"]
