"""Metrics that draw their own structured samples from a dataset: BetaVAE and FactorVAE
scores, plus the helpers that turn a model or function into a NumPy representation function.

A *representation function* maps a batch of observations ``(n, *observation_shape)`` to
codes ``(n, n_latents)``. :func:`as_representation_fn` accepts a model with ``encode(x)``
(a crlkit model from ``crlkit.load``: ``encode`` gives the posterior mean) or any callable
taking and returning NumPy arrays or torch tensors.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.metrics._checks import choice, positive_int, rng_from
from crlkit.metrics._progress import Progress

REPRESENTATION_MODES = ("mean", "sampled")


def _to_numpy(out: Any) -> np.ndarray:
    if isinstance(out, (tuple, list)):  # (mean, logvar) -> mean
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float64)


def _model_device(model, device=None):
    import torch

    if device is not None:
        return torch.device(device)
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    return params[0].device if params else torch.device("cpu")


def encode_in_batches(model, x, fn: Callable, *, batch_size: int = 256, device=None):
    """``fn(x_batch)`` over ``x`` in batches of ``batch_size``, under ``torch.no_grad()`` with
    ``model`` in eval mode on ``device`` (default: the model's); ``fn`` returns a tensor or a
    tuple of tensors, and so does this (as float64 NumPy arrays, concatenated)."""
    import torch

    dev = _model_device(model, device)
    if hasattr(model, "eval"):
        model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xt = torch.as_tensor(np.ascontiguousarray(x[i:i + batch_size]), dtype=torch.float32, device=dev)
            out = fn(xt)
            outs.append(tuple(_as_array(o) for o in out) if isinstance(out, (tuple, list)) else _as_array(out))
    if outs and isinstance(outs[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*outs))
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def _as_array(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def as_representation_fn(model_or_fn, *, mode: str = "mean", batch_size: int = 256, seed=0,
                         device=None) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy-in, NumPy-out representation function, evaluated in batches.

    Parameters
    ----------
    model_or_fn : torch.nn.Module with ``encode(x)``, or callable
        For a module, ``encode`` is called under ``torch.no_grad()`` in eval mode on the
        module's device. A callable receives a NumPy batch (and may return a tensor).
    mode : {"mean", "sampled"}
        ``"mean"`` (disentanglement_lib's default) uses the posterior mean; ``"sampled"``
        draws ``z = mean + exp(logvar / 2) * eps`` and needs ``encode_dist(x) -> (mean, logvar)``.
    batch_size : int
        Observations per forward pass.
    seed : int or numpy.random.Generator
        Seeds ``eps`` in ``"sampled"`` mode.
    """
    choice("mode", mode, REPRESENTATION_MODES)
    batch_size = positive_int("batch_size", batch_size)
    if hasattr(model_or_fn, "encode"):
        import torch

        model = model_or_fn
        if mode == "sampled" and not hasattr(model, "encode_dist"):
            raise CrlkitError("mode='sampled' needs a model with encode_dist(x) -> (mean, logvar); "
                              f"{type(model).__name__} has only encode")
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(rng_from(seed).integers(2**62)))

        def sample(xt):
            mean, logvar = model.encode_dist(xt)
            eps = torch.randn(mean.shape, generator=gen).to(mean.device)
            return mean + torch.exp(0.5 * logvar) * eps

        fn = (lambda xt: _first(model.encode(xt))) if mode == "mean" else sample

        def encode_all(x: np.ndarray) -> np.ndarray:
            return encode_in_batches(model, x, fn, batch_size=batch_size, device=device)
    elif callable(model_or_fn):
        if mode == "sampled":
            raise CrlkitError("mode='sampled' needs a model with encode_dist; a plain function gives its codes as they are")

        def encode_all(x: np.ndarray) -> np.ndarray:
            outs = [_to_numpy(model_or_fn(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
            return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0))
    else:
        raise CrlkitError(f"expected a model with encode(x) or a callable; got {type(model_or_fn).__name__}")

    def representation(x) -> np.ndarray:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        codes = encode_all(x)
        if codes.ndim != 2 or codes.shape[0] != len(x):
            raise CrlkitError(f"the representation must return (n, n_latents) codes for n observations; "
                              f"got shape {codes.shape} for {len(x)} observations")
        if not np.all(np.isfinite(codes)):
            raise CrlkitError("the representation returned NaN or inf codes")
        return codes

    representation.crlkit_wrapped = True
    return representation


def _first(out):
    """``encode`` may return ``(mean, logvar)``: the mean."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _wrap(fn) -> Callable[[np.ndarray], np.ndarray]:
    if getattr(fn, "crlkit_wrapped", False) or hasattr(fn, "encode_factors"):
        return fn
    return as_representation_fn(fn)


def encode_factors(representation_fn, dataset, factors: np.ndarray, rng: np.random.Generator, *,
                   chunk: int = 2048) -> np.ndarray:
    """Render ``factors`` with ``dataset`` and encode them, ``chunk`` observations at a time.

    A representation with its own ``encode_factors(factors, rng)`` (such as
    :class:`crlkit.metrics.evaluate.GridCache`, which encodes each grid point once) is used
    as is.
    """
    if hasattr(representation_fn, "encode_factors"):
        return representation_fn.encode_factors(factors, rng)
    rep = _wrap(representation_fn)
    outs = []
    for i in range(0, len(factors), chunk):
        x = dataset.observations_from_factors(factors[i:i + chunk], rng)
        outs.append(rep(x))
    return np.concatenate(outs, axis=0)


def _check_dataset(dataset) -> None:
    for attr in ("sample_factors", "observations_from_factors", "factor_names"):
        if not hasattr(dataset, attr):
            raise CrlkitError(f"dataset must implement the GroundTruthData protocol (missing {attr})")


# --------------------------------------------------------------------------------------
# BetaVAE score
# --------------------------------------------------------------------------------------
def _beta_vae_points(rep, dataset, n_points: int, batch_size: int, rng: np.random.Generator, bar: Progress,
                     points_per_chunk: int = 16):
    k = dataset.num_factors
    feats, labels = [], []
    for start in range(0, n_points, points_per_chunk):
        m = min(points_per_chunk, n_points - start)
        index = rng.integers(k, size=m)                                   # factor kept fixed per point
        f1 = dataset.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        f2 = dataset.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        f2[np.arange(m), :, index] = f1[np.arange(m), :, index]
        z = encode_factors(rep, dataset, np.concatenate([f1, f2]).reshape(2 * m * batch_size, k), rng)
        z = z.reshape(2, m, batch_size, -1)
        feats.append(np.abs(z[0] - z[1]).mean(axis=1))                  # (m, n_latents)
        labels.append(index)
        bar.update(m)
    return np.concatenate(feats), np.concatenate(labels)


def beta_vae_score(representation_fn, dataset, *, seed=0, batch_size: int = 64, n_train: int = 10000,
                   n_eval: int = 5000, progress: bool = False) -> float:
    r"""BetaVAE score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
    Constrained Variational Framework"), as in disentanglement_lib.

    Each point: choose a factor ``k`` uniformly; draw two batches of ``batch_size`` factor
    vectors that share the value of factor ``k`` pairwise; the feature is
    :math:`\frac1B \sum_b |r(x^{(1)}_b) - r(x^{(2)}_b)|`. A logistic regression
    (scikit-learn defaults) is trained on ``n_train`` points to predict ``k``; the score is its
    accuracy on ``n_eval`` fresh points.

    Costs ``2 * batch_size * (n_train + n_eval)`` encodings (1.92 M at the defaults);
    ``progress=True`` shows the points done and the time left on stderr.
    Returns a float in [0, 1]; chance is 1 / n_factors. Invariant to permuting latents.
    """
    from sklearn.linear_model import LogisticRegression

    _check_dataset(dataset)
    rng = rng_from(seed)
    batch_size = positive_int("batch_size", batch_size, minimum=1)
    n_train = positive_int("n_train", n_train, minimum=2)
    n_eval = positive_int("n_eval", n_eval, minimum=1)
    rep = _wrap(representation_fn)
    with Progress("beta_vae", n_train + n_eval, unit="points", enabled=progress) as bar:
        x_tr, y_tr = _beta_vae_points(rep, dataset, n_train, batch_size, rng, bar)
        if np.unique(y_tr).size < 2:
            raise CrlkitError(f"n_train={n_train} points drew only one factor; use more points")
        x_ev, y_ev = _beta_vae_points(rep, dataset, n_eval, batch_size, rng, bar)
    model = LogisticRegression().fit(x_tr, y_tr)
    return float(np.mean(model.predict(x_ev) == y_ev))


# --------------------------------------------------------------------------------------
# FactorVAE score
# --------------------------------------------------------------------------------------
def factor_vae_score(representation_fn, dataset, *, seed=0, batch_size: int = 64, n_train: int = 10000,
                     n_eval: int = 5000, n_variance_estimate: int = 10000,
                     prune_threshold: float = 0.05, progress: bool = False) -> float:
    r"""FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising"), as in
    disentanglement_lib with its study setting ``prune_dims.threshold = 0.05``.

    The global variance of each latent is estimated from ``n_variance_estimate`` i.i.d.
    samples; latents with standard deviation below ``prune_threshold`` (collapsed) are
    dropped. Each vote: fix one random factor ``k`` to one value across a batch of
    ``batch_size`` samples, and take :math:`d = \arg\min_j \mathrm{Var}_{batch}[z_j] /
    \mathrm{Var}_{global}[z_j]` over the kept latents. The majority-vote classifier maps each
    latent to the factor that voted for it most on ``n_train`` votes; the score is the
    fraction of ``n_eval`` fresh votes it gets right.

    ``progress=True`` shows the votes done and the time left on stderr.

    Returns a float in [0, 1] (0 when every latent is pruned). Invariant to permuting latents
    and to rescaling a latent (the variance ratio cancels the scale), but not to pruning:
    rescaling can move a latent across the threshold.
    """
    _check_dataset(dataset)
    rng = rng_from(seed)
    batch_size = positive_int("batch_size", batch_size, minimum=2)
    n_train = positive_int("n_train", n_train)
    n_eval = positive_int("n_eval", n_eval)
    n_variance_estimate = positive_int("n_variance_estimate", n_variance_estimate, minimum=2)
    if not np.isfinite(prune_threshold) or prune_threshold < 0:
        raise CrlkitError(f"prune_threshold must be a non-negative number; got {prune_threshold!r}")
    rep = _wrap(representation_fn)
    z = encode_factors(rep, dataset, dataset.sample_factors(n_variance_estimate, rng), rng)
    global_var = np.var(z, axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return 0.0
    k = dataset.num_factors

    def votes(n_points: int) -> np.ndarray:
        v = np.zeros((k, z.shape[1]), dtype=np.int64)
        per_chunk = 32
        for start in range(0, n_points, per_chunk):
            m = min(per_chunk, n_points - start)
            index = rng.integers(k, size=m)
            f = dataset.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
            f[np.arange(m), :, index] = f[np.arange(m), 0, index][:, None]
            codes = encode_factors(rep, dataset, f.reshape(m * batch_size, k), rng).reshape(m, batch_size, -1)
            local = np.var(codes, axis=1, ddof=1)                         # (m, n_latents)
            ratio = local[:, active] / global_var[active]
            dims = np.flatnonzero(active)[ratio.argmin(axis=1)]
            np.add.at(v, (index, dims), 1)
            bar.update(m)
        return v

    with Progress("factor_vae", n_train + n_eval, unit="votes", enabled=progress) as bar:
        train_votes = votes(n_train)
        classifier = train_votes.argmax(axis=0)                           # factor per latent
        eval_votes = votes(n_eval)
    cols = np.arange(eval_votes.shape[1])
    return float(eval_votes[classifier, cols].sum() / eval_votes.sum())
