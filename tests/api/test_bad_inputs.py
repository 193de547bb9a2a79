"""The bad-input audit (#12): a table of hostile inputs for the public functions. Each case
gives the right values (against numpy / PyTorch) or a clear exception, never a crash, and a
read-only user array is never written. (Wrong types for every parameter of every public
callable are in arg_probe.py / test_messages.py; huge and overflowing sizes in
tests/ops/test_adversarial.py.)"""
import numpy as np
import pytest

import dagrad

torch = pytest.importorskip("torch")


def _layouts():
    base = np.arange(24, dtype=np.float32).reshape(4, 6) / 7.0 - 1.0
    ro = base.copy()
    ro.setflags(write=False)
    return {
        "contiguous": base.copy(),
        "transposed": base.T,                  # non-contiguous
        "strided": base[::2, ::3],             # non-contiguous, gaps
        "negative_stride": base[::-1, ::-2],   # negative strides
        "read_only": ro,
        "fortran": np.asfortranarray(base),
        "zero_size": base[:0],
        "float64": base.astype(np.float64)[:, ::-1],
        "int_neg_stride": np.arange(12).reshape(3, 4)[::-1],
        "bool_strided": (base > 0)[::2],
    }


LAYOUTS = _layouts()

# Entry points that take array data: (name, dagrad call, reference call).
ENTRY = {
    "tensor": (lambda a: dagrad.tensor(a), lambda a: torch.tensor(a)),
    "as_tensor": (lambda a: dagrad.as_tensor(a), lambda a: torch.as_tensor(a.copy())),
    "add_array": (lambda a: dagrad.ones(a.shape[-1:], dtype=dagrad.float64) + a
                  if a.dtype != np.bool_ else dagrad.tensor(a), lambda a: torch.ones(a.shape[-1:], dtype=torch.float64)
                  + torch.tensor(a) if a.dtype != np.bool_ else torch.tensor(a)),
    "where": (lambda a: dagrad.where(dagrad.tensor(a) > 0, dagrad.tensor(a), 0.0) if a.dtype != np.bool_
              else dagrad.tensor(a), lambda a: torch.where(torch.tensor(a) > 0, torch.tensor(a), 0.0)
              if a.dtype != np.bool_ else torch.tensor(a)),
    "matmul_T": (lambda a: dagrad.tensor(a) @ dagrad.tensor(a).T if a.dtype.kind == "f" else dagrad.tensor(a),
                 lambda a: torch.tensor(a) @ torch.tensor(a).T if a.dtype.kind == "f" else torch.tensor(a)),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("entry", sorted(ENTRY))
def test_numpy_layouts_give_numpys_values_and_read_only_arrays_stay_untouched(entry, layout):
    a = LAYOUTS[layout]
    before = a.copy()
    flags = a.flags.writeable
    # torch refuses negative strides: its reference gets a contiguous copy
    got, ref = ENTRY[entry][0](a), ENTRY[entry][1](np.ascontiguousarray(a))
    np.testing.assert_allclose(got.numpy().astype(np.float64), ref.numpy().astype(np.float64), rtol=1e-6, atol=1e-6)
    # the user's array is unchanged and keeps its flags; writing through dagrad never reaches it
    np.testing.assert_array_equal(a, before)
    assert a.flags.writeable == flags
    t = dagrad.tensor(a)
    if t.numel():
        with dagrad.no_grad():
            t.fill_(True if t.dtype == dagrad.bool else 7)
        np.testing.assert_array_equal(a, before)
    assert not t.numpy().flags.writeable  # dagrad's own views are read-only


SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 3.4e38, -1.0], dtype=np.float32)


@pytest.mark.parametrize("name", sorted(dagrad._core._FUNCTIONS))
def test_nan_inf_and_zero_size_through_every_bound_function(name):
    fn, tfn = getattr(dagrad, name), getattr(torch, name)
    for arr in (SPECIALS, np.zeros((0, 3), np.float32), np.zeros((2, 0, 4), np.float32)):
        try:
            ref = tfn(torch.tensor(arr))
        except (RuntimeError, TypeError, IndexError, ValueError) as e:
            with pytest.raises(type(e) if not isinstance(e, RuntimeError) else (RuntimeError, ValueError, IndexError)):
                fn(dagrad.tensor(arr)).numpy()
            continue
        ref = ref[0] if isinstance(ref, tuple) else ref
        got = fn(dagrad.tensor(arr)).numpy()
        assert got.shape == tuple(ref.shape), (name, arr.shape)
        np.testing.assert_allclose(got.astype(np.float64), ref.numpy().astype(np.float64), rtol=2e-6, atol=1e-6,
                                   equal_nan=True, err_msg=f"{name} on {arr}")
