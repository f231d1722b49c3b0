"""The evaluation suite: score a model (or representation function) on a dataset with many
metrics from one shared pass of encodings.

>>> import crlkit, crlkit.metrics as M
>>> model = crlkit.load("runs/beta_vae")                       # doctest: +SKIP
>>> M.evaluate(model, dataset, metrics=["mig", "dci"], seed=0)  # doctest: +SKIP
{'mig': 0.21, 'dci_disentanglement': 0.35, 'dci_completeness': 0.31, 'dci_informativeness': 0.62}

``n_train`` + ``n_test`` factor vectors are drawn i.i.d. once and encoded once; every
array metric uses that split (train: MIG, IRS, unsupervised, MCC; train + test: DCI, SAP,
modularity/explicitness, R²). The dataset-driven BetaVAE / FactorVAE scores draw their own
structured batches (``n_train`` / ``n_test`` points, as in disentanglement_lib). On a finite,
deterministic grid (dSprites, 3D Shapes) a :class:`GridCache` encodes each grid point at most
once and indexes it afterwards, so all metrics together never encode more images than the grid
has.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.metrics._checks import choice, positive_int, rng_from
from crlkit.metrics._info import discretize
from crlkit.metrics.disentanglement import (dci_scores, irs_score, mig_score, modularity_explicitness_scores,
                                            sap_score)
from crlkit.metrics.identifiability import linear_r2_score, mcc_score, nonlinear_r2_score
from crlkit.metrics.sampled import (REPRESENTATION_MODES, as_representation_fn, beta_vae_score, encode_factors,
                                    encode_in_batches, factor_vae_score)
from crlkit.metrics.unsupervised import unsupervised_scores


# --------------------------------------------------------------------------------------
# Encoding each grid point once
# --------------------------------------------------------------------------------------
def _is_deterministic(dataset, rng: np.random.Generator) -> bool:
    """Whether rendering ignores the RNG (same factors -> same images), checked on 4 samples."""
    f = dataset.sample_factors(4, rng)
    a = np.asarray(dataset.observations_from_factors(f, np.random.default_rng(1)))
    b = np.asarray(dataset.observations_from_factors(f, np.random.default_rng(2)))
    return a.shape == b.shape and bool(np.array_equal(a, b))


class GridCache:
    """A representation that remembers the code of every grid point it has encoded.

    For a dataset with discrete factors whose rendering is deterministic and whose grid has
    at most ``max_grid`` points, ``encode_factors(factors, rng)`` renders and encodes only
    grid points not seen before. In ``mode="sampled"`` it caches the posterior mean and
    log-variance and draws ``mean + exp(logvar / 2) * eps`` afresh on every lookup, so the
    sampled representation keeps its noise. Otherwise it falls back to rendering every
    request. ``n_encoded`` counts the observations actually encoded.
    """

    def __init__(self, model_or_fn, dataset, *, mode: str = "mean", seed=0, batch_size: int = 256,
                 max_grid: int = 2_000_000, device=None):
        choice("mode", mode, REPRESENTATION_MODES)
        self.dataset = dataset
        self.mode = mode
        self.batch_size = positive_int("batch_size", batch_size)
        self._eps_rng = rng_from(seed)
        self.n_encoded = 0
        self._model = model_or_fn
        self._device = device
        sizes = getattr(dataset, "factor_sizes", None)
        self.enabled = (sizes is not None and math.prod(sizes) <= max_grid
                        and _is_deterministic(dataset, np.random.default_rng(0)))
        if mode == "sampled" and not hasattr(model_or_fn, "encode_dist"):
            raise CrlkitError("mode='sampled' needs a model with encode_dist(x) -> (mean, logvar)")
        self._mean_fn = as_representation_fn(model_or_fn, mode="mean", batch_size=batch_size, device=device)
        if self.enabled:
            self.sizes = tuple(int(s) for s in sizes)
            self._have = np.zeros(math.prod(self.sizes), dtype=bool)
            self._store: dict[str, np.ndarray] = {}

    # encoding of raw observations (used when there is no cache, and for new grid points)
    def _encode(self, x) -> dict[str, np.ndarray]:
        self.n_encoded += len(x)
        if self.mode == "mean":
            return {"mean": self._mean_fn(x)}
        mean, logvar = encode_in_batches(self._model, x, self._model.encode_dist, batch_size=self.batch_size,
                                         device=self._device)
        return {"mean": mean, "logvar": logvar}

    def _finish(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        if self.mode == "mean":
            return parts["mean"]
        eps = self._eps_rng.standard_normal(parts["mean"].shape)
        return parts["mean"] + np.exp(0.5 * parts["logvar"]) * eps

    def __call__(self, x) -> np.ndarray:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return self._finish(self._encode(np.asarray(x)))

    def encode_factors(self, factors: np.ndarray, rng: np.random.Generator, *, chunk: int = 2048) -> np.ndarray:
        factors = np.asarray(factors)
        if not self.enabled:
            parts = [self._encode(np.asarray(self.dataset.observations_from_factors(factors[i:i + chunk], rng)))
                     for i in range(0, len(factors), chunk)]
            return self._finish({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
        idx = np.ravel_multi_index(tuple(factors.T.astype(np.int64)), self.sizes)
        new = np.unique(idx[~self._have[idx]])
        for i in range(0, len(new), chunk):
            sel = new[i:i + chunk]
            f = np.stack(np.unravel_index(sel, self.sizes), axis=1)
            enc = self._encode(np.asarray(self.dataset.observations_from_factors(f, rng)))
            for k, v in enc.items():
                if k not in self._store:
                    self._store[k] = np.zeros((len(self._have), v.shape[1]), dtype=np.float64)
                self._store[k][sel] = v
            self._have[sel] = True
        return self._finish({k: v[idx] for k, v in self._store.items()})


# --------------------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------------------
class _Split:
    """The shared encodings: train/test codes, discrete factors and (maybe continuous) latents."""

    def __init__(self, codes, factors, n_train):
        self.codes_train, self.codes_test = codes[:n_train], codes[n_train:]
        self.latents_train, self.latents_test = factors[:n_train].astype(np.float64), factors[n_train:].astype(np.float64)
        discrete = np.all(np.equal(np.mod(factors, 1), 0))
        disc = factors.astype(np.int64) if discrete else discretize(factors, n_bins=20)
        self.factors_train, self.factors_test = disc[:n_train], disc[n_train:]


def _dci(s: _Split, o: dict) -> dict:
    r = dci_scores(s.codes_train, s.factors_train, s.codes_test, s.factors_test, max_bins=o["dci_max_bins"], seed=o["seed"],
                   n_jobs=o.get("n_jobs", 1), progress=o.get("progress", False))
    return {f"dci_{k}": v for k, v in r.items()}


# name -> (needs the shared split?, function(split or (rep, dataset, rng), options) -> dict)
_ARRAY_METRICS: dict[str, Callable[[_Split, dict], dict]] = {
    "mig": lambda s, o: {"mig": mig_score(s.codes_train, s.factors_train)},
    "dci": _dci,
    "sap": lambda s, o: {"sap": sap_score(s.codes_train, s.factors_train, s.codes_test, s.factors_test)},
    "modularity_explicitness": lambda s, o: modularity_explicitness_scores(
        s.codes_train, s.factors_train, s.codes_test, s.factors_test),
    "irs": lambda s, o: {"irs": irs_score(s.codes_train, s.factors_train)},
    "unsupervised": lambda s, o: unsupervised_scores(s.codes_train),
    "mcc": lambda s, o: {"mcc": mcc_score(s.latents_train, s.codes_train)},
    "linear_r2": lambda s, o: {"linear_r2": linear_r2_score(
        s.latents_train, s.codes_train, z_true_test=s.latents_test, z_hat_test=s.codes_test)},
    "nonlinear_r2": lambda s, o: {"nonlinear_r2": nonlinear_r2_score(
        s.latents_train, s.codes_train, z_true_test=s.latents_test, z_hat_test=s.codes_test, seed=o["seed"])},
}
_SAMPLED_METRICS = {
    "beta_vae": lambda rep, ds, rng, o: {"beta_vae": beta_vae_score(
        rep, ds, seed=rng, n_train=o["n_train"], n_eval=o["n_test"], progress=o["progress"])},
    "factor_vae": lambda rep, ds, rng, o: {"factor_vae": factor_vae_score(
        rep, ds, seed=rng, n_train=o["n_train"], n_eval=o["n_test"], progress=o["progress"])},
}
METRIC_NAMES = tuple(_ARRAY_METRICS) + tuple(_SAMPLED_METRICS)
DEFAULT_METRICS = ("mig", "dci", "sap", "modularity_explicitness", "irs", "unsupervised")


def evaluate(model_or_fn, dataset, metrics: Sequence[str] = DEFAULT_METRICS, *, seed=0, n_train: int = 10000,
             n_test: int = 5000, mode: str = "mean", batch_size: int = 256, dci_max_bins: int | None = None,
             timings: dict | None = None, device=None, n_jobs: int = 1, progress: bool = False) -> dict:
    """Score a representation on a dataset with a suite of metrics.

    Parameters
    ----------
    model_or_fn : model with ``encode(x)`` (e.g. from ``crlkit.load``) or callable x -> codes
    dataset : GroundTruthData
    metrics : names from ``METRIC_NAMES``: ``mig``, ``dci``, ``sap``,
        ``modularity_explicitness``, ``irs``, ``unsupervised``, ``mcc``, ``linear_r2``,
        ``nonlinear_r2``, ``beta_vae``, ``factor_vae``. Default: the disentanglement_lib array
        metrics (``DEFAULT_METRICS``).
    seed : int or numpy.random.Generator
        Seeds the factor samples, rendering noise, sampled codes and tie-breaking.
    n_train, n_test : int
        Shared i.i.d. samples (disentanglement_lib: 10,000 / 5,000); also the numbers of
        training / evaluation points of the BetaVAE and FactorVAE scores.
    mode : {"mean", "sampled"}
        Posterior mean (default) or a sample from the posterior as the representation.
    dci_max_bins : int or None
        Threshold bins of DCI's boosted trees (see :func:`crlkit.metrics.dci_scores`).
    timings : dict, optional
        Filled with seconds per metric (and ``"encode"``).
    n_jobs : int
        Threads for DCI's tree search (results do not depend on it).
    progress : bool
        Show the slow scores' progress (BetaVAE, FactorVAE, DCI) with the time left on stderr:
        a bar on a terminal, a line every 30 s otherwise.

    Returns
    -------
    dict of float, e.g. ``{"mig": ..., "dci_disentanglement": ..., "dci_completeness": ...,
    "dci_informativeness": ..., "sap": ..., "modularity": ..., "explicitness": ..., "irs": ...,
    "gaussian_total_correlation": ..., ...}``.
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(dict.fromkeys(metrics))
    if not metrics:
        raise CrlkitError(f"metrics is empty; valid choices: {', '.join(METRIC_NAMES)}")
    for m in metrics:
        choice("metric", m, METRIC_NAMES)
    n_train = positive_int("n_train", n_train, minimum=10)
    n_test = positive_int("n_test", n_test, minimum=2)
    choice("mode", mode, REPRESENTATION_MODES)
    rng = rng_from(seed)
    timings = {} if timings is None else timings
    options = {"n_train": n_train, "n_test": n_test, "dci_max_bins": dci_max_bins, "n_jobs": n_jobs,
               "seed": int(rng.integers(2**31)), "progress": bool(progress)}
    rep = GridCache(model_or_fn, dataset, mode=mode, seed=rng, batch_size=batch_size, device=device)
    results: dict[str, float] = {}
    array_metrics = [m for m in metrics if m in _ARRAY_METRICS]
    if array_metrics:
        t = time.perf_counter()
        factors = np.asarray(dataset.sample_factors(n_train + n_test, rng))
        codes = encode_factors(rep, dataset, factors, rng)
        split = _Split(codes, factors, n_train)
        timings["encode"] = time.perf_counter() - t
        for m in array_metrics:
            t = time.perf_counter()
            results.update(_ARRAY_METRICS[m](split, options))
            timings[m] = time.perf_counter() - t
    for m in metrics:
        if m in _SAMPLED_METRICS:
            t = time.perf_counter()
            results.update(_SAMPLED_METRICS[m](rep, dataset, rng, options))
            timings[m] = time.perf_counter() - t
    timings["n_encoded"] = rep.n_encoded
    return {k: float(v) for k, v in results.items()}
