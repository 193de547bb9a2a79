"""The profiler's records and what is made of them (issue #10): every event field, the Chrome
trace (named thread tracks, X slices with their args, flow arrows across threads, the
ready-list counter), fused groups with their members, the summary by op, and stats from
measured times. No timing is asserted: only the structure of what was recorded."""
import json

import pytest

import dagrad
from dagrad import viz

FIELDS = {"node", "op", "thread", "start_ns", "end_ns", "pass", "shape", "dtype", "inputs", "fused", "ready",
          "run"}


@pytest.fixture
def two_threads():
    prev = dagrad.get_num_threads()
    dagrad.set_num_threads(2)
    yield
    dagrad.set_num_threads(prev)


@pytest.fixture
def fusion_on():
    prev = dagrad._core._fusion_enabled()
    dagrad._core._set_fusion_enabled(True)
    yield
    dagrad._core._set_fusion_enabled(prev)


def _wide(branches=8, depth=10, n=64):
    xs = [dagrad.randn(n, n) for _ in range(branches)]
    ends = []
    for x in xs:
        y = x
        for _ in range(depth):
            y = y @ x
        ends.append(y)
    return dagrad.stack(ends).sum()


def _trace(prof, tmp_path):
    path = prof.export_chrome_trace(tmp_path / "trace.json")
    with open(path) as f:
        return json.load(f)["traceEvents"]


def test_profile_is_the_public_name():
    assert dagrad.profile is dagrad.profiler.profile
    assert "profile" in dagrad.__all__


def test_events_have_every_field():
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    z = x * w + 1.0
    with dagrad.profile() as prof:
        z.backward()
    assert prof.events
    for e in prof.events:
        assert FIELDS <= set(e), set(e)
        assert e["end_ns"] >= e["start_ns"] and e["pass"] in ("forward", "backward")
        assert isinstance(e["shape"], tuple) and isinstance(e["dtype"], str)
        assert isinstance(e["inputs"], list) and isinstance(e["fused"], list)
    forward = [e["op"] for e in prof.events if e["pass"] == "forward"]
    backward = [e["op"] for e in prof.events if e["pass"] == "backward"]
    assert sorted(forward) == ["add", "mul"]
    assert backward.count("mul") == 2  # dz/dx = w, dz/dw = x: the backward multiplies are marked
    by_node = {e["node"]: e for e in prof.events}
    add = next(e for e in prof.events if e["op"] == "add")
    mul = next(e for e in prof.events if e["op"] == "mul" and e["pass"] == "forward")
    assert mul["node"] in add["inputs"] and add["node"] == z._id
    assert all(i in by_node or i not in {ev["node"] for ev in prof.events} for i in add["inputs"])


def test_chrome_trace_has_every_field(tmp_path):
    x = dagrad.tensor(2.0, requires_grad=True)
    z = x * 3.0 + 1.0
    with dagrad.profile() as prof:
        z.backward()
    trace = _trace(prof, tmp_path)
    meta = [t for t in trace if t["ph"] == "M"]
    slices = [t for t in trace if t["ph"] == "X"]
    assert {"process_name", "thread_name"} <= {m["name"] for m in meta}
    named = {m["tid"] for m in meta if m["name"] == "thread_name"}
    assert named == {s["tid"] for s in slices} and all(
        m["args"]["name"] == f"worker {m['tid']}" for m in meta if m["name"] == "thread_name")
    assert len(slices) == len(prof.events)
    for s in slices:
        assert s["dur"] >= 0 and s["ts"] >= 0 and s["cat"] in ("forward", "backward")
        assert {"node", "op", "shape", "pass", "dtype", "inputs", "fused", "ready", "run"} <= set(s["args"])
    assert any(s["name"] == "mul (backward)" and s["args"]["pass"] == "backward" for s in slices)
    assert any(s["name"] == "mul" and s["args"]["pass"] == "forward" for s in slices)


def test_wide_graph_on_two_threads_has_two_tracks_flows_and_a_ready_counter(tmp_path, two_threads):
    out = _wide()
    with dagrad.schedule("parallel"), dagrad.profile() as prof:
        dagrad.realize(out)
    assert len(prof.threads()) >= 2
    trace = _trace(prof, tmp_path)
    tracks = {t["tid"] for t in trace if t["ph"] == "M" and t["name"] == "thread_name"}
    assert len(tracks) >= 2
    slices = {t["args"]["node"]: t for t in trace if t["ph"] == "X"}
    starts = {t["id"]: t for t in trace if t["ph"] == "s"}
    finishes = {t["id"]: t for t in trace if t["ph"] == "f"}
    assert starts and set(starts) == set(finishes)
    events = {e["node"]: e for e in prof.events}
    for fid, s in starts.items():
        f = finishes[fid]
        assert f["bp"] == "e" and s["cat"] == f["cat"] and s["name"] == f["name"]
        assert s["tid"] != f["tid"]
        # each end lies inside a slice of its own thread: the producer's and the consumer's
        prod = [x for x in slices.values() if x["tid"] == s["tid"] and x["ts"] <= s["ts"] <= x["ts"] + x["dur"]]
        cons = [x for x in slices.values() if x["tid"] == f["tid"] and x["ts"] <= f["ts"] <= x["ts"] + x["dur"]]
        assert len(prod) == 1 and len(cons) == 1
        assert prod[0]["args"]["node"] in events[cons[0]["args"]["node"]]["inputs"]
    # every dependency that crosses threads has its arrow
    crossing = sum(1 for e in prof.events for i in e["inputs"]
                   if i in events and events[i]["thread"] != e["thread"])
    assert len(starts) == crossing
    counters = [t for t in trace if t["ph"] == "C"]
    assert counters and all(c["name"] == "ready nodes" and c["args"]["ready"] >= 0 for c in counters)


def test_serial_run_has_no_ready_counter(tmp_path):
    with dagrad.schedule("serial"), dagrad.profile() as prof:
        dagrad.realize(dagrad.ones(4) * 2 + 1)
    assert all(e["ready"] == -1 for e in prof.events)
    assert not [t for t in _trace(prof, tmp_path) if t["ph"] == "C"]


def test_fused_group_shows_its_members(tmp_path, fusion_on):
    a, b, c = (dagrad.randn(4096) for _ in range(3))
    out = ((a * b) + c).exp()
    with dagrad.profile() as prof:
        dagrad.realize(out)
    fused = [e for e in prof.events if e["fused"]]
    assert fused, prof.events
    members = {m["op"] for e in fused for m in e["fused"]}
    assert {"mul", "add"} & members
    trace = _trace(prof, tmp_path)
    slices = [t for t in trace if t["ph"] == "X" and t["args"]["fused"]]
    assert slices and all(s["name"].startswith("fused ") for s in slices)
    assert all("#" in m for s in slices for m in s["args"]["fused"])


def test_summary_by_op(capsys):
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    with dagrad.profile() as prof:
        (x * w + 1.0).backward()
    rows = prof.summary()
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["op", "calls", "total", "(us)", "mean", "(us)", "share"]
    assert "mul (backward)" in text and text.splitlines()[-1].startswith("total")
    assert sum(r["calls"] for r in rows) == len(prof.events)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["total_ns"] for r in rows) == sum(e["end_ns"] - e["start_ns"] for e in prof.events)
    back = next(r for r in rows if r["op"] == "mul" and r["pass"] == "backward")
    assert back["calls"] == 2 and back["mean_ns"] == back["total_ns"] / 2
    assert [r["total_ns"] for r in rows] == sorted((r["total_ns"] for r in rows), reverse=True)


def test_stats_of_a_profile_use_measured_times(two_threads):
    out = _wide(branches=4, depth=3, n=32)
    with dagrad.profile() as prof:
        dagrad.realize(out)
    s = viz.stats(prof)
    assert s.measured and s.unit == "ns"
    assert s.work == sum(e["end_ns"] - e["start_ns"] for e in prof.events)
    assert s.nodes == len(prof.events)
    assert 0 < s.span <= s.work
    # the critical path follows recorded dependencies, and runs from a first node to the last
    by_node = {e["node"]: e for e in prof.events}
    for a, b in zip(s.critical_path, s.critical_path[1:]):
        assert a in by_node[b]["inputs"]
    assert s.critical_path[-1] == out._id
    assert viz.stats(prof.events).work == s.work


def test_stats_of_several_runs_add_their_spans():
    with dagrad.profile() as prof:
        dagrad.realize(dagrad.ones(8) * 2)
        dagrad.realize(dagrad.ones(8) * 3)
    runs = {e["run"] for e in prof.events}
    assert len(runs) == 2
    s = viz.stats(prof)
    assert s.span == s.work == sum(e["end_ns"] - e["start_ns"] for e in prof.events)
