"""The identifiable methods: shapes, decreasing losses, and small seeded settings where each
recovers what its theory promises (numbers checked against the random-rotation baseline)."""

import dataclasses

import numpy as np
import pytest
import torch

from crlkit.data import make_dataset
from crlkit.data.samplers import make_sampler
from crlkit.errors import CrlkitError
from crlkit.metrics import block_r2_score, linear_r2_score, mcc_score, random_rotation_baseline
from crlkit.models.base import get_model_class
from crlkit.graph import fit_parents_contribution, ordered_partial_correlation, unmix_from_changes
from crlkit.models._common import LOGVAR_RANGE, Whitening
from crlkit.models.contrastive import ContentStyle, ContentStyleConfig, Contrastive, ContrastiveConfig, info_nce
from crlkit.models.iflow import IFlow, IFlowConfig
from crlkit.models.interventional import Interventional, InterventionalConfig, known_change_info_nce
from crlkit.models.ivae import IVAE, IVAEConfig

#: the iVAE configuration these unit tests were written against: mean-field ELBO on whitened x
ELBO = dict(posterior="diagonal", importance_samples=1, whiten=True)


def _fit(model, sampler, steps, lr):
    """Train as the trainer does: the method's callbacks around ``training_step`` (hooks called
    directly on a stand-in trainer)."""
    from types import SimpleNamespace

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    trainer = SimpleNamespace(model=model, optimizers={"main": opt}, sampler=sampler, dataset=sampler.dataset,
                              train_config=None, step=0, total_steps=steps)
    callbacks = model.callbacks(None)
    for cb in callbacks:
        cb.on_fit_start(trainer)
    losses = []
    for step in range(steps):
        for cb in callbacks:
            cb.on_step_start(trainer, step)
        terms = model.training_step(sampler.next_batch(), step, {"main": opt})
        for cb in callbacks:
            cb.on_step_end(trainer, step, terms)
        losses.append(float(terms["loss"]))
    model.eval()
    return np.array(losses)


def _encode(model, x):
    with torch.no_grad():
        return model.encode(torch.as_tensor(np.asarray(x), dtype=torch.float32)).double().numpy()


def test_registered_with_batch_kinds():
    kinds = {"ivae": "segment", "iflow": "segment", "contrastive": "positive_pair", "content_style": "views",
             "interventional": "intervention_pair"}
    for name, kind in kinds.items():
        assert get_model_class(name).batch_kind == kind


def test_whitening_gives_identity_covariance():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((4000, 3)) @ np.array([[3.0, 0, 0], [1, 0.2, 0], [0, 2, 5]]) + 7)
    w = Whitening(3)
    assert torch.equal(w(x.float()), x.float()) and not bool(w.fitted)  # identity until fitted
    w.fit(x)
    y = w(x.float()).double().numpy()
    np.testing.assert_allclose(np.cov(y.T), np.eye(3), atol=2e-2)
    np.testing.assert_allclose(y.mean(0), 0, atol=2e-2)
    assert float(w.log_abs_det()) == pytest.approx(-0.5 * np.linalg.slogdet(np.cov(x.numpy().T, bias=True))[1],
                                                   rel=1e-5)


def test_info_nce_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    h = 10 * torch.randn(64, 4, generator=g)  # well separated codes
    aligned = info_nce(h, h + 0.01 * torch.randn(64, 4, generator=g), p=1.0)
    shuffled = info_nce(h, h[torch.randperm(64, generator=g)], p=1.0)
    assert aligned < 0.1 < np.log(64) - 1 < shuffled


@pytest.mark.parametrize("separate_variance", [False, True])
def test_ivae_loss_terms_shapes_and_decrease(separate_variance):
    ds = make_dataset("synthetic", latents=3, segments=8, mixing="linear", seed=0)
    smp = make_sampler("segment", ds, batch_size=64, seed=1)
    torch.manual_seed(0)
    m = IVAE(IVAEConfig(num_latents=3, aux_dim=8, hidden=32, separate_variance=separate_variance,
                        lr_schedule="constant", **ELBO), (3,))
    assert (m.encoder_logvar is not None) == separate_variance
    mean, logvar = m.encode_dist(torch.zeros(5, 3))
    assert mean.shape == logvar.shape == (5, 3)
    total, terms = m.loss(smp.next_batch(), 0)
    assert total.shape == () and set(terms) >= {"recon", "kl", "elbo"}
    assert m.encode(torch.zeros(5, 3)).shape == (5, 3)
    mean, logvar = m.prior_params(torch.arange(8))
    assert mean.shape == logvar.shape == (8, 3)
    losses = _fit(m, smp, 200, 1e-2)
    assert losses[-20:].mean() < 0.5 * losses[:5].mean()


def test_ivae_full_posterior_kl_matches_torch_distributions_and_trains():
    """posterior="full": q = N(m, L L^T); the closed-form KL to the diagonal prior equals
    torch.distributions' and encode_dist gives the marginal variances diag(L L^T)."""
    from torch.distributions import MultivariateNormal, kl_divergence

    torch.manual_seed(0)
    m = IVAE(IVAEConfig(num_latents=3, aux_dim=4, hidden=16, posterior="full", importance_samples=1, whiten=False),
             (5,))
    x, u = torch.randn(9, 5), torch.randint(0, 4, (9,))
    with torch.no_grad():
        m.encoder_offdiag[-1].bias.fill_(0.7)  # a clearly non-diagonal covariance
        mean, scale_tril = m.posterior_scale_tril(x)
        assert torch.equal(scale_tril, scale_tril.tril()) and float(scale_tril[:, 2, 0].abs().min()) > 0
        p_mean, p_logvar = m.prior_params(u)
        q = MultivariateNormal(mean, scale_tril=scale_tril)
        p = MultivariateNormal(p_mean, covariance_matrix=torch.diag_embed(p_logvar.exp()))
        expected = kl_divergence(q, p).mean()
        _, terms = m.loss({"x": x, "u": u}, 0)
        assert abs(float(terms["kl"]) - float(expected)) < 1e-4 * max(1.0, float(expected))
        _, logvar = m.encode_dist(x)
        torch.testing.assert_close(logvar.exp(), q.covariance_matrix.diagonal(dim1=-2, dim2=-1))
    ds = make_dataset("synthetic", latents=3, segments=8, mixing="linear", seed=0)
    smp = make_sampler("segment", ds, batch_size=64, seed=1)
    m = IVAE(IVAEConfig(num_latents=3, aux_dim=8, hidden=32, posterior="full", importance_samples=1,
                        lr_schedule="constant"), (3,))
    losses = _fit(m, smp, 200, 1e-2)
    assert np.isfinite(losses).all() and losses[-20:].mean() < 0.5 * losses[:5].mean()


@pytest.mark.parametrize("posterior", ["diagonal", "full"])
def test_ivae_importance_weighted_bound_lies_above_the_elbo_and_grows_with_k(posterior):
    """importance_samples = K: the per-sample ELBO it reports averages to the analytic ELBO of the
    K = 1 loss (same weights), and the K-sample bound lies above it (Burda et al. 2016), more so
    for larger K."""
    torch.manual_seed(0)
    cfg = IVAEConfig(num_latents=2, aux_dim=3, hidden=8, depth=1, posterior=posterior, importance_samples=1,
                     whiten=False)
    m = IVAE(cfg, (2,))
    x, u = torch.randn(4000, 2), torch.randint(0, 3, (4000,))
    with torch.no_grad():
        m.encoder[-1].bias[2:].fill_(-1.0)  # a posterior narrower than the prior, not the true one
        _, analytic = m.loss({"x": x, "u": u}, 0)
        bounds = {}
        for k in (2, 16):
            m.config = dataclasses.replace(cfg, importance_samples=k)
            total, terms = m.loss({"x": x, "u": u}, 0)
            # the loss drops the Gaussian constant -D/2 log(2 pi decoder_var); the reported bound has it
            const = -0.5 * 2 * np.log(2 * np.pi * cfg.decoder_var)
            assert float(total) == pytest.approx(-(float(terms["iw_bound"]) - const), rel=1e-5)
            bounds[k] = float(terms["iw_bound"])
            assert float(terms["elbo"]) == pytest.approx(float(analytic["elbo"]), abs=0.05 * abs(float(analytic["elbo"])))
    assert float(analytic["elbo"]) + 0.1 < bounds[2] < bounds[16] - 0.1
    with pytest.raises(CrlkitError, match="importance_samples"):
        IVAE(dataclasses.replace(cfg, importance_samples=0), (2,))


def test_ivae_log_variances_are_clamped_so_the_loss_stays_finite():
    """A runaway encoder / prior log-variance (here forced to +-1000) must not overflow exp()."""
    ds = make_dataset("synthetic", latents=3, segments=8, mixing="linear", seed=0)
    batch = make_sampler("segment", ds, batch_size=32, seed=1).next_batch()
    torch.manual_seed(0)
    m = IVAE(IVAEConfig(num_latents=3, aux_dim=8, hidden=16, **ELBO), (3,))
    with torch.no_grad():
        m.encoder[-1].bias[3:] = 1000.0  # the log-variance head
        m.prior[-1].bias[3:] = -1000.0
        _, logvar = m.encode_dist(batch["x"])
        assert float(logvar.max()) == LOGVAR_RANGE[1]
        assert float(m.prior_params(batch["segment"])[1].min()) == LOGVAR_RANGE[0]
    total, terms = m.loss(batch, 0)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    # the clamp passes gradients: a log-variance outside the range is still pulled back
    total.backward()
    assert float(m.encoder[-1].bias.grad[3:].abs().min()) > 0
    assert float(m.prior[-1].bias.grad[3:].abs().min()) > 0


def test_ivae_identifies_linear_mixing_beyond_rotation_baseline():
    """n = 3, 10 segments, linear mixing: MCC >= 0.9 and >= baseline + 0.1 in 800 steps."""
    ds = make_dataset("synthetic", latents=3, segments=10, mixing="linear", seed=3)
    smp = make_sampler("segment", ds, batch_size=64, seed=4)
    torch.manual_seed(0)
    m = IVAE(IVAEConfig(num_latents=3, aux_dim=10, hidden=64, **ELBO), (3,))
    _fit(m, smp, 800, 1e-2)
    z, x = ds.sample(3000, np.random.default_rng(5))
    mcc = mcc_score(z, _encode(m, x))
    base = random_rotation_baseline(z, "mcc", seed=0)
    assert mcc >= 0.9
    assert mcc >= base + 0.1


def test_iflow_is_a_bijection_with_the_exact_log_determinant():
    """decode(encode(x)) = x, and the log-likelihood's log-determinant equals autograd's
    log |det d encode / dx| (float64, non-trivial coupling weights)."""
    torch.manual_seed(0)
    m = IFlow(IFlowConfig(num_latents=4, aux_dim=3, blocks=3, hidden=16), (4,)).double()
    for name, p in m.named_parameters():
        if "net" in name and name.endswith("weight"):
            torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(50, 4, dtype=torch.float64) @ torch.tensor([[2.0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 3, 1],
                                                                [0, 0, 0, 0.5]], dtype=torch.float64) + 1
    m.whitening.fit(x)
    m.eval()
    assert torch.allclose(m.decode(m.encode(x)), x, atol=1e-10)
    u = torch.tensor([0, 1])
    jac = torch.stack([torch.autograd.functional.jacobian(lambda a: m.encode(a[None])[0], xi) for xi in x[:2]])
    mean, logvar = m.prior_params(u)
    z = m.encode(x[:2])
    log_prior = -0.5 * ((z - mean) ** 2 / logvar.exp() + logvar + np.log(2 * np.pi)).sum(-1)
    expected = log_prior + torch.linalg.slogdet(jac)[1]
    assert torch.allclose(m.log_likelihood(x[:2], u), expected, atol=1e-10)


def test_iflow_likelihood_is_normalised():
    """With an identity-like flow and the N(0, 1) starting prior, log p(x) is the standard normal
    density of the whitened x plus log |det W|: it integrates to one (checked on a grid, n = 2)."""
    m = IFlow(IFlowConfig(num_latents=2, aux_dim=1, blocks=1, hidden=8), (2,)).double()
    m.whitening.fit(torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]], dtype=torch.float64))
    g = torch.linspace(-12, 12, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g * 2, indexing="ij")
    x = torch.stack([xx.reshape(-1) + 1, yy.reshape(-1) + 2], -1)
    with torch.no_grad():
        density = m.log_likelihood(x, torch.zeros(len(x), dtype=torch.long)).exp()
    cell = float((g[1] - g[0]) * (2 * (g[1] - g[0])))
    assert abs(float(density.sum()) * cell - 1.0) < 1e-3


def test_iflow_identifies_leaky_relu_mixing_beyond_rotation_baseline():
    """n = 3, 12 segments, 2 leaky-ReLU layers (slope 0.2): MCC >= 0.9 and >= baseline + 0.1."""
    ds = make_dataset("synthetic", latents=3, segments=12, mixing="mlp", mixing_layers=2, slope=0.2, seed=3)
    smp = make_sampler("segment", ds, batch_size=128, seed=4)
    torch.manual_seed(0)
    m = IFlow(IFlowConfig(num_latents=3, aux_dim=12, blocks=4, hidden=32), (3,))
    losses = _fit(m, smp, 1500, 3e-3)
    assert losses[-100:].mean() < losses[:100].mean()
    z, x = ds.sample(3000, np.random.default_rng(5))
    mcc = mcc_score(z, _encode(m, x))
    base = random_rotation_baseline(z, "mcc", seed=0)
    assert mcc >= 0.9
    assert mcc >= base + 0.1


def test_contrastive_recovers_linear_mixing():
    ds = make_dataset("synthetic", latents=3, noise="uniform", mixing="linear", seed=0)
    smp = make_sampler("positive_pair", ds, batch_size=128, seed=1, conditional="laplace", sigma=0.1)
    torch.manual_seed(0)
    m = Contrastive(ContrastiveConfig(num_latents=3, hidden=64, depth=2), (3,))
    losses = _fit(m, smp, 500, 3e-3)
    assert losses[-50:].mean() < losses[:5].mean() - 1.0
    z, x = ds.sample(2000, np.random.default_rng(2))
    zh = _encode(m, x)
    assert zh.shape == (2000, 3)
    assert linear_r2_score(z, zh) >= 0.9
    assert mcc_score(z, zh) >= 0.85


def test_content_style_separates_content_from_style():
    ds = make_dataset("synthetic", latents=4, mixing="linear", seed=0)
    smp = make_sampler("views", ds, batch_size=128, seed=1, content=2, p_change=1.0)
    torch.manual_seed(0)
    m = ContentStyle(ContentStyleConfig(num_latents=2, hidden=64, depth=2), (4,))
    losses = _fit(m, smp, 400, 3e-3)
    assert losses[-40:].mean() < losses[:5].mean()
    z, x = ds.sample(2000, np.random.default_rng(2))
    zh = _encode(m, x)
    assert zh.shape == (2000, 2)
    r2_content = block_r2_score(z, zh, [0, 1], model="linear")
    r2_style = block_r2_score(z, zh, [2, 3], model="linear")
    assert r2_content >= 0.8
    assert r2_style <= 0.3
    assert r2_content > r2_style + 0.5


def test_interventional_recovers_a_chain_graph():
    """4-node chain, linear SCM, linear mixing, perfect interventions: SHD <= 1."""
    from crlkit.metrics import mcc_matching, shd

    ds = make_dataset("synthetic", latents=4, graph="chain", mechanism="linear", standardize=True,
                      mixing="linear", seed=0)
    smp = make_sampler("intervention_pair", ds, batch_size=256, seed=1, intervention="perfect")
    torch.manual_seed(0)
    m = Interventional(InterventionalConfig(num_latents=4, hidden=64, depth=2), (4,))
    losses = _fit(m, smp, 400, 3e-3)
    assert losses[-50:].mean() < losses[:5].mean()
    b = make_sampler("intervention_pair", ds, batch_size=3000, seed=7, intervention="perfect").next_batch()
    z = b["factors"].numpy()
    for graph_search in ("order", "pc"):
        m.config = dataclasses.replace(m.config, graph_search=graph_search)
        res = m.infer_graph(b["x"].numpy(), b["x2"].numpy())
        perm, _ = mcc_matching(z, res["z"])
        learned = res["graph"][np.ix_(perm, perm)]
        assert res["graph"].shape == (4, 4)
        assert shd(ds.graph != 0, learned) <= 1, graph_search
        assert mcc_score(z, res["z"]) >= 0.9
        assert res["unmixing"].shape == (4, 4)
        assert res["target_balance"] >= 0.993  # each node's interventions have their own coordinate
    with pytest.raises(CrlkitError, match="known_targets=True"):
        m.infer_graph(b["x"].numpy(), b["x2"].numpy(), b["target"].numpy())
    # the partial-correlation floor: no pair of variables clears 0.99, so no edge is kept
    m.config = dataclasses.replace(m.config, graph_search="order", min_partial_corr=0.99)
    res = m.infer_graph(b["x"].numpy(), b["x2"].numpy())
    assert res["graph"].sum() == 0 and res["skeleton"].sum() > 0 and np.abs(res["partial"]).max() < 0.99
    with pytest.raises(CrlkitError, match="min_partial_corr must be in"):
        Interventional(InterventionalConfig(num_latents=4, min_partial_corr=1.0), (4,))
    with pytest.raises(CrlkitError, match="parent_fit_bound must be >= 0"):
        Interventional(InterventionalConfig(num_latents=4, parent_fit_bound=-1.0), (4,))


def test_ordered_partial_correlation_on_a_linear_scm():
    """Along the true order, the partial correlation of i and j given j's other predecessors is
    ~0 for non-edges and large for edges, and equals the correlation of regression residuals."""
    rng = np.random.default_rng(0)
    n, size = 5, 20000
    a = np.zeros((n, n))
    a[0, 1], a[1, 2], a[0, 3], a[2, 4], a[3, 4] = 0.9, -0.8, 0.7, 0.6, -0.5
    e = rng.standard_normal((size, n))
    z = e @ np.linalg.inv(np.eye(n) - a)  # z = z a + e
    perm = np.array([3, 0, 4, 1, 2])  # columns shuffled: the order is given in the new labels
    zp, ap = z[:, perm], a[np.ix_(perm, perm)]
    inv = np.argsort(perm)
    order = inv[[0, 1, 2, 3, 4]]  # the true order 0, 1, 2, 3, 4 in the shuffled labels
    rho = ordered_partial_correlation(zp, order)
    before = np.zeros((n, n), dtype=bool)
    for p, j in enumerate(order):
        before[order[:p], j] = True
    assert np.all(rho[~before] == 0)
    assert np.abs(rho[before & (ap == 0)]).max() < 0.03
    assert np.abs(rho[ap != 0]).min() > 0.3
    # one entry by residuals: 2 -> 4 given 4's other predecessors 0, 1, 3
    i, j, rest = inv[2], inv[4], inv[[0, 1, 3]]
    x = np.c_[zp[:, rest], np.ones(size)]
    ri = zp[:, i] - x @ np.linalg.lstsq(x, zp[:, i], rcond=None)[0]
    rj = zp[:, j] - x @ np.linalg.lstsq(x, zp[:, j], rcond=None)[0]
    assert abs(rho[i, j] - np.corrcoef(ri, rj)[0, 1]) < 1e-8
    with pytest.raises(CrlkitError, match="order must be a permutation"):
        ordered_partial_correlation(zp, [0, 1, 2, 3, 3])


def test_interventional_with_known_targets_ties_code_k_to_node_k():
    """CauCA setting: the pairs' targets are given, so no permutation is left: the learned
    variables match the true nodes in their own order and the graph is read off without
    matching."""
    from crlkit.metrics import mcc_matching, shd

    ds = make_dataset("synthetic", latents=4, graph="chain", mechanism="linear", standardize=True,
                      mixing="linear", seed=0)
    smp = make_sampler("intervention_pair", ds, batch_size=256, seed=1, intervention="perfect")
    torch.manual_seed(0)
    cfg = InterventionalConfig(num_latents=4, hidden=64, depth=2, known_targets=True)
    m = Interventional(cfg, (4,))
    _fit(m, smp, 400, 3e-3)
    b = make_sampler("intervention_pair", ds, batch_size=3000, seed=7, intervention="perfect").next_batch()
    z, t = b["factors"].numpy(), b["target"].numpy()
    code = _encode(m, b["x"].numpy())
    perm, _ = mcc_matching(z, code)
    assert list(perm) == [0, 1, 2, 3]  # code k is node k: no permutation left
    res = m.infer_graph(b["x"].numpy(), b["x2"].numpy(), t)
    np.testing.assert_array_equal(res["targets"], t)
    assert shd(ds.graph != 0, res["graph"]) <= 1  # in the nodes' own order
    assert mcc_score(z, res["z"]) >= 0.9
    with pytest.raises(CrlkitError, match="target"):
        m.loss({"x": b["x"][:8], "x2": b["x2"][:8]}, 0)
    with pytest.raises(CrlkitError, match="targets must be"):
        m.causal_variables(b["x"].numpy(), b["x2"].numpy(), t[:10])


def test_known_change_info_nce_leaves_the_target_out():
    """Pairs that differ only in their known target: the loss is lower than with the targets
    shuffled, and it equals a loop over anchors of the L1 distance without the anchor's target."""
    gen = torch.Generator().manual_seed(0)
    h1 = torch.randn(64, 5, generator=gen)
    t = torch.randint(0, 5, (64,), generator=gen)
    h2 = h1.clone()
    h2[torch.arange(64), t] = torch.randn(64, generator=gen) * 3
    right = known_change_info_nce(h1, h2, t, tau=0.5)
    assert float(right) < float(known_change_info_nce(h1, h2, (t + 1) % 5, tau=0.5)) - 0.5

    def direction(anchors, candidates):
        total = 0.0
        for i in range(64):
            keep = [j for j in range(5) if j != int(t[i])]
            logits = torch.stack([-(anchors[i, keep] - candidates[j, keep]).abs().sum() / 0.5 for j in range(64)])
            total += float(torch.logsumexp(logits, 0) - logits[i])
        return total / 64

    assert abs(float(right) - 0.5 * (direction(h1, h2) + direction(h2, h1))) < 1e-5


def _one_change_pairs(n=4, size=4000, seed=0):
    """Independent noises and pairs that redraw one random coordinate each."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((size, n))
    eps2 = eps.copy()
    k = rng.integers(0, n, size=size)
    eps2[np.arange(size), k] = rng.standard_normal(size)
    return eps, eps2


def test_target_balance_counts_the_inferred_targets():
    """On a perfect noise encoding the inferred targets are the true ones, and the balance is
    their perplexity over n; pairs that all change one coordinate give 1/n."""
    eps, eps2 = _one_change_pairs(n=4, size=4000)
    m = Interventional(InterventionalConfig(num_latents=4, whiten=False, unmix=False), (4,))
    m.encoder = torch.nn.Linear(4, 4, bias=False)
    torch.nn.init.eye_(m.encoder.weight)  # codes = noises
    k = np.abs(eps2 - eps).argmax(1)
    cv = m.causal_variables(eps, eps2)
    np.testing.assert_array_equal(cv["targets"], k)
    p = np.bincount(k) / len(k)
    assert cv["target_balance"] == pytest.approx(np.exp(-(p * np.log(p)).sum()) / 4)
    assert 0.999 < cv["target_balance"] <= 1.0
    assert cv["target_balance"] > 0.993  # clears the runner's bar
    one = eps.copy()
    one[:, 0] = np.random.default_rng(1).standard_normal(len(eps))
    assert m.causal_variables(eps, one)["target_balance"] == pytest.approx(0.25)


def test_unmix_from_changes_undoes_a_linear_mix():
    """A code that rotates two noises by 40 degrees (and scales the rest) is unmixed: the map
    from the noises to the unmixed code is a scaled permutation, and its pairs change in one
    coordinate again."""
    eps, eps2 = _one_change_pairs()
    c, s_ = np.cos(np.radians(40)), np.sin(np.radians(40))
    mix = np.diag([2.0, 1.0, 1.0, 0.5])
    mix[1:3, 1:3] = [[c, -s_], [s_, c]]
    e, e2 = eps @ mix.T + 3.0, eps2 @ mix.T + 3.0
    t = unmix_from_changes(e, e2)
    total = mix.T @ t  # noises -> unmixed code
    a = np.abs(total) / np.abs(total).max(0, keepdims=True)
    assert np.sort(a, 0)[-2].max() < 0.05  # one dominant noise per code coordinate
    assert sorted(np.abs(total).argmax(0)) == [0, 1, 2, 3]
    d = np.abs((e2 - e) @ t)
    assert np.mean(np.sort(d, 1)[:, -2] / d.max(1)) < 0.01
    np.testing.assert_allclose((e @ t).std(0), 1.0, atol=1e-6)


def test_unmix_from_changes_with_known_targets():
    """Given the targets, a 40-degree rotation of two noises is undone and code k is noise k."""
    rng = np.random.default_rng(3)
    eps = rng.standard_normal((4000, 4))
    k = rng.integers(0, 4, size=4000)
    eps2 = eps.copy()
    eps2[np.arange(4000), k] = rng.standard_normal(4000)
    c, s_ = np.cos(np.radians(40)), np.sin(np.radians(40))
    mix = np.eye(4)
    mix[1:3, 1:3] = [[c, -s_], [s_, c]]
    t = unmix_from_changes(eps @ mix.T, eps2 @ mix.T, targets=k)
    total = mix.T @ t
    assert list(np.abs(total).argmax(0)) == [0, 1, 2, 3]
    a = np.abs(total) / np.abs(total).max(0, keepdims=True)
    assert np.sort(a, 0)[-2].max() < 0.05


def test_unmix_from_changes_leaves_one_sparse_codes_alone():
    eps, eps2 = _one_change_pairs(seed=1)
    t = unmix_from_changes(eps * [1, 2, 3, 4], eps2 * [1, 2, 3, 4])
    np.testing.assert_allclose(t, np.diag(1 / (eps * [1, 2, 3, 4]).std(0)), rtol=1e-6, atol=1e-9)
    with pytest.raises(CrlkitError, match="same shape"):
        unmix_from_changes(eps, eps2[:, :3])


def _steep_outside(y, edge=3.5, factor=2.0):
    """A code that is right within +-edge and ``factor`` times too steep outside (an extrapolated
    stage-1 coordinate)."""
    return np.where(np.abs(y) <= edge, y, np.sign(y) * (edge + factor * (np.abs(y) - edge)))


def test_fit_parents_contribution_ignores_an_extrapolated_code():
    """A nearly deterministic node: its parents' contribution (10 e0 + 3 e1) is ~10x its noise, so
    the intervened code y = noise - contribution spans +-30. Where the code is 2x too steep outside
    +-3.5, least squares on all pairs is ~1.8x off; the slab fit is within a few %. (The slab keeps
    ~15% of the rows and little spread along the contribution itself, so its scale is the least
    precise part: ~2.5% standard error here.)"""
    rng = np.random.default_rng(0)
    e = rng.standard_normal((20000, 4))
    truth = np.array([-10.0, -3.0, 0.0, 0.0])
    y = _steep_outside(rng.standard_normal(20000) + e @ truth)
    plain = fit_parents_contribution(e, y, bound=0)
    assert abs(plain[0] / truth[0]) > 1.6
    np.testing.assert_allclose(fit_parents_contribution(e, y), truth, rtol=0.06, atol=0.1)
    clean = rng.standard_normal(20000) + e @ truth  # no distortion: both fits are unbiased
    np.testing.assert_allclose(fit_parents_contribution(e, clean), truth, rtol=0.06, atol=0.1)
    np.testing.assert_allclose(fit_parents_contribution(e, clean, bound=0), truth, atol=0.05)
    weak = rng.standard_normal(20000) + 0.5 * e[:, 0]  # a small contribution keeps (almost) every row
    np.testing.assert_allclose(fit_parents_contribution(e, weak), fit_parents_contribution(e, weak, bound=0),
                               atol=0.02)


def test_ordered_dependence_recovers_the_graph_where_pc_loses_an_edge():
    """Linear SCM with a path cancellation: 0 -> 1 -> 2 and 0 -> 2 with effects that cancel, so
    z0 and z2 are marginally independent. PC drops the edge 0 - 2 (unfaithful); the test against
    the predecessors in the causal order keeps it (minimality is enough)."""
    from causallearn.search.ConstraintBased.PC import pc

    from crlkit.graph import ordered_dependence as _ordered_dependence

    rng = np.random.default_rng(0)
    e = rng.standard_normal((5000, 3))
    z0 = e[:, 0]
    z1 = z0 + e[:, 1]
    z2 = 1.0 * z1 - 1.0 * z0 + e[:, 2]  # total effect of z0 on z2: 1 - 1 = 0
    z = np.stack([z0, z1, z2], 1)
    z = (z - z.mean(0)) / z.std(0)
    dep = _ordered_dependence(z, [0, 1, 2], alpha=0.01, indep_test="fisherz")
    np.testing.assert_array_equal(dep, [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    g = np.asarray(pc(z, alpha=0.01, indep_test="fisherz", stable=True, show_progress=False).G.graph)
    assert g[0, 2] == 0 and g[2, 0] == 0  # PC: no edge between 0 and 2


def test_config_errors_name_the_field():
    with pytest.raises(CrlkitError, match="normalization"):
        Contrastive(ContrastiveConfig(normalization="cube"), (10,))
    with pytest.raises(CrlkitError, match="graph_search.*order"):
        Interventional(InterventionalConfig(graph_search="ges"), (10,))
    with pytest.raises(CrlkitError, match="vector observations"):
        IVAE(IVAEConfig(), (1, 16, 16))
    with pytest.raises(CrlkitError, match="posterior.*diagonal.*full"):
        IVAE(IVAEConfig(posterior="lowrank"), (5,))
    with pytest.raises(CrlkitError, match="aux_dim"):
        IVAE(IVAEConfig(num_latents=2, aux_dim=4), (2,)).prior_params(torch.ones(3, 5))
    with pytest.raises(CrlkitError, match="num_latents must equal the observation size 6"):
        IFlow(IFlowConfig(num_latents=5), (6,))
    with pytest.raises(CrlkitError, match="scale_bound"):
        IFlow(IFlowConfig(num_latents=2, scale_bound=0.0), (2,))
    with pytest.raises(CrlkitError, match="x2"):
        Contrastive(ContrastiveConfig(num_latents=2), (2,)).loss({"x": torch.zeros(4, 2)}, 0)


def test_interventional_refinement_uses_each_pairs_largest_change_as_its_target():
    """From ``refine_from`` on, the loss is the known-target InfoNCE with each pair's own largest
    batch-standardised code change as its target (before it, the soft one-change loss); and a
    trained encoder whose code was rotated in two coordinates is pulled back to a one-sparse
    noise encoding by the refinement (the stage-2 unmixing is off, so it cannot be that). On this
    easy linear case plain stage-1 training also undoes the rotation; the refinement's gain on the
    nonlinear mixes of the benchmark is measured in bench/RESULTS_identify.md, not here."""
    import math

    from torch import nn

    ds = make_dataset("synthetic", latents=4, graph="chain", mechanism="linear", standardize=True,
                      mixing="linear", seed=0)
    smp = make_sampler("intervention_pair", ds, batch_size=256, seed=1, intervention="perfect")
    torch.manual_seed(0)
    m = Interventional(InterventionalConfig(num_latents=4, hidden=64, depth=2, unmix=False, refine_from=400,
                                            lr_schedule="constant"), (4,))
    _fit(m, smp, 400, 3e-3)  # steps 0-399: stage 1 only
    batch = smp.next_batch()
    with torch.no_grad():
        h1, h2 = m.encode(batch["x"]), m.encode(batch["x2"])
        target = ((h1 - h2).abs() / h1.std(0)).argmax(1)
        assert float(m.loss(batch, 400)[0]) == pytest.approx(float(known_change_info_nce(h1, h2, target)), rel=1e-5)
        assert float(m.loss(batch, 399)[0]) == pytest.approx(float(m.loss(batch, 0)[0]), rel=1e-6)
        assert float(m.loss(batch, 399)[0]) != pytest.approx(float(m.loss(batch, 400)[0]), rel=1e-3)

    b = make_sampler("intervention_pair", ds, batch_size=3000, seed=7, intervention="perfect").next_batch()
    z = b["factors"].numpy()
    rot = nn.Linear(4, 4, bias=False)
    c, s = math.cos(math.radians(40)), math.sin(math.radians(40))
    rot.weight.data = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    m.encoder = nn.Sequential(m.encoder, rot)  # two noises mixed, as stage 1 can stop
    assert m.causal_variables(b["x"].numpy(), b["x2"].numpy())["change_share"] < 0.8
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for step in range(400, 700):
        m.training_step(smp.next_batch(), step, {"main": opt})
    cv = m.causal_variables(b["x"].numpy(), b["x2"].numpy())
    assert cv["change_share"] >= 0.9
    assert mcc_score(z, cv["z"]) >= 0.99
    with pytest.raises(CrlkitError, match="refine_from"):
        Interventional(InterventionalConfig(num_latents=4, refine_from=-1), (4,))


def _lr_trace(model, total, steps, *, start=0, lr=1.0):
    """The learning rate of each update ``start..steps-1`` under the model's schedule callback,
    hooks called as the trainer does (a resumed run: ``start`` > 0, the optimizer's state kept)."""
    from types import SimpleNamespace

    from crlkit.train.schedules import LRSchedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    (sched,) = [cb for cb in model.callbacks(None) if isinstance(cb, LRSchedule)]
    trace = []
    for begin, end in ((0, start), (start, steps)) if start else ((0, steps),):
        trainer = SimpleNamespace(model=model, optimizers={"main": opt}, step=begin, total_steps=total)
        sched.on_fit_start(trainer)  # a fresh fit, or the resume of one
        for step in range(begin, end):
            trace.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.on_step_end(trainer, step, {})
    return np.array(trace)


def test_interventional_refinement_restarts_the_cosine_schedule():
    """Stage 1 decays 1 -> 0 over [0, refine_from); the refinement decays refine_lr -> 0 after;
    the rates are set on the optimizer by the schedule callback, and a resumed run continues them."""
    m = Interventional(InterventionalConfig(num_latents=3, refine_from=600, refine_lr=0.25), (3,))
    lr = _lr_trace(m, 800, 800)
    assert lr[0] == pytest.approx(1.0) and lr[300] == pytest.approx(0.5)
    assert lr[599] == pytest.approx(0.0, abs=1e-4)
    assert lr[600] == pytest.approx(0.25) and lr[700] == pytest.approx(0.125)
    np.testing.assert_array_equal(_lr_trace(m, 800, 800, start=437), lr)  # resume at step 437: same rates
    plain = Interventional(InterventionalConfig(num_latents=3), (3,))
    assert _lr_trace(plain, 800, 401)[400] == pytest.approx(0.5)  # no refinement: one cosine
    known = Interventional(InterventionalConfig(num_latents=3, refine_from=600, known_targets=True), (3,))
    np.testing.assert_allclose(_lr_trace(known, 800, 800), _lr_trace(plain, 800, 800))  # known targets: one
    constant = Interventional(InterventionalConfig(num_latents=3, lr_schedule="constant"), (3,))
    assert not any(type(cb).__name__ == "LRSchedule" for cb in constant.callbacks(None))


def test_interventional_reconstruction_term_penalises_a_code_that_loses_a_noise():
    """``recon_weight`` > 0 adds ``w * mean_rows ||decoder(h) - whitened x||^2`` over both halves
    of the pairs to the stage-1 loss. Trained, the code reconstructs x almost exactly; a code
    that drops one noise (a coordinate copied over another, as in a folded stage 1) cannot,
    however well its decoder is fitted, so the term pushes stage 1 away from such codes."""
    from torch import nn

    ds = make_dataset("synthetic", latents=4, graph="chain", mechanism="linear", standardize=True,
                      mixing="linear", seed=0)
    smp = make_sampler("intervention_pair", ds, batch_size=256, seed=1, intervention="perfect")
    torch.manual_seed(0)
    m = Interventional(InterventionalConfig(num_latents=4, hidden=64, depth=2, recon_weight=0.5, lr_schedule="constant"),
                       (4,))
    batch = smp.next_batch()
    loss, terms = m.loss(batch, 0)
    with torch.no_grad():
        xw = m.whitening(torch.cat([batch["x"], batch["x2"]]))
        h = m.encode(torch.cat([batch["x"], batch["x2"]]))
        recon = (m.decoder(h) - xw).pow(2).sum(-1).mean()
    assert float(terms["recon"]) == pytest.approx(float(recon), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(terms["info_nce"]) + 0.5 * float(recon), rel=1e-5)
    plain = Interventional(InterventionalConfig(num_latents=4, hidden=64, depth=2), (4,))
    assert plain.decoder is None and "recon" not in plain.loss(batch, 0)[1]

    _fit(m, smp, 600, 3e-3)
    m.train()
    fitted = float(m.loss(smp.next_batch(), 600)[1]["recon"])
    assert fitted < 0.1  # whitened x has 4 unit-variance coordinates: predicting the mean scores 4

    class DropNoise(nn.Module):  # coordinate 1 := coordinate 0: the code loses one noise
        def forward(self, h):
            return torch.cat([h[:, :1], h[:, :1], h[:, 2:]], dim=1)

    m.encoder = nn.Sequential(m.encoder, DropNoise())
    m.decoder = refit = nn.Sequential(nn.Linear(4, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
                                         nn.Linear(64, 4))
    opt = torch.optim.Adam(refit.parameters(), lr=3e-3)  # the best decoder for the lossy code
    for step in range(600):
        opt.zero_grad()
        b = smp.next_batch()
        xw = m.whitening(torch.cat([b["x"], b["x2"]]))
        with torch.no_grad():
            h = m.encode(torch.cat([b["x"], b["x2"]]))
        (refit(h) - xw).pow(2).sum(-1).mean().backward()
        opt.step()
    lossy = float(m.loss(smp.next_batch(), 600)[1]["recon"])
    assert lossy > 5 * fitted and lossy > 0.2
    with pytest.raises(CrlkitError, match="recon_weight"):
        Interventional(InterventionalConfig(num_latents=4, recon_weight=-1.0), (4,))
