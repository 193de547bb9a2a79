"""PyTorch's device habits: device= on factories, .device, .cpu(), .to("cpu"), clone, t,
contiguous; any other device is a RuntimeError that says dagrad runs on CPUs."""
import numpy as np
import pytest

import dagrad

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("make", [
    lambda d: dagrad.zeros(2, 3, device=d), lambda d: dagrad.ones(2, device=d), lambda d: dagrad.empty(2, device=d),
    lambda d: dagrad.full((2,), 1.0, device=d), lambda d: dagrad.tensor([1.0], device=d),
    lambda d: dagrad.as_tensor([1.0], device=d), lambda d: dagrad.randn(2, device=d),
    lambda d: dagrad.rand(2, device=d),
    lambda d: dagrad.arange(3, device=d), lambda d: dagrad.linspace(0, 1, 3, device=d),
    lambda d: dagrad.zeros_like(dagrad.ones(2), device=d), lambda d: dagrad.full_like(dagrad.ones(2), 2.0, device=d),
])
def test_factories_take_cpu_and_refuse_other_devices(make):
    assert make("cpu").device == "cpu"
    assert make(dagrad.device("cpu")).device == dagrad.device("cpu")
    assert make(torch.device("cpu")).device.type == "cpu"
    for bad in ("cuda", "cuda:0", "mps"):
        with pytest.raises(RuntimeError, match="CPUs only"):
            make(bad)


def test_device_methods_match_pytorch():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x, t = dagrad.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert str(x.device) == str(t.device) == "cpu"
    assert repr(x.device) == repr(t.device)
    np.testing.assert_array_equal(x.detach().cpu().numpy(), t.detach().cpu().numpy())  # the line
    np.testing.assert_array_equal(x.t().detach().numpy(), t.t().detach().numpy())
    np.testing.assert_array_equal(x.T.detach().numpy(), t.T.detach().numpy())
    assert x.contiguous() is x and x.to("cpu") is x and x.cpu() is x
    c, tc = x.clone(), t.clone()
    assert c is not x and not c.is_leaf and c.requires_grad == tc.requires_grad
    (c * 2.0).sum().backward()
    (tc * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    assert dagrad.ones(3).t().shape == tuple(torch.ones(3).t().shape)
    with pytest.raises(RuntimeError, match="<= 2 dimensions"):
        dagrad.ones(2, 2, 2).t()
    with pytest.raises(RuntimeError, match="CPU"):
        x.to("cuda")
