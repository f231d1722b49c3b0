"""Identifiable causal representation learning methods (the ways around the impossibility).

Locatello et al. (2019) proved that an unsupervised model of i.i.d. data cannot tell the true
factors from an entangled bijection of them. The methods here escape that with extra structure
in the data, each declared by the batch kind it trains on:

======================  ===================  ============================================
method                  batch kind           what makes it identifiable
======================  ===================  ============================================
``ivae``                ``segment``          auxiliary variable u, prior p(z|u) factorised
``iflow``               ``segment``          as ivae, fitted by its exact likelihood (a flow)
``contrastive``         ``positive_pair``    positive pairs z~ ~ p(z~|z) (InfoNCE)
``content_style``       ``views``            two views share the content block
``interventional``      ``intervention_pair``  counterfactual pairs, one node intervened
======================  ===================  ============================================

Every method maps vector observations ``x`` (optionally whitened with statistics fitted on
the data, see :class:`Whitening`) through an MLP. ``encode(x)`` gives the representation the
metrics score: the posterior mean for iVAE, the code for the contrastive methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from crlkit.errors import CrlkitError
from crlkit.models.architectures import mlp
from crlkit.models.base import Method, register_model
from crlkit.registry import unknown_choice

__all__ = [
    "Whitening", "info_nce", "IVAEConfig", "IVAE", "IFlowConfig", "IFlow", "ContrastiveConfig", "Contrastive",
    "ContentStyleConfig", "ContentStyle", "InterventionalConfig", "Interventional",
    "unmix_from_changes",
    "fit_parents_contribution",
]


# --------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------
class Whitening(nn.Module):
    """Affine whitening ``x -> W (x - m)`` with ``W = Cov(x)^{-1/2}`` (ZCA).

    Whitening the observations made the largest difference for iVAE on this benchmark
    (issue 6): the leaky-ReLU mixing produces coordinates with very different scales, and
    the fixed decoder variance (0.01) then weighs them very unequally. Any invertible affine
    preconditioning keeps identifiability, so the statistics need not be exact.

    The trainer streams batches and has no data-preparation hook, so the statistics are
    accumulated from the first ``warmup_batches`` training batches (refitted after each,
    then frozen); :meth:`fit` sets them from a given sample at once. Sums and the fitted
    transform are buffers: saved in checkpoints, so a resumed run continues identically.
    """

    def __init__(self, dim: int, *, enabled: bool = True, warmup_batches: int = 10, eps: float = 1e-6):
        super().__init__()
        self.enabled = enabled
        self.warmup_batches = int(warmup_batches)
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("matrix", torch.eye(dim))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sum", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("sum_sq", torch.zeros(dim, dim, dtype=torch.float64))

    @torch.no_grad()
    def _refit(self) -> None:
        n = float(self.count)
        mean = self.sum / n
        cov = self.sum_sq / n - torch.outer(mean, mean)
        evals, evecs = torch.linalg.eigh(cov)
        inv_sqrt = evecs @ torch.diag(evals.clamp_min(self.eps).rsqrt()) @ evecs.T  # (D, D)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.matrix.copy_(inv_sqrt.to(self.matrix.dtype))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the statistics from ``x`` (N, D) and freeze them."""
        x64 = x.detach().reshape(x.shape[0], -1).double()
        if x64.shape[0] < 2:
            raise CrlkitError("whitening needs at least 2 samples")
        self.count.fill_(x64.shape[0])
        self.sum.copy_(x64.sum(0))
        self.sum_sq.copy_(x64.T @ x64)
        self.batches.fill_(max(self.warmup_batches, 1))
        self._refit()

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add a training batch to the statistics while warming up (no-op afterwards)."""
        if not (self.enabled and self.training) or int(self.batches) >= self.warmup_batches:
            return
        x64 = x.detach().reshape(x.shape[0], -1).double()
        self.count += x64.shape[0]
        self.sum += x64.sum(0)
        self.sum_sq += x64.T @ x64
        self.batches += 1
        if float(self.count) >= 2:
            self._refit()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        if not self.enabled:
            return x
        return (x - self.mean) @ self.matrix.T


def _cosine(step: int, total: int) -> float:
    """Cosine decay from 1 at step 0 to 0 at ``total`` (and after)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


class _CosineLR:
    """Mixin: cosine decay of every optimizer's learning rate to 0 over
    ``config.lr_decay_steps`` steps (0: constant), applied in :meth:`training_step`."""

    def _lr_factor(self, step: int) -> float | None:
        """Multiplier of the initial learning rate at ``step`` (None: leave the rate alone)."""
        t = int(getattr(self.config, "lr_decay_steps", 0))
        return _cosine(step, t) if t > 0 else None

    def training_step(self, batch, step, optimizers):
        factor = self._lr_factor(step)
        if factor is not None:
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group.setdefault("initial_lr", group["lr"])
                    group["lr"] = group["initial_lr"] * factor
        return super().training_step(batch, step, optimizers)


def _vector_dim(observation_shape: tuple[int, ...], method: str) -> int:
    if len(observation_shape) != 1:
        raise CrlkitError(
            f"{method} works on vector observations (D,) such as the 'synthetic' dataset; "
            f"got observation_shape {tuple(observation_shape)}")
    return int(observation_shape[0])


def _get(batch: dict[str, torch.Tensor], names: tuple[str, ...], method: str) -> torch.Tensor:
    """The first of ``names`` present in ``batch`` (samplers name the second view variously)."""
    for n in names:
        if n in batch:
            return batch[n]
    raise CrlkitError(f"{method} needs a batch with one of the keys {names}; got keys {sorted(batch)}")


def _check_choice(field: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise CrlkitError(unknown_choice(field, value, [str(c) for c in choices]))


def _check_positive(field: str, value: float) -> None:
    if not value > 0:
        raise CrlkitError(f"{field} must be > 0; got {value}")


def _one_hot(u: torch.Tensor, k: int) -> torch.Tensor:
    """Segment indices (B,) or (B, 1) to one-hot (B, k); a (B, k) auxiliary variable as floats."""
    if u.dim() == 1 or (u.dim() == 2 and u.shape[1] == 1 and k != 1):
        idx = u.reshape(-1).long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
            raise CrlkitError(f"segment index out of range for aux_dim={k}: "
                              f"got values in [{int(idx.min())}, {int(idx.max())}]")
        return nn.functional.one_hot(idx, k).float()
    if u.shape[-1] != k:
        raise CrlkitError(f"auxiliary variable u has {u.shape[-1]} columns; the model has aux_dim={k}")
    return u.float()


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, p: float) -> torch.Tensor:
    """``D[i, j] = sum_k |a_ik - b_jk|^p`` for (B, d) inputs (the p-th power of the Lp norm)."""
    diff = a.unsqueeze(1) - b.unsqueeze(0)  # (B, B, d)
    if p == 2:
        return diff.pow(2).sum(-1)
    return (diff.abs() + 1e-12).pow(p).sum(-1)


def one_change_distance(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """``D[i, j] = ||d||_1 - tau * log sum_k exp(|d_k| / tau)`` with ``d = a_i - b_j``: the L1
    distance with (softly) the largest coordinate left out.

    ``exp(-D / tau)`` is a mixture over k of Laplace kernels on all coordinates but k, the
    log-density of a pair that shares every coordinate except one unknown one.
    """
    diff = (a.unsqueeze(1) - b.unsqueeze(0)).abs()  # (B, B, d)
    return diff.sum(-1) - tau * torch.logsumexp(diff / tau, dim=-1)


def known_change_info_nce(h1: torch.Tensor, h2: torch.Tensor, target: torch.Tensor, *, tau: float = 1.0
                          ) -> torch.Tensor:
    """Symmetric InfoNCE for pairs that differ in one *known* coordinate: the similarity of
    anchor ``h1_i`` and candidate ``h2_j`` is ``-sum_{l != t_i} |h1_il - h2_jl| / tau`` (the L1
    distance without the anchor's target ``t_i``), and likewise with ``t_j`` for anchors from
    ``h2``: a Laplace kernel on the coordinates the intervention left alone. Fixing which
    coordinate may change ties code coordinate k to node k (CauCA's known-target setting,
    Liang et al. 2023), where :func:`one_change_distance` leaves the permutation open.
    """
    keep = 1.0 - nn.functional.one_hot(target.long(), h1.shape[1]).to(h1.dtype)  # (B, d)
    diff = (h1.unsqueeze(1) - h2.unsqueeze(0)).abs()  # (B, B, d): [i, j] = |h1_i - h2_j|
    logits_1 = -(diff * keep.unsqueeze(1)).sum(-1) / tau  # anchors h1_i, target t_i left out
    logits_2 = -(diff * keep.unsqueeze(0)).sum(-1) / tau  # anchors h2_j, target t_j left out
    return _two_way_cross_entropy(logits_1, logits_2.T)


def _two_way_cross_entropy(logits_1: torch.Tensor, logits_2: torch.Tensor) -> torch.Tensor:
    """Mean of the cross-entropies of anchors from h1 (rows of ``logits_1``) and from h2 (rows
    of ``logits_2``), the positive of row i being column i."""
    labels = torch.arange(logits_1.shape[0], device=logits_1.device)
    ce = nn.functional.cross_entropy
    return 0.5 * (ce(logits_1, labels) + ce(logits_2, labels))


def info_nce(h1: torch.Tensor, h2: torch.Tensor, *, p: float = 1.0, tau: float = 1.0,
             distance=None) -> torch.Tensor:
    """Symmetric InfoNCE with similarity ``-||h1_i - h2_j||_p^p / tau``.

    ``L = mean_i [ -s_ii + log sum_j exp s_ij ]`` averaged over both directions
    (anchors from ``h1`` against all ``h2``, and vice versa); the other pairs in the batch
    are the negatives. Zimmermann et al. (2021) show that when ``exp(s)`` matches the true
    conditional p(z~|z) (L1 for a Laplace, squared L2 for a Gaussian conditional) the
    minimiser inverts the mixing up to the isometries of that similarity: signed
    permutations for L1 (the axes are identified), orthogonal maps for L2 (only linear
    identifiability). ``distance(h1, h2) -> (B, B)`` replaces the Lp distance when given.
    """
    dist = pairwise_distance(h1, h2, p) if distance is None else distance(h1, h2)
    logits = -dist / tau  # (B, B), positives on the diagonal
    return _two_way_cross_entropy(logits, logits.T)


# --------------------------------------------------------------------------------------------
# iVAE (Khemakhem et al. 2020)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IVAEConfig:
    num_latents: int = 5          # n, size of z
    aux_dim: int = 40             # size of the auxiliary variable u (one-hot segments: their number)
    hidden: int = 128             # hidden units of encoder, decoder and prior MLPs (128 beat 64 and 256 here)
    depth: int = 3                # hidden layers of encoder and decoder
    prior_depth: int = 2          # hidden layers of the prior MLP u -> (mean, log-variance)
    slope: float = 0.1            # leaky-ReLU slope of all MLPs (0.1 as in the iVAE code)
    prior_mean: bool = True       # learn the prior mean as a function of u (else mean 0)
    decoder_var: float = 0.01     # fixed variance of p(x|z) = N(f(z), decoder_var I)
    whiten: bool = True           # whiten x (statistics fitted on data) before encoding
    beta: float = 1.0             # weight of the KL term (1 = the ELBO)
    separate_variance: bool = False  # posterior log-variance from its own MLP (as the reference code)
                                  #   instead of a second head of the mean's MLP
    posterior: str = "diagonal"   # q(z|x): "diagonal" (mean-field, the paper's) or "full" (covariance
                                  #   L L^T, L's strictly lower part from its own MLP); see the class doc
    importance_samples: int = 1   # K: train on the importance-weighted bound with K samples of q(z|x)
                                  #   per x (Burda et al. 2016); 1 = the ELBO (analytic KL)
    lr_decay_steps: int = 0       # cosine decay of the learning rate to 0 over this many steps (0: constant)


#: log-variances of q(z|x) and p(z|u) are clamped to this range (std e^-10 .. e^5 in whitened units):
#: at lr 1e-2 one run's encoder log-variance once jumped past ~177 in a step, exp() overflowed and
#: the reconstruction went to inf (3 leaky-ReLU layers, slope 0.2, seed 0, step 2523). Normal runs
#: stay far inside the range, so the clamp leaves them bit-identical. The clamp passes gradients
#: straight through (:func:`_clamp_straight_through`): a plain clamp has zero gradient outside the
#: range, and a run with decoder variance 1e-3 had its posterior log-variances pinned at -20 and its
#: prior's at +10 from the first few hundred steps on, for good (MCC 0.30).
IVAE_LOGVAR_RANGE = (-20.0, 10.0)


def _clamp_straight_through(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``t.clamp(lo, hi)`` in the forward pass, the identity's gradient in the backward pass."""
    return t + (t.clamp(lo, hi) - t).detach()


def _prior_split(h: torch.Tensor, with_mean: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, logvar)`` of a factorised Gaussian prior from its parameter net's output ``h``
    (``[mean, logvar]`` halves, or the log-variances alone with mean 0); log-variances clamped."""
    mean, logvar = h.chunk(2, dim=-1) if with_mean else (torch.zeros_like(h), h)
    return mean, _clamp_straight_through(logvar, *IVAE_LOGVAR_RANGE)


IVAE_POSTERIORS = ("diagonal", "full")
#: full posterior: bound on |L_ij / L_ii| (j < i). Unbounded off-diagonal entries let one run's
#: encoder pair a log-variance near -20 with entries near 15 and the loss jumped from 25 to 3e3
#: (3 leaky-ReLU layers, seed 0, lr 1e-2, step ~5000), which gradient clipping did not prevent.
IVAE_MAX_OFFDIAG_RATIO = 10.0


@register_model("ivae")
class IVAE(_CosineLR, Method):
    r"""identifiable VAE (Khemakhem, Kingma, Monti & Hyvärinen, AISTATS 2020).

    Generative model with an observed auxiliary variable ``u`` (here the one-hot segment)::

        p(z | u) = prod_i N(z_i; mu_i(u), exp(lambda_i(u)))     (conditionally factorised)
        p(x | z) = N(x; f(z), decoder_var * I)

    trained by the ELBO with a Gaussian posterior ``q(z | x) = N(m(x), diag exp(l(x)))``:
    ``loss = E_q[||x - f(z)||^2] / (2 decoder_var) + beta * KL(q(z|x) || p(z|u))`` (per sample,
    mean over the batch; constants dropped). With >= 2n + 1 distinct values of u whose
    log-variances are affinely independent, z is identified up to a permutation and a
    per-coordinate affine map (Theorem 1 of the paper). The posterior here conditions on x
    only (the paper's conditions on (x, u)); the prior carries all the u-dependence, and
    ``encode(x)`` then needs no u.

    **Posterior family.** With ``posterior="diagonal"`` (the paper's), near the deterministic
    limit the ELBO at the true decoder falls short of the log-likelihood by the mean of
    ``sum_i log ||J_i|| - log |det J|`` (J the decoder Jacobian, J_i its columns: the
    "independent mechanism analysis" gap of Reizinger et al., NeurIPS 2022), which is zero only
    for decoders with orthogonal Jacobian columns. Random leaky-ReLU mixings with slope 0.1 are
    far from that (6-8 nats per sample for 3 layers, n = 5, against about 1 for slope 0.5),
    so the mean-field ELBO prefers entangled solutions there (bench/RESULTS_identify.md).
    ``posterior="full"`` uses ``q(z|x) = N(m(x), L(x) L(x)^T)`` with ``L = diag(exp(l(x) / 2))
    (I + N(x))`` lower-triangular, ``N`` strictly lower with entries ``10 tanh(o(x) / 10)`` from
    its own MLP ``o`` (:data:`IVAE_MAX_OFFDIAG_RATIO`), which removes that gap; the KL to the
    factorised prior stays closed-form (``log det L L^T = sum_i l_i(x)``).

    **Importance weighting.** ``importance_samples=K > 1`` trains on the importance-weighted bound
    ``E log (1/K) sum_k p(x, z_k|u) / q(z_k|x)`` (Burda, Grosse & Salakhutdinov, ICLR 2016), which
    lies between the ELBO and ``log p(x|u)`` and approaches the latter as K grows; the loss's
    terms then report the K-sample mean ELBO as ``elbo`` and the bound as ``iw_bound``.

    Batches: ``{"x": (B, D), "u": (B,) segment index or (B, aux_dim) one-hot}``.
    """

    Config = IVAEConfig
    batch_kind = "segment"

    def __init__(self, config: IVAEConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        d = _vector_dim(observation_shape, "ivae")
        n = config.num_latents
        _check_positive("decoder_var", config.decoder_var)
        if n < 1 or config.aux_dim < 1:
            raise CrlkitError(f"num_latents and aux_dim must be >= 1; got {n}, {config.aux_dim}")
        if int(config.importance_samples) != config.importance_samples or config.importance_samples < 1:
            raise CrlkitError(f"importance_samples must be an integer >= 1; got {config.importance_samples!r}")
        self.whitening = Whitening(d, enabled=config.whiten)
        self.encoder = mlp(d, n if config.separate_variance else 2 * n, config.hidden, config.depth,
                           slope=config.slope)
        self.encoder_logvar = (mlp(d, n, config.hidden, config.depth, slope=config.slope)
                               if config.separate_variance else None)
        _check_choice("posterior", config.posterior, IVAE_POSTERIORS)
        self.encoder_offdiag = (mlp(d, n * (n - 1) // 2, config.hidden, config.depth, slope=config.slope)
                                if config.posterior == "full" and n > 1 else None)
        self.register_buffer("_tril", torch.tril_indices(n, n, offset=-1), persistent=False)
        self.decoder = mlp(n, d, config.hidden, config.depth, slope=config.slope)
        self.prior = mlp(config.aux_dim, 2 * n if config.prior_mean else n, config.hidden,
                         config.prior_depth, slope=config.slope)

    # -- pieces -----------------------------------------------------------------------------
    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of q(z|x), each (B, n); with a full covariance, the marginal
        log-variances ``log diag(L L^T)``."""
        mean, logvar, scale_tril = self._q(self.whitening(x))
        if scale_tril is None:
            return mean, logvar
        return mean, scale_tril.pow(2).sum(-1).log()

    def posterior_scale_tril(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean (B, n), L (B, n, n))`` of q(z|x) = N(mean, L L^T) (L diagonal for the
        mean-field posterior)."""
        mean, logvar, scale_tril = self._q(self.whitening(x))
        return mean, torch.diag_embed((0.5 * logvar).exp()) if scale_tril is None else scale_tril

    def _q(self, xw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar, L or None)`` of q(z|x) from whitened x (L: full posterior only)."""
        mean, logvar = self._posterior(xw)
        return mean, logvar, self._scale_tril(xw, logvar)

    def _scale_tril(self, xw: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        if self.encoder_offdiag is None:
            return None
        # L = diag(s) (I + N), N strictly lower with |N_ij| < IVAE_MAX_OFFDIAG_RATIO: the off-diagonal
        # entries scale with their row's diagonal, so a tiny variance cannot carry a huge correlation
        c = IVAE_MAX_OFFDIAG_RATIO
        rows, cols = self._tril
        unit = torch.eye(logvar.shape[-1], dtype=logvar.dtype, device=logvar.device).repeat(len(xw), 1, 1)
        unit[:, rows, cols] = c * torch.tanh(self.encoder_offdiag(xw) / c)
        return (0.5 * logvar).exp().unsqueeze(-1) * unit

    def _posterior(self, xw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.encoder_logvar is not None:
            mean, logvar = self.encoder(xw), self.encoder_logvar(xw)
        else:
            mean, logvar = self.encoder(xw).chunk(2, dim=-1)
        return mean, _clamp_straight_through(logvar, *IVAE_LOGVAR_RANGE)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]

    def prior_params(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of p(z|u), each (B, n)."""
        return _prior_split(self.prior(_one_hot(u, self.config.aux_dim)), self.config.prior_mean)

    # -- objective --------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        u = _get(batch, ("u", "segment", "segments"), "ivae")
        self.whitening.update(x)
        xw = self.whitening(x)
        mean, logvar, scale_tril = self._q(xw)
        if self.config.importance_samples > 1:
            return self._importance_weighted_loss(xw, u, mean, logvar, scale_tril)
        z = self._reparameterise(mean, logvar, scale_tril, self.randn_like(mean))
        post_var = logvar.exp() if scale_tril is None else scale_tril.pow(2).sum(-1)  # diag(L L^T)
        recon = (self.decoder(z) - xw).pow(2).sum(-1).mean() / (2 * self.config.decoder_var)
        p_mean, p_logvar = self.prior_params(u)
        # KL(N(m, S) || N(pm, diag ps)) = 1/2 sum_i [(S_ii + (m_i - pm_i)^2) / ps_i + log ps_i - 1]
        #   - 1/2 log det S, and log det S = sum_i logvar_i for both posteriors (L_ii = e^{logvar_i / 2})
        kl = 0.5 * (p_logvar - logvar + (post_var + (mean - p_mean).pow(2)) / p_logvar.exp() - 1)
        kl = kl.sum(-1).mean()
        total = recon + self.config.beta * kl
        return total, {"recon": recon.detach(), "kl": kl.detach(), "elbo": -(recon + kl).detach()}

    @staticmethod
    def _reparameterise(mean, logvar, scale_tril, eps):
        """``z = mean + L eps`` for standard normal ``eps`` of shape (..., B, n) (L diagonal,
        ``exp(logvar / 2)``, for the mean-field posterior)."""
        if scale_tril is None:
            return mean + eps * (0.5 * logvar).exp()
        return mean + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def _importance_weighted_loss(self, xw, u, mean, logvar, scale_tril):
        """Negative importance-weighted bound ``log (1/K) sum_k p(x, z_k | u) / q(z_k | x)``,
        ``z_k ~ q(z|x)``, with the constants of the ELBO above dropped (so that K = 1 would give
        the same values in expectation). ``beta`` weights ``log p(z|u) - log q(z|x)`` in each weight."""
        k = self.config.importance_samples
        eps = torch.stack([self.randn_like(mean) for _ in range(k)])          # (K, B, n)
        z = self._reparameterise(mean, logvar, scale_tril, eps)
        log_px = -(self.decoder(z) - xw).pow(2).sum(-1) / (2 * self.config.decoder_var)
        p_mean, p_logvar = self.prior_params(u)
        # log p(z|u) - log q(z|x); the log(2 pi) terms cancel, and log det L = sum logvar / 2
        log_ratio = -0.5 * (p_logvar + (z - p_mean).pow(2) / p_logvar.exp() - eps.pow(2) - logvar).sum(-1)
        log_w = log_px + self.config.beta * log_ratio
        bound = (torch.logsumexp(log_w, 0) - math.log(k)).mean()
        elbo = (log_px + log_ratio).mean()
        return -bound, {"recon": -log_px.mean().detach(), "kl": -log_ratio.mean().detach(),
                        "elbo": elbo.detach(), "iw_bound": bound.detach()}


# --------------------------------------------------------------------------------------------
# iFlow (Li, Hooi & Lee 2019): iVAE's generative model trained by its exact likelihood
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IFlowConfig:
    num_latents: int = 5          # n; must equal the observation size D (the flow is a bijection)
    aux_dim: int = 40             # size of the auxiliary variable u (one-hot segments: their number)
    blocks: int = 8               # affine coupling blocks, each after a learned invertible linear map
    hidden: int = 64              # hidden units of each coupling MLP
    depth: int = 2                # hidden layers of each coupling MLP
    slope: float = 0.1            # leaky-ReLU slope of the coupling MLPs
    scale_bound: float = 2.0      # coupling log-scales squashed to (-b, b) by b tanh(s / b)
    prior_mean: bool = False      # learn the prior mean as a function of u (else mean 0)
    whiten: bool = True           # whiten x (statistics fitted on data) before the flow
    lr_decay_steps: int = 0       # cosine decay of the learning rate to 0 over this many steps (0: constant)


class _InvertibleLinear(nn.Module):
    """``h -> h W^T + b`` with a square weight, orthogonal at initialisation; log|det W| by slogdet."""

    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(n, n)))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return h @ self.weight.T + self.bias, torch.linalg.slogdet(self.weight)[1]

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.weight, (y - self.bias).T).T


class _AffineCoupling(nn.Module):
    """RealNVP coupling: the first ``k`` coordinates pass through and set a scale and shift of
    the rest, ``b -> b exp(s(a)) + t(a)``; log-det ``sum s(a)``. Zero-initialised output layer,
    so every block starts as the identity."""

    def __init__(self, n: int, hidden: int, depth: int, slope: float, bound: float):
        super().__init__()
        self.k, self.bound = n // 2, float(bound)
        self.net = mlp(self.k, 2 * (n - self.k), hidden, depth, slope=slope)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(a).chunk(2, dim=-1)
        return self.bound * torch.tanh(s / self.bound), t

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = h[:, :self.k], h[:, self.k:]
        s, t = self._scale_shift(a)
        return torch.cat([a, b * s.exp() + t], dim=-1), s.sum(-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        a, b = y[:, :self.k], y[:, self.k:]
        s, t = self._scale_shift(a)
        return torch.cat([a, (b - t) * (-s).exp()], dim=-1)


@register_model("iflow")
class IFlow(_CosineLR, Method):
    r"""iVAE's generative model fitted by its exact likelihood with a normalising flow (iFlow:
    Li, Hooi & Lee, "Identifying through Flows for Recovering Latent Representations", ICLR 2020).

    The model of :class:`IVAE`, with a deterministic invertible mixing: ``x = g(z)``,
    ``p(z | u) = prod_i N(z_i; mu_i(u), exp(lambda_i(u)))``. The unmixing ``h = g^{-1}`` is a
    flow on the whitened observations (``blocks`` x [invertible linear map, affine coupling],
    then a final linear map), and the loss is the exact negative log-likelihood::

        -log p(x | u) = -log p(h(x) | u) - log |det J_h(x)| - log |det W|

    (W the whitening matrix; a constant during training, included so that the reported
    ``log_likelihood`` is the density of x itself and comparable with the data's true one). The
    identifiability theorem of iVAE holds for this model (z up to a permutation and
    per-coordinate affine maps, given >= 2n + 1 segments with affinely independent variances),
    and the exact likelihood has no gap to close: the ELBO of a mean-field iVAE at the true
    decoder falls short of the likelihood by the decoder's "independent mechanism analysis"
    contrast (see :class:`IVAE`), which made the ELBO prefer entangled solutions on sharply
    kinked leaky-ReLU mixings (bench/RESULTS_identify.md). The price: ``D`` must equal ``n``.

    The paper's flow is a rational-quadratic spline flow; this one uses RealNVP affine couplings
    (Dinh et al. 2017) between learned invertible linear maps, which suffice here.
    ``encode(x) = h(x)``; ``decode(z)`` is the inverse (the generative map ``g``).

    Batches: ``{"x": (B, D), "u": (B,) segment index or (B, aux_dim) one-hot}``.
    """

    Config = IFlowConfig
    batch_kind = "segment"

    def __init__(self, config: IFlowConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        d = _vector_dim(observation_shape, "iflow")
        n = config.num_latents
        if n < 2 or config.aux_dim < 1:
            raise CrlkitError(f"iflow needs num_latents >= 2 and aux_dim >= 1; got {n}, {config.aux_dim}")
        if d != n:
            raise CrlkitError(f"iflow is a bijection: num_latents must equal the observation size {d}; got {n}")
        if config.blocks < 1 or config.hidden < 1 or config.depth < 0:
            raise CrlkitError(f"iflow needs blocks >= 1, hidden >= 1, depth >= 0; got {config.blocks}, "
                              f"{config.hidden}, {config.depth}")
        _check_positive("scale_bound", config.scale_bound)
        self.whitening = Whitening(d, enabled=config.whiten)
        self.linears = nn.ModuleList(_InvertibleLinear(n) for _ in range(config.blocks + 1))
        self.couplings = nn.ModuleList(
            _AffineCoupling(n, config.hidden, config.depth, config.slope, config.scale_bound)
            for _ in range(config.blocks))
        # one-hot u: a table of per-segment natural parameters; starts at N(0, 1) for every segment
        self.prior = nn.Linear(config.aux_dim, 2 * n if config.prior_mean else n)
        nn.init.zeros_(self.prior.weight)
        nn.init.zeros_(self.prior.bias)

    # -- the flow ---------------------------------------------------------------------------
    def _flow(self, xw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h(xw), log |det J_h(xw)|)`` on whitened observations."""
        h, logdet = xw, xw.new_zeros(len(xw))
        for linear, coupling in zip(self.linears, self.couplings):
            h, ld = linear(h)
            h, ls = coupling(h)
            logdet = logdet + ld + ls
        h, ld = self.linears[-1](h)
        return h, logdet + ld

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._flow(self.whitening(x))[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The generative map ``g = h^{-1}``, back in the observations' units."""
        h = self.linears[-1].inverse(z)
        for linear, coupling in zip(reversed(self.linears[:-1]), reversed(self.couplings)):
            h = linear.inverse(coupling.inverse(h))
        if not self.whitening.enabled:
            return h
        return torch.linalg.solve(self.whitening.matrix, h.T).T + self.whitening.mean

    def prior_params(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of p(z|u), each (B, n)."""
        h = self.prior(_one_hot(u, self.config.aux_dim).to(self.prior.weight.dtype))
        return _prior_split(h, self.config.prior_mean)

    def log_likelihood(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``log p(x | u)`` per sample (B,), in the units of x."""
        z, logdet = self._flow(self.whitening(x))
        mean, logvar = self.prior_params(u)
        log_prior = -0.5 * ((z - mean).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)
        whiten_logdet = torch.linalg.slogdet(self.whitening.matrix)[1] if self.whitening.enabled else 0.0
        return log_prior + logdet + whiten_logdet

    # -- objective --------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        u = _get(batch, ("u", "segment", "segments"), "iflow")
        self.whitening.update(x)
        ll = self.log_likelihood(x, u).mean()
        return -ll, {"log_likelihood": ll.detach()}


# --------------------------------------------------------------------------------------------
# contrastive learning (Zimmermann et al. 2021)
# --------------------------------------------------------------------------------------------
NORMALIZATIONS = ("none", "sphere", "box")
SIMILARITY_P = (1.0, 2.0)


class _Normalize(nn.Module):
    """Output normalisation of cl-ica: onto a sphere of learnable radius, or into a box
    ``[-r, r]^d`` of learnable half-width (tanh), or none."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.log_radius = nn.Parameter(torch.zeros(())) if kind != "none" else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == "sphere":
            return self.log_radius.exp() * h / h.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        if self.kind == "box":
            return self.log_radius.exp() * torch.tanh(h)
        return h


@dataclass(frozen=True)
class ContrastiveConfig:
    num_latents: int = 10         # dimension of the code h(x) (= number of true latents)
    hidden: int = 256             # hidden units of the encoder MLP
    depth: int = 4                # hidden layers of the encoder MLP
    slope: float = 0.2            # leaky-ReLU slope of the encoder
    p: float = 1.0                # similarity -||h - h~||_p^p: 1 = Laplace conditional (axes
                                  #   identified), 2 = Gaussian (identified up to rotation)
    tau: float = 1.0              # temperature of the InfoNCE logits
    normalization: str = "none"   # output normalisation: "none", "sphere" or "box" (cl-ica)
    whiten: bool = True           # whiten x (statistics fitted on data) before encoding
    lr_decay_steps: int = 0       # cosine decay of the learning rate to 0 over this many steps (0: constant)


@register_model("contrastive")
class Contrastive(_CosineLR, Method):
    r"""Contrastive learning inverts the data-generating process (Zimmermann, Sharma,
    Schneider, Bethge & Brendel, ICML 2021).

    An encoder ``h: x -> R^n`` trained with InfoNCE on positive pairs ``(x, x~)``, whose
    latents are drawn ``z ~ p(z)``, ``z~ ~ p(z~ | z)``: see :func:`info_nce`. With the
    similarity matched to a Laplace conditional (``p=1``) ``h∘g`` is a signed permutation
    plus offset (high MCC); with ``p=2`` it is an orthogonal map (high linear R², MCC near
    the rotation baseline).

    Batches: ``{"x": (B, D), "x2": (B, D)}``.
    """

    Config = ContrastiveConfig
    batch_kind = "positive_pair"
    pair_keys: tuple[str, ...] = ("x2", "x_pos", "x_tilde", "x_pair", "x_view")

    def __init__(self, config: ContrastiveConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        d = _vector_dim(observation_shape, self.name or "contrastive")
        _check_choice("normalization", config.normalization, NORMALIZATIONS)
        _check_choice("p", float(config.p), SIMILARITY_P)
        _check_positive("tau", config.tau)
        if config.num_latents < 1:
            raise CrlkitError(f"num_latents must be >= 1; got {config.num_latents}")
        self.whitening = Whitening(d, enabled=config.whiten)
        self.encoder = mlp(d, config.num_latents, config.hidden, config.depth, slope=config.slope)
        self.normalize = _Normalize(config.normalization)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.encoder(self.whitening(x)))

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        x2 = _get(batch, self.pair_keys, self.name)
        self.whitening.update(torch.cat([x, x2]))
        h1, h2 = self.encode(x), self.encode(x2)
        loss = info_nce(h1, h2, p=float(self.config.p), tau=self.config.tau)
        with torch.no_grad():
            pos = (h1 - h2).abs().pow(self.config.p).sum(-1).mean()
        return loss, {"info_nce": loss.detach(), "positive_distance": pos}


# --------------------------------------------------------------------------------------------
# content / style (von Kügelgen et al. 2021)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentStyleConfig:
    num_latents: int = 5          # content size n_c: the code h(x) has this many dimensions
    hidden: int = 256             # hidden units of the encoder MLP
    depth: int = 4                # hidden layers of the encoder MLP
    slope: float = 0.2            # leaky-ReLU slope of the encoder
    p: float = 2.0                # similarity -||h - h~||_p^p (2: Gaussian, as in the paper's
                                  #   numerical experiment; 1: Laplace)
    tau: float = 1.0              # temperature of the InfoNCE logits
    normalization: str = "none"   # output normalisation: "none", "sphere" or "box"
    whiten: bool = True           # whiten x (statistics fitted on data) before encoding
    lr_decay_steps: int = 0       # cosine decay of the learning rate to 0 over this many steps (0: constant)


@register_model("content_style")
class ContentStyle(Contrastive):
    r"""Self-supervised learning with data augmentations provably isolates content from
    style (von Kügelgen, Sharma, Gresele, Brendel, Schölkopf, Besserve & Locatello, NeurIPS 2021).

    Two views ``x = g(c, s)``, ``x~ = g(c, s~)`` share the content ``c`` while the style
    changes. An encoder to ``num_latents`` = n_c dimensions trained by InfoNCE between the
    views (alignment plus entropy) recovers the content block up to an invertible map
    (block-identifiability): content is predictable from ``h(x)`` (R² near 1), style is not.
    The content size is a hyperparameter; the other dimensions of z are never encoded.

    Batches: ``{"x": (B, D), "x2": (B, D)}``.
    """

    Config = ContentStyleConfig
    batch_kind = "views"
    pair_keys = ("x2", "x_view", "x_pos", "x_tilde", "x_pair")


# --------------------------------------------------------------------------------------------
# interventional: counterfactual pairs around an unknown single-node intervention
# --------------------------------------------------------------------------------------------
GRAPH_SEARCHES = ("order", "pc")


@dataclass(frozen=True)
class InterventionalConfig:
    num_latents: int = 5          # number of causal variables (nodes of the latent graph)
    hidden: int = 256             # hidden units of the encoder MLP
    depth: int = 4                # hidden layers of the encoder MLP
    slope: float = 0.2            # leaky-ReLU slope of the encoder
    tau: float = 1.0              # temperature of the InfoNCE logits and of the soft "largest change"
    whiten: bool = True           # whiten x (statistics fitted on data) before encoding
    alpha: float = 0.01           # significance level of the conditional-independence tests
    indep_test: str = "fisherz"   # causal-learn CI test on the recovered causal variables
    min_effect: float = 0.1       # smallest standardised direct effect for an edge to be kept (0.2-0.4%
                                  #   of the true edges of the benchmark's 5-8-node graphs are weaker)
    min_partial_corr: float = 0.05  # smallest |partial correlation| of z_i and z_j given j's other
                                  #   predecessors for an edge i -> j: an effect-size floor on the CI test,
                                  #   whose p-value alone turns stage 1's small biases into edges as the
                                  #   number of pairs grows
    graph_search: str = "order"   # "order": test each variable against each predecessor in the inferred
                                  #   causal order given the other predecessors (needs minimality only);
                                  #   "pc": PC's skeleton (needs faithfulness), oriented by the order
    unmix: bool = True            # before stage 2, undo a linear mix of the code estimated from the
                                  #   pairs' change directions (see unmix_from_changes)
    parent_fit_bound: float = 2.0  # stage 2 fits node k's parents' contribution again on the pairs whose
                                  #   first fit lies within this many (standardised code) units of its
                                  #   median, so the intervened code stays in the range stage 1 was trained
                                  #   on (see fit_parents_contribution); 0: fit on all pairs
    known_targets: bool = False   # the pairs' intervention targets are known (CauCA setting; batches
                                  #   carry "target"): stage 1 leaves the target's coordinate out of the
                                  #   distance, so code k is node k, and stage 2 uses the given targets
    refine_from: int = 0          # unknown targets: from this training step on, each pair's target is its own
                                  #   largest batch-standardised code change (detached) and the known-target
                                  #   loss is used (a hard-EM refinement that undoes mixes of two noises stage 1
                                  #   can stop in); 0: never. The runner starts it at 3/4 of the steps
    refine_lr: float = 1 / 3      # learning rate of the refinement as a fraction of the initial one; with
                                  #   lr_decay_steps > refine_from, stage 1's cosine reaches 0 at refine_from
                                  #   and the refinement's starts again from this fraction
    lr_decay_steps: int = 0       # cosine decay of the learning rate to 0 over this many steps (0: constant)
    recon_weight: float = 0.0     # weight of a reconstruction term: a decoder MLP maps the code back to the
                                  #   whitened x (squared error); keeps the code injective (0: off)


@register_model("interventional")
class Interventional(Contrastive):
    r"""Causal representation learning from counterfactual pairs around an unknown
    single-node intervention (ILCM setting, Brehmer et al. 2022), in two stages.

    **Data.** Pairs ``x = g(z)``, ``x~ = g(z~)`` share the exogenous noise of an additive-noise
    SCM ``z_j = f_j(z_pa(j)) + e_j``; in ``x~`` one unknown node k is intervened on. Written in
    the *observational* noise encoding ``e(z)_j = z_j - f_j(z_pa(j))`` (ILCM's "noise
    encoding"), the pair differs in exactly one coordinate: ``e(z~)_j = e_j`` for ``j != k``
    and ``e(z~)_k = z~_k - f_k(z_pa(k))``.

    **Stage 1 (this module's training).** An encoder ``h: x -> R^n`` trained by InfoNCE with
    the similarity of a pair that shares all coordinates but one (:func:`one_change_distance`:
    L1 over all coordinates except, softly, the one that changed most) recovers the independent
    noise encoding ``e`` up to permutation and per-coordinate maps.

    **Stage 2 (:meth:`infer_graph`, after training).** First, when ``unmix`` is set, a linear
    mix left in the code is undone (:func:`unmix_from_changes`): a pair changes one noise, so its
    code change points along one column of the mix. For pairs whose code changed along coordinate
    k (the inferred target), a regression of ``h(x~)_k`` on ``h(x)`` estimates
    ``E[e(z~)_k | e] = E[z~_k] - f_k(z_pa(k))``; hence the causal variable
    ``z_k = e_k + f_k(z_pa(k)) ≈ h(x)_k - E[h(x~)_k | h(x)] + const`` (fitted again on the pairs
    whose fit stays within ``parent_fit_bound``, where stage 1 was trained: see
    :func:`fit_parents_contribution`). The causal order comes
    from which noises enter which variables (ancestors' noise drives descendants). With the order
    known the DAG is identified under causal minimality alone: ``i -> j`` for a predecessor ``i``
    of ``j`` iff ``z_i`` and ``z_j`` are dependent given the other predecessors of ``j``
    (``graph_search="order"``: causal-learn's CI test); ``graph_search="pc"`` uses PC's skeleton
    instead, which also needs faithfulness. Either way an edge is kept only when that partial
    correlation is at least ``min_partial_corr`` in size and the standardised direct effect at
    least ``min_effect``: stage 1 is never exact, and a test's p-value alone finds its small
    biases significant once there are enough pairs (on the benchmark, 50,000 pairs without the
    floor gave more errors than 5,000). Exact for linear SCMs with affine stage-1 maps; an
    approximation for nonlinear ones.

    **Refinement** (``refine_from`` > 0, unknown targets only). Stage 1 can stop with two noises
    mixed, linearly or not (the soft "largest change" lets both mixed coordinates change), while
    its loss is near 0. From step ``refine_from`` on, each pair's target is taken to be its own
    largest batch-standardised code change (no gradient) and the pair is scored by
    :func:`known_change_info_nce` with that target: the other coordinates must not change at all,
    so a coordinate that leans towards one noise is pulled onto it (a hard-EM step). When
    ``lr_decay_steps`` goes past ``refine_from``, stage 1's cosine schedule ends at
    ``refine_from`` and the refinement's starts again from ``refine_lr`` times the rate. On the
    5-node benchmark graphs where stage 1 had stopped mixed this took SHD 4 / 2 / 3 to 1 / 0 / 0;
    with it (and stage 2 on 50,000 pairs), one run of the runner reaches SHD <= 1 on all 39 5-node
    seeds measured (bench/RESULTS_identify.md). A stage 1 can also *fold* (two noises in one
    coordinate, one noise over two) at near-zero loss, which the refinement does not undo; the
    runner flags it by ``target_balance`` (see :meth:`causal_variables`) and trains restarts.

    **Reconstruction term** (``recon_weight`` > 0; the runner uses 1). A decoder MLP maps the code
    back to the whitened x and ``recon_weight`` times its squared error is added to the loss. Any
    injective code can be decoded, so the term leaves the noise encoding optimal; a folded code has
    lost a noise and cannot. It does not rule folds out, but made them rarer on 6-node graphs
    (bench/RESULTS_identify.md, eighth session). ILCM itself is a VAE, whose reconstruction keeps
    its encoder injective in the same way.

    **Known targets** (``known_targets=True``, the CauCA setting): stage 1 is trained with
    :func:`known_change_info_nce`, which names the coordinate each pair may change, so code k
    is tied to node k; stage 2 takes the given targets instead of inferring them from the codes.

    Batches: ``{"x": (B, D), "x2": (B, D)}``, plus ``"target": (B,)`` with ``known_targets``.
    """

    Config = InterventionalConfig
    batch_kind = "intervention_pair"
    pair_keys = ("x2", "x_int", "x_intervened", "x_tilde", "x_pos", "x_pair")

    def __init__(self, config: InterventionalConfig, observation_shape: tuple[int, ...]):
        Method.__init__(self, config, observation_shape)
        d = _vector_dim(observation_shape, "interventional")
        _check_positive("tau", config.tau)
        if not 0 < config.alpha < 1:
            raise CrlkitError(f"alpha must be in (0, 1); got {config.alpha}")
        _check_choice("indep_test", config.indep_test, ("fisherz", "kci"))
        if config.num_latents < 2:
            raise CrlkitError(f"num_latents must be >= 2 to learn a graph; got {config.num_latents}")
        if config.refine_from < 0:
            raise CrlkitError(f"refine_from must be >= 0 (0: no refinement); got {config.refine_from}")
        _check_positive("refine_lr", config.refine_lr)
        if config.min_effect < 0:
            raise CrlkitError(f"min_effect must be >= 0; got {config.min_effect}")
        if not 0 <= config.min_partial_corr < 1:
            raise CrlkitError(f"min_partial_corr must be in [0, 1); got {config.min_partial_corr}")
        if config.parent_fit_bound < 0:
            raise CrlkitError(f"parent_fit_bound must be >= 0 (0: fit on all pairs); got {config.parent_fit_bound}")
        self.whitening = Whitening(d, enabled=config.whiten)
        self.encoder = mlp(d, config.num_latents, config.hidden, config.depth, slope=config.slope)
        if config.recon_weight < 0:
            raise CrlkitError(f"recon_weight must be >= 0 (0: no reconstruction term); got {config.recon_weight}")
        self.decoder = (mlp(config.num_latents, d, config.hidden, config.depth, slope=config.slope)
                        if config.recon_weight > 0 else None)
        _check_choice("graph_search", config.graph_search, GRAPH_SEARCHES)
        self.normalize = _Normalize("none")

    def _lr_factor(self, step: int) -> float | None:
        """Two cosine schedules when a refinement follows stage 1 within ``lr_decay_steps``:
        1 -> 0 over steps [0, refine_from), then refine_lr -> 0 over [refine_from, lr_decay_steps)."""
        cfg = self.config
        r, t = int(cfg.refine_from), int(cfg.lr_decay_steps)
        if r <= 0 or cfg.known_targets or t <= r:
            return super()._lr_factor(step)
        return _cosine(step, r) if step < r else cfg.refine_lr * _cosine(step - r, t - r)

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        x2 = _get(batch, self.pair_keys, "interventional")
        self.whitening.update(torch.cat([x, x2]))
        xw = self.whitening(torch.cat([x, x2]))  # whitened once: the encoder's input and the decoder's target
        h1, h2 = self.normalize(self.encoder(xw)).chunk(2)  # self.encode, one pass over both halves of the pairs
        tau = self.config.tau
        if self.config.known_targets:
            if "target" not in batch:
                raise CrlkitError("interventional with known_targets=True needs batches with a 'target' entry "
                                  "(the intervened node of each pair, as the intervention_pair sampler gives); "
                                  f"got keys {sorted(batch)}")
            loss = known_change_info_nce(h1, h2, batch["target"], tau=tau)
        elif 0 < self.config.refine_from <= step:
            with torch.no_grad():  # each pair's own largest standardised change names its target
                target = ((h1 - h2).abs() / h1.std(0).clamp_min(1e-6)).argmax(1)
            loss = known_change_info_nce(h1, h2, target, tau=tau)
        else:
            loss = info_nce(h1, h2, tau=tau, distance=lambda a, b: one_change_distance(a, b, tau))
        terms = {"info_nce": loss.detach()}
        if self.decoder is not None:
            recon = (self.decoder(torch.cat([h1, h2])) - xw).pow(2).sum(-1).mean()
            loss = loss + self.config.recon_weight * recon
            terms["recon"] = recon.detach()
        with torch.no_grad():
            d = (h1 - h2).abs()
            # share of the change carried by the largest coordinate: 1 = a single-node change
            sparsity = (d.max(-1).values / d.sum(-1).clamp_min(1e-8)).mean()
        return loss, {**terms, "top_change_share": sparsity}

    @torch.no_grad()
    def causal_variables(self, x: np.ndarray | torch.Tensor, x_int: np.ndarray | torch.Tensor,
                         targets: np.ndarray | torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """Stage 2: the causal variables and the noise-to-variable weights from pairs.

        ``targets``: (N,) the intervened node of each pair when known (code coordinate k is
        node k for a model trained with ``known_targets``); inferred from the codes otherwise.

        Returns ``{"z": (N, n) recovered causal variables for x, "noise": (N, n) codes h(x)
        (after the unmixing), "unmixing": (n, n) map T applied to the raw codes (h(x) @ T; the
        identity when ``unmix`` is off), "targets": (N,) intervened coordinate per pair (the given
        targets, else inferred),
        "weights": (n, n) with weights[i, k] = |coefficient of noise i in z_k|, "direct": (n, n)
        standardised direct effects (linear reading: z = e (I + C) = z A + e, so
        A = I - (I + C)^{-1}), "order": the inferred causal order, "change_share": mean over
        pairs of the largest |code change| over the sum of |code changes| (standardised codes),
        a label-free check of stage 1: 1 when every pair changes one coordinate, 1/n when the
        changes are spread evenly, "target_balance": ``exp(H(p)) / n``, the perplexity of the
        share ``p_k`` of pairs whose inferred target is coordinate k over n: 1 when every
        coordinate is the target of the same share of pairs, 1/n when one coordinate takes them
        all. With every node intervened on equally often (the runner's pairs, ILCM's uniform prior
        over targets), a stage 1 that has folded two noises into one coordinate and spread one
        noise over two shows up as imbalance}``.
        """
        dev = next(self.parameters()).device
        was_training = self.training
        self.eval()
        e = self.encode(torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev)).cpu().double().numpy()
        e2 = self.encode(torch.as_tensor(np.asarray(x_int), dtype=torch.float32, device=dev)).cpu().double().numpy()
        self.train(was_training)
        n = e.shape[1]
        if targets is not None and not self.config.known_targets:
            raise CrlkitError("targets can be given only to a model trained with known_targets=True (only there "
                              "is code coordinate k node k); this model infers them from its codes")
        if targets is not None:
            targets = np.asarray(targets.cpu() if torch.is_tensor(targets) else targets).astype(int).ravel()
            if targets.shape != (e.shape[0],) or targets.min() < 0 or targets.max() >= n:
                raise CrlkitError(f"targets must be {e.shape[0]} node indices in [0, {n - 1}]; got shape "
                                  f"{targets.shape}, range [{targets.min()}, {targets.max()}]")
        t = unmix_from_changes(e, e2, targets=targets) if self.config.unmix else np.eye(n)
        e, e2 = e @ t, e2 @ t
        e_s, e2_s = (e - e.mean(0)) / (e.std(0) + 1e-12), (e2 - e.mean(0)) / (e.std(0) + 1e-12)
        change = np.abs(e2_s - e_s)
        if targets is None:
            targets = change.argmax(1)
        # 1 when every pair changes a single code coordinate (the noise encoding of a linear code)
        change_share = float(np.mean(change.max(1) / np.maximum(change.sum(1), 1e-12)))
        share = np.bincount(targets, minlength=n) / len(targets)
        share = share[share > 0]
        target_balance = float(np.exp(-(share * np.log(share)).sum()) / n)  # perplexity / n
        c = np.zeros((n, n))  # c[i, k]: coefficient of noise i in z_k - e_k
        for k in range(n):
            sel = targets == k
            if sel.sum() < n + 2:
                continue  # never intervened on: treated as a root
            # z_k = e_k + f_k(pa) and E[e~_k | e] = const - f_k(pa): minus the fit, without e_k itself
            c[:, k] = -fit_parents_contribution(e_s[sel], e2_s[sel, k], bound=self.config.parent_fit_bound)
            c[k, k] = 0.0
        order = _causal_order(np.abs(c))
        rank = np.empty(n, dtype=int)
        rank[order] = np.arange(n)
        c_dag = np.where(rank[:, None] < rank[None, :], c, 0.0)  # only ancestors' noise enters
        z = e_s @ (np.eye(n) + c_dag)  # (N, n)
        a = np.eye(n) - np.linalg.inv(np.eye(n) + c_dag)  # direct effects in these units
        sd = z.std(0) + 1e-12
        direct = a * sd[:, None] / sd[None, :]  # standardised: effect of a 1-sd change of z_i on z_j in sd
        np.fill_diagonal(direct, 0.0)
        return {"z": z, "noise": e, "unmixing": t, "targets": targets, "weights": np.abs(c), "direct": direct,
                "order": order, "change_share": change_share, "target_balance": target_balance}

    def infer_graph(self, x, x_int, targets=None) -> dict[str, Any]:
        """The latent graph over the stage-2 causal variables (see the class docstring).

        The causal order comes from the noise weights (ancestors' noise enters descendants).
        ``graph_search="order"``: ``i -> j`` for each predecessor ``i`` of ``j`` that
        causal-learn's CI test (``indep_test``, level ``alpha``) finds dependent on ``j`` given
        the other predecessors of ``j``; ``"pc"``: the edges of PC's skeleton, oriented along
        the order. Either way an edge ``i -> j`` needs ``|partial correlation of z_i and z_j given
        j's other predecessors| >= min_partial_corr`` and a standardised direct effect (see
        :meth:`causal_variables`) of at least ``min_effect``.

        Returns ``{"graph": (n, n) int adjacency, graph[i, j] = 1 iff i -> j in the learned
        coordinates, "skeleton": (n, n) symmetric skeleton of the CI tests (before the effect
        threshold), "partial": (n, n) partial correlation of z_i and z_j given j's other
        predecessors (i before j in the order; 0 elsewhere), "z": recovered variables, "targets":
        inferred intervention targets, "noise": the codes, "unmixing", "weights", "direct",
        "order", "change_share", "target_balance": see :meth:`causal_variables`}``.
        """
        cv = self.causal_variables(x, x_int, targets)
        z = cv["z"]
        z_std = (z - z.mean(0)) / (z.std(0) + 1e-12)
        cfg = self.config
        if cfg.graph_search == "pc":
            from causallearn.search.ConstraintBased.PC import pc

            cg = pc(z_std, alpha=cfg.alpha, indep_test=cfg.indep_test, stable=True, show_progress=False)
            g = np.asarray(cg.G.graph)
            skeleton = ((g != 0) | (g.T != 0)).astype(int)
        else:
            skeleton = _ordered_dependence(z_std, cv["order"], alpha=cfg.alpha, indep_test=cfg.indep_test)
            skeleton = skeleton | skeleton.T
        np.fill_diagonal(skeleton, 0)
        direct = np.abs(cv["direct"])  # non-zero only from earlier to later in the causal order
        partial = ordered_partial_correlation(z_std, cv["order"])
        adj = ((skeleton == 1) & (np.abs(partial) >= cfg.min_partial_corr) & (direct >= cfg.min_effect)).astype(int)
        return {"graph": adj, "skeleton": skeleton, "partial": partial, **cv}


def unmix_from_changes(e: np.ndarray, e2: np.ndarray, *, targets: np.ndarray | None = None, max_iter: int = 20,
                       tol: float = 1e-3) -> np.ndarray:
    r"""A linear map ``T`` under which the changes of counterfactual pairs are one-sparse.

    If the codes are an invertible linear mix of independent noises, ``e = eps M^T`` (rows are
    samples), a pair whose noises differ in coordinate k only changes its code along column k of
    ``M``: ``e2 - e = (eps2_k - eps_k) M[:, k]``. Taking each pair's target as its largest
    standardised change, the least-squares slope of every coordinate's change on coordinate k's
    change over the pairs of target k estimates ``M[:, k]`` (with ``M_kk = 1``), and
    ``e M^{-T}`` changes in one coordinate per pair. Targets are re-assigned and the step repeated
    until the estimated ``M`` is within ``tol`` of the identity (or ``max_iter`` steps).

    Exact when the code is an affine function of the noises (the mix of two coordinates that a
    stage-1 encoder can stop in: seen as a 2-D rotation of two noises); a first-order correction
    when it is nonlinear. Codes that are already one-sparse give ``T`` = diagonal (a rescaling).

    Parameters
    ----------
    e, e2 : ndarray, shape (N, n)
        Codes of the pairs before and after the intervention.
    targets : ndarray, shape (N,), optional
        The intervened coordinate of each pair when known; otherwise each step takes the largest
        standardised change.

    Returns
    -------
    T : ndarray, shape (n, n)
        ``e @ T`` is standardised (per the pre-intervention codes) and unmixed.
    """
    e, e2 = np.asarray(e, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    if e.shape != e2.shape or e.ndim != 2:
        raise CrlkitError(f"e and e2 must be (N, n) arrays of the same shape; got {e.shape} and {e2.shape}")
    n = e.shape[1]
    t = np.eye(n)
    for _ in range(max_iter):
        u, u2 = e @ t, e2 @ t
        sd = u.std(0) + 1e-12
        t = t / sd[None, :]
        d = (u2 - u) / sd
        tg = np.abs(d).argmax(1) if targets is None else targets
        m = np.eye(n)
        for k in range(n):
            sel = tg == k
            if sel.sum() < n + 2:
                continue
            m[:, k] = (d[sel] * d[sel, k:k + 1]).sum(0) / (d[sel, k] ** 2).sum()
        if np.linalg.cond(m) > 1e6:
            break  # degenerate estimate (two targets share a direction): keep the last good map
        t = t @ np.linalg.inv(m).T
        if np.abs(m - np.eye(n)).max() < tol:
            break
    return t / ((e @ t).std(0) + 1e-12)[None, :]


def fit_parents_contribution(e: np.ndarray, y: np.ndarray, *, bound: float = 2.0, iters: int = 3,
                             min_rows_per_coef: int = 20) -> np.ndarray:
    r"""Coefficients of the linear regression of the intervened code on the codes before, fitted
    where the intervened code stays in range.

    Stage 2 of :class:`Interventional` estimates node k's parents' contribution from the pairs
    that intervene on k: ``E[e~_k | e] = const - f_k(pa(e))``. A nearly deterministic node (its
    noise a few % of its variance) has a contribution many times its noise's spread, so the
    intervened code ``e~_k`` reaches far outside the range of ``e_k`` over observational
    samples. Stage 1 never trains coordinate k there: a pair's own target is left out of its
    similarity, so the code's scale on those values is extrapolated (measured 1.6-2.5x too steep
    on 7-node seed 3, which put a node after its child). After a first least-squares fit this
    fits again on the rows whose fitted value lies within ``bound`` of its median, and repeats
    ``iters`` times. The rows are chosen by the regressors ``e`` (through the fit), not by ``y``,
    so for a linear contribution the fit stays unbiased; the rows left still vary freely in the
    other directions. Nodes whose contribution is small keep most rows.

    Parameters
    ----------
    e : ndarray, shape (N, n)
        Standardised codes before the intervention (the regressors).
    y : ndarray, shape (N,)
        The target's code after the intervention, in the same units.
    bound : float
        Half-width of the kept slab of fitted values; 0 fits once on all rows.
    iters : int
        Refits on the slab.
    min_rows_per_coef : int
        A refit needs at least this many rows per coefficient; otherwise the last fit is kept.

    Returns
    -------
    coef : ndarray, shape (n,)
        Slopes of ``y`` on ``e`` (no intercept).
    """
    from sklearn.linear_model import LinearRegression

    e, y = np.asarray(e, dtype=np.float64), np.asarray(y, dtype=np.float64)
    reg = LinearRegression().fit(e, y)
    if bound <= 0:
        return reg.coef_
    for _ in range(iters):
        fit = reg.predict(e)
        keep = np.abs(fit - np.median(fit)) <= bound
        if keep.sum() < min_rows_per_coef * e.shape[1]:
            break
        reg = LinearRegression().fit(e[keep], y[keep])
    return reg.coef_


def ordered_partial_correlation(z: np.ndarray, order) -> np.ndarray:
    r"""Partial correlations along a causal order.

    ``rho[i, j]`` for ``i`` before ``j`` in ``order`` is the partial correlation of ``z_i`` and
    ``z_j`` given the other predecessors of ``j``, read off the precision matrix of the
    predecessors and ``j``: ``rho = -P_ij / sqrt(P_ii P_jj)`` with ``P = Cov(z_S)^{-1}``,
    ``S = pred(j) + {j}``. For a linear SCM whose order is right it is 0 exactly when ``i -> j``
    is not an edge (the statistic behind the Fisher-z test); other entries are 0.

    Parameters
    ----------
    z : ndarray, shape (N, n)
    order : sequence of int
        A permutation of ``range(n)``.

    Returns
    -------
    rho : ndarray, shape (n, n)
    """
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[1]
    order = [int(k) for k in order]
    if sorted(order) != list(range(n)):
        raise CrlkitError(f"order must be a permutation of 0..{n - 1}; got {order}")
    cov = np.cov(z, rowvar=False)
    rho = np.zeros((n, n))
    for pos in range(1, n):
        s = order[:pos + 1]  # predecessors of j, then j
        prec = np.linalg.pinv(cov[np.ix_(s, s)])
        d = np.sqrt(np.clip(np.diag(prec), 1e-300, None))
        rho[s[:-1], s[-1]] = -prec[:-1, -1] / (d[:-1] * d[-1])
    return rho


def _ordered_dependence(z: np.ndarray, order, *, alpha: float, indep_test: str) -> np.ndarray:
    """``dep[i, j] = 1`` for each predecessor ``i`` of ``j`` in ``order`` that causal-learn's CI
    test finds dependent on ``j`` given the other predecessors of ``j`` (p-value < alpha)."""
    from causallearn.utils.cit import CIT

    test = CIT(z, indep_test)
    n = z.shape[1]
    dep = np.zeros((n, n), dtype=int)
    for pos, j in enumerate(order):
        before = [int(i) for i in order[:pos]]
        for i in before:
            rest = [p for p in before if p != i]
            if test(i, int(j), rest) < alpha:
                dep[i, j] = 1
    return dep


def _causal_order(w: np.ndarray) -> np.ndarray:
    """Greedy topological order from ``w[i, k]`` = how much node i's noise enters node k:
    repeatedly take the remaining node whose incoming weight from the remaining nodes is least."""
    left = list(range(w.shape[0]))
    order = []
    while left:
        incoming = [w[left, k].sum() - w[k, k] for k in left]
        k = left[int(np.argmin(incoming))]
        order.append(k)
        left.remove(k)
    return np.array(order)
