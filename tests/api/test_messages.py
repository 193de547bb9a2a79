"""Every public entry point reports a wrong argument as PyTorch does: TypeError for a wrong
type, IndexError for a dim out of range, ValueError for a bad value, each naming the function
and the argument, never with pybind11's "incompatible function arguments ... Invoked with",
"Unable to cast", a CPython internal ("tuple index out of range") or a C++ op's internal name
(issue #15, "Messages"). See Note [Argument errors] in csrc/bindings/arg_errors.cpp.

The cases come from tests/arg_probe.py: every function and method, one wrong argument at a time.
"""
import operator
import re

import numpy as np
import pytest

import dagrad
import dagrad.nn.functional as F
from arg_probe import LEAKS, cases, check, valid_calls_work
from torch_helpers import library_still_works

torch = pytest.importorskip("torch")

CASES = cases()


def test_every_probed_call_is_valid_as_written():
    assert valid_calls_work() == []


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_wrong_argument_is_reported_by_name(case):
    problem = check(case)
    assert problem is None, f"{case[0]}: {problem}"


def test_the_probe_covers_every_public_callable():
    # A new public function or method must be added to arg_probe.CALLS (or to `skip`: no arguments).
    probed = {c[1] for c in CASES}
    skip = {"dagrad.dtype", "dagrad.Tensor", "dagrad.no_grad", "dagrad.enable_grad", "dagrad.is_grad_enabled",
            "dagrad.get_num_threads", "dagrad.show_config", "dagrad.save", "dagrad.load",
            "dagrad.get_compile_cache_size_limit", "dagrad.RecompileWarning", "dagrad.last_run_stats",
            "dagrad.get_schedule", "dagrad.memory_stats", "dagrad.reset_peak_memory_stats", "dagrad.empty_cache",
            "dagrad.profile"}
    public = [f"dagrad.{n}" for n in dagrad.__all__ if callable(getattr(dagrad, n))]
    public += [f"F.{n}" for n in dir(F) if not n.startswith("_") and callable(getattr(F, n))
               and getattr(getattr(F, n), "__module__", "") == F.__name__]
    assert [q for q in public if q not in probed and q not in skip] == []


# ----------------------------------------------------------------------------- the issue's examples

def _x():
    return dagrad.ones(2, 3), torch.ones(2, 3)


REPRODUCERS = {  # name: (dagrad call, the same call in torch, words the message must contain)
    "zeros_2_64": (lambda: dagrad.zeros(2 ** 64), lambda: torch.zeros(2 ** 64), ["zeros", "size"]),
    "view_float": (lambda: dagrad.ones(2, 3).view(2.0, 3), lambda: torch.ones(2, 3).view(2.0, 3), ["view", "shape"]),
    "sum_dim_str": (lambda: dagrad.ones(2, 3).sum(dim="a"), lambda: torch.ones(2, 3).sum(dim="a"), ["sum", "dim"]),
    "grad_list": (lambda: setattr(dagrad.ones(3, requires_grad=True), "grad", [1, 2, 3]),
                  lambda: setattr(torch.ones(3, requires_grad=True), "grad", [1, 2, 3]), ["grad", "list"]),
    "to_str": (lambda: dagrad.ones(2).to("float64"), lambda: torch.ones(2).to("float64"), ["to", "float64"]),
    "split_dim": (lambda: dagrad.ones(3).split(1, 5), lambda: torch.ones(3).split(1, 5), ["split", "dim", "5"]),
    "size_dim": (lambda: dagrad.ones(2).size(5), lambda: torch.ones(2).size(5), ["size", "dim", "5"]),
    "size_0d": (lambda: dagrad.tensor(1.0).size(0), lambda: torch.tensor(1.0).size(0), ["size", "dim"]),
    "keepdim_str": (lambda: dagrad.ones(2).sum(0, keepdim="a"), lambda: torch.ones(2).sum(0, keepdim="a"),
                    ["sum", "keepdim"]),
    "transpose_str": (lambda: dagrad.ones(2, 3).transpose(0, "a"), lambda: torch.ones(2, 3).transpose(0, "a"),
                      ["transpose", "dim1"]),
    "unsqueeze_huge": (lambda: dagrad.ones(2).unsqueeze(2 ** 64), lambda: torch.ones(2).unsqueeze(2 ** 64),
                       ["unsqueeze", "dim"]),
    "softmax_str": (lambda: F.softmax(dagrad.ones(2), "a"), lambda: torch.nn.functional.softmax(torch.ones(2), "a"),
                    ["softmax", "dim"]),
    "cat_tensor": (lambda: dagrad.cat(dagrad.ones(2)), lambda: torch.cat(torch.ones(2)), ["cat", "tensors"]),
    "gather_list": (lambda: dagrad.ones(2).gather(0, [0]), lambda: torch.ones(2).gather(0, [0]), ["gather", "index"]),
    "linear_str": (lambda: F.linear(dagrad.ones(2), "a"), lambda: torch.nn.functional.linear(torch.ones(2), "a"),
                   ["linear", "weight"]),
    "ce_list": (lambda: F.cross_entropy(dagrad.ones(2, 3), [0, 1, "a"]),
                lambda: torch.nn.functional.cross_entropy(torch.ones(2, 3), [0, 1, "a"]), ["cross_entropy", "target"]),
    "reduction": (lambda: F.mse_loss(dagrad.ones(2), dagrad.ones(2), reduction="foo"),
                  lambda: torch.nn.functional.mse_loss(torch.ones(2), torch.ones(2), reduction="foo"),
                  ["mse_loss", "reduction", "foo"]),
    "requires_grad_str": (lambda: dagrad.ones(2).requires_grad_("a"), lambda: torch.ones(2).requires_grad_("a"),
                          ["requires_grad_", "requires_grad"]),
    "zeros_str": (lambda: dagrad.zeros("a"), lambda: torch.zeros("a"), ["zeros", "size"]),
    "reshape_huge": (lambda: dagrad.ones(2).reshape(2 ** 64), lambda: torch.ones(2).reshape(2 ** 64),
                     ["reshape", "shape"]),
    "dropout_p": (lambda: F.dropout(dagrad.ones(2), 2.0), lambda: torch.nn.functional.dropout(torch.ones(2), 2.0),
                  ["dropout", "p"]),
    "permute_dim": (lambda: dagrad.ones(2, 3).permute(0, 5), lambda: torch.ones(2, 3).permute(0, 5), ["permute", "5"]),
    "one_hot_str": (lambda: F.one_hot(dagrad.tensor([0]), "a"),
                    lambda: torch.nn.functional.one_hot(torch.tensor([0]), "a"), ["one_hot", "num_classes"]),
}


@pytest.mark.parametrize("name", list(REPRODUCERS))
def test_issue_reproducers_raise_torchs_exception_type(name):
    ours, theirs, words = REPRODUCERS[name]
    with pytest.raises(Exception) as want:
        theirs()
    with pytest.raises(Exception) as got:
        ours()
    msg = str(got.value)
    assert type(got.value) is type(want.value), f"dagrad raised {got.value!r}, torch {want.value!r}"
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    for phrase in LEAKS:
        assert phrase not in msg
    library_still_works()


# ----------------------------------------------------------------------------- the pybind11 layer

def test_overload_failures_name_function_and_argument():
    x = dagrad.ones(2, 3)
    cases = [
        (lambda: x.transpose(0, 1, 2), TypeError, r"Tensor\.transpose\(\) takes at most 2 positional"),
        (lambda: x.transpose(0, dim2=1), TypeError, r"Tensor\.transpose\(\) got an unexpected keyword argument 'dim2'"),
        (lambda: x.transpose(0), TypeError, r"Tensor\.transpose\(\) missing required argument 'dim1'"),
        (lambda: x.pow("a"), TypeError, r"Tensor\.pow\(\): argument 'exponent' must be a number, not str"),
        (lambda: x.clamp(2 ** 1100), ValueError, r"Tensor\.clamp\(\): argument 'min' is out of range"),
        (lambda: x.broadcast_to([2, "a"]), TypeError, r"Tensor\.broadcast_to\(\): argument 'size'"),
        (lambda: dagrad._core.full([1, "a"], 1.0, dagrad.float32), TypeError,
         r"full\(\): argument 'shape' must be a sequence of ints, not list with element 1 of type str"),
    ]
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern) as info:
            call()
        for phrase in LEAKS:
            assert phrase not in str(info.value)


def test_property_setters_name_the_property():
    x = dagrad.ones(2)
    with pytest.raises(TypeError, match=r"Tensor\.requires_grad: the value assigned must be bool, not str"):
        x.requires_grad = "a"
    with pytest.raises(TypeError, match=r"Tensor\.data: the value assigned must be Tensor, not list"):
        x.data = [1.0, 2.0]
    with pytest.raises(TypeError, match=r"Tensor\.grad: assigned grad must be a Tensor or None, not list"):
        x.grad = [1, 2]
    x.requires_grad = True  # the setters still work
    x.data = dagrad.full((2,), 3.0)
    x.grad = dagrad.ones(2)
    assert x.requires_grad and x.tolist() == [3.0, 3.0] and x.grad.tolist() == [1.0, 1.0]


def test_wrapped_bindings_keep_their_docs_and_methods_still_bind():
    assert "sum(self" in dagrad.Tensor.sum.__doc__
    assert dagrad.Tensor.sum.__name__ == "sum"
    x = dagrad.ones(2, 3)
    assert x.sum(1).tolist() == [3.0, 3.0]
    assert dagrad.Tensor.sum(x, 0).tolist() == [2.0, 2.0, 2.0]
    bound = x.sum
    assert bound(dim=0, keepdim=True).shape == (1, 3)


@pytest.mark.parametrize("other", ["a", b"a", None])
@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_operators_with_a_string_or_none_are_type_errors(op, other):
    fn = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}[op]
    x = dagrad.ones(2)
    for a, b in ((x, other), (other, x)):
        with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for " + re.escape(op)) as info:
            fn(a, b)
        assert "_core" not in str(info.value)


def test_a_class_with_reflected_operators_still_gets_them():
    class Scale:
        def __radd__(self, t):
            return "radd"

        def __rmul__(self, t):
            return "rmul"

    x = dagrad.ones(2)
    assert x + Scale() == "radd" and x * Scale() == "rmul"


def test_internal_op_names_stay_inside():
    with pytest.raises(TypeError) as info:
        F.cross_entropy(dagrad.tensor([[1, 2]]), dagrad.tensor([0]))
    assert "cross_entropy_rows" not in str(info.value) and "cross_entropy" in str(info.value)
    with pytest.raises(TypeError) as info:
        F.embedding(dagrad.tensor([0.5]), dagrad.ones(3, 2))
    assert "embedding" in str(info.value) and not str(info.value).startswith("index")
    with pytest.raises(ValueError) as info:
        dagrad.zeros(-1)
    assert str(info.value).startswith("zeros()") and "full" not in str(info.value)
    with pytest.raises(IndexError) as info:
        dagrad.ones(2, 3).logsumexp(5)
    assert "logsumexp" in str(info.value) and "amax" not in str(info.value)
    with pytest.raises(IndexError) as info:
        dagrad.ones(2, 3).var(5)
    assert "var" in str(info.value) and "mean" not in str(info.value)


def test_to_accepts_pytorchs_forms():
    x = dagrad.ones(2)
    assert x.to(dagrad.float64).dtype == dagrad.float64
    assert x.to(np.float64).dtype == dagrad.float64
    assert x.to("cpu") is x and x.to(device="cpu") is x
    assert x.to("cpu", dagrad.int64).dtype == dagrad.int64
    assert x.to(dagrad.tensor([1])).dtype == dagrad.int64
    assert x.to(dtype=dagrad.float32) is x
    y = x.to(dagrad.float32, copy=True)
    assert y is not x and y.tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="cpu"):
        x.to("cuda")


@pytest.mark.parametrize("call", [lambda t: t.split(1), lambda t: t.split([1], 0), lambda t: t.chunk(1),
                                  lambda t: dagrad.split(t, 1), lambda t: dagrad.chunk(t, 2, -1)],
                         ids=["split", "split_sections", "chunk", "dagrad.split", "dagrad.chunk"])
def test_split_and_chunk_of_a_0d_tensor_are_index_errors(call):
    # PyTorch refuses both ("expects at least a 1-dimensional tensor"); the op must never be
    # called with the empty shape of a 0-d tensor.
    with pytest.raises(IndexError, match=r"(split|chunk)\(\): expects at least a 1-dimensional tensor"):
        call(dagrad.tensor(1.0))
    library_still_works()
