"""The JAX<->torch bridge: float64 round trips and gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jnp = pytest.importorskip("jax.numpy")

from bayes.bridge import jax_to_torch, torch_function, torch_to_jax  # noqa: E402


def test_round_trip_is_float64_and_exact() -> None:
    x = torch.tensor([[1.0, 2.5], [np.pi, -1e-300]], dtype=torch.float64)
    back = jax_to_torch(torch_to_jax(x))
    assert back.dtype == torch.float64
    assert torch.equal(back, x)


def test_float32_input_promoted_to_float64() -> None:
    y = torch_to_jax(torch.ones(3, dtype=torch.float32))
    assert str(y.dtype) == "float64"


def test_complex_input_rejected() -> None:
    with pytest.raises(TypeError, match="real numeric"):
        torch_to_jax(torch.ones(2, dtype=torch.complex128))


def test_gradients_match_finite_differences() -> None:
    def net(x, w1, w2):
        return jnp.sum(jnp.tanh(x @ w1) @ w2, axis=-1) + jnp.sin(x).prod(axis=-1)

    f = torch_function(net)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    w1 = torch.randn(3, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w2 = torch.randn(5, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x, w1, w2), eps=1e-6, atol=1e-7)


def test_inputs_without_grad_get_none_and_values_match_jax() -> None:
    f = torch_function(lambda x, w: jnp.exp(x @ w))
    x = torch.linspace(0, 1, 6, dtype=torch.float64).reshape(3, 2).requires_grad_()
    w = torch.tensor([[0.5], [-1.0]], dtype=torch.float64)
    y = f(x, w)
    assert y.shape == (3, 1)
    np.testing.assert_allclose(y.detach().numpy(), np.exp(x.detach().numpy() @ w.numpy()))
    y.sum().backward()
    expected = np.exp(x.detach().numpy() @ w.numpy()) @ w.numpy().T
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    assert w.grad is None
