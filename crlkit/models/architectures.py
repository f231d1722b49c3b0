"""Encoders and decoders shared by the VAE family (and usable by other methods).

The standard convolutional architecture of the disentanglement literature (Locatello et al.
2019, disentanglement_lib ``conv_encoder`` / ``deconv_decoder``), here with kernel 4,
stride 2, padding 1 for all four encoder convolutions (the common PyTorch port; the
TensorFlow original uses kernel 2 for the last two, both halve the resolution):

    encoder  x (C, H, W) -> conv32 -> conv32 -> conv64 -> conv64  (k4 s2 p1, ReLU)
             -> flatten (64 * H/16 * W/16; 1024 for 64x64) -> FC 256 ReLU -> mean, logvar
    decoder  z -> FC 256 ReLU -> FC 64 * H/16 * W/16 ReLU -> reshape (64, H/16, W/16)
             -> deconv64 -> deconv32 -> deconv32 (k4 s2 p1, ReLU) -> deconv C (k4 s2 p1)
             -> logits (C, H, W)

H and W must be divisible by 16 (64x64 in the study; tests use 16x16 or 32x32).
Vector observations ``(D,)`` use an MLP (``hidden`` units, ``depth`` hidden layers, ReLU).
"""

from __future__ import annotations

import torch
from torch import nn

from crlkit.errors import CrlkitError


def check_image_shape(observation_shape: tuple[int, ...]) -> None:
    """Raise CrlkitError unless ``observation_shape`` is ``(C, H, W)`` with H, W divisible by 16."""
    if len(observation_shape) != 3:
        raise CrlkitError(f"the conv architecture needs image observations (C, H, W); got shape {observation_shape}")
    c, h, w = observation_shape
    if h % 16 or w % 16 or h < 16 or w < 16:
        raise CrlkitError(
            f"dataset/architecture shape mismatch: the conv encoder (4 stride-2 layers) needs H and W "
            f"divisible by 16; the dataset has observation_shape {tuple(observation_shape)}")


class ConvEncoder(nn.Module):
    """Conv 32-32-64-64 (k4 s2) -> FC 256 -> ``out_dim`` outputs (e.g. 2 x num_latents)."""

    def __init__(self, observation_shape: tuple[int, ...], out_dim: int):
        super().__init__()
        check_image_shape(observation_shape)
        c, h, w = observation_shape
        self.convs = nn.Sequential(
            nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
        )
        flat = 64 * (h // 16) * (w // 16)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x))  # (B, out_dim)


class ConvDecoder(nn.Module):
    """FC 256 -> FC (64 * H/16 * W/16) -> deconv 64-32-32-C (k4 s2); returns logits."""

    def __init__(self, observation_shape: tuple[int, ...], num_latents: int):
        super().__init__()
        check_image_shape(observation_shape)
        c, h, w = observation_shape
        self.grid = (64, h // 16, w // 16)
        self.fc = nn.Sequential(
            nn.Linear(num_latents, 256), nn.ReLU(),
            nn.Linear(256, 64 * (h // 16) * (w // 16)), nn.ReLU(),
        )
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, c, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], *self.grid)  # (B, 64, H/16, W/16)
        return self.deconvs(h)  # (B, C, H, W) logits


def mlp(in_dim: int, out_dim: int, hidden: int, depth: int, *, slope: float = 0.0) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` units (ReLU, or leaky ReLU when ``slope`` > 0)."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """MLP for vector observations ``(D,)`` -> ``out_dim``."""

    def __init__(self, observation_shape: tuple[int, ...], out_dim: int, *, hidden: int = 256, depth: int = 3):
        super().__init__()
        if len(observation_shape) != 1:
            raise CrlkitError(f"the MLP encoder needs vector observations (D,); got shape {tuple(observation_shape)}")
        self.net = mlp(observation_shape[0], out_dim, hidden, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """MLP ``num_latents`` -> ``D`` (identity output: a Gaussian mean or logits)."""

    def __init__(self, observation_shape: tuple[int, ...], num_latents: int, *, hidden: int = 256, depth: int = 3):
        super().__init__()
        if len(observation_shape) != 1:
            raise CrlkitError(f"the MLP decoder needs vector observations (D,); got shape {tuple(observation_shape)}")
        self.net = mlp(num_latents, observation_shape[0], hidden, depth)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


ARCHITECTURES = ("auto", "conv", "mlp")


def make_encoder(architecture: str, observation_shape: tuple[int, ...], out_dim: int, **mlp_options) -> nn.Module:
    """``"conv"`` for images, ``"mlp"`` for vectors, ``"auto"`` picks by the shape's rank."""
    arch = resolve_architecture(architecture, observation_shape)
    if arch == "conv":
        return ConvEncoder(observation_shape, out_dim)
    return MLPEncoder(observation_shape, out_dim, **mlp_options)


def make_decoder(architecture: str, observation_shape: tuple[int, ...], num_latents: int, **mlp_options) -> nn.Module:
    arch = resolve_architecture(architecture, observation_shape)
    if arch == "conv":
        return ConvDecoder(observation_shape, num_latents)
    return MLPDecoder(observation_shape, num_latents, **mlp_options)


def resolve_architecture(architecture: str, observation_shape: tuple[int, ...]) -> str:
    if architecture not in ARCHITECTURES:
        from crlkit.registry import unknown_choice

        raise CrlkitError(unknown_choice("architecture", architecture, ARCHITECTURES))
    if architecture == "auto":
        return "conv" if len(observation_shape) == 3 else "mlp"
    return architecture


class FactorDiscriminator(nn.Module):
    """FactorVAE's discriminator: 6 x 1000 leaky-ReLU (slope 0.2) MLP -> 2 logits
    (column 0: "from q(z)", column 1: "from the product of marginals")."""

    def __init__(self, num_latents: int, *, hidden: int = 1000, depth: int = 6):
        super().__init__()
        self.net = mlp(num_latents, 2, hidden, depth, slope=0.2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
