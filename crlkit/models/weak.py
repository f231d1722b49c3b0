"""Weakly supervised VAEs on pairs (Locatello et al. 2020, "Weakly-Supervised
Disentanglement Without Compromises"): Ada-GVAE and Ada-ML-VAE.

Both encode the two observations of a pair (``batch["x"]``, ``batch["x2"]``, from the
``"pair"`` sampler), estimate which latent dimensions are shared with the adaptive threshold,
replace the shared dimensions' posteriors of both images by an aggregate, and train a beta-VAE
on each image with its aggregated posterior:

    delta_j = KL(q(z_j|x1) || q(z_j|x2))   per pair, per dimension
    shared_j = delta_j < (min_j delta + max_j delta) / 2   (two equal-width bins)
    loss = 0.5 (rec1 + rec2) + beta * 0.5 (KL1 + KL2)

Aggregates (as disentanglement_lib):
- Ada-GVAE (Hosoya 2019 group VAE): arithmetic means mu = (mu1 + mu2) / 2,
  sigma^2 = (sigma1^2 + sigma2^2) / 2.
- Ada-ML-VAE (Bouchacourt et al. 2018): product of experts, mean precision-weighted
  (mu1 sigma2^2 + mu2 sigma1^2) / (sigma1^2 + sigma2^2); variance 2 sigma1^2 sigma2^2 / (sigma1^2 + sigma2^2)
  (the harmonic mean of the two variances, disentanglement_lib's normalisation).

``delta_j`` is disentanglement_lib's ``compute_kl``, i.e. twice the Gaussian KL; the factor
does not move the halfway threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from crlkit.models.base import register_model
from crlkit.models.vae import VAE, VAEConfig, gaussian_kl


def pairwise_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """Per-dimension 2 KL(N1 || N2) = s1/s2 + (m2 - m1)^2 / s2 - 1 + log s2 - log s1 (B, D)."""
    var1, var2 = logvar1.exp(), logvar2.exp()
    return var1 / var2 + (mean2 - mean1).square() / var2 - 1 + logvar2 - logvar1


def adaptive_shared_mask(delta: torch.Tensor) -> torch.Tensor:
    """True where a dimension is estimated shared: ``delta`` below halfway between the row's
    min and max (the lower of two equal-width bins). (B, D) bool. A row whose divergences
    are all equal (e.g. two identical images) counts as fully shared."""
    lo = delta.min(1, keepdim=True).values
    hi = delta.max(1, keepdim=True).values
    return (delta < 0.5 * (lo + hi)) | (hi == lo)


@dataclass(frozen=True)
class WeakVAEConfig(VAEConfig):
    beta: float = 1.0  # KL weight (Locatello et al. 2020 grid {1, 2, 4, 6, 8, 16})


class _AdaVAE(VAE):
    Config = WeakVAEConfig
    batch_kind = "pair"

    def aggregate(self, mean1, logvar1, mean2, logvar2) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loss(self, batch, step):
        x1, x2 = batch["x"], batch["x2"]
        mean1, logvar1 = self.encode_dist(x1)
        mean2, logvar2 = self.encode_dist(x2)
        shared = adaptive_shared_mask(pairwise_kl(mean1, logvar1, mean2, logvar2).detach())
        agg_mean, agg_logvar = self.aggregate(mean1, logvar1, mean2, logvar2)
        m1 = torch.where(shared, agg_mean, mean1)
        lv1 = torch.where(shared, agg_logvar, logvar1)
        m2 = torch.where(shared, agg_mean, mean2)
        lv2 = torch.where(shared, agg_logvar, logvar2)
        rec1 = self.reconstruction_loss(x1, self.decoder(self.sample_latent(m1, lv1)))
        rec2 = self.reconstruction_loss(x2, self.decoder(self.sample_latent(m2, lv2)))
        rec = 0.5 * (rec1 + rec2)
        kl = 0.5 * (gaussian_kl(m1, lv1) + gaussian_kl(m2, lv2))
        reg = self.config.beta * kl
        return rec + reg, {"reconstruction": rec, "kl": kl, "regularizer": reg,
                           "shared_dims": shared.float().sum(1).mean()}


@register_model("ada_gvae")
class AdaGVAE(_AdaVAE):
    """Ada-GVAE: shared dimensions get the arithmetic mean of the two posteriors."""

    def aggregate(self, mean1, logvar1, mean2, logvar2):
        return 0.5 * (mean1 + mean2), torch.log(0.5 * (logvar1.exp() + logvar2.exp()))


@register_model("ada_mlvae")
class AdaMLVAE(_AdaVAE):
    """Ada-ML-VAE: shared dimensions get the product of experts of the two posteriors."""

    def aggregate(self, mean1, logvar1, mean2, logvar2):
        var1, var2 = logvar1.exp(), logvar2.exp()
        mean = (mean1 * var2 + mean2 * var1) / (var1 + var2)
        return mean, torch.log(2 * var1 * var2 / (var1 + var2))
