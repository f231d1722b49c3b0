"""Each regularizer moves its target quantity, in short seeded runs on small procedural data.

Runs share the seed, hence the initial weights and the data stream, so the differences
come from the regularizer alone. Small MLPs on 8-D toy data keep this to a few seconds.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from crlkit.models.vae import covariance, gaussian_kl, total_correlation
from crlkit.train import load_model, train
from .toy import ToyRing, ToyVectors

FAST = {"lr": 1e-3, "mlp_hidden": 32, "mlp_depth": 2, "num_latents": 4, "batch_size": 64, "log_every": 25}


def _train(tmp_path, model, data, steps, **overrides):
    out = tmp_path / f"{model}_{len(list(tmp_path.iterdir()))}"
    train(model, data, steps=steps, seed=0, out_dir=out, overrides={**FAST, **overrides}, progress=False)
    return out


@pytest.fixture(scope="module")
def probe():
    _, x = ToyVectors().sample(1024, np.random.default_rng(123))
    return torch.as_tensor(x)


def _tc(model, x):
    with torch.no_grad():
        mean, logvar = model.encode_dist(x)
        g = torch.Generator().manual_seed(0)
        return np.mean([float(total_correlation(mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g),
                                                mean, logvar)) for _ in range(5)])


def _offdiag(c):
    return float((c - torch.diag(torch.diagonal(c))).square().sum())


def _corr_offdiag(mean):
    c = covariance(mean)
    sd = torch.sqrt(torch.diagonal(c))
    return _offdiag(c / (sd[:, None] * sd[None, :]))


def test_beta_tcvae_lowers_total_correlation(tmp_path, probe):
    vae = load_model(_train(tmp_path, "beta_tcvae", ToyVectors(), 100, beta=1.0))
    tcvae = load_model(_train(tmp_path, "beta_tcvae", ToyVectors(), 100, beta=10.0))
    tc_vae, tc_tcvae = _tc(vae, probe), _tc(tcvae, probe)
    # the minibatch estimate omits the constant (D-1) log(batch): its floor is -(D-1) log(1024)
    floor = -3 * np.log(1024)
    assert tc_vae - floor > 0.2  # the plain VAE's codes are dependent early on
    assert tc_tcvae < tc_vae - 0.2
    # beta = 1 is exactly the VAE objective
    plain = load_model(_train(tmp_path, "vae", ToyVectors(), 100))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), vae.state_dict().values()))


def test_dip_vae_lowers_off_diagonal_covariance(tmp_path, probe):
    vae = load_model(_train(tmp_path, "vae", ToyVectors(), 100))
    dip1 = load_model(_train(tmp_path, "dip_vae_i", ToyVectors(), 100))
    dip2 = load_model(_train(tmp_path, "dip_vae_ii", ToyVectors(), 100))
    with torch.no_grad():
        m_vae, m1 = vae.encode(probe), dip1.encode(probe)
        m2, lv2 = dip2.encode_dist(probe)
    # type II: the off-diagonal of Cov[mu] itself collapses
    assert _offdiag(covariance(m2)) < 0.1 * _offdiag(covariance(m_vae))
    # type I pushes Var[mu_j] to 1 (lambda_d = 10 lambda_od), so compare scale-free correlations
    assert _corr_offdiag(m1) < 0.7 * _corr_offdiag(m_vae)
    assert np.allclose(torch.diagonal(covariance(m1)).numpy(), 1.0, atol=0.5)


def test_annealed_vae_kl_tracks_capacity(tmp_path):
    out = _train(tmp_path, "annealed_vae", ToyVectors(), 300, c_max=5.0, iteration_threshold=200, gamma=100.0,
                 log_every=50)
    log = pd.read_csv(out / "log.csv")
    # C(step) = min(c_max, c_max * step / threshold), with step the 0-based update index
    assert np.allclose(log["capacity"], np.minimum(5.0, 5.0 * (log["step"] - 1) / 200))
    late = log[log["step"] > 50]
    assert np.mean(np.abs(late["kl"] - late["capacity"])) < 0.6
    assert np.corrcoef(late["kl"], late["capacity"])[0, 1] > 0.9
    # a smaller final capacity gives a correspondingly smaller KL
    small = pd.read_csv(_train(tmp_path, "annealed_vae", ToyVectors(), 300, c_max=2.0, iteration_threshold=200,
                               gamma=100.0, log_every=50) / "log.csv")
    assert abs(small["kl"].iloc[-50:].mean() - 2.0) < 0.4
    assert abs(log["kl"].iloc[-50:].mean() - 5.0) < 0.4


def test_factor_vae_discriminator_beats_chance(tmp_path):
    # codes of a ring are dependent, so D can tell q(z) from the product of its marginals
    out = _train(tmp_path, "factor_vae", ToyRing(), 150, gamma=1.0, discriminator_hidden=128)
    acc = pd.read_csv(out / "log.csv")["discriminator_accuracy"]
    assert acc.iloc[:10].mean() < 0.56
    assert acc.iloc[50:150].mean() > 0.58


def test_factor_vae_update_keeps_discriminator_out_of_vae_step():
    from crlkit.models import make_model
    from crlkit.train import TrainConfig

    torch.manual_seed(0)
    m = make_model("factor_vae", (8,), discriminator_hidden=32, discriminator_lr=0.0, gamma=50.0)
    opts = m.configure_optimizers(TrainConfig())
    vae_ids = {id(p) for g in opts["main"].param_groups for p in g["params"]}
    d_ids = {id(p) for p in m.discriminator.parameters()}
    assert not vae_ids & d_ids and len(vae_ids) + len(d_ids) == len(list(m.parameters()))
    d_before = [p.detach().clone() for p in m.discriminator.parameters()]
    enc_before = [p.detach().clone() for p in m.encoder.parameters()]
    terms = m.training_step({"x": torch.randn(32, 8)}, 0, opts)  # 16 for the VAE, 16 permuted
    # D (lr 0) is untouched by the VAE step; the VAE moved; no in-place autograd error
    assert all(torch.equal(a, b) for a, b in zip(d_before, m.discriminator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(enc_before, m.encoder.parameters()))
    assert {"tc", "discriminator_loss", "discriminator_accuracy"} <= set(terms)
    assert all(p.requires_grad for p in m.discriminator.parameters())


def test_gaussian_kl_and_tc_formulas():
    mean = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, np.log(2.0)], [0.0, 0.0]], dtype=torch.float32)
    # per-sample 0.5 * sum(mu^2 + s^2 - log s^2 - 1): [0.5*(1) + 0.5*(2 - log 2 - 1)], [0.5*4]
    expected = (0.5 + 0.5 * (1 - np.log(2.0)) + 2.0) / 2
    assert float(gaussian_kl(mean, logvar)) == pytest.approx(expected, rel=1e-6)
    # TC of independent codes is at its floor, of duplicated dimensions well above it
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(512, 2, generator=g)
    lv = torch.full_like(mu, np.log(0.01))
    z = mu + 0.1 * torch.randn(mu.shape, generator=g)
    indep = float(total_correlation(z, mu, lv))
    mu_dup = torch.cat([mu[:, :1], mu[:, :1]], 1)
    z_dup = mu_dup + 0.1 * torch.randn(mu.shape, generator=g)
    dup = float(total_correlation(z_dup, mu_dup, lv))
    assert dup > indep + 1.0
