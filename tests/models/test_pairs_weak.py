"""The pair sampler (weak supervision) and the Ada-GVAE / Ada-ML-VAE aggregation."""

import numpy as np
import pytest
import torch

from crlkit.data.samplers import make_sampler
from crlkit.errors import CrlkitError
from crlkit.models import make_model
from crlkit.models.weak import adaptive_shared_mask, pairwise_kl
from .toy import ToySquares


def _batch(seed=0, **opts):
    return make_sampler("pair", ToySquares(16), batch_size=256, seed=seed, **opts).next_batch()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pairs_differ_in_exactly_the_marked_factors(k):
    b = _batch(k=k, mix_single=False)
    f1, f2, changed = b["factors"].numpy(), b["factors2"].numpy(), b["changed"].numpy()
    assert np.array_equal(f1 != f2, changed)  # a re-drawn factor always takes a new value
    assert np.all(changed.sum(1) == k) and np.array_equal(b["k"].numpy(), changed.sum(1))
    # the observations are the renderings of the factors
    ds = ToySquares(16)
    assert np.array_equal(b["x"].numpy(), ds.observations_from_factors(f1))
    assert np.array_equal(b["x2"].numpy(), ds.observations_from_factors(f2))


def test_pair_k_mixture_and_random_k():
    n_changed = _batch(k=3)["k"].numpy()
    assert set(np.unique(n_changed)) == {1, 3}  # 50/50 one factor or k (Locatello et al. 2020)
    assert 0.35 < np.mean(n_changed == 1) < 0.65
    rnd = _batch(k=-1, mix_single=False)["k"].numpy()
    assert set(np.unique(rnd)) == {1, 2, 3}  # k ~ U{1, ..., d - 1} with d = 4 factors
    # which factors change is spread over all of them
    assert np.all(_batch(k=1)["changed"].numpy().sum(0) > 20)


def test_pair_sampler_is_reproducible_and_resumable():
    a = make_sampler("pair", ToySquares(16), batch_size=32, seed=7, k=2)
    b = make_sampler("pair", ToySquares(16), batch_size=32, seed=7, k=2)
    c = make_sampler("pair", ToySquares(16), batch_size=32, seed=8, k=2)
    ba, bb, bc = a.next_batch(), b.next_batch(), c.next_batch()
    assert all(torch.equal(ba[k], bb[k]) for k in ba)
    assert not torch.equal(ba["factors2"], bc["factors2"])
    state = a.state_dict()
    nxt = a.next_batch()
    b.load_state_dict(state)
    again = b.next_batch()
    assert all(torch.equal(nxt[k], again[k]) for k in nxt)


def test_pair_sampler_rejects_bad_k():
    with pytest.raises(CrlkitError, match="k must be"):
        make_sampler("pair", ToySquares(16), batch_size=4, seed=0, k=9)


def test_adaptive_threshold_and_aggregates():
    delta = torch.tensor([[0.0, 0.1, 5.0, 10.0], [1.0, 1.0, 1.0, 3.0]])
    assert adaptive_shared_mask(delta).tolist() == [[True, True, False, False], [True, True, True, False]]
    m1, m2 = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 2.0]])
    lv1, lv2 = torch.log(torch.tensor([[1.0, 1.0]])), torch.log(torch.tensor([[3.0, 1.0]]))
    # 2 KL(N(0,1) || N(1,3)) = 1/3 + 1/3 - 1 + log 3; identical posteriors -> 0
    assert torch.allclose(pairwise_kl(m1, lv1, m2, lv2), torch.tensor([[2 / 3 - 1 + float(np.log(3.0)), 0.0]]))
    g = make_model("ada_gvae", (8,))
    mean, logvar = g.aggregate(m1, lv1, m2, lv2)
    assert torch.allclose(mean, torch.tensor([[0.5, 2.0]])) and torch.allclose(logvar.exp(), torch.tensor([[2.0, 1.0]]))
    ml = make_model("ada_mlvae", (8,))
    mean, logvar = ml.aggregate(m1, lv1, m2, lv2)
    # product of experts: precision-weighted mean (0*3 + 1*1)/4; variance 2*1*3/4
    assert torch.allclose(mean, torch.tensor([[0.25, 2.0]])) and torch.allclose(logvar.exp(), torch.tensor([[1.5, 1.0]]))


def test_ada_gvae_loss_shares_estimated_dims():
    torch.manual_seed(0)
    m = make_model("ada_gvae", (1, 16, 16), num_latents=4)
    b = _batch(k=1)
    x = {"x": b["x"][:16], "x2": b["x2"][:16]}
    total, terms = m.loss(x, 0)
    assert torch.isfinite(total) and 1 <= float(terms["shared_dims"]) <= 3
    assert total.detach().item() == pytest.approx(float((terms["reconstruction"] + terms["regularizer"]).detach()), rel=1e-5)
    # identical images: every dimension's KL is 0, none is above halfway, all are "shared"
    same = {"x": b["x"][:4], "x2": b["x"][:4]}
    assert float(m.loss(same, 0)[1]["shared_dims"]) == 4.0
