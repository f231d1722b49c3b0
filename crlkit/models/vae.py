"""The unsupervised VAE family of the disentanglement study (Locatello et al. 2019).

Every method is a :class:`VAE` that supplies one ``regularizer``; the objective minimised is

    loss = reconstruction + regularizer(kl, mean, logvar, z, step)

with disentanglement_lib's conventions: ``reconstruction`` is the negative log-likelihood of
``x`` summed over pixels (Bernoulli on logits, or squared error) and averaged over the batch;
``kl = mean_batch 0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``.

Defaults follow disentanglement_lib; each docstring gives the study's grid (50 seeds each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from crlkit.errors import CrlkitError
from crlkit.models.architectures import FactorDiscriminator, make_decoder, make_encoder, resolve_architecture
from crlkit.models.base import Method, make_adam, register_model
from crlkit.registry import unknown_choice

RECONSTRUCTIONS = ("auto", "bernoulli", "l2")


# --------------------------------------------------------------------------------------------
# shared pieces (plain functions, used by the weakly supervised models too)
# --------------------------------------------------------------------------------------------
def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latents, averaged over the batch."""
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1).sum(1).mean()


def gaussian_log_density(samples: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(samples; mean, exp(logvar)) (broadcasting)."""
    return -0.5 * ((samples - mean).square() * torch.exp(-logvar) + logvar + math.log(2 * math.pi))


def total_correlation(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Minibatch estimate of TC(q(z)) = E[log q(z) - sum_j log q(z_j)] (Chen et al. 2018).

    ``log q(z_i) ~ logsumexp_k log q(z_i | x_k)`` over the batch (the constant ``log(N M)``
    terms are dropped, as in disentanglement_lib; they do not change gradients).
    """
    log_qz_prob = gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))  # (B, B, D)
    log_qz_product = torch.logsumexp(log_qz_prob, dim=1).sum(1)  # (B,)
    log_qz = torch.logsumexp(log_qz_prob.sum(2), dim=1)  # (B,)
    return (log_qz - log_qz_product).mean()


def covariance(mean: torch.Tensor) -> torch.Tensor:
    """Biased covariance of the rows of ``mean`` (B, D) -> (D, D)."""
    centred = mean - mean.mean(0, keepdim=True)
    return centred.T @ centred / mean.shape[0]


def dip_regularizer(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """lambda_od * sum_{i != j} Cov_ij^2 + lambda_d * sum_i (Cov_ii - 1)^2 (Kumar et al. 2018)."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.square().sum() + lambda_d * (diag - 1).square().sum()


def permute_dims(z: torch.Tensor, rand) -> torch.Tensor:
    """Shuffle each latent dimension independently across the batch: a sample of prod_j q(z_j).

    ``rand(B, D)`` supplies the uniform noise whose argsort gives the permutations.
    """
    perm = torch.argsort(rand(*z.shape), dim=0)  # (B, D), a permutation per column
    return torch.gather(z, 0, perm)


# --------------------------------------------------------------------------------------------
# the base VAE
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VAEConfig:
    num_latents: int = 10          # latent dimensions (the study uses 10)
    reconstruction: str = "auto"   # "bernoulli" (logits), "l2" (squared error), "auto": bernoulli for images, l2 for vectors
    architecture: str = "auto"     # "conv" (images), "mlp" (vectors), "auto" picks by observation rank
    mlp_hidden: int = 256          # hidden units of the MLP encoder/decoder (vector data only)
    mlp_depth: int = 3             # hidden layers of the MLP encoder/decoder (vector data only)


@register_model("vae")
class VAE(Method):
    """Gaussian VAE (Kingma & Welling 2014): regularizer = KL.

    ``encode(x)`` returns the posterior mean (the "mean representation" the study scores);
    ``encode_dist(x)`` returns ``(mean, logvar)``.
    """

    Config = VAEConfig

    def __init__(self, config: VAEConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        if config.num_latents < 1:
            raise CrlkitError(f"num_latents must be >= 1; got {config.num_latents}")
        if config.reconstruction not in RECONSTRUCTIONS:
            raise CrlkitError(unknown_choice("reconstruction", config.reconstruction, RECONSTRUCTIONS))
        arch = resolve_architecture(config.architecture, self.observation_shape)
        self.reconstruction = config.reconstruction
        if self.reconstruction == "auto":
            self.reconstruction = "bernoulli" if arch == "conv" else "l2"
        mlp = {"hidden": config.mlp_hidden, "depth": config.mlp_depth} if arch == "mlp" else {}
        self.encoder = make_encoder(arch, self.observation_shape, 2 * config.num_latents, **mlp)
        self.decoder = make_decoder(arch, self.observation_shape, config.num_latents, **mlp)

    # --- representation ---------------------------------------------------------------------
    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mean, logvar = h.chunk(2, dim=1)  # (B, D) each
        return mean, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]

    def sample_latent(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Reparameterised sample ``mean + exp(logvar / 2) * eps``."""
        return mean + torch.exp(0.5 * logvar) * self.randn_like(mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Observation-space mean: sigmoid(logits) for images, the raw output for L2 vectors."""
        out = self.decoder(z)
        return out if (self.reconstruction == "l2" and len(self.observation_shape) == 1) else torch.sigmoid(out)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean (deterministic reconstruction)."""
        return self.decode(self.encode(x))

    # --- objective --------------------------------------------------------------------------
    def reconstruction_loss(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Per-sample NLL summed over dimensions, averaged over the batch."""
        if self.reconstruction == "bernoulli":
            return F.binary_cross_entropy_with_logits(out, x, reduction="sum") / x.shape[0]
        pred = out if len(self.observation_shape) == 1 else torch.sigmoid(out)
        return (pred - x).square().sum() / x.shape[0]

    def regularizer(self, kl: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
                    step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The method's regularizer and any extra terms to log; the plain VAE uses the KL."""
        return kl, {}

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        mean, logvar = self.encode_dist(x)
        z = self.sample_latent(mean, logvar)
        rec = self.reconstruction_loss(x, self.decoder(z))
        kl = gaussian_kl(mean, logvar)
        reg, extra = self.regularizer(kl, mean, logvar, z, step)
        return rec + reg, {"reconstruction": rec, "kl": kl, "regularizer": reg, **extra}


# --------------------------------------------------------------------------------------------
# beta-VAE
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0  # weight of the KL (study grid {1, 2, 4, 6, 8, 16}; Higgins et al. used 4 on dSprites)


@register_model("beta_vae")
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017): regularizer = beta * KL."""

    Config = BetaVAEConfig

    def regularizer(self, kl, mean, logvar, z, step):
        return self.config.beta * kl, {}


# --------------------------------------------------------------------------------------------
# AnnealedVAE
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnnealedVAEConfig(VAEConfig):
    gamma: float = 1000.0                # weight of |KL - C| (disentanglement_lib 1000)
    c_max: float = 25.0                  # final capacity C in nats (study grid {5, 10, 25, 50, 75, 100})
    iteration_threshold: int = 100_000   # steps over which C grows linearly from 0 to c_max


@register_model("annealed_vae")
class AnnealedVAE(VAE):
    """AnnealedVAE (Burgess et al. 2018): regularizer = gamma * |KL - C|,
    ``C = min(c_max, c_max * step / iteration_threshold)``."""

    Config = AnnealedVAEConfig

    def capacity(self, step: int) -> float:
        cfg = self.config
        return min(cfg.c_max, cfg.c_max * step / max(cfg.iteration_threshold, 1))

    def regularizer(self, kl, mean, logvar, z, step):
        c = self.capacity(step)
        return self.config.gamma * (kl - c).abs(), {"capacity": torch.full((), c, device=kl.device)}


# --------------------------------------------------------------------------------------------
# FactorVAE
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FactorVAEConfig(VAEConfig):
    gamma: float = 10.0                       # TC weight (study grid {10, 20, 30, 40, 50, 100})
    discriminator_lr: float = 1e-4            # Adam learning rate of the discriminator
    discriminator_betas: tuple[float, float] = (0.5, 0.9)  # Adam betas of the discriminator
    discriminator_hidden: int = 1000          # units per discriminator layer
    discriminator_depth: int = 6              # leaky-ReLU hidden layers of the discriminator


@register_model("factor_vae")
class FactorVAE(VAE):
    """FactorVAE (Kim & Mnih 2018): regularizer = KL + gamma * TC,
    TC ~ E_q(z)[logit_real(z) - logit_fake(z)] from a discriminator D.

    As in the FactorVAE paper (Algorithm 2), each step draws two batches (the sampler gives
    ``2 * batch_size`` samples): the VAE is updated on the first; D learns to tell codes of
    the first batch (label 0) from dimension-wise permuted codes of the second (label 1).
    D's loss uses detached codes (no D gradient reaches the VAE, no in-place-autograd
    error), and D's parameters are frozen while the VAE loss is back-propagated.
    disentanglement_lib instead permutes the same batch.
    """

    Config = FactorVAEConfig
    sampler_batch_multiplier = 2

    def __init__(self, config: FactorVAEConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        self.discriminator = FactorDiscriminator(config.num_latents, hidden=config.discriminator_hidden,
                                                 depth=config.discriminator_depth)

    def vae_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("discriminator.")]

    def configure_optimizers(self, train_config):
        cfg = self.config
        return {"main": make_adam(self.vae_parameters(), train_config),
                "discriminator": make_adam(self.discriminator.parameters(), train_config,
                                           lr=cfg.discriminator_lr, betas=tuple(cfg.discriminator_betas))}

    def regularizer(self, kl, mean, logvar, z, step):
        logits = self.discriminator(z)
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return kl + self.config.gamma * tc, {"tc": tc}

    def discriminator_loss(self, z_real: torch.Tensor, z_fake: torch.Tensor):
        """Cross-entropy of D on real codes (class 0) and permuted codes (class 1); and accuracy."""
        logits_real, logits_fake = self.discriminator(z_real), self.discriminator(z_fake)
        zeros = torch.zeros(z_real.shape[0], dtype=torch.long, device=z_real.device)
        ones = torch.ones(z_fake.shape[0], dtype=torch.long, device=z_fake.device)
        loss = 0.5 * (F.cross_entropy(logits_real, zeros) + F.cross_entropy(logits_fake, ones))
        acc = 0.5 * ((logits_real.argmax(1) == 0).float().mean() + (logits_fake.argmax(1) == 1).float().mean())
        return loss, acc

    def training_step(self, batch, step, optimizers):
        x = batch["x"]
        half = x.shape[0] // 2
        x1, x2 = (x[:half], x[half:]) if half > 0 else (x, x)
        # 1) VAE update on the first batch; D is frozen so it collects no gradient here.
        self.discriminator.requires_grad_(False)
        mean, logvar = self.encode_dist(x1)
        z = self.sample_latent(mean, logvar)
        rec = self.reconstruction_loss(x1, self.decoder(z))
        kl = gaussian_kl(mean, logvar)
        reg, extra = self.regularizer(kl, mean, logvar, z, step)
        total = rec + reg
        opt = optimizers["main"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        self.discriminator.requires_grad_(True)
        # 2) D update: codes of batch 1 (detached) vs permuted codes of batch 2.
        with torch.no_grad():
            mean2, logvar2 = self.encode_dist(x2)
            z_fake = permute_dims(self.sample_latent(mean2, logvar2), lambda *s: self.rand(*s, device=x.device))
        d_loss, d_acc = self.discriminator_loss(z.detach(), z_fake)
        d_opt = optimizers["discriminator"]
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        return {"loss": total.detach(), "reconstruction": rec.detach(), "kl": kl.detach(),
                "regularizer": reg.detach(), "tc": extra["tc"].detach(),
                "discriminator_loss": d_loss.detach(), "discriminator_accuracy": d_acc.detach()}


# --------------------------------------------------------------------------------------------
# DIP-VAE I and II
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DIPVAEConfig(VAEConfig):
    lambda_od: float = 10.0        # off-diagonal weight (study grid {1, 2, 5, 10, 20, 50})
    lambda_d: float | None = None  # diagonal weight; None -> 10 * lambda_od (type I) or lambda_od (type II)


class _DIPVAE(VAE):
    Config = DIPVAEConfig
    lambda_d_factor: float = 1.0

    @property
    def lambda_d(self) -> float:
        cfg = self.config
        return cfg.lambda_d if cfg.lambda_d is not None else self.lambda_d_factor * cfg.lambda_od

    def target_covariance(self, mean, logvar):
        raise NotImplementedError

    def regularizer(self, kl, mean, logvar, z, step):
        dip = dip_regularizer(self.target_covariance(mean, logvar), self.config.lambda_od, self.lambda_d)
        return kl + dip, {"dip": dip}


@register_model("dip_vae_i")
class DIPVAEI(_DIPVAE):
    """DIP-VAE-I (Kumar et al. 2018): regularizer = KL + DIP(Cov[mu(x)]), lambda_d = 10 lambda_od."""

    lambda_d_factor = 10.0

    def target_covariance(self, mean, logvar):
        return covariance(mean)


@register_model("dip_vae_ii")
class DIPVAEII(_DIPVAE):
    """DIP-VAE-II (Kumar et al. 2018): regularizer = KL + DIP(Cov[mu(x)] + E[diag sigma^2(x)]),
    lambda_d = lambda_od."""

    lambda_d_factor = 1.0

    def target_covariance(self, mean, logvar):
        return covariance(mean) + torch.diag(logvar.exp().mean(0))


# --------------------------------------------------------------------------------------------
# beta-TCVAE
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BetaTCVAEConfig(VAEConfig):
    beta: float = 6.0  # TC weight (study grid {1, 2, 4, 6, 8, 10}); beta = 1 is the plain VAE


@register_model("beta_tcvae")
class BetaTCVAE(VAE):
    """beta-TCVAE (Chen et al. 2018): regularizer = KL + (beta - 1) * TC with the
    minibatch-weighted-sampling estimate :func:`total_correlation`."""

    Config = BetaTCVAEConfig

    def regularizer(self, kl, mean, logvar, z, step):
        tc = total_correlation(z, mean, logvar)
        return kl + (self.config.beta - 1.0) * tc, {"tc": tc}
