r"""Contrastive identification: InfoNCE on positive pairs (Zimmermann et al., ICML 2021) and
its content/style variant on views that share a content block (von Kügelgen et al., NeurIPS 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from crlkit.models._common import (Whitening, batch_entry, check_at_least, check_choice, check_positive,
                                   method_callbacks, vector_dim)
from crlkit.models.architectures import mlp
from crlkit.models.base import Method, register_model
from crlkit.train.schedules import SCHEDULES

__all__ = ["info_nce", "pairwise_distance", "two_way_cross_entropy", "ContrastiveConfig", "Contrastive",
           "ContentStyleConfig", "ContentStyle", "NORMALIZATIONS"]


# --------------------------------------------------------------------------------------------
# the loss
# --------------------------------------------------------------------------------------------
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
    return two_way_cross_entropy(logits, logits.T)


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, p: float) -> torch.Tensor:
    """``D[i, j] = sum_k |a_ik - b_jk|^p`` for (B, d) inputs (the p-th power of the Lp norm)."""
    diff = a.unsqueeze(1) - b.unsqueeze(0)  # (B, B, d)
    if p == 2:
        return diff.pow(2).sum(-1)
    return (diff.abs() + 1e-12).pow(p).sum(-1)


def two_way_cross_entropy(logits_1: torch.Tensor, logits_2: torch.Tensor) -> torch.Tensor:
    """Mean of the cross-entropies of anchors from h1 (rows of ``logits_1``) and from h2 (rows
    of ``logits_2``), the positive of row i being column i."""
    labels = torch.arange(logits_1.shape[0], device=logits_1.device)
    ce = nn.functional.cross_entropy
    return 0.5 * (ce(logits_1, labels) + ce(logits_2, labels))


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
    lr_schedule: str = "cosine"   # "cosine" (decay to 0 over the run) or "constant"
    lr_decay_steps: int = 0       # length of the cosine in steps (0: the run's --steps); fixed, an extended
                                  #   (--resume with more --steps) run keeps its schedule


@register_model("contrastive")
class Contrastive(Method):
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
        d = vector_dim(observation_shape, self.name or "contrastive")
        check_choice("normalization", config.normalization, NORMALIZATIONS)
        check_choice("p", float(config.p), SIMILARITY_P)
        check_positive("tau", config.tau)
        check_choice("lr_schedule", config.lr_schedule, SCHEDULES)
        check_at_least("num_latents", config.num_latents, 1)
        self.whitening = Whitening(d, enabled=config.whiten)
        self.encoder = mlp(d, config.num_latents, config.hidden, config.depth, slope=config.slope)
        self.normalize = _Normalize(config.normalization)

    def callbacks(self, train_config: Any) -> list:
        """Whitening fitted before step 1; the cosine learning-rate schedule."""
        return method_callbacks(self.config.whiten, self.config.lr_schedule, steps=self.config.lr_decay_steps)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.encoder(self.whitening(x)))

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        x2 = batch_entry(batch, self.pair_keys, self.name)
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
    lr_schedule: str = "cosine"   # "cosine" (decay to 0 over the run) or "constant"
    lr_decay_steps: int = 0       # length of the cosine in steps (0: the run's --steps); fixed, an extended
                                  #   (--resume with more --steps) run keeps its schedule


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
