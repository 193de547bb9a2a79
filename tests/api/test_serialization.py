"""dagrad.save / dagrad.load: exact round trips of nested state_dicts, a plain .npz file,
atomic replacement (an interrupted save keeps the previous checkpoint) and clear errors
for corrupt, truncated and missing files."""
import math
import os
import struct
import zipfile

import numpy as np
import pytest

import dagrad
import dagrad.nn.functional as DF

# ----------------------------------------------------------------------------- exact comparison

def float_bits(v):
    return struct.pack("<d", v)


def assert_identical(got, want, where="root"):
    """Same types, same structure, bitwise-equal floats and tensors (dtype and shape too)."""
    assert type(got) is type(want), f"{where}: type {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dagrad.Tensor):
        assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
        assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
        assert got.requires_grad == want.requires_grad, f"{where}: requires_grad differs"
        a, b = np.ascontiguousarray(got.numpy()), np.ascontiguousarray(want.numpy())
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{where}: tensor bits differ"
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: array differs"
        assert got.tobytes() == want.tobytes(), f"{where}: array bits differ"
    elif isinstance(want, dict):
        assert list(got.keys()) == list(want.keys()), f"{where}: keys {list(got)} != {list(want)}"
        assert [type(k) for k in got] == [type(k) for k in want], f"{where}: key types differ"
        for k in want:
            assert_identical(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_identical(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert float_bits(got) == float_bits(want), f"{where}: {got!r} != {want!r} (bitwise)"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


# ----------------------------------------------------------------------------- fixtures

def tiny_model(seed=0):
    g = np.random.default_rng(seed)
    return {
        "fc1.weight": dagrad.tensor(g.standard_normal((5, 4)), requires_grad=True),
        "fc1.bias": dagrad.tensor(g.standard_normal(5), requires_grad=True),
        "fc2.weight": dagrad.tensor(g.standard_normal((3, 5)), requires_grad=True),
        "fc2.bias": dagrad.tensor(g.standard_normal(3), requires_grad=True),
    }


def train(params, opt, steps, seed):
    g = np.random.default_rng(seed)
    for _ in range(steps):
        x = dagrad.tensor(g.standard_normal((6, 4)))
        y = dagrad.tensor(g.integers(0, 3, size=6))
        opt.zero_grad()
        h = dagrad.tanh(DF.linear(x, params["fc1.weight"], params["fc1.bias"]))
        DF.cross_entropy(DF.linear(h, params["fc2.weight"], params["fc2.bias"]), y).backward()
        opt.step()


def rich_state():
    """Everything a checkpoint holds: nested dicts, int keys, tuples, special floats, bools,
    None, strings, and tensors of every dtype, 0-d, empty and non-contiguous."""
    g = np.random.default_rng(1)
    f32 = dagrad.tensor(g.standard_normal((3, 4)).astype(np.float32))
    f64 = dagrad.tensor(np.array([0.1, -0.0, 1e-310, np.inf, -np.inf, np.nan, 1.7976931348623157e308]))
    return {
        "model": {
            "w32": f32,
            "w64": dagrad.tensor(g.standard_normal((2, 3, 2))),
            "steps": dagrad.tensor(np.array([-(2 ** 62), -1, 0, 7, 2 ** 62], dtype=np.int64)),
            "mask": dagrad.tensor(np.array([[True, False], [False, True]])),
            "scalar": dagrad.tensor(np.float64(2.5)),
            "empty": dagrad.tensor(np.zeros((0, 3), dtype=np.float32)),
            "special": f64,
            "transposed": dagrad.tensor(g.standard_normal((3, 2))).transpose(0, 1),
            "param": dagrad.tensor(g.standard_normal(2), requires_grad=True),
        },
        "optimizer": {
            "state": {0: {"step": dagrad.tensor(np.float64(3.0)),
                          "exp_avg": dagrad.tensor(g.standard_normal(4))},
                      7: {"step": dagrad.tensor(np.float64(1.0))}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                              "maximize": True, "foreach": None, "params": [0, 7]}],
        },
        "floats": [0.1, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.0 / 3.0, 1e300],
        "ints": (0, -1, 2 ** 63 - 1, -(2 ** 63)),
        "bools": [True, False],
        "none": None,
        "strings": ["", "épsilon ✓", "with \"quotes\" and \n newline", "tensor"],
        "nested": {"a": {"b": {"c": [(), [], {}, ({1: (2, [3.5])},)]}}},
        "mixed_keys": {1: "int one", "1": "str one", -5: None},
        "array": np.arange(6, dtype=np.int64).reshape(2, 3),
    }


@pytest.fixture
def ckpt(tmp_path):
    return tmp_path / "ckpt.npz"


# ----------------------------------------------------------------------------- round trips

def test_rich_state_round_trips_exactly(ckpt):
    state = rich_state()
    dagrad.save(state, ckpt)
    assert_identical(dagrad.load(ckpt), state)


def test_str_path_and_pathlike_both_work(ckpt):
    dagrad.save({"x": 1.5}, str(ckpt))
    assert dagrad.load(ckpt) == {"x": 1.5}
    dagrad.save({"x": 2.5}, ckpt)
    assert dagrad.load(str(ckpt)) == {"x": 2.5}


@pytest.mark.parametrize("obj", [dagrad.tensor(np.arange(3.0)), [1, 2.5, None], (True,), 7, "s", None])
def test_non_dict_roots_round_trip(ckpt, obj):
    dagrad.save(obj, ckpt)
    assert_identical(dagrad.load(ckpt), obj)


def test_loaded_tensors_are_independent_leaves(ckpt):
    w = dagrad.tensor(np.array([1.0, 2.0]), requires_grad=True)
    dagrad.save({"w": w}, ckpt)
    loaded = dagrad.load(ckpt)["w"]
    assert loaded.requires_grad and loaded.is_leaf
    (loaded * loaded).sum().backward()
    np.testing.assert_array_equal(loaded.grad.numpy(), [2.0, 4.0])
    assert w.grad is None


def test_model_and_optimizer_checkpoint_resumes_training_identically(ckpt):
    model = tiny_model()
    opt = dagrad.optim.Adam(list(model.values()), lr=1e-2, amsgrad=True, weight_decay=1e-3)
    train(model, opt, 5, seed=1)
    dagrad.save({"model": model, "optimizer": opt.state_dict(), "epoch": 5}, ckpt)
    sd_before = opt.state_dict()
    train(model, opt, 5, seed=2)  # the uninterrupted run

    ck = dagrad.load(ckpt)
    assert ck["epoch"] == 5
    model2 = {k: dagrad.tensor(v.numpy(), requires_grad=True) for k, v in ck["model"].items()}
    opt2 = dagrad.optim.Adam(list(model2.values()), lr=0.5)
    opt2.load_state_dict(ck["optimizer"])
    train(model2, opt2, 5, seed=2)
    for k in model:
        assert np.array_equal(model[k].numpy(), model2[k].numpy()), f"{k} differs after resuming"
    # And the optimizer state itself came back exactly (0-d step counters included).
    assert_identical(ck["optimizer"], sd_before)


def test_file_is_a_plain_npz_without_pickles(ckpt):
    state = rich_state()
    dagrad.save(state, ckpt)
    assert zipfile.is_zipfile(ckpt)
    with np.load(ckpt, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    assert all(a.dtype != object for a in arrays.values())
    # The tensors are stored as plain arrays: every tensor's bits are in there.
    m = state["model"]
    for name in ("w32", "w64", "steps", "mask", "special"):
        want = np.ascontiguousarray(m[name].numpy())
        assert any(a.dtype == want.dtype and a.shape == want.shape and a.tobytes() == want.tobytes()
                   for a in arrays.values()), f"{name} is not stored as a plain array"


@pytest.mark.parametrize("bad", [{"k": object()}, {(1, 2): 3}, {True: 1}, {1.5: "x"}, [lambda: 0]])
def test_unsupported_objects_raise_type_error_and_keep_old_file(ckpt, bad):
    dagrad.save({"good": 1}, ckpt)
    with pytest.raises(TypeError):
        dagrad.save(bad, ckpt)
    assert dagrad.load(ckpt) == {"good": 1}
    assert os.listdir(ckpt.parent) == [ckpt.name]


# ----------------------------------------------------------------------------- interrupted saves

def previous_checkpoint(ckpt):
    old = {"w": dagrad.tensor(np.array([1.0, 2.0, 3.0])), "epoch": 1}
    dagrad.save(old, ckpt)
    return old


def assert_previous_intact(ckpt, old):
    assert sorted(os.listdir(ckpt.parent)) == [ckpt.name], "a temporary file was left behind"
    assert_identical(dagrad.load(ckpt), old)


def test_savez_failing_midway_keeps_previous_checkpoint(ckpt, monkeypatch):
    old = previous_checkpoint(ckpt)
    real_savez = np.savez

    def half_then_fail(file, *args, **kwargs):
        # Write part of a real archive, then die (a full disk, a killed process).
        import io
        buf = io.BytesIO()
        real_savez(buf, *args, **kwargs)
        file.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(OSError):
        dagrad.save({"w": dagrad.tensor(np.zeros(1000)), "epoch": 2}, ckpt)
    monkeypatch.undo()
    assert_previous_intact(ckpt, old)


def test_keyboard_interrupt_during_save_keeps_previous_checkpoint(ckpt, monkeypatch):
    old = previous_checkpoint(ckpt)

    def interrupted(file, *args, **kwargs):
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dagrad.save({"epoch": 2}, ckpt)
    monkeypatch.undo()
    assert_previous_intact(ckpt, old)


def test_replace_failing_keeps_previous_checkpoint(ckpt, monkeypatch):
    old = previous_checkpoint(ckpt)

    def fail(src, dst):
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(PermissionError):
        dagrad.save({"epoch": 2}, ckpt)
    monkeypatch.undo()
    assert_previous_intact(ckpt, old)


def test_fsync_failing_keeps_previous_checkpoint(ckpt, monkeypatch):
    old = previous_checkpoint(ckpt)

    def fail(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        dagrad.save({"epoch": 2}, ckpt)
    monkeypatch.undo()
    assert_previous_intact(ckpt, old)


def test_successful_save_replaces_and_leaves_no_temp_files(ckpt):
    previous_checkpoint(ckpt)
    new = {"w": dagrad.tensor(np.array([4.0])), "epoch": 2}
    dagrad.save(new, ckpt)
    assert sorted(os.listdir(ckpt.parent)) == [ckpt.name]
    assert_identical(dagrad.load(ckpt), new)


# ----------------------------------------------------------------------------- bad files

def saved_bytes(ckpt):
    dagrad.save(rich_state(), ckpt)
    return ckpt.read_bytes()


def expect_clear_value_error(path):
    with pytest.raises(ValueError) as info:
        dagrad.load(path)
    msg = str(info.value)
    assert "checkpoint" in msg and str(path) in msg, f"unclear message: {msg}"


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_raises_value_error(ckpt, fraction):
    data = saved_bytes(ckpt)
    ckpt.write_bytes(data[: int(len(data) * fraction)])
    expect_clear_value_error(ckpt)


def test_flipped_bytes_in_tensor_data_raise_value_error(ckpt):
    dagrad.save({"w": dagrad.tensor(np.arange(64, dtype=np.float64))}, ckpt)
    data = ckpt.read_bytes()
    raw = np.arange(64, dtype=np.float64).tobytes()
    at = data.find(raw)
    assert at > 0
    for pos in (at, at + 100, at + len(raw) - 1):
        b = bytearray(data)
        b[pos] ^= 0xFF
        ckpt.write_bytes(bytes(b))
        expect_clear_value_error(ckpt)


def test_flipped_bytes_in_structure_raise_value_error(ckpt):
    dagrad.save({"lr": 0.5, "w": dagrad.tensor(np.ones(3))}, ckpt)
    data = ckpt.read_bytes()
    at = data.find(b'"format"')
    assert at > 0
    b = bytearray(data)
    b[at + 3] ^= 0x20
    ckpt.write_bytes(bytes(b))
    expect_clear_value_error(ckpt)


def test_any_single_flipped_byte_raises_value_error_or_loads_the_original(ckpt):
    # A flip in a redundant zip field (a local header copy of what the central directory
    # holds) may be harmless; anything else must be detected. Never another exception type,
    # never different content.
    state = {"w": dagrad.tensor(np.array([[1.5, -2.0], [0.25, 8.0]])), "opt": {0: (0.9, 0.99)},
             "flag": True}
    dagrad.save(state, ckpt)
    data = ckpt.read_bytes()
    wrong_type = {}
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] ^= 0x5A
        ckpt.write_bytes(bytes(b))
        try:
            got = dagrad.load(ckpt)
        except ValueError:
            continue
        except Exception as e:  # noqa: BLE001  (reported below, all at once)
            wrong_type[pos] = f"{type(e).__name__}: {e}"
            continue
        assert_identical(got, state, f"flip at byte {pos}")
    assert not wrong_type, f"{len(wrong_type)} flips raised something other than ValueError: " + \
        "; ".join(f"byte {p}: {m}" for p, m in list(wrong_type.items())[:4])


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, bytes(range(256)) * 4,
                                     b"PK\x03\x04" + b"\x00" * 200, b"\x93NUMPY not really"])
def test_garbage_raises_value_error(ckpt, content):
    ckpt.write_bytes(content)
    expect_clear_value_error(ckpt)


def test_foreign_npz_raises_value_error(ckpt):
    with open(ckpt, "wb") as f:
        np.savez(f, a=np.arange(3))
    expect_clear_value_error(ckpt)


def test_npz_with_pickled_objects_is_refused(ckpt):
    with open(ckpt, "wb") as f:
        np.savez(f, __meta__=np.array([{"format": "dagrad-checkpoint-1"}], dtype=object))
    expect_clear_value_error(ckpt)


def test_wrong_format_tag_raises_value_error(ckpt):
    import json
    meta = json.dumps({"format": "dagrad-checkpoint-999", "root": {"int": 1}}).encode()
    with open(ckpt, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(meta, dtype=np.uint8))
    expect_clear_value_error(ckpt)


def test_missing_tensor_entry_raises_value_error(ckpt):
    import json
    meta = json.dumps({"format": "dagrad-checkpoint-1",
                       "root": {"tensor": "t0", "dtype": "float64", "requires_grad": False}}).encode()
    with open(ckpt, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(meta, dtype=np.uint8))
    expect_clear_value_error(ckpt)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        dagrad.load(tmp_path / "nope.npz")


def test_save_into_missing_folder_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        dagrad.save({"a": 1}, tmp_path / "no" / "such" / "ckpt.npz")
