r"""identifiable VAE (Khemakhem, Kingma, Monti & Hyvärinen, AISTATS 2020).

Generative model with an observed auxiliary variable ``u`` (here the one-hot segment)::

    p(z | u) = prod_i N(z_i; mu_i(u), exp(lambda_i(u)))     (conditionally factorised)
    p(x | z) = N(x; f(z), decoder_var * I)                  (in whitened units of x)

With >= 2n + 1 distinct values of u whose log-variances are affinely independent, z is
identified up to a permutation and a per-coordinate affine map (Theorem 1 of the paper).

Two presets name complete configurations (``--set preset=paper`` in ``crlkit train`` and
``crlkit identify`` alike); the fields marked *preset* in :class:`IVAEConfig` default to the
preset's value and any of them can still be set on its own:

==========  =========  ==  =======  ========  =====  =====  =======================================
preset      posterior  K   whiten   schedule  lr     batch  what
==========  =========  ==  =======  ========  =====  =====  =======================================
benchmark   full       8   yes      cosine    1e-2   256    the default: the configuration behind
                                                            bench/RESULTS_identify.md
paper       diagonal   1   no       constant  1e-3   64     the paper's set-up: mean-field q(z|x),
                                                            the ELBO, raw x, the reference code's
                                                            Adam rate and batch
==========  =========  ==  =======  ========  =====  =====  =======================================

The learning rate and batch size are training options: :meth:`IVAE.train_defaults` gives the
preset's, which the runner (``crlkit identify``) uses unless ``--set lr=...`` /
``--set batch_size=...`` says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from crlkit.errors import CrlkitError
from crlkit.models._common import (LOGVAR_RANGE, Whitening, batch_entry, check_at_least, check_choice, check_positive,
                                   clamp_straight_through, gaussian_kl, method_callbacks, one_hot, prior_split,
                                   vector_dim)
from crlkit.models.architectures import mlp
from crlkit.models.base import Method, register_model
from crlkit.train.schedules import SCHEDULES

__all__ = ["IVAEConfig", "IVAE", "IVAE_PRESETS", "IVAE_POSTERIORS", "IVAE_MAX_OFFDIAG_RATIO"]

IVAE_POSTERIORS = ("diagonal", "full")

#: preset -> (values of the preset fields of IVAEConfig, training options)
IVAE_PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "benchmark": (dict(posterior="full", importance_samples=8, whiten=True, lr_schedule="cosine"),
                  dict(lr=1e-2, batch_size=256)),
    "paper": (dict(posterior="diagonal", importance_samples=1, whiten=False, lr_schedule="constant"),
              dict(lr=1e-3, batch_size=64)),
}

#: full posterior: bound on |L_ij / L_ii| (j < i). Unbounded off-diagonal entries let one run's
#: encoder pair a log-variance near -20 with entries near 15 and the loss jumped from 25 to 3e3
#: (3 leaky-ReLU layers, seed 0, lr 1e-2, step ~5000), which gradient clipping did not prevent.
IVAE_MAX_OFFDIAG_RATIO = 10.0


@dataclass(frozen=True)
class IVAEConfig:
    preset: str = "benchmark"     # named configuration filling the preset fields below: "benchmark" or "paper"
    num_latents: int = 5          # n, size of z
    aux_dim: int = 40             # size of the auxiliary variable u (one-hot segments: their number)
    hidden: int = 128             # hidden units of encoder, decoder and prior MLPs (128 beat 64 and 256 here)
    depth: int = 3                # hidden layers of encoder and decoder
    prior_depth: int = 2          # hidden layers of the prior MLP u -> (mean, log-variance)
    slope: float = 0.1            # leaky-ReLU slope of all MLPs (0.1 as in the iVAE code)
    prior_mean: bool = True       # learn the prior mean as a function of u (else mean 0)
    decoder_var: float = 0.01     # fixed variance of p(x|z) = N(f(z), decoder_var I), whitened units
    beta: float = 1.0             # weight of the KL term (1 = the ELBO)
    separate_variance: bool = False  # posterior log-variance from its own MLP (as the reference code)
                                  #   instead of a second head of the mean's MLP
    posterior: str | None = None  # preset: q(z|x) "full" (covariance L L^T, L's strictly lower part from
                                  #   its own MLP) or "diagonal" (mean-field, the paper's); see IVAE
    importance_samples: int | None = None  # preset: K, train on the importance-weighted bound with K
                                  #   samples of q(z|x) per x (Burda et al. 2016); 1 = the ELBO
    whiten: bool | None = None    # preset: whiten x (fitted on a fixed sample before step 1)
    lr_schedule: str | None = None  # preset: "cosine" (decay to 0 over the run) or "constant"
    lr_decay_steps: int = 0       # length of the cosine in steps (0: the run's --steps); fixed, an extended
                                  #   (--resume with more --steps) run keeps its schedule

    def __post_init__(self):
        check_choice("preset", self.preset, tuple(IVAE_PRESETS))
        for key, value in IVAE_PRESETS[self.preset][0].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)


@register_model("ivae")
class IVAE(Method):
    r"""identifiable VAE (see the module docstring for the model and the presets).

    Trained by the ELBO with a Gaussian posterior ``q(z | x)``:
    ``loss = E_q[||x_w - f(z)||^2] / (2 decoder_var) + beta * KL(q(z|x) || p(z|u))`` (x_w the
    whitened x; per sample, mean over the batch; constants dropped). The posterior conditions on
    x only (the paper's q(z|x,u) also sees u); the prior carries all the u-dependence, and
    ``encode(x)`` then needs no u.

    **Posterior family.** With ``posterior="diagonal"`` (the paper's), near the deterministic
    limit the ELBO at the true decoder falls short of the log-likelihood by the mean of
    ``sum_i log ||J_i|| - log |det J|`` (J the decoder Jacobian, J_i its columns: the
    "independent mechanism analysis" gap of Reizinger et al., NeurIPS 2022), which is zero only
    for decoders with orthogonal Jacobian columns. Random leaky-ReLU mixings with slope 0.1 are
    far from that (6-8 nats per sample for 3 layers, n = 5), so the mean-field ELBO prefers
    entangled solutions there (bench/RESULTS_identify.md). ``posterior="full"`` uses
    ``q(z|x) = N(m(x), L(x) L(x)^T)`` with ``L = diag(exp(l(x) / 2)) (I + N(x))``, ``N`` strictly
    lower with entries ``10 tanh(o(x) / 10)`` from its own MLP ``o``, which removes that gap; the KL
    to the factorised prior stays closed-form (``log det L L^T = sum_i l_i(x)``).

    **Importance weighting.** ``importance_samples=K > 1`` trains on the importance-weighted bound
    ``E log (1/K) sum_k p(x, z_k|u) / q(z_k|x)`` (Burda, Grosse & Salakhutdinov, ICLR 2016), which
    lies between the ELBO and ``log p(x|u)`` and approaches the latter as K grows.

    **Reported bounds.** The terms ``elbo`` (and ``iw_bound`` for K > 1) are bounds on
    ``log p(x | u)`` in the data's units: the Gaussian constants are included and whitening's
    ``log |det W|`` added, so runs with different whitening maps compare.

    Batches: ``{"x": (B, D), "u": (B,) segment index or (B, aux_dim) one-hot}``.
    """

    Config = IVAEConfig
    batch_kind = "segment"

    def __init__(self, config: IVAEConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        d = vector_dim(observation_shape, "ivae")
        n = config.num_latents
        check_positive("decoder_var", config.decoder_var)
        check_at_least("num_latents", n, 1)
        check_at_least("aux_dim", config.aux_dim, 1)
        if int(config.importance_samples) != config.importance_samples or config.importance_samples < 1:
            raise CrlkitError(f"importance_samples must be an integer >= 1; got {config.importance_samples!r}")
        check_choice("posterior", config.posterior, IVAE_POSTERIORS)
        check_choice("lr_schedule", config.lr_schedule, SCHEDULES)
        self.whitening = Whitening(d, enabled=config.whiten)
        self.encoder = mlp(d, n if config.separate_variance else 2 * n, config.hidden, config.depth,
                           slope=config.slope)
        self.encoder_logvar = (mlp(d, n, config.hidden, config.depth, slope=config.slope)
                               if config.separate_variance else None)
        self.encoder_offdiag = (mlp(d, n * (n - 1) // 2, config.hidden, config.depth, slope=config.slope)
                                if config.posterior == "full" and n > 1 else None)
        self.register_buffer("_tril", torch.tril_indices(n, n, offset=-1), persistent=False)
        self.decoder = mlp(n, d, config.hidden, config.depth, slope=config.slope)
        self.prior = mlp(config.aux_dim, 2 * n if config.prior_mean else n, config.hidden,
                         config.prior_depth, slope=config.slope)

    @staticmethod
    def train_defaults(config: IVAEConfig) -> dict[str, Any]:
        """The training options of ``config``'s preset (``lr``, ``batch_size``)."""
        return dict(IVAE_PRESETS[config.preset][1])

    def callbacks(self, train_config: Any) -> list:
        """Whitening fitted before step 1; the cosine learning-rate schedule."""
        return method_callbacks(self.config.whiten, self.config.lr_schedule, steps=self.config.lr_decay_steps)

    # -- the posterior q(z|x) and the prior p(z|u) ------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]

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
        if self.encoder_logvar is not None:
            mean, logvar = self.encoder(xw), self.encoder_logvar(xw)
        else:
            mean, logvar = self.encoder(xw).chunk(2, dim=-1)
        logvar = clamp_straight_through(logvar, *LOGVAR_RANGE)
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
        return (0.5 * logvar).exp().unsqueeze(-1) * unit  # (B, n, n)

    @staticmethod
    def _reparameterise(mean, logvar, scale_tril, eps):
        """``z = mean + L eps`` for standard normal ``eps`` of shape (..., B, n) (L diagonal,
        ``exp(logvar / 2)``, for the mean-field posterior)."""
        if scale_tril is None:
            return mean + eps * (0.5 * logvar).exp()
        return mean + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def prior_params(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of p(z|u), each (B, n)."""
        return prior_split(self.prior(one_hot(u, self.config.aux_dim)), self.config.prior_mean)

    # -- objective --------------------------------------------------------------------------
    def _data_units(self, xw: torch.Tensor) -> torch.Tensor:
        """What turns a bound with the constants dropped into a bound on log p(x|u) in the data's
        units: ``-D/2 log(2 pi decoder_var) + log |det W|``."""
        d = xw.shape[-1]
        return -0.5 * d * math.log(2 * math.pi * self.config.decoder_var) + self.whitening.log_abs_det()

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        u = batch_entry(batch, ("u", "segment", "segments"), "ivae")
        xw = self.whitening(batch["x"])
        mean, logvar, scale_tril = self._q(xw)
        if self.config.importance_samples > 1:
            return self._importance_weighted_loss(xw, u, mean, logvar, scale_tril)
        z = self._reparameterise(mean, logvar, scale_tril, self.randn_like(mean))
        post_var = logvar.exp() if scale_tril is None else scale_tril.pow(2).sum(-1)  # diag(L L^T)
        recon = (self.decoder(z) - xw).pow(2).sum(-1).mean() / (2 * self.config.decoder_var)
        p_mean, p_logvar = self.prior_params(u)
        kl = gaussian_kl(mean, logvar, p_mean, p_logvar, var=post_var).mean()
        total = recon + self.config.beta * kl
        elbo = -(recon + kl) + self._data_units(xw)
        return total, {"recon": recon.detach(), "kl": kl.detach(), "elbo": elbo.detach()}

    def _importance_weighted_loss(self, xw, u, mean, logvar, scale_tril):
        """Negative importance-weighted bound ``log (1/K) sum_k p(x, z_k | u) / q(z_k | x)``,
        ``z_k ~ q(z|x)``, with the constants dropped as in the ELBO above. ``beta`` weights
        ``log p(z|u) - log q(z|x)`` in each weight."""
        k = self.config.importance_samples
        eps = torch.stack([self.randn_like(mean) for _ in range(k)])          # (K, B, n)
        z = self._reparameterise(mean, logvar, scale_tril, eps)
        log_px = -(self.decoder(z) - xw).pow(2).sum(-1) / (2 * self.config.decoder_var)  # (K, B)
        p_mean, p_logvar = self.prior_params(u)
        # log p(z|u) - log q(z|x); the log(2 pi) terms cancel, and log det L = sum logvar / 2
        log_ratio = -0.5 * (p_logvar + (z - p_mean).pow(2) / p_logvar.exp() - eps.pow(2) - logvar).sum(-1)
        log_w = log_px + self.config.beta * log_ratio
        bound = (torch.logsumexp(log_w, 0) - math.log(k)).mean()
        units = self._data_units(xw)
        elbo = (log_px + log_ratio).mean() + units
        return -bound, {"recon": -log_px.mean().detach(), "kl": -log_ratio.mean().detach(),
                        "elbo": elbo.detach(), "iw_bound": (bound + units).detach()}

