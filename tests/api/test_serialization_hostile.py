"""dagrad.load on hostile files (issue #15, item 14): zip bombs, headers that lie about their
size, structures that disagree with their arrays. Each raises ValueError before inflating
anything large, which a child process's peak RSS confirms. See Note [Loading untrusted
checkpoints] in dagrad/serialization.py."""
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import dagrad

MIB = 1 << 20


def _meta(root):
    return np.frombuffer(json.dumps({"format": "dagrad-checkpoint-1", "root": root}).encode(), dtype=np.uint8)


def _tensor_ref(name="t0", dtype="float32", shape=None):
    ref = {"tensor": name, "dtype": dtype, "requires_grad": False}
    if shape is not None:
        ref["shape"] = list(shape)
    return ref


def _write(path, members, compress=True):
    """members: name -> ndarray, or name -> (header dict, data bytes, repeat) for members whose
    data is streamed (a huge run of zeros) or does not match the header."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=mode) as z:
        for name, m in members.items():
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                if isinstance(m, np.ndarray):
                    np.lib.format.write_array(f, m)
                else:
                    header, chunk, repeat = m
                    np.lib.format.write_array_header_1_0(f, header)
                    for _ in range(repeat):
                        f.write(chunk)
    return path


def _zeros_member(nbytes, descr="<f4"):
    """A header and streamed zeros: `nbytes` of data that deflate to about nbytes / 1000."""
    item = np.dtype(descr).itemsize
    chunk = bytes(4 * MIB)
    return ({"descr": descr, "fortran_order": False, "shape": (nbytes // item,)}, chunk, nbytes // len(chunk))


def _expect_value_error(path, match=None, **kw):
    with pytest.raises(ValueError, match=match) as info:
        dagrad.load(path, **kw)
    assert "checkpoint" in str(info.value) and str(path) in str(info.value)
    return str(info.value)


_PEAK = textwrap.dedent("""
    import resource, sys, dagrad
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        dagrad.load(sys.argv[1])
        result = "loaded"
    except ValueError as e:
        result = "ValueError"
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(result, grew // 1024)
""")


def _peak_growth_mb(path):
    out = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result, grew = out.stdout.split()
    return result, int(grew)


@pytest.fixture
def bomb(tmp_path):
    """A ~0.25 MB file whose tensor, named by the structure, inflates to 128 MiB."""
    path = tmp_path / "bomb.npz"
    _write(path, {"__meta__": _meta(_tensor_ref()), "t0": _zeros_member(128 * MIB)})
    assert os.path.getsize(path) < 2 * MIB
    return path


def test_zip_bomb_is_refused_before_inflating(bomb):
    msg = _expect_value_error(bomb, match="max_bytes")
    assert "t0" in msg and "134217728" in msg
    result, grew = _peak_growth_mb(bomb)
    assert result == "ValueError" and grew < 32, f"peak RSS grew by {grew} MB"


def test_zip_bomb_loads_when_the_caller_allows_its_size(tmp_path):
    path = _write(tmp_path / "big.npz", {"__meta__": _meta(_tensor_ref(shape=(24 * MIB // 4,))),
                                         "t0": _zeros_member(24 * MIB)})
    t = dagrad.load(path)  # 24 MiB is under the 64 MiB floor of the default cap
    assert t.shape == (24 * MIB // 4,) and t.dtype == dagrad.float32 and not t.numpy().any()
    _expect_value_error(path, match="max_bytes", max_bytes=MIB)


def test_members_the_structure_does_not_name_are_never_read(tmp_path):
    path = _write(tmp_path / "extra.npz", {"__meta__": _meta({"list": [_tensor_ref("t0")]}),
                                           "t0": np.arange(3, dtype=np.float32),
                                           "junk": _zeros_member(128 * MIB)})
    assert dagrad.load(path)[0].tolist() == [0.0, 1.0, 2.0]
    result, grew = _peak_growth_mb(path)
    assert result == "loaded" and grew < 32, f"peak RSS grew by {grew} MB"


@pytest.mark.parametrize("shape", [(2 ** 40,), (2 ** 62, 2 ** 62), (10 ** 30,)], ids=str)
def test_header_declaring_a_huge_shape_over_tiny_data(tmp_path, shape):
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    path = _write(tmp_path / "lie.npz", {"__meta__": _meta(_tensor_ref()), "t0": (header, b"\0" * 16, 1)})
    _expect_value_error(path)
    # Even with no cap, the header must agree with the zip's size for the member: no allocation.
    _expect_value_error(path, match="zip entry holds", max_bytes=2 ** 200)


def test_header_declaring_more_than_the_zip_entry_holds(tmp_path):
    header = {"descr": "<f8", "fortran_order": False, "shape": (1000,)}
    path = _write(tmp_path / "short.npz", {"__meta__": _meta(_tensor_ref(dtype="float64")),
                                           "t0": (header, b"\0" * 800, 1)})
    _expect_value_error(path, match="8000 bytes")


def test_metadata_member_that_is_a_bomb(tmp_path):
    path = _write(tmp_path / "meta.npz", {"__meta__": _zeros_member(128 * MIB, descr="|u1")})
    _expect_value_error(path, match="__meta__")
    result, grew = _peak_growth_mb(path)
    assert result == "ValueError" and grew < 32


@pytest.mark.parametrize("root,arrays,match", [
    (_tensor_ref(shape=(3,)), {"t0": np.zeros(4, np.float32)}, "shape"),
    (_tensor_ref(dtype="float32"), {"t0": np.zeros(4, np.float64)}, "float64"),
    (_tensor_ref(dtype="tensor"), {"t0": np.zeros(4, np.float32)}, "dtype"),
    (_tensor_ref(name="../x"), {}, "name"),
    (_tensor_ref(name="t1"), {"t0": np.zeros(4, np.float32)}, "t1"),
    (_tensor_ref(shape=(-1,)), {"t0": np.zeros(4, np.float32)}, "shape"),
    ({"ndarray": "a", "shape": "big"}, {"a": np.zeros(2)}, "shape"),
    ({"dict": [["k"]]}, {}, "dict"),
    ([1, 2], {}, "entry"),
], ids=["shape", "dtype", "dtype_name", "name", "missing", "negative_shape", "shape_type", "dict_item",
        "not_a_node"])
def test_structure_that_disagrees_with_its_arrays(tmp_path, root, arrays, match):
    path = _write(tmp_path / "bad.npz", {"__meta__": _meta(root), **arrays}, compress=False)
    _expect_value_error(path, match=match)


def _nested_file(tmp_path, depth):
    text = '{"format": "dagrad-checkpoint-1", "root": ' + '{"list": [' * depth + '{"int": 1}' + ']}' * depth + "}"
    return _write(tmp_path / "deep.npz", {"__meta__": np.frombuffer(text.encode(), np.uint8)})


def test_deeply_nested_structure_is_a_value_error(tmp_path):
    got = dagrad.load(_nested_file(tmp_path, 300))
    for _ in range(300):
        got = got[0]
    assert got == 1
    _expect_value_error(_nested_file(tmp_path, 5000))  # no RecursionError, no crash


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    with open(path, "wb") as f:
        np.savez(f, __meta__=_meta({"ndarray": "a"}), a=np.array([{"x": 1}], dtype=object))
    _expect_value_error(path, match="object")


def test_files_without_shapes_in_the_structure_still_load(tmp_path):
    # Checkpoints written before shapes were recorded carry only names and dtypes.
    path = tmp_path / "old.npz"
    with open(path, "wb") as f:
        np.savez(f, __meta__=_meta({"dict": [[{"str": "w"}, _tensor_ref()], [{"str": "a"}, {"ndarray": "t1"}]]}),
                 t0=np.arange(6, dtype=np.float32).reshape(2, 3), t1=np.asfortranarray(np.eye(2)))
    got = dagrad.load(path)
    assert got["w"].numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    np.testing.assert_array_equal(got["a"], np.eye(2))


def test_saved_structure_records_shapes_and_max_bytes_caps_ordinary_files(tmp_path):
    path = tmp_path / "ok.npz"
    state = {"w": dagrad.ones(4, 5), "a": np.zeros((2, 3), np.int32)}
    dagrad.save(state, path)
    with zipfile.ZipFile(path) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        meta = json.loads(np.lib.format.read_array(z.open("__meta__.npy")).tobytes())
    assert [v["shape"] for _, v in meta["root"]["dict"]] == [[4, 5], [2, 3]]
    assert dagrad.load(path, max_bytes=80 + 24 + 200)["w"].shape == (4, 5)
    _expect_value_error(path, match="max_bytes", max_bytes=90)
    with pytest.raises(TypeError, match="max_bytes"):
        dagrad.load(path, max_bytes="1GB")


def test_a_name_used_twice_gives_independent_leaves(tmp_path):
    root = {"list": [_tensor_ref(), dict(_tensor_ref(), requires_grad=True)]}
    path = _write(tmp_path / "twice.npz", {"__meta__": _meta(root), "t0": np.arange(3, dtype=np.float32)},
                  compress=False)
    a, b = dagrad.load(path)
    assert a is not b and not a.requires_grad and b.requires_grad
    a.add_(1.0)
    assert b.tolist() == [0.0, 1.0, 2.0]


def test_peak_memory_of_an_ordinary_load_is_about_the_data_once(tmp_path):
    # Before: the whole file read into memory, then every array, then every tensor (3x the data).
    path = tmp_path / "ok.npz"
    g = np.random.default_rng(0)
    dagrad.save({f"w{i}": dagrad.tensor(g.standard_normal(MIB // 2).astype(np.float32)) for i in range(24)}, path)
    result, grew = _peak_growth_mb(path)  # 48 MiB of data
    assert result == "loaded" and grew < 48 * 1.5, f"peak RSS grew by {grew} MB"
