"""The shared helpers of dagrad's Python tests; the one op helper is ``helper_test_op``.

Checking an op, one line per op (tinygrad's ``helper_test_op``), for float64 and float32:

* forward: shape, dtype and values of every output against PyTorch on the same inputs, and
  against a numpy reference where one is given (``np_fn``). PyTorch checks the forward as a
  training step runs it (leaves that require grad); numpy checks it as no-grad code runs it,
  where elementwise fusion may apply;
* backward through a random output gradient R (needle's ``backward_check``), so a wrong
  broadcast, transpose or sign in a backward rule cannot hide behind ``.sum()``: with PyTorch,
  both frameworks run ``backward(R)`` and the leaf gradients must agree in shape, dtype and
  value; without PyTorch (``torch_fn=None``), every input must get a gradient of its shape and
  dtype, and float32 gradients must match float64 ones on the same float32-rounded data;
* float64 finite differences, always through ``dagrad.autograd.gradcheck`` (the only
  finite-difference routine of the suite; PyTorch's eps 1e-6, atol 1e-5, rtol 1e-3): of the
  whole Jacobian where PyTorch is the reference, of the loss ``sum(f(x) * R)`` otherwise
  (``check_backward``). The gradient is right by itself, not only equal to PyTorch's.

Tolerances (never loosen them to get green; move inputs away from kinks instead):

* float64: rtol 1e-10, atol 1e-12. Unit roundoff is 1.1e-16; an op here is a handful of
  roundings plus sums of at most a few hundred terms of size <= ~10, so honest differences
  (another libm, another summation order) stay below ~1e-13. Anything larger means a formula
  that loses precision or is wrong, or that dagrad computed in float32.
* float32: dagrad's float32 result is compared with PyTorch's float64 result on the same
  float32-rounded inputs (a near-exact reference), with rtol 1e-5, atol 1e-5. Unit roundoff is
  6e-8; ~100 roundings stay below 1e-5 relative, and sums of ~100 terms of size ~2 that cancel
  stay below 1e-5 absolute. The numpy reference, used for elementwise ops, short sums and
  movement, keeps atol 1e-6 (``TOL32_NUMPY``). Without PyTorch, float32 gradients are compared
  with dagrad's float64 gradients with rtol 1e-4, atol 1e-5 (a few roundings plus short sums).

PyTorch is optional here: test files that need it call ``torch = pytest.importorskip("torch")``
first, so that they skip cleanly where it is not installed; numpy-only tests import this module
too.
"""
import numpy as np

import dagrad

try:
    import torch
except ImportError:  # numpy-only tests still run; the PyTorch ones skip themselves
    torch = None

TOL64 = dict(rtol=1e-10, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-5)
TOL32_NUMPY = dict(rtol=1e-5, atol=1e-6)
TOL32_GRAD_VS_FLOAT64 = dict(rtol=1e-4, atol=1e-5)

# PyTorch gradcheck's defaults. Do not loosen: move the inputs instead.
GC = dict(eps=1e-6, atol=1e-5, rtol=1e-3)

# name: (dagrad dtype, torch dtype or None without PyTorch, numpy dtype)
DT = {"float64": (dagrad.float64, torch and torch.float64, np.float64),
      "float32": (dagrad.float32, torch and torch.float32, np.float32)}

# Seeds of the random output gradients: output k of an op gets rng(OUTPUT_GRAD_SEED + k).
OUTPUT_GRAD_SEED = 1000


# ----------------------------------------------------------------------------- inputs

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


def make_input(shape, seed=0, low=-2.0, high=2.0, kinks=()):
    """Uniform float64 data on [low, high), kept 0.05 away from each kink."""
    return away_from(rng(seed).uniform(low, high, size=shape), kinks)


def positive_input(shape, seed=0):
    """Data well away from 0, for log, sqrt, fractional and negative powers, division."""
    return make_input(shape, seed, 0.5, 2.0)


def nonzero_input(shape, seed=0, low=0.5, high=2.0):
    """Magnitudes in [low, high) with random signs: a denominator away from 0."""
    g = rng(seed)
    mag = g.uniform(low, high, size=shape)
    sign = np.where(g.random(size=shape) < 0.5, -1.0, 1.0)
    return np.asarray(mag * sign, dtype=np.float64)


def to_np(t):
    """A dagrad or torch tensor's value as a fresh numpy array (dagrad hands out read-only
    views)."""
    if torch is not None and isinstance(t, torch.Tensor):
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


# ----------------------------------------------------------------------------- checks

def _outputs(out):
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def _dtype_name(t):
    if torch is not None and isinstance(t, torch.Tensor):
        return str(t.dtype).replace("torch.", "")
    return t.dtype.name


def assert_same(got, ref, tol, what="output", exp_dtype=None):
    """dagrad tensor ``got`` against ``ref``, a torch tensor or a numpy array: shape, dtype
    (``exp_dtype``, by default the reference's) and values (NaN == NaN)."""
    assert isinstance(got, dagrad.Tensor), f"{what}: expected a dagrad Tensor, got {type(got)}"
    if not (torch is not None and isinstance(ref, torch.Tensor)):
        ref = np.asarray(ref)
    lib = "numpy" if isinstance(ref, np.ndarray) else "torch"
    assert tuple(got.shape) == tuple(ref.shape), f"{what}: shape {got.shape} != {lib}'s {tuple(ref.shape)}"
    exp_dtype = exp_dtype or _dtype_name(ref)
    assert _dtype_name(got) == exp_dtype, f"{what}: dtype {got.dtype} != expected {exp_dtype}"
    g, r = to_np(got), (to_np(ref) if lib == "torch" else ref)
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


def gradcheck_of_projection(fn, arrays, seed=OUTPUT_GRAD_SEED):
    """``dagrad.autograd.gradcheck`` of L(x) = sum_k sum(fn(x)_k * R_k), with fixed random R_k.

    ``fn`` gets float64 leaves that require grad, with grad mode on (as gradcheck calls it), so
    it may itself call ``dagrad.autograd.grad(..., create_graph=True)``: checking that checks
    a double backward. Outputs that are None or not floating point are left out of L.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    leaves = [dg(a, dagrad.float64, requires_grad=True) for a in arrays]
    Rs = [None if o is None else dg(rng(seed + k).standard_normal(tuple(o.shape)), dagrad.float64)
          for k, o in enumerate(_outputs(fn(*leaves)))]

    def loss(*xs):
        total = None
        for o, R in zip(_outputs(fn(*xs)), Rs):
            if o is None or not o.dtype.is_floating_point:
                continue
            term = (o * R).sum()
            total = term if total is None else total + term
        return total
    assert dagrad.autograd.gradcheck(loss, leaves, **GC) is True


def check_backward(fn, arrays, seed=OUTPUT_GRAD_SEED):
    """dagrad's backward of ``fn`` at float64 ``arrays`` against finite differences.

    ``backward(R)`` with a fixed random R must give every input a float64 ``.grad`` of its
    shape, and ``gradcheck_of_projection`` must hold for the same R.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    leaves = [dg(a, dagrad.float64, requires_grad=True) for a in arrays]
    outs = _outputs(fn(*leaves))
    dagrad.autograd.backward(outs, [dg(rng(seed + k).standard_normal(tuple(o.shape)), dagrad.float64)
                                    for k, o in enumerate(outs)])
    for i, t in enumerate(leaves):
        assert t.grad is not None, f"input {i} got no gradient"
        assert t.grad.shape == t.shape, f"input {i}: grad shape {t.grad.shape} != {t.shape}"
        assert t.grad.dtype == dagrad.float64, f"input {i}: grad dtype {t.grad.dtype}"
    gradcheck_of_projection(fn, arrays, seed)


def helper_test_op(shapes=None, torch_fn=None, dagrad_fn=None, *, np_fn=None, vals=None, low=-2.0,
                   high=2.0, kinks=(), views=None, grad=True, gradcheck=True,
                   dtypes=("float64", "float32"), tol64=TOL64, tol32=None, seed=0,
                   forward_only_outputs=()):
    """One line per op: forward, backward (random output gradient) and gradcheck, against
    PyTorch, numpy or both (see the module's docstring for what is checked).

    Parameters
    ----------
    shapes : list of shapes of the float inputs (ignored where ``vals`` gives the arrays).
    torch_fn, dagrad_fn : callables on the inputs; ``dagrad_fn`` defaults to ``torch_fn``
        (the same lambda works for both where dagrad uses PyTorch's names). They may return
        a tensor or a tuple of tensors (int and bool outputs are compared exactly). Without
        ``torch_fn`` PyTorch is not used.
    np_fn : a numpy reference for the forward, called on the float64 arrays (views not
        applied) and returning an array or a tuple of arrays.
    vals : list of numpy arrays to use instead of random data.
    low, high, kinks : the random data's range, and points it is kept 0.05 away from.
    views : one callable (or None) per input applied to the leaf before the op, e.g.
        ``lambda t: t.transpose(0, 1)``; gradients are compared on the leaves.
    grad, gradcheck : whether to check backward and float64 gradcheck.
    tol64, tol32 : forward and gradient tolerances; ``tol32`` defaults to ``TOL32`` against
        PyTorch and ``TOL32_NUMPY`` against numpy.
    forward_only_outputs : indices of outputs that are not given an output gradient.
    """
    if torch_fn is None and np_fn is None:
        raise TypeError("helper_test_op: give a reference, torch_fn or np_fn")
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
        if np_fn is not None:
            # The reference in float64 from the rounded inputs; dagrad runs it without grad.
            refs = _outputs(np_fn(*[v.astype(np.float64) for v in rounded]))
            douts = apply(dagrad_fn, [dg(v, d_dt) for v in rounded])
            tol = tol64 if name == "float64" else tol32 or TOL32_NUMPY
            assert len(douts) == len(refs), f"{len(douts)} outputs, numpy has {len(refs)}"
            for k, (d, r) in enumerate(zip(douts, refs)):
                r = np.asarray(r)
                assert_same(d, r, tol, f"{name} output {k} vs numpy",
                            exp_dtype=name if r.dtype.kind == "f" else None)
        tol = tol64 if name == "float64" else tol32 or TOL32
        dl = [dg(v, d_dt, requires_grad=grad) for v in rounded]
        douts = apply(dagrad_fn, dl)
        if torch_fn is None:
            if grad:
                _backward_without_torch(dagrad_fn, apply, name, rounded, dl, douts,
                                        forward_only_outputs)
            continue
        # float32 is checked against float64 PyTorch on the float32-rounded data.
        tl = [th(v, torch.float64, requires_grad=grad) for v in rounded]
        touts = apply(torch_fn, tl)
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
            R = rng(OUTPUT_GRAD_SEED + k).standard_normal(tuple(t.shape)).astype(n_dt)
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
        if torch_fn is not None:
            check_gradcheck(dagrad_fn, vals, views)
        else:
            gradcheck_of_projection(lambda *xs: apply(dagrad_fn, xs), vals)


def _backward_without_torch(dagrad_fn, apply, name, rounded, leaves, outs, forward_only_outputs):
    """helper_test_op's backward where numpy is the only reference: every input gets a
    gradient of its shape and dtype; float32 gradients match float64 ones on the same data."""
    def run_backward(outs, dtype, n_dt):
        roots = [(k, o) for k, o in enumerate(outs) if k not in forward_only_outputs and o.requires_grad]
        if roots:
            dagrad.autograd.backward(
                [o for _, o in roots],
                [dg(rng(OUTPUT_GRAD_SEED + k).standard_normal(tuple(o.shape)).astype(n_dt), dtype)
                 for k, o in roots])

    d_dt, _, n_dt = DT[name]
    run_backward(outs, d_dt, n_dt)
    for i, t in enumerate(leaves):
        what = f"{name} gradient of input {i}"
        assert t.grad is not None, f"{what}: none"
        assert t.grad.shape == t.shape, f"{what}: shape {t.grad.shape} != {t.shape}"
        assert t.grad.dtype == d_dt, f"{what}: dtype {t.grad.dtype} != {name}"
    if name == "float32":
        # The reference: float64 gradients of the float32-rounded data, under the same R.
        ref_leaves = [dg(v.astype(np.float64), dagrad.float64, requires_grad=True) for v in rounded]
        run_backward(apply(dagrad_fn, ref_leaves), dagrad.float64, np.float32)
        for i, (t, r) in enumerate(zip(leaves, ref_leaves)):
            assert_same(t.grad, to_np(r.grad), TOL32_GRAD_VS_FLOAT64,
                        f"float32 gradient of input {i} vs float64", exp_dtype="float32")


def check_double_backward(fn, arrays, seed=OUTPUT_GRAD_SEED):
    """Second derivatives (create_graph=True) against finite differences of the first.

    ``gradcheck_of_projection`` of x -> grad(sum(fn(x) * R), x, create_graph=True), with R
    drawn from ``seed`` and the second projection from ``seed + 1``.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out_shape = tuple(fn(*[dg(a, dagrad.float64) for a in arrays]).shape)
    R = dg(rng(seed).standard_normal(out_shape), dagrad.float64)

    def first_grads(*xs):
        return dagrad.autograd.grad((fn(*xs) * R).sum(), list(xs), create_graph=True,
                                    allow_unused=True)
    gradcheck_of_projection(first_grads, arrays, seed + 1)


# ----------------------------------------------------------------------------- after an error

def library_still_works():
    """A small forward and backward after an error: the library must stay usable."""
    x = dagrad.tensor([1.0, 2.0, 3.0], dtype=dagrad.float64, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    assert y.item() == 14.0
    np.testing.assert_array_equal(to_np(x.grad), [2.0, 4.0, 6.0])
