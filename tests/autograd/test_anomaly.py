"""dagrad.autograd.detect_anomaly (Note [Anomaly mode])."""
import pytest

import dagrad


def _line(marker):
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if marker in line and "_line(" not in line:
                return f"{__file__}:{i}"
    raise AssertionError(marker)


def test_nan_in_forward_names_op_and_line():
    x = dagrad.tensor([1.0, -1.0], requires_grad=True)
    with dagrad.autograd.detect_anomaly():
        y = x.sqrt()  # MARK-forward
        with pytest.raises(RuntimeError) as info:
            (y * 2.0).sum().backward()
    msg = str(info.value)
    assert "'sqrt'" in msg and "forward pass" in msg and _line("MARK-forward") in msg
    assert not dagrad.autograd.is_anomaly_enabled()


def test_inf_in_backward_names_the_backward_node_and_its_forward_line():
    a = dagrad.tensor([0.0, 1.0], requires_grad=True)
    with dagrad.autograd.detect_anomaly():
        b = a.sqrt().sum()  # MARK-backward
        with pytest.raises(RuntimeError) as info:
            b.backward()
    msg = str(info.value)
    assert "backward pass" in msg and "backward of 'sqrt'" in msg and _line("MARK-backward") in msg


def test_kernel_error_names_the_recording_line_and_keeps_its_type():
    with dagrad.autograd.detect_anomaly():
        g = dagrad.ones(3).gather(0, dagrad.tensor([0, 5]))  # MARK-gather
        with pytest.raises(IndexError) as info:
            g.numpy()
    assert "gather" in str(info.value) and _line("MARK-gather") in str(info.value)
    # outside anomaly mode the op and shapes stay, no line
    with pytest.raises(IndexError) as info:
        dagrad.ones(3).gather(0, dagrad.tensor([0, 5])).numpy()
    assert "gather" in str(info.value) and "anomaly" not in str(info.value)


def test_clean_graphs_run_unchanged_in_anomaly_mode():
    x = dagrad.tensor([1.0, 2.0], requires_grad=True)

    @dagrad.autograd.detect_anomaly()
    def step():
        (x.exp() * x).sum().backward()

    step()
    ref = dagrad.tensor([1.0, 2.0], requires_grad=True)
    (ref.exp() * ref).sum().backward()
    assert x.grad.tolist() == ref.grad.tolist()
