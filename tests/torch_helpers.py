"""Checking dagrad against PyTorch, one line per op (tinygrad's ``helper_test_op``).

Import this module only after ``torch = pytest.importorskip("torch")``, so that the test files
skip cleanly where PyTorch is not installed.

What one ``helper_test_op`` call checks, for float64 and float32:

* forward: shape, dtype and values of every output against PyTorch on the same inputs;
* backward through a random output gradient R (needle's ``backward_check``): both frameworks
  run ``backward(R)``, so a wrong broadcast, transpose or sign in a backward rule cannot hide
  behind ``.sum()``; the leaf gradients must agree in shape, dtype and value;
* float64 ``dagrad.autograd.gradcheck`` (central differences, PyTorch's eps 1e-6, atol 1e-5,
  rtol 1e-3): the gradient is right by itself, not only equal to PyTorch's.

Tolerances (never loosen them to get green; move inputs away from kinks instead):

* float64: rtol 1e-10, atol 1e-12. Unit roundoff is 1.1e-16; an op here is a handful of
  roundings plus sums of at most a few hundred terms of size <= ~10, so honest differences
  (another libm, another summation order) stay below ~1e-13. Anything larger means a formula
  that loses precision or is wrong, or that dagrad computed in float32.
* float32: dagrad's float32 result is compared with PyTorch's float64 result on the same
  float32-rounded inputs (a near-exact reference), with rtol 1e-5, atol 1e-5. Unit roundoff is
  6e-8; ~100 roundings stay below 1e-5 relative, and sums of ~100 terms of size ~2 that cancel
  stay below 1e-5 absolute.
"""
import numpy as np
import torch

import dagrad

TOL64 = dict(rtol=1e-10, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-5)

# PyTorch gradcheck's defaults.
GC = dict(eps=1e-6, atol=1e-5, rtol=1e-3)

DT = {"float64": (dagrad.float64, torch.float64, np.float64),
      "float32": (dagrad.float32, torch.float32, np.float32)}

TORCH_OF = {dagrad.float32: torch.float32, dagrad.float64: torch.float64,
            dagrad.int64: torch.int64, dagrad.bool: torch.bool}


def rng(seed):
    return np.random.default_rng(seed)


def away_from(a, kinks, margin=0.05):
    """Moves values within ``margin`` of a kink to ``margin`` on the same side of it (the
    finite-difference step is 1e-6, so 0.05 keeps every check on one smooth piece)."""
    a = np.array(a, dtype=np.float64, copy=True)
    for k in kinks:
        d = a - k
        near = np.abs(d) < margin
        a[near] = k + np.where(d[near] >= 0, margin, -margin)
    return a


def make_input(shape, seed, low=-2.0, high=2.0, kinks=()):
    return away_from(rng(seed).uniform(low, high, size=shape), kinks)


def to_np(t):
    """A dagrad or torch tensor's value as a fresh numpy array."""
    if isinstance(t, torch.Tensor):
        return t.detach().numpy().copy()
    return np.array(t.numpy(), copy=True)


def dg(a, dtype=None, requires_grad=False):
    """A dagrad leaf holding numpy data (int and bool arrays keep their dtype)."""
    a = np.asarray(a)
    if dtype is None:
        return dagrad.tensor(a, requires_grad=requires_grad)
    return dagrad.tensor(a, dtype=dtype, requires_grad=requires_grad)


def th(a, dtype=None, requires_grad=False):
    """The torch twin of ``dg``."""
    t = torch.tensor(np.asarray(a), dtype=dtype)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _outputs(out):
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def _dtype_name(t):
    if isinstance(t, torch.Tensor):
        return str(t.dtype).replace("torch.", "")
    return t.dtype.name


def assert_same(got, ref, tol, what="output", exp_dtype=None):
    """dagrad tensor ``got`` against torch tensor ``ref``: shape, dtype, values (NaN == NaN)."""
    assert isinstance(got, dagrad.Tensor), f"{what}: expected a dagrad Tensor, got {type(got)}"
    assert tuple(got.shape) == tuple(ref.shape), f"{what}: shape {got.shape} != torch's {tuple(ref.shape)}"
    exp_dtype = exp_dtype or _dtype_name(ref)
    assert _dtype_name(got) == exp_dtype, f"{what}: dtype {got.dtype} != expected {exp_dtype}"
    g, r = to_np(got), to_np(ref)
    if r.dtype.kind in "biu":
        np.testing.assert_array_equal(g, r, err_msg=what)
    else:
        np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), equal_nan=True,
                                   err_msg=what, **tol)


def check_gradcheck(fn, arrays, views=None):
    """float64 ``dagrad.autograd.gradcheck`` of ``fn`` at ``arrays`` (one view per input
    applied first, so non-contiguous inputs are checked too)."""
    views = views or [None] * len(arrays)
    leaves = [dg(np.asarray(a, np.float64), dagrad.float64, requires_grad=True) for a in arrays]

    def f(*xs):
        return fn(*[v(x) if v else x for v, x in zip(views, xs)])
    assert dagrad.autograd.gradcheck(f, leaves, **GC) is True


def helper_test_op(shapes, torch_fn, dagrad_fn=None, *, vals=None, low=-2.0, high=2.0, kinks=(),
                   views=None, grad=True, gradcheck=True, dtypes=("float64", "float32"),
                   tol64=TOL64, tol32=TOL32, seed=0, forward_only_outputs=()):
    """One line per op: forward, backward (random output gradient) and gradcheck vs PyTorch.

    Parameters
    ----------
    shapes : list of shapes of the float inputs (ignored where ``vals`` gives the arrays).
    torch_fn, dagrad_fn : callables on the inputs; ``dagrad_fn`` defaults to ``torch_fn``
        (the same lambda works for both where dagrad uses PyTorch's names). They may return
        a tensor or a tuple of tensors (int and bool outputs are compared exactly).
    vals : list of numpy arrays to use instead of random data.
    low, high, kinks : the random data's range, and points it is kept 0.05 away from.
    views : one callable (or None) per input applied to the leaf before the op, e.g.
        ``lambda t: t.transpose(0, 1)``; gradients are compared on the leaves.
    grad, gradcheck : whether to check backward and float64 gradcheck.
    forward_only_outputs : indices of outputs that are not given an output gradient.
    """
    dagrad_fn = dagrad_fn or torch_fn
    if vals is None:
        vals = [make_input(s, seed + 17 * i, low, high, kinks) for i, s in enumerate(shapes)]
    vals = [np.asarray(v, dtype=np.float64) for v in vals]
    views = views or [None] * len(vals)

    def apply(fn, leaves):
        return _outputs(fn(*[v(x) if v else x for v, x in zip(views, leaves)]))

    for name in dtypes:
        d_dt, t_dt, n_dt = DT[name]
        rounded = [v.astype(n_dt) for v in vals]
        # float32 is checked against float64 PyTorch on the float32-rounded data.
        tl = [th(v, torch.float64, requires_grad=grad) for v in rounded]
        dl = [dg(v, d_dt, requires_grad=grad) for v in rounded]
        touts = apply(torch_fn, tl)
        douts = apply(dagrad_fn, dl)
        tol = tol64 if name == "float64" else tol32
        assert len(douts) == len(touts), f"{len(douts)} outputs, torch has {len(touts)}"
        for k, (d, t) in enumerate(zip(douts, touts)):
            exp = name if t.dtype.is_floating_point else None
            assert_same(d, t, tol, f"{name} output {k}", exp_dtype=exp)
        if not grad:
            continue
        # Random output gradients, rounded to the dtype so both sides see the same numbers.
        t_roots, t_grads, d_roots, d_grads = [], [], [], []
        for k, (d, t) in enumerate(zip(douts, touts)):
            if k in forward_only_outputs or not t.dtype.is_floating_point or not t.requires_grad:
                continue
            R = rng(1000 + k).standard_normal(tuple(t.shape)).astype(n_dt)
            t_roots.append(t)
            t_grads.append(th(R, torch.float64))
            if d.requires_grad:
                d_roots.append(d)
                d_grads.append(dg(R, d_dt))
        if t_roots:
            torch.autograd.backward(t_roots, t_grads)
        if d_roots:
            dagrad.autograd.backward(d_roots, d_grads)
        for i, (d, t) in enumerate(zip(dl, tl)):
            what = f"{name} gradient of input {i}"
            if t.grad is None or d.grad is None:
                # An input the outputs do not depend on: None or zeros on either side.
                for g in (t.grad, d.grad):
                    assert g is None or not np.any(to_np(g)), f"{what}: expected none or zeros"
                continue
            assert_same(d.grad, t.grad, tol, what, exp_dtype=name)
    if grad and gradcheck and sum(v.size for v in vals) > 0:
        check_gradcheck(dagrad_fn, vals, views)


def fd_check(fn, arrays, eps=GC["eps"], atol=GC["atol"], rtol=GC["rtol"], seed=2024):
    """Central differences of L(x) = sum_k sum(fn(x)_k * R_k) against dagrad's gradient of L.

    Unlike gradcheck, ``fn`` is always called on leaves that require grad and with grad mode
    on, so it may itself call ``dagrad.autograd.grad(..., create_graph=True)``: this checks a
    double backward.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]

    def leaves(xs):
        return [dg(x, dagrad.float64, requires_grad=True) for x in xs]

    outs = _outputs(fn(*leaves(arrays)))
    Rs = [rng(seed + k).standard_normal(tuple(o.shape)) for k, o in enumerate(outs)]

    def loss_value(xs):
        return sum(float(np.sum(to_np(o) * R)) for o, R in zip(_outputs(fn(*leaves(xs))), Rs))

    ls = leaves(arrays)
    outs = _outputs(fn(*ls))
    loss = None
    for o, R in zip(outs, Rs):
        term = (o * dg(R, dagrad.float64)).sum()
        loss = term if loss is None else loss + term
    analytic = dagrad.autograd.grad(loss, ls, allow_unused=True)
    for i, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        flat = numeric.reshape(-1)
        for e in range(a.size):
            xs = [x.copy() for x in arrays]
            xs[i].reshape(-1)[e] += eps
            plus = loss_value(xs)
            xs[i].reshape(-1)[e] -= 2 * eps
            flat[e] = (plus - loss_value(xs)) / (2 * eps)
        got = np.zeros_like(a) if analytic[i] is None else to_np(analytic[i])
        np.testing.assert_allclose(got, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} vs central differences")
