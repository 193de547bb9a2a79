"""Errors of the torch-style ops: the exception type PyTorch users expect, a message that names
the bad value (target, index) or the shapes, and a library that still works afterwards.

Errors that depend on values (targets, index tensors) may surface when the value is computed,
so every call is realised (``.numpy()``) inside ``pytest.raises``.
"""
import re

import numpy as np
import pytest

import dagrad
import dagrad.nn.functional as F


def _names(msg, *parts):
    """Every part appears in the message: a number as a whole word, a shape written (2, 3),
    [2, 3], (5,) or [5], or a regular expression."""
    for p in parts:
        if isinstance(p, re.Pattern):
            ok = p.search(msg)
        elif isinstance(p, tuple):
            inner = ", ".join(str(v) for v in p)
            ok = f"({inner}{',' if len(p) == 1 else ''})" in msg or f"[{inner}]" in msg
        else:
            ok = re.search(r"(?<![\w.])" + re.escape(str(p)) + r"(?![\w.])", msg)
        assert ok, f"message does not name {p!r}: {msg}"


def _still_works():
    x = dagrad.tensor([1.0, 2.0, 3.0], dtype=dagrad.float64, requires_grad=True)
    y = F.cross_entropy(x.unsqueeze(0), dagrad.tensor([2]))
    y.backward()
    assert np.isfinite(y.item()) and x.grad.shape == (3,)


def _realize(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        o.numpy()


# ----------------------------------------------------------------------------- class targets

TARGET_CASES = {  # name: (loss, input shape, target, bad value, class count, kwargs)
    "ce_too_big": ("cross_entropy", (5, 4), [0, 1, 7, 2, 1], 7, 4, {}),
    "ce_equal_to_C": ("cross_entropy", (5, 4), [0, 1, 4, 2, 1], 4, 4, {}),
    "ce_negative": ("cross_entropy", (5, 4), [0, 1, -3, 2, 1], -3, 4, {}),
    "ce_minus100_not_ignored": ("cross_entropy", (3, 4), [0, -100, 1], -100, 4, dict(ignore_index=1)),
    "ce_kdim": ("cross_entropy", (2, 4, 3), [[0, 1, 2], [9, 0, 0]], 9, 4, {}),
    "ce_weight": ("cross_entropy", (3, 6), [0, 6, 1], 6, 6, dict(weight=np.ones(6, np.float32))),
    "ce_smoothing": ("cross_entropy", (3, 4), [0, 5, 1], 5, 4, dict(label_smoothing=0.1)),
    "ce_sum": ("cross_entropy", (3, 4), [0, 5, 1], 5, 4, dict(reduction="sum")),
    "ce_none": ("cross_entropy", (3, 4), [0, 5, 1], 5, 4, dict(reduction="none")),
    "ce_unbatched": ("cross_entropy", (4,), 11, 11, 4, {}),
    "nll_too_big": ("nll_loss", (5, 4), [0, 1, 4, 2, 1], 4, 4, {}),
    "nll_negative": ("nll_loss", (5, 4), [0, -2, 1, 2, 1], -2, 4, {}),
    "nll_kdim": ("nll_loss", (2, 3, 2), [[0, 1], [2, 8]], 8, 3, {}),
    "nll_none": ("nll_loss", (3, 4), [0, 5, 1], 5, 4, dict(reduction="none")),
}


@pytest.mark.parametrize("case", list(TARGET_CASES))
def test_class_target_out_of_range_is_index_error_naming_target_and_class_count(case):
    loss, shape, target, bad, classes, kw = TARGET_CASES[case]
    kw = {k: (dagrad.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    x = dagrad.randn(*shape, requires_grad=True)
    with pytest.raises(IndexError) as e:
        _realize(getattr(F, loss)(x, dagrad.tensor(target), **kw))
    _names(str(e.value), bad, classes)
    _still_works()


def test_class_target_out_of_range_in_backward_only_graph_is_index_error():
    x = dagrad.randn(3, 4, requires_grad=True)
    with pytest.raises(IndexError) as e:
        F.cross_entropy(x, dagrad.tensor([0, 4, 1])).backward()
    _names(str(e.value), 4)
    _still_works()


BATCH_CASES = {  # name: (loss, input shape, target, kwargs)
    "ce_more_targets": ("cross_entropy", (2, 3), [0, 1, 2], {}),
    "ce_fewer_targets": ("cross_entropy", (5, 4), [0, 1], {}),
    "ce_kdim": ("cross_entropy", (2, 4, 3), [[0, 1], [1, 0]], {}),
    "ce_kdim_flat_target": ("cross_entropy", (2, 4, 3), [0, 1], {}),
    "ce_probs_classes": ("cross_entropy", (5, 4), np.full((5, 3), 1 / 3, np.float32), {}),
    "ce_probs_batch": ("cross_entropy", (5, 4), np.full((4, 4), 0.25, np.float32), {}),
    "nll_fewer_targets": ("nll_loss", (5, 4), [0, 1], {}),
    "nll_kdim": ("nll_loss", (2, 4, 3), [[0, 1, 2]], {}),
}


@pytest.mark.parametrize("case", list(BATCH_CASES))
def test_batch_size_mismatch_is_value_error_naming_shapes(case):
    loss, shape, target, kw = BATCH_CASES[case]
    t = dagrad.tensor(target)
    with pytest.raises(ValueError) as e:
        _realize(getattr(F, loss)(dagrad.randn(*shape), t, **kw))
    _names(str(e.value), tuple(shape), tuple(t.shape))
    _still_works()


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_binary_losses_shape_mismatch_is_value_error(loss):
    with pytest.raises(ValueError) as e:
        _realize(getattr(F, loss)(dagrad.rand(4, 3) * 0.5 + 0.25, dagrad.rand(4, 2)))
    _names(str(e.value), (4, 3), (4, 2))


def test_weight_of_wrong_length_is_value_error():
    with pytest.raises(ValueError) as e:
        _realize(F.cross_entropy(dagrad.randn(3, 4), dagrad.tensor([0, 1, 2]), weight=dagrad.ones(5)))
    _names(str(e.value), (5,))


# ----------------------------------------------------------------------------- conv and pool

CONV_POOL_CASES = {  # name: (call, shapes the message must name)
    "conv2d_2d_input": (lambda: F.conv2d(dagrad.ones(5, 5), dagrad.ones(2, 1, 3, 3)), [(5, 5)]),
    "conv2d_5d_input": (lambda: F.conv2d(dagrad.ones(1, 1, 1, 5, 5), dagrad.ones(2, 1, 3, 3)), [(1, 1, 1, 5, 5)]),
    "conv2d_3d_weight": (lambda: F.conv2d(dagrad.ones(1, 1, 5, 5), dagrad.ones(2, 1, 3)), [(2, 1, 3)]),
    "conv2d_channels": (lambda: F.conv2d(dagrad.ones(2, 3, 5, 5), dagrad.ones(4, 4, 3, 3)),
                        [(2, 3, 5, 5), (4, 4, 3, 3)]),
    # The unbatched input may be named as given or with N = 1, as PyTorch does.
    "conv2d_channels_unbatched": (lambda: F.conv2d(dagrad.ones(3, 5, 5), dagrad.ones(4, 2, 3, 3)),
                                  [re.compile(r"[(\[](1, )?3, 5, 5[)\]]"), (4, 2, 3, 3)]),
    "conv2d_groups": (lambda: F.conv2d(dagrad.ones(1, 4, 5, 5), dagrad.ones(6, 2, 3, 3), groups=3),
                      [(1, 4, 5, 5), (6, 2, 3, 3)]),
    "conv2d_bias": (lambda: F.conv2d(dagrad.ones(1, 2, 5, 5), dagrad.ones(3, 2, 3, 3), dagrad.ones(4)), [(4,)]),
    "conv2d_kernel_too_big": (lambda: F.conv2d(dagrad.ones(1, 1, 2, 2), dagrad.ones(2, 1, 3, 3)), [(1, 1, 2, 2)]),
    "conv2d_kernel_too_big_stride2": (
        lambda: F.conv2d(dagrad.ones(1, 1, 2, 2), dagrad.ones(2, 1, 3, 3), stride=2), [(1, 1, 2, 2)]),
    "conv1d_4d_input": (lambda: F.conv1d(dagrad.ones(1, 2, 5, 5), dagrad.ones(2, 2, 3)), [(1, 2, 5, 5)]),
    "conv1d_1d_input": (lambda: F.conv1d(dagrad.ones(5), dagrad.ones(2, 1, 3)), [(5,)]),
    "conv1d_channels": (lambda: F.conv1d(dagrad.ones(1, 3, 5), dagrad.ones(2, 2, 3)), [(1, 3, 5), (2, 2, 3)]),
    "max_pool2d_2d_input": (lambda: F.max_pool2d(dagrad.ones(5, 5), 2), [(5, 5)]),
    "max_pool2d_5d_input": (lambda: F.max_pool2d(dagrad.ones(1, 1, 1, 5, 5), 2), [(1, 1, 1, 5, 5)]),
    "avg_pool2d_2d_input": (lambda: F.avg_pool2d(dagrad.ones(5, 5), 2), [(5, 5)]),
    "avg_pool2d_5d_input": (lambda: F.avg_pool2d(dagrad.ones(1, 1, 1, 5, 5), 2), [(1, 1, 1, 5, 5)]),
    "max_pool2d_kernel_too_big": (lambda: F.max_pool2d(dagrad.ones(1, 1, 2, 2), 3), [(1, 1, 2, 2)]),
    "avg_pool2d_kernel_too_big": (lambda: F.avg_pool2d(dagrad.ones(1, 1, 2, 2), 3), [(1, 1, 2, 2)]),
    "max_pool2d_kernel_too_big_stride1": (lambda: F.max_pool2d(dagrad.ones(1, 1, 2, 2), 3, 1), [(1, 1, 2, 2)]),
}


@pytest.mark.parametrize("case", list(CONV_POOL_CASES))
def test_conv_pool_bad_shapes_are_value_errors_naming_shapes(case):
    call, shapes = CONV_POOL_CASES[case]
    with pytest.raises(ValueError) as e:
        _realize(call())
    _names(str(e.value), *shapes)
    _still_works()


def test_linear_and_matmul_shape_mismatch_are_value_errors_naming_shapes():
    with pytest.raises(ValueError) as e:
        F.linear(dagrad.ones(3, 5), dagrad.ones(4, 6))
    _names(str(e.value), (3, 5), (4, 6))
    with pytest.raises(ValueError) as e:
        dagrad.ones(3, 5) @ dagrad.ones(4, 6)
    _names(str(e.value), (3, 5), (4, 6))


def test_norm_shape_mismatch_are_value_errors_naming_shapes():
    with pytest.raises(ValueError) as e:
        F.batch_norm(dagrad.ones(4, 3), dagrad.zeros(2), dagrad.ones(2))
    _names(str(e.value), (4, 3))
    with pytest.raises(ValueError) as e:
        F.layer_norm(dagrad.ones(4, 3), (4,))
    _names(str(e.value), (4, 3), (4,))


# ----------------------------------------------------------------------------- indices

INDEX_CASES = {  # name: (call, index value the message must name)
    "int": (lambda x: x[3], 3),
    "neg_int": (lambda x: x[-4], -4),
    "int_dim1": (lambda x: x[:, 5], 5),
    "too_many": (lambda x: x[0, 0, 0], None),
    "0d": (lambda x: dagrad.ones(())[0], None),
    "list": (lambda x: x[[0, 3]], 3),
    "numpy": (lambda x: x[np.array([-4])], -4),
    "tensor": (lambda x: x[dagrad.tensor([1, 7])], 7),
    "rows_cols": (lambda x: x[[0, 1], [0, 4]], 4),
    "array_and_int": (lambda x: x[[0, 1], 9], 9),
    "mask_shape": (lambda x: x[np.array([True, False])], None),
    "gather": (lambda x: x.gather(1, dagrad.tensor([[0], [4], [1]])), 4),
    "gather_negative": (lambda x: x.gather(0, dagrad.tensor([[0, -1, 0, 0]])), -1),
    "embedding": (lambda x: F.embedding(dagrad.tensor([0, 5]), dagrad.ones(5, 2)), 5),
    "embedding_negative": (lambda x: F.embedding(dagrad.tensor([0, -1]), dagrad.ones(5, 2)), -1),
    "sum_dim": (lambda x: x.sum(2), 2),
    "softmax_dim": (lambda x: F.softmax(x, -3), -3),
    "max_dim": (lambda x: x.max(2), 2),
    "argmax_dim": (lambda x: x.argmax(2), 2),
    "unsqueeze_dim": (lambda x: x.unsqueeze(4), 4),
    "permute_dim": (lambda x: x.permute(0, 2), 2),
    "cat_dim": (lambda x: dagrad.cat([x, x], 2), 2),
}


@pytest.mark.parametrize("case", list(INDEX_CASES))
def test_index_out_of_range_is_index_error(case):
    call, bad = INDEX_CASES[case]
    x = dagrad.ones(3, 4, requires_grad=True)
    with pytest.raises(IndexError) as e:
        _realize(call(x))
    if bad is not None:
        _names(str(e.value), bad)
    _still_works()


def test_index_error_in_backward_of_index_leaves_library_usable():
    x = dagrad.ones(3, 4, requires_grad=True)
    with pytest.raises(IndexError):
        (x[dagrad.tensor([0, 3])] * 2).sum().backward()
    _still_works()
