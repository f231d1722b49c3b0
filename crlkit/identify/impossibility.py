"""The impossibility of unsupervised disentanglement, constructively (Locatello et al. 2019,
Theorem 1).

For a factorised ``p(z) = Π_j p_j(z_j)`` with marginal CDFs ``F_j`` and ``d > 1``, the map

    f = F^{-1} ∘ Φ ∘ R ∘ Φ^{-1} ∘ F

(each coordinate to a standard normal through its own CDF, a rotation ``R``, and back) is a
bijection with ``f(z) ~ p(z)`` exactly and ``∂f_i/∂z_j ≠ 0`` (for a rotation with no zero
entries): every output coordinate mixes every input. So the generator ``g`` with latents ``z``
and the generator ``g ∘ f^{-1}`` with latents ``z' = f(z)`` define the same ``p(x)`` — the same
likelihood, the same ELBO for matching encoders — while the second one's representation is
entangled. Nothing in ``p(x)`` can prefer the disentangled one.

The change of variables is exact here: ``log|det J_f(z)| = Σ_j [log p_j(z_j) - log φ(a_j)
+ log φ(b_j) - log p_j(z'_j)]`` with ``a = Φ^{-1}(F(z))`` and ``b = R a``; because
``‖b‖ = ‖a‖`` this equals ``log p(z) - log p(z')``, i.e. ``f`` preserves ``p`` (tested).

For Gaussian ``z`` the map is the rotation itself (after standardising); for uniform ``z``,
``F`` is affine onto [0, 1].
"""

from __future__ import annotations

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.mixing.base import Mixing
from crlkit.scm import LatentSCM
from crlkit.scm.marginals import FactorisedMarginals
from crlkit.seeding import as_generator


def marginals_of(scm: LatentSCM) -> FactorisedMarginals:
    """The factorised marginals of an SCM with independent latents and no segments.

    With segments, ``p(z) = (1/M) Σ_u Π_j p(z_j | u)`` is not factorised, so no fixed ``f``
    preserves it: that is precisely how auxiliary variables (iVAE, TCL) escape the theorem."""
    if scm.num_segments:
        raise CrlkitError("the impossibility construction needs a factorised p(z): this SCM has segments "
                          "(p(z) is a mixture over u, which is what makes iVAE identifiable); use segments=0")
    return scm.marginals("the impossibility construction (a factorised p(z))")


def default_rotation(d: int, seed=0, *, n_candidates: int = 32) -> np.ndarray:
    """The rotation used by default: 45° for d = 2 (the most entangling); for d > 2 the most
    entangling of ``n_candidates`` Haar-random rotations, i.e. the one with the lowest
    Hungarian-matched mean ``|R_ij|`` (which is the MCC of ``R z`` for Gaussian z). A random
    rotation can lie close to a signed permutation, which would hardly entangle anything."""
    from scipy.optimize import linear_sum_assignment

    from crlkit.metrics import random_rotation

    if d < 2:
        raise CrlkitError(f"the impossibility needs d > 1 latents; got {d}")
    if d == 2:
        c = np.sqrt(0.5)
        return np.array([[c, -c], [c, c]])
    rng = as_generator(seed)
    best, best_score = None, np.inf
    for _ in range(n_candidates):
        r = random_rotation(d, rng)
        rows, cols = linear_sum_assignment(-np.abs(r))
        score = np.abs(r[rows, cols]).mean()
        if score < best_score:
            best, best_score = r, score
    return best


class MarginalRotation:
    """``f = F^{-1} ∘ Φ ∘ R ∘ Φ^{-1} ∘ F``, a ``p(z)``-preserving entangling bijection.

    Parameters
    ----------
    marginals : FactorisedMarginals
        The factorised ``p(z)`` to preserve.
    rotation : array (d, d), optional
        An orthogonal matrix (default :func:`default_rotation`, a strongly entangling one).
    seed : int
        Seed of the default rotation.
    """

    def __init__(self, marginals: FactorisedMarginals, rotation: np.ndarray | None = None, *, seed=0):
        d = marginals.dim
        r = default_rotation(d, seed) if rotation is None else np.asarray(rotation, dtype=np.float64)
        if r.shape != (d, d) or not np.allclose(r @ r.T, np.eye(d), atol=1e-8):
            raise CrlkitError(f"rotation must be an orthogonal ({d}, {d}) matrix")
        self.marginals, self.rotation = marginals, r

    @classmethod
    def for_scm(cls, scm: LatentSCM, rotation=None, *, seed=0) -> "MarginalRotation":
        return cls(marginals_of(scm), rotation, seed=seed)

    def __call__(self, z):
        return self.forward(z)

    def forward(self, z: np.ndarray) -> np.ndarray:
        return self.marginals.from_normal_score(self.marginals.normal_score(z) @ self.rotation.T)

    def inverse(self, z2: np.ndarray) -> np.ndarray:
        return self.marginals.from_normal_score(self.marginals.normal_score(z2) @ self.rotation)

    def log_abs_det_jacobian(self, z: np.ndarray) -> np.ndarray:
        """``log|det ∂f/∂z|`` by the chain rule through the four stages, ``(n,)``."""
        z = np.asarray(z, dtype=np.float64)
        a = self.marginals.normal_score(z)
        b = a @ self.rotation.T
        z2 = self.marginals.from_normal_score(b)
        log_phi = lambda t: -0.5 * t ** 2 - 0.5 * np.log(2 * np.pi)  # noqa: E731
        return (self.marginals.logpdf(z) - log_phi(a) + log_phi(b) - self.marginals.logpdf(z2)).sum(1) \
            + np.linalg.slogdet(self.rotation)[1]

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        """``∂f_i/∂z_j`` at each row, ``(n, d, d)``: ``diag(1/p(z')) diag(φ(b)) R diag(1/φ(a)) diag(p(z))``."""
        z = np.asarray(z, dtype=np.float64)
        a = self.marginals.normal_score(z)
        b = a @ self.rotation.T
        z2 = self.marginals.from_normal_score(b)
        left = np.exp(-0.5 * b ** 2 - 0.5 * np.log(2 * np.pi) - self.marginals.logpdf(z2))
        right = np.exp(self.marginals.logpdf(z) + 0.5 * a ** 2 + 0.5 * np.log(2 * np.pi))
        return left[:, :, None] * self.rotation[None] * right[:, None, :]


class ComposedMixing(Mixing):
    """``g ∘ f^{-1}``: the generator that produces the same ``x`` from the entangled latents
    ``z' = f(z)``. Its inverse (the "perfect encoder" of the entangled model) is ``f ∘ g^{-1}``."""

    def __init__(self, mixing: Mixing, f: MarginalRotation):
        if mixing.in_dim != f.marginals.dim:
            raise CrlkitError(f"mixing takes {mixing.in_dim} latents but f acts on {f.marginals.dim}")
        self.g, self.f = mixing, f
        self.in_dim, self.out_dim = mixing.in_dim, mixing.out_dim

    def forward(self, z2):
        return self.g(self.f.inverse(z2))

    def inverse(self, x):
        return self.f(self.g.inverse(x))

    def forward_torch(self, z2):
        import torch
        z = torch.as_tensor(self.f.inverse(z2.detach().cpu().double().numpy()), dtype=z2.dtype, device=z2.device)
        return self.g.forward_torch(z)

    def log_abs_det_jacobian(self, z2):
        z = self.f.inverse(np.asarray(z2, dtype=np.float64))
        return self.g.log_abs_det_jacobian(z) - self.f.log_abs_det_jacobian(z)


# --------------------------------------------------------------------------------------------
# the experiment: same likelihood / ELBO, entangled representation
# --------------------------------------------------------------------------------------------
def _gauss_logpdf(x, mean, std):
    return (-0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)


def _elbo(x, z_hat, marginals: FactorisedMarginals, decoder, log_prior, transform, *, posterior_std, obs_std,
          n_mc, rng):
    """Monte-Carlo ELBO per observation, ``(n,)``.

    Posterior of the original model: ``z = F^{-1}(Φ(a))`` with ``a ~ N(Φ^{-1}(F(ẑ)), posterior_std² I)``
    around the encoder output ``ẑ`` (a Gaussian in normal-score space, so it respects the support
    of any marginal), with density ``log q(z) = Σ_j [log N(a_j) - log φ(a_j) + log p_j(z_j)]``.
    ``transform(z) -> (t(z), log|det J_t(z)|)`` pushes it forward (``t = f`` for the entangled
    model). Decoder ``N(x; decoder(t(z)), obs_std² I)``, prior ``log_prior``."""
    centre = marginals.normal_score(z_hat)
    n = len(x)
    per = np.zeros((n_mc, n))
    log_phi = lambda t: -0.5 * t ** 2 - 0.5 * np.log(2 * np.pi)  # noqa: E731
    for k in range(n_mc):
        a = centre + posterior_std * rng.standard_normal(centre.shape)
        z = marginals.from_normal_score(a)
        log_q = (_gauss_logpdf(a, centre, posterior_std) - log_phi(a).sum(-1) + marginals.logpdf(z).sum(-1))
        z_t, logdet = transform(z)
        per[k] = _gauss_logpdf(x, decoder(z_t), obs_std) + log_prior(z_t) - (log_q - logdet)
    return per.mean(0)


def _factor_bins(factors: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Integer factors for the discrete disentanglement metrics: integer-valued columns are kept,
    continuous ones cut into ``n_bins`` equal-frequency bins."""
    f = np.asarray(factors)
    if np.issubdtype(f.dtype, np.integer) or np.all(np.mod(f, 1) == 0):
        return f.astype(np.int64)
    out = np.empty(f.shape, dtype=np.int64)
    for j in range(f.shape[1]):
        edges = np.quantile(f[:, j], np.linspace(0, 1, n_bins + 1)[1:-1])
        out[:, j] = np.searchsorted(edges, f[:, j], side="right")
    return out


def _mig(codes, factors) -> float:
    from crlkit.metrics import mig_score

    return float(mig_score(codes, _factor_bins(factors)))


def impossibility_experiment(dataset, *, n: int = 5000, seed: int = 0, rotation: np.ndarray | None = None,
                             posterior_std: float = 0.05, obs_std: float = 0.1, n_mc: int = 8) -> dict:
    """Run the constructive impossibility on the true generator of a ``synthetic`` dataset.

    Draws ``z ~ p(z)`` and ``x = g(z)``; builds ``f`` (:class:`MarginalRotation`) and the
    entangled generator ``g' = g ∘ f^{-1}`` with latents ``z' = f(z)``; returns

    - ``loglik_original`` / ``loglik_rotated``: mean exact ``log p(x)`` by the change of
      variables through each generator (square mixings only), and ``loglik_max_abs_diff``;
    - ``elbo_original`` / ``elbo_rotated``: Monte-Carlo ELBOs of the two generators used as
      VAEs (decoder ``N(g(z), obs_std²)``; posterior a Gaussian of std ``posterior_std`` around
      ``g^{-1}(x)`` in normal-score space, pushed through ``f`` for the entangled model: see
      :func:`_elbo`), with independent MC draws, and ``elbo_se``, the standard error of their
      difference;
    - ``mcc_original`` / ``mcc_rotated`` (Pearson; ``*_spearman`` too): the perfect encoders
      ``g^{-1}`` and ``f ∘ g^{-1}`` scored against the true ``z``; ``mcc_chance``: the
      random-rotation baseline of :func:`crlkit.metrics.random_rotation_baseline`;
    - ``mig_original`` / ``mig_rotated``: MIG (:func:`crlkit.metrics.mig_score`) of the same codes
      against the true latents cut into 10 equal-frequency bins;
    - ``ks_pvalue_min``: the smallest per-coordinate two-sample KS p-value between ``f(z)`` and
      a fresh sample of ``z`` (same marginals), and ``min_abs_jacobian``: the smallest
      ``|∂f_i/∂z_j|`` seen (> 0: every coordinate depends on every latent).
    """
    from scipy import stats

    from crlkit.metrics import mcc_score, random_rotation_baseline

    scm, g = dataset.scm, dataset.mixing
    rng = np.random.default_rng(seed)
    f = MarginalRotation.for_scm(scm, rotation, seed=rng)
    g2 = ComposedMixing(g, f)
    z = scm.sample(n, rng)
    x = g(z)                                       # float64, noise-free
    z_hat, z2_hat = g.inverse(x), g2.inverse(x)    # the two "perfect encoders"
    out: dict = {"dataset": dataset.name, "latents": int(scm.num_latents), "noise": scm.noise,
                 "mixing": repr(g), "n": int(n), "seed": int(seed), "rotation": f.rotation.tolist()}
    if g.out_dim == g.in_dim:
        ll1 = scm.log_prob(z_hat) - g.log_abs_det_jacobian(z_hat)
        ll2 = scm.log_prob(z2_hat) - g2.log_abs_det_jacobian(z2_hat)
        out.update(loglik_original=float(ll1.mean()), loglik_rotated=float(ll2.mean()),
                   loglik_max_abs_diff=float(np.abs(ll1 - ll2).max()))
    ident = lambda e: (e, np.zeros(len(e)))  # noqa: E731
    through_f = lambda e: (f(e), f.log_abs_det_jacobian(e))  # noqa: E731
    e1 = _elbo(x, z_hat, f.marginals, g, scm.log_prob, ident, posterior_std=posterior_std, obs_std=obs_std,
               n_mc=n_mc, rng=np.random.default_rng([seed, 1]))
    e2 = _elbo(x, f.inverse(z2_hat), f.marginals, g2, scm.log_prob, through_f, posterior_std=posterior_std,
               obs_std=obs_std, n_mc=n_mc, rng=np.random.default_rng([seed, 2]))
    out.update(elbo_original=float(e1.mean()), elbo_rotated=float(e2.mean()),
               elbo_se=float(np.sqrt(e1.var() / n + e2.var() / n)))
    out.update(mcc_original=mcc_score(z, z_hat), mcc_rotated=mcc_score(z, z2_hat),
               mcc_original_spearman=mcc_score(z, z_hat, method="spearman"),
               mcc_rotated_spearman=mcc_score(z, z2_hat, method="spearman"),
               mcc_chance=random_rotation_baseline(z, "mcc", seed=seed),
               mig_original=_mig(z_hat, z), mig_rotated=_mig(z2_hat, z))
    fresh = scm.sample(n, np.random.default_rng([seed, 3]))
    out["ks_pvalue_min"] = float(min(stats.ks_2samp(z2_hat[:, j], fresh[:, j]).pvalue for j in range(z.shape[1])))
    out["min_abs_jacobian"] = float(np.abs(f.jacobian(z[:1000])).min())
    out["_arrays"] = {"z": z, "z_rotated": z2_hat, "x": x}
    return out


def impossibility_for_model(model, dataset, *, n: int = 2000, seed: int = 0, rotation: np.ndarray | None = None,
                            n_mc: int = 8, batch_size: int = 500) -> dict:
    """The same construction for a trained VAE with prior ``N(0, I)`` (where ``f = R``).

    The entangled model has encoder ``x -> N(R μ(x), R diag σ²(x) R^T)`` and decoder
    ``z' -> dec(R^T z')``. Its ELBO (reconstruction with independent MC draws; KL of the
    full-covariance posterior to ``N(0, I)``) equals the original's within MC error, while the
    representation ``R μ(x)`` is entangled. Needs ``encode_dist``, ``decoder`` and
    ``reconstruction_loss`` (the crlkit VAE family). Returns the same keys as
    :func:`impossibility_experiment` for the ELBO and MCC (MCC against the dataset's factors).
    """
    import torch

    from crlkit.metrics import mcc_score

    for attr in ("encode_dist", "decoder", "reconstruction_loss"):
        if not hasattr(model, attr):
            raise CrlkitError(f"--model needs a VAE-family model (with {attr}); got {type(model).__name__}")
    rng = np.random.default_rng(seed)
    factors, x = dataset.sample(n, rng)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    gen = torch.Generator().manual_seed(int(seed))
    rec1, rec2 = np.zeros(n_mc), np.zeros(n_mc)    # per MC draw: summed reconstruction NLL
    kl1 = kl2 = 0.0
    means, r = [], None
    model.eval()
    with torch.no_grad():
        for i in range(0, n, batch_size):
            xb = x[i:i + batch_size]
            mean, logvar = model.encode_dist(xb)
            if r is None:
                r = torch.as_tensor(default_rotation(mean.shape[1], rng) if rotation is None else rotation,
                                    dtype=mean.dtype)
            std = (0.5 * logvar).exp()
            for k in range(n_mc):
                z = mean + std * torch.randn(mean.shape, generator=gen)
                rec1[k] += float(model.reconstruction_loss(xb, model.decoder(z))) * len(xb)
                # entangled model: z' ~ N(R mean, R S R^T), decoder dec(R^T z')
                z2 = (mean + std * torch.randn(mean.shape, generator=gen)) @ r.T
                rec2[k] += float(model.reconstruction_loss(xb, model.decoder(z2 @ r))) * len(xb)
            kl1 += float((0.5 * (mean.square() + logvar.exp() - logvar - 1).sum(1)).sum())
            m2 = mean @ r.T
            cov2 = r @ torch.diag_embed(logvar.exp()) @ r.T                    # (B, d, d)
            kl2 += float((0.5 * (cov2.diagonal(dim1=1, dim2=2).sum(1) + m2.square().sum(1) - mean.shape[1]
                                 - torch.logdet(cov2))).sum())
            means.append(mean.double().numpy())
    rec1, rec2 = rec1 / n, rec2 / n
    mu = np.concatenate(means)
    f = np.asarray(factors, dtype=np.float64)
    mu2 = mu @ r.double().numpy().T
    return {"elbo_original": float(-(rec1.mean() + kl1 / n)), "elbo_rotated": float(-(rec2.mean() + kl2 / n)),
            "kl_original": kl1 / n, "kl_rotated": kl2 / n,
            "elbo_se": float(np.sqrt((rec1.var(ddof=1) + rec2.var(ddof=1)) / n_mc)) if n_mc > 1 else float("nan"),
            "mcc_original": mcc_score(f, mu), "mcc_rotated": mcc_score(f, mu2),
            "mig_original": _mig(mu, f), "mig_rotated": _mig(mu2, f),
            "n": int(n), "seed": int(seed), "rotation": r.numpy().tolist(), "_arrays": {"z": f, "z_rotated": mu2}}
