"""iVAE's presets, its bound in the data's units, and whitening fitted before step 1."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crlkit.data import make_dataset
from crlkit.errors import CrlkitError
from crlkit.models._common import FitWhitening, Whitening
from crlkit.models.ivae import IVAE, IVAEConfig
from crlkit.train.schedules import LRSchedule


def test_default_is_the_benchmark_and_paper_is_a_preset():
    cfg = IVAEConfig()
    assert (cfg.preset, cfg.posterior, cfg.importance_samples, cfg.whiten, cfg.lr_schedule) == (
        "benchmark", "full", 8, True, "cosine")
    assert IVAE.train_defaults(cfg) == {"lr": 1e-2, "batch_size": 256}
    paper = IVAEConfig(preset="paper")
    assert (paper.posterior, paper.importance_samples, paper.whiten, paper.lr_schedule) == (
        "diagonal", 1, False, "constant")
    assert IVAE.train_defaults(paper) == {"lr": 1e-3, "batch_size": 64}
    # a field set explicitly wins over the preset, and a saved config reloads to itself
    mixed = IVAEConfig(preset="paper", importance_samples=4, whiten=True)
    assert (mixed.posterior, mixed.importance_samples, mixed.whiten) == ("diagonal", 4, True)
    assert IVAEConfig(**dataclasses.asdict(mixed)) == mixed
    assert IVAEConfig(**dataclasses.asdict(IVAEConfig(posterior="diagonal"))).posterior == "diagonal"
    with pytest.raises(CrlkitError, match="preset 'orig'.*benchmark.*paper"):
        IVAEConfig(preset="orig")
    # the callbacks follow the preset: whitening and the cosine schedule, or neither
    kinds = [type(cb) for cb in IVAE(IVAEConfig(num_latents=2, aux_dim=3), (2,)).callbacks(None)]
    assert kinds == [FitWhitening, LRSchedule]
    assert IVAE(IVAEConfig(preset="paper", num_latents=2, aux_dim=3), (2,)).callbacks(None) == []


@pytest.mark.parametrize("k", [1, 8])
def test_bound_in_data_units_differs_from_the_whitened_one_by_log_det_w(k):
    """The same model and noise: the bound it reports for x with whitening W equals the bound of
    the model without whitening fed W (x - m), plus exactly log |det W| (the change of variables)."""
    torch.manual_seed(0)
    mix = torch.tensor([[3.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.2, 2.0, 4.0]])
    x, u = torch.randn(512, 3) @ mix.T + 2.0, torch.randint(0, 4, (512,))
    cfg = IVAEConfig(num_latents=3, aux_dim=4, hidden=16, importance_samples=k, whiten=True)
    whitened = IVAE(cfg, (3,))
    whitened.whitening.fit(x)
    raw = IVAE(dataclasses.replace(cfg, whiten=False), (3,))
    raw.load_state_dict(whitened.state_dict())  # same weights; whitening off
    log_det = float(whitened.whitening.log_abs_det())
    assert log_det == pytest.approx(-float(torch.linalg.slogdet(mix)[1]), abs=0.1)  # W ~ (mix mix^T)^{-1/2}
    keys = ("elbo", "iw_bound") if k > 1 else ("elbo",)
    with torch.no_grad():
        whitened.noise = torch.Generator().manual_seed(1)
        total_w, terms_w = whitened.loss({"x": x, "u": u}, 0)
        raw.noise = torch.Generator().manual_seed(1)
        total_r, terms_r = raw.loss({"x": whitened.whitening(x), "u": u}, 0)
    assert float(total_w) == pytest.approx(float(total_r), rel=1e-6)  # the objective itself is unchanged
    for key in keys:
        assert float(terms_w[key]) - float(terms_r[key]) == pytest.approx(log_det, abs=1e-4)
    # and the bound is a bound on log p(x|u) in nats: with the constants, a Gaussian decoder's
    # reconstruction term alone is -D/2 log(2 pi decoder_var) - recon
    assert float(terms_r["elbo"]) == pytest.approx(
        -float(terms_r["recon"]) - float(terms_r["kl"]) - 1.5 * np.log(2 * np.pi * cfg.decoder_var), rel=1e-5)


def _trainer(model, ds, step=0):
    return SimpleNamespace(model=model, dataset=ds, optimizers={}, step=step, total_steps=10)


def test_whitening_callback_fits_a_fixed_sample_before_step_one_and_resumes_exactly():
    ds = make_dataset("synthetic", latents=3, segments=5, mixing="mlp", mixing_layers=2, seed=0)
    a = IVAE(IVAEConfig(num_latents=3, aux_dim=5, hidden=8), (3,))
    b = IVAE(IVAEConfig(num_latents=3, aux_dim=5, hidden=8), (3,))
    (fit,) = [cb for cb in a.callbacks(None) if isinstance(cb, FitWhitening)]
    assert not bool(a.whitening.fitted)
    fit.on_fit_start(_trainer(a, ds))
    FitWhitening().on_fit_start(_trainer(b, ds))
    assert bool(a.whitening.fitted)
    # a fixed sample: every fresh run of the dataset gets the same W
    assert torch.equal(a.whitening.matrix, b.whitening.matrix) and torch.equal(a.whitening.mean, b.whitening.mean)
    _, x = ds.sample(20000, np.random.default_rng(123))  # fresh data: whitened to about unit covariance
    y = a.whitening(torch.as_tensor(x)).double().numpy()
    np.testing.assert_allclose(np.cov(y.T), np.eye(3), atol=0.05)
    np.testing.assert_allclose(y.mean(0), 0, atol=0.05)
    # the buffers live in the state_dict; a resumed run keeps them and does not refit
    c = IVAE(IVAEConfig(num_latents=3, aux_dim=5, hidden=8), (3,))
    c.load_state_dict(a.state_dict())
    other = make_dataset("synthetic", latents=3, segments=5, mixing="linear", seed=9)
    FitWhitening().on_fit_start(_trainer(c, other, step=5))
    assert torch.equal(c.whitening.matrix, a.whitening.matrix)
    # without whitening there is nothing to fit, and the map stays the identity
    off = Whitening(3, enabled=False)
    off.fit(torch.as_tensor(x))
    assert torch.equal(off(torch.ones(2, 3)), torch.ones(2, 3)) and float(off.log_abs_det()) == 0.0


@pytest.mark.parametrize("method", ["ivae", "interventional"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch, method):
    """Through the trainer: a run stopped after its checkpoint at step 3 and resumed ends with the
    weights of an uninterrupted run: whitening fitted before step 1 and the learning-rate schedule
    (two cosines with the interventional refinement) continue exactly."""
    from crlkit.models import get_model_class
    from crlkit.train import load_model, train
    from crlkit.train.callbacks import Callback

    class Stop(Callback):
        def on_step_start(self, trainer, step):
            if step == 4:
                raise KeyboardInterrupt  # as a killed process: the checkpoint of step 3 is on disk

    if method == "ivae":
        data = dict(latents=2, segments=3, mixing="mlp", mixing_layers=2, seed=0)
        over = dict(num_latents=2, aux_dim=3, hidden=8, importance_samples=2, batch_size=16, lr=1e-2,
                    checkpoint_every=3, log_every=1)
    else:
        data = dict(latents=3, graph="chain", mechanism="linear", standardize=True, mixing="linear", seed=0)
        over = dict(num_latents=3, hidden=8, depth=1, refine_from=4, recon_weight=1.0, batch_size=16, lr=1e-2,
                    checkpoint_every=3, log_every=1)
    kw = dict(dataset="synthetic", data_options=data, seed=3, overrides=over, progress=False)
    train(method, steps=6, out_dir=tmp_path / "whole", **kw)
    cls = get_model_class(method)
    own = cls.callbacks
    monkeypatch.setattr(cls, "callbacks", lambda self, cfg: own(self, cfg) + [Stop()])
    with pytest.raises(KeyboardInterrupt):
        train(method, steps=6, out_dir=tmp_path / "split", **kw)
    monkeypatch.setattr(cls, "callbacks", own)
    train(method, steps=6, out_dir=tmp_path / "split", resume=True, **kw)
    whole, split = load_model(tmp_path / "whole"), load_model(tmp_path / "split")
    assert bool(whole.whitening.fitted)
    for (name, a), (_, b) in zip(whole.state_dict().items(), split.state_dict().items()):
        assert torch.equal(a, b), name
