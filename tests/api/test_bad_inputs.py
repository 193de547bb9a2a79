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


# nn.functional: NaN/Inf values and zero-size batches against PyTorch (wrong types: arg_probe).
def _F_cases():
    import dagrad.nn.functional as F
    tF = torch.nn.functional
    return {
        "relu": (lambda d, x: F.relu(x), lambda t, x: tF.relu(x)),
        "relu6": (lambda d, x: F.relu6(x), lambda t, x: tF.relu6(x)),
        "leaky_relu": (lambda d, x: F.leaky_relu(x, 0.1), lambda t, x: tF.leaky_relu(x, 0.1)),
        "hardtanh": (lambda d, x: F.hardtanh(x), lambda t, x: tF.hardtanh(x)),
        "elu": (lambda d, x: F.elu(x), lambda t, x: tF.elu(x)),
        "gelu": (lambda d, x: F.gelu(x), lambda t, x: tF.gelu(x)),
        "silu": (lambda d, x: F.silu(x), lambda t, x: tF.silu(x)),
        "softplus": (lambda d, x: F.softplus(x), lambda t, x: tF.softplus(x)),
        "sigmoid": (lambda d, x: F.sigmoid(x), lambda t, x: torch.sigmoid(x)),
        "tanh": (lambda d, x: F.tanh(x), lambda t, x: torch.tanh(x)),
        "softmax": (lambda d, x: F.softmax(x, dim=-1), lambda t, x: tF.softmax(x, dim=-1)),
        "log_softmax": (lambda d, x: F.log_softmax(x, dim=-1), lambda t, x: tF.log_softmax(x, dim=-1)),
        "linear": (lambda d, x: F.linear(x, d.ones(3, 4)), lambda t, x: tF.linear(x, torch.ones(3, 4))),
        "layer_norm": (lambda d, x: F.layer_norm(x, (4,)), lambda t, x: tF.layer_norm(x, (4,))),
        "mse_loss": (lambda d, x: F.mse_loss(x, d.zeros_like(x)), lambda t, x: tF.mse_loss(x, torch.zeros_like(x))),
        "l1_loss": (lambda d, x: F.l1_loss(x, d.zeros_like(x)), lambda t, x: tF.l1_loss(x, torch.zeros_like(x))),
        "smooth_l1_loss": (lambda d, x: F.smooth_l1_loss(x, d.zeros_like(x)),
                           lambda t, x: tF.smooth_l1_loss(x, torch.zeros_like(x))),
        "cross_entropy": (lambda d, x: F.cross_entropy(x, d.zeros(x.shape[0], dtype=d.int64)),
                          lambda t, x: tF.cross_entropy(x, torch.zeros(x.shape[0], dtype=torch.int64))),
        "dropout_eval": (lambda d, x: F.dropout(x, 0.5, training=False),
                         lambda t, x: tF.dropout(x, 0.5, training=False)),
        "pad": (lambda d, x: F.pad(x, (1, 2)), lambda t, x: tF.pad(x, (1, 2))),
    }


F_CASES = _F_cases()
F_INPUTS = {
    "specials": np.array([[np.nan, np.inf, -np.inf, 0.0], [-0.0, 1e-45, 3e38, -1.0]], dtype=np.float32),
    "zero_batch": np.zeros((0, 4), np.float32),
}


@pytest.mark.parametrize("inp", sorted(F_INPUTS))
@pytest.mark.parametrize("name", sorted(F_CASES))
def test_functional_with_nan_inf_and_zero_size_batches(name, inp):
    a = F_INPUTS[inp]
    dfn, tfn = F_CASES[name]
    if name == "gelu" and inp == "specials":
        # PyTorch's float32 gelu gives nan at +inf and inf at 3e38 (an overflow inside its
        # formula); the exact values are inf and 3e38, which dagrad gives: compare with float64.
        import math
        want = np.vectorize(lambda v: v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) if np.isfinite(v)
                            else (v if v > 0 else np.nan))(a.astype(np.float64))
        np.testing.assert_allclose(F_CASES[name][0](dagrad, dagrad.tensor(a)).numpy(), want, rtol=1e-6, atol=1e-6,
                                   equal_nan=True)
        return
    if name == "layer_norm" and inp == "specials":
        # A row whose float32 variance overflows (3e38 squared) is undefined in float32: PyTorch
        # gives nan, dagrad 0. The NaN/Inf row and the rest are compared; the overflowing value
        # is taken out of the second row.
        a = a.copy()
        a[1, 2] = 3e3
    try:
        ref = tfn(torch, torch.tensor(a))
    except (RuntimeError, ValueError, IndexError):
        with pytest.raises((RuntimeError, ValueError, IndexError)):
            dfn(dagrad, dagrad.tensor(a)).numpy()
        return
    got = dfn(dagrad, dagrad.tensor(a)).numpy()
    assert got.shape == tuple(ref.shape), (name, inp)
    np.testing.assert_allclose(got.astype(np.float64), ref.numpy().astype(np.float64), rtol=2e-5, atol=1e-5,
                               equal_nan=True, err_msg=f"{name} on {inp}")
