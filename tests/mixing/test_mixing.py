import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crlkit.errors import CrlkitError
from crlkit.mixing import (MIXINGS, InvertibleMLP, LinearMixing, PolynomialMixing, condition_number,
                           make_mixing, relative_error)


def _z(n=2000, d=5, seed=0, scale=3.0):
    return np.random.default_rng(seed).standard_normal((n, d)) * scale


@pytest.mark.parametrize("dim,layers", [(2, 1), (5, 3), (10, 5)])
def test_invertible_mlp_round_trip_float64(dim, layers):
    g = InvertibleMLP(dim, n_layers=layers, seed=dim, n_draws=2000)
    z = _z(d=dim)
    x = g(z)
    assert x.shape == z.shape and x.dtype == np.float64
    assert relative_error(g.inverse(x), z) <= 1e-5
    # and the map is really non-trivial (not the identity, not linear for layers > 1)
    assert relative_error(x, z) > 0.1


def test_invertible_mlp_condition_numbers_under_threshold():
    g = InvertibleMLP(6, n_layers=4, seed=1, cond_quantile=0.25, n_draws=5000)
    conds = g.condition_numbers
    assert len(conds) == 4 and max(conds) <= g.threshold
    # the threshold is the 25% quantile of random draws: a fresh random matrix exceeds it ~75% of the time
    rng = np.random.default_rng(99)
    a = rng.uniform(-1, 1, size=(4000, 6, 6))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    frac_above = float((condition_number(a) > g.threshold).mean())
    assert 0.70 < frac_above < 0.80
    # columns are L2-normalised
    for w in g.weights:
        np.testing.assert_allclose(np.linalg.norm(w, axis=0), 1.0, rtol=1e-12)


def test_invertible_mlp_seeded_and_leaky():
    a, b, c = InvertibleMLP(4, seed=3, n_draws=1000), InvertibleMLP(4, seed=3, n_draws=1000), InvertibleMLP(4, seed=4, n_draws=1000)
    z = _z(d=4)
    np.testing.assert_array_equal(a(z), b(z))
    assert not np.allclose(a(z), c(z))
    # leaky ReLU between layers: the map is not linear (a(2z) != 2a(z) fails only on a cone... check additivity)
    z1, z2 = z[:100], z[100:200]
    assert relative_error(a(z1 + z2), a(z1) + a(z2)) > 1e-2
    # positive homogeneity holds (no biases)
    np.testing.assert_allclose(a(2.5 * z), 2.5 * a(z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", MIXINGS)
def test_all_mixings_round_trip_and_torch_match(name):
    g = make_mixing(name, 5, seed=2, degree=3, n_draws=1000)
    z = _z(n=500)
    x = g(z)
    assert relative_error(g.inverse(x), z) <= 1e-5
    xt = g(torch.as_tensor(z, dtype=torch.float64))
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-9, atol=1e-9)
    # float32 module twin
    x32 = g.torch()(torch.as_tensor(z, dtype=torch.float32))
    assert x32.dtype == torch.float32
    assert relative_error(x32.double().numpy(), x) < 1e-5


@pytest.mark.parametrize("name", ["mlp", "linear", "orthogonal"])
def test_injective_into_higher_dim(name):
    g = make_mixing(name, 4, out_dim=9, seed=0, n_draws=1000)
    z = _z(d=4)
    x = g(z)
    assert x.shape == (len(z), 9)
    assert relative_error(g.inverse(x), z) <= 1e-5


@pytest.mark.parametrize("g", [InvertibleMLP(4, seed=5, n_draws=1000),
                               InvertibleMLP(4, seed=5, n_draws=1000, slope=0.1, activation="xtanh"),
                               PolynomialMixing(4, degree=3, seed=1, n_draws=1000),
                               LinearMixing(4, seed=0, n_draws=1000), LinearMixing(4, kind="orthogonal")])
def test_log_abs_det_jacobian_matches_autograd(g):
    z = _z(n=20, d=4, seed=7)
    jac = torch.stack([torch.autograd.functional.jacobian(g.forward_torch, torch.as_tensor(z[i:i + 1])).reshape(4, 4)
                       for i in range(len(z))])
    np.testing.assert_allclose(g.log_abs_det_jacobian(z), torch.linalg.slogdet(jac)[1].numpy(), atol=1e-8)


def test_orthogonal_is_orthogonal_and_polynomial_is_nonlinear():
    q = LinearMixing(6, kind="orthogonal", seed=1).A
    np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-12)
    p = PolynomialMixing(5, degree=2, seed=0, n_draws=1000)
    z = _z(n=200)
    # a degree-2 polynomial: p(2z) - 4 p(z) + ... the quadratic part makes p(2z) != 2 p(z)
    assert relative_error(p(2 * z), 2 * p(z)) > 0.05


def test_invalid_options_name_the_field():
    with pytest.raises(CrlkitError, match="mixing"):
        make_mixing("mpl", 3)
    with pytest.raises(CrlkitError, match="slope"):
        InvertibleMLP(3, slope=0.0)
    with pytest.raises(CrlkitError, match="degree"):
        PolynomialMixing(3, degree=5)
    with pytest.raises(CrlkitError, match="shape"):
        InvertibleMLP(3, n_draws=100)(np.zeros((4, 2)))
    with pytest.raises(CrlkitError, match="activation 'tanh'.*lrelu, xtanh"):
        InvertibleMLP(3, n_draws=100, activation="tanh")


def test_xtanh_mixing_same_weights_smooth_and_invertible():
    """xtanh = tanh(h) + a h between the layers: the same weights as the leaky-ReLU version, a
    smooth bijection (no kinks: not positively homogeneous), inverted to float64 precision."""
    a = InvertibleMLP(5, n_layers=3, slope=0.1, seed=2, n_draws=1000)
    b = InvertibleMLP(5, n_layers=3, slope=0.1, seed=2, n_draws=1000, activation="xtanh")
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
    z = _z(n=1000, d=5, scale=5.0)
    x = b(z)
    assert relative_error(b.inverse(x), z) <= 1e-10
    assert relative_error(b(2.0 * z), 2.0 * b(z)) > 0.05  # saturating, unlike the leaky ReLU
    xt = b(torch.as_tensor(z))
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-12, atol=1e-12)
    # single-layer check of the elementwise inverse far out in the tails
    y = np.array([[-50.0, -1.0, 0.0, 1e-9, 30.0]])
    h = b._act_inverse(y)
    np.testing.assert_allclose(np.tanh(h) + 0.1 * h, y, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(dim=st.integers(1, 8), layers=st.integers(1, 4), slope=st.floats(0.05, 1.0), seed=st.integers(0, 10_000),
       scale=st.floats(0.01, 100.0))
def test_round_trip_property(dim, layers, slope, seed, scale):
    g = InvertibleMLP(dim, n_layers=layers, slope=slope, seed=seed, n_draws=500)
    z = np.random.default_rng(seed).standard_normal((64, dim)) * scale
    assert relative_error(g.inverse(g(z)), z) <= 1e-5
    assert max(g.condition_numbers) <= g.threshold
