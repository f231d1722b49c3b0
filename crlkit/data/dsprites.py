"""dSprites (Matthey et al. 2017), rendered procedurally, and its colour / noise variants.

Factors, in this order (the official index order, C order with posY fastest):

===========  ====  =====================================================
shape           3  square, ellipse, heart
scale           6  linspace(0.5, 1, 6)
orientation    40  linspace(0, 2*pi, 40), endpoint included (0 == 39)
posX           32  linspace(0, 1, 32); the sprite's centre moves right
posY           32  linspace(0, 1, 32); the sprite's centre moves *down*
===========  ====  =====================================================

Geometry (64 x 64 canvas, pixel ``(row, col)`` has its centre at ``(row + .5, col + .5)``):
the sprite's centre sits at ``(16.5 + posY_index, 16.5 + posX_index)``, i.e. a one-pixel
step per position index, spanning the central 31 pixels symmetrically. At scale 1 the square
has side 20 px (~10% of the canvas area, ~1/3 of its width), the ellipse semi-axes 12 x 6 px
(long axis horizontal at orientation 0) and the heart is 22 px wide; every sprite at every
position stays inside the canvas. Orientation rotates the sprite counter-clockwise on
screen about its centre. Pixels are 1 where the pixel (3 x 3 supersampled) is at least half
covered, else 0. The real file's sprites are of about this size but not pixel-identical; pass
``path=`` to load the official ``.npz`` instead.

Rendering: the 3 x 6 x 40 = 720 sprite masks are computed once (cached per process); an
image is then a contiguous 4096-pixel window of a padded copy of its mask whose start
encodes the integer translation, so a batch is one row gather (NumPy on the CPU, torch
``index_select`` on a device) written straight into the float32 output.

Variants (as in disentanglement_lib): ``color_dsprites`` multiplies the sprite by an RGB
colour drawn per image from U(0.5, 1)^3 (not a factor); ``noisy_dsprites`` returns
``min(sprite + U(0, 1) noise, 1)`` per pixel and channel. Both have 3 channels and draw
their randomness from the ``rng`` passed to ``observations_from_factors``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from crlkit.data import register_dataset
from crlkit.data.base import GroundTruthData, as_generator
from crlkit.data.render import resolve_device
from crlkit.errors import CrlkitError

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)

IMAGE = 64          # canvas side (pixels)
PATCH = 33          # side of the square patch holding one centred sprite
FIRST_CENTRE = 16.5  # centre coordinate (pixels) at position index 0
# An image is a window of IMAGE*IMAGE values of a padded, flattened (PATCH, IMAGE) strip.
_STRIP = (PATCH - 1) * IMAGE + PATCH     # 2081 values: the strip up to its last sprite pixel
_MAX_OFF = (IMAGE - PATCH) * (IMAGE + 1)  # 2015 = flat offset of the strip at posX = posY = 31
_ROW = _MAX_OFF + IMAGE * IMAGE           # 6111 = length of one padded strip


def _inside(shape: int, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Is the point ``(u, v)`` (pixels from the centre, v up) inside the unrotated sprite?"""
    if shape == 0:  # square, side 20 px at scale 1
        half = 10.0 * scale
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == 1:  # ellipse, semi-axes 12 x 6 px at scale 1
        return (u / (12.0 * scale)) ** 2 + (v / (6.0 * scale)) ** 2 <= 1.0
    # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, width 2.278 units, y in [-1, 1.25] (bbox centre 0.125)
    k = 22.0 * scale / 2.278
    x, y = u / k, v / k + 0.125
    x2, y2 = x * x, y * y
    a = x2 + y2 - 1.0
    return a * a * a - x2 * y2 * y <= 0.0


@lru_cache(maxsize=1)
def sprite_masks() -> np.ndarray:
    """The 720 centred sprite masks, ``(3, 6, 40, 33, 33)`` uint8 in {0, 1} (cached)."""
    ss = 3  # supersampling per axis
    sub = (np.arange(PATCH * ss) + 0.5) / ss - PATCH / 2.0  # sub-pixel centres, from the centre
    u = sub[None, :]           # x to the right
    v = -sub[:, None]          # y up (rows go down)
    t = np.mod(ORIENTATIONS, 2.0 * np.pi)[:, None, None]  # 2*pi -> exactly 0: index 39 == 0
    c, sn = np.cos(t), np.sin(t)
    # inverse rotation (by -theta) of the screen points into sprite coordinates, all angles at once
    ur, vr = c * u + sn * v, -sn * u + c * v
    masks = np.zeros((3, 6, 40, PATCH, PATCH), np.uint8)
    for s in range(3):
        for k, scale in enumerate(SCALES):
            inside = _inside(s, ur, vr, scale).reshape(40, PATCH, ss, PATCH, ss)
            masks[s, k] = inside.sum(axis=(2, 4), dtype=np.int16) * 2 >= ss * ss
    return masks


@lru_cache(maxsize=1)
def _padded_strips() -> np.ndarray:
    """``(720 * 6111,)`` float32: per sprite, zeros, its (33, 64) strip flattened, zeros."""
    masks = sprite_masks().reshape(-1, PATCH, PATCH).astype(np.float32)
    strips = np.zeros((masks.shape[0], PATCH, IMAGE), np.float32)
    strips[:, :, :PATCH] = masks
    table = np.zeros((masks.shape[0], _ROW), np.float32)
    table[:, _MAX_OFF:_MAX_OFF + _STRIP] = strips.reshape(len(masks), -1)[:, :_STRIP]
    return table.reshape(-1)


def window_starts(factors: np.ndarray) -> np.ndarray:
    """Flat start of each image's 4096-value window in :func:`_padded_strips` (int64)."""
    sprite = (factors[:, 0] * 6 + factors[:, 1]) * 40 + factors[:, 2]
    off = factors[:, 4] * IMAGE + factors[:, 3]  # posY -> rows, posX -> columns
    return sprite * _ROW + _MAX_OFF - off


def render_binary_numpy(factors: np.ndarray) -> np.ndarray:
    """Binary sprites ``(n, 64, 64)`` float32 for valid factor indices (NumPy, CPU)."""
    table = _padded_strips()
    windows = np.lib.stride_tricks.as_strided(
        table, (table.size - IMAGE * IMAGE + 1, IMAGE * IMAGE), (table.itemsize, table.itemsize),
        writeable=False)
    return windows[window_starts(factors)].reshape(-1, IMAGE, IMAGE)


_DEVICE_TABLES: dict[str, torch.Tensor] = {}


def _device_table(device: torch.device) -> torch.Tensor:
    key = str(device)
    if key not in _DEVICE_TABLES:
        _DEVICE_TABLES[key] = torch.from_numpy(_padded_strips()).to(device)
    return _DEVICE_TABLES[key]


def render_binary_torch(factors, device) -> torch.Tensor:
    """Binary sprites ``(n, 64, 64)`` float32 on ``device``, by tensor ops on that device.

    ``factors`` may be a NumPy array or an int tensor (on any device)."""
    device = torch.device(device)
    table = _device_table(device)
    windows = table.as_strided((table.numel() - IMAGE * IMAGE + 1, IMAGE * IMAGE), (1, 1))
    f = torch.as_tensor(factors, device=device).long()
    sprite = (f[:, 0] * 6 + f[:, 1]) * 40 + f[:, 2]
    starts = sprite * _ROW + _MAX_OFF - (f[:, 4] * IMAGE + f[:, 3])
    return torch.index_select(windows, 0, starts).view(-1, IMAGE, IMAGE)


class DSprites(GroundTruthData):
    """Binary dSprites, ``(n, 1, 64, 64)``; procedural, or the official file with ``path=``.

    Parameters
    ----------
    path : str, optional
        The official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or a directory
        holding it). Observations are then read from the file; factor sizes come from it.
    """

    name = "dsprites"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    observation_shape = (1, IMAGE, IMAGE)
    channels = 1

    def __init__(self, *, path: str | None = None):
        self.path = path
        self._file_imgs = None
        if path is not None:
            from crlkit.data.files import load_dsprites_npz

            imgs, sizes, self.file_values = load_dsprites_npz(path)
            self._file_imgs = imgs
            self.factor_sizes = sizes
            self.observation_shape = (self.channels,) + tuple(imgs.shape[1:])

    # --- binary sprites -------------------------------------------------------------------
    def _binary(self, factors: np.ndarray, device: torch.device | None):
        """``(n, H, W)`` float32 sprites: NumPy when ``device`` is None, else a tensor."""
        if self._file_imgs is not None:
            flat = np.ravel_multi_index(tuple(factors.T), self.factor_sizes)
            imgs = self._file_imgs[flat].astype(np.float32)
            return imgs if device is None else torch.from_numpy(imgs).to(device)
        if device is None:
            return render_binary_numpy(factors)
        if device.type == "cpu":  # the NumPy gather is the fast path on the CPU
            return torch.from_numpy(render_binary_numpy(factors))
        return render_binary_torch(factors, device)

    def observations_from_factors(self, factors, rng: np.random.Generator | None = None,
                                  *, device: Any = None):
        """Render ``(n, C, 64, 64)`` float32 images in [0, 1] (see the module docstring)."""
        factors = self.validate_factors(factors)
        device = resolve_device(device)
        x = self._binary(factors, device)
        return self._decorate(x, rng, device)

    def _decorate(self, x, rng, device):
        return x[:, None]


class ColorDSprites(DSprites):
    """dSprites times a per-image RGB colour from U(0.5, 1)^3 (drawn from ``rng``; not a factor)."""

    name = "color_dsprites"
    observation_shape = (3, IMAGE, IMAGE)
    channels = 3

    def _decorate(self, x, rng, device):
        if rng is None:
            raise CrlkitError(f"{self.name} draws a colour per image: pass rng (a seed or Generator)")
        color = as_generator(rng).uniform(0.5, 1.0, size=(x.shape[0], 3)).astype(np.float32)
        if device is None:
            return x[:, None] * color[:, :, None, None]
        return x[:, None] * torch.from_numpy(color).to(device)[:, :, None, None]


class NoisyDSprites(DSprites):
    """``min(sprite + U(0, 1), 1)`` per pixel and channel, 3 channels (disentanglement_lib).

    On the CPU (``device`` None or "cpu") the noise is drawn from ``rng`` itself; on another
    device from a torch generator on that device seeded by ``rng`` (deterministic per seed,
    but a different stream from the CPU one).
    """

    name = "noisy_dsprites"
    observation_shape = (3, IMAGE, IMAGE)
    channels = 3

    def _decorate(self, x, rng, device):
        if rng is None:
            raise CrlkitError(f"{self.name} draws noise per pixel: pass rng (a seed or Generator)")
        rng = as_generator(rng)
        n, h, w = x.shape
        if device is None or device.type == "cpu":
            noise = rng.random((n, 3, h, w), dtype=np.float32)
            xn = x.numpy() if isinstance(x, torch.Tensor) else x
            out = np.minimum(noise + xn[:, None], 1.0, out=noise)
            return out if device is None else torch.from_numpy(out)
        gen = torch.Generator(device=device)
        gen.manual_seed(int(rng.integers(0, 2**63 - 1)))
        noise = torch.rand((n, 3, h, w), generator=gen, device=device)
        return torch.clamp_(noise.add_(x[:, None]), max=1.0)


@register_dataset("dsprites")
def make_dsprites(*, path: str | None = None) -> DSprites:
    """Binary dSprites; ``path`` loads the official ``.npz`` instead of rendering."""
    return DSprites(path=path)


@register_dataset("color_dsprites")
def make_color_dsprites(*, path: str | None = None) -> ColorDSprites:
    """dSprites with a random RGB colour per image, U(0.5, 1)^3."""
    return ColorDSprites(path=path)


@register_dataset("noisy_dsprites")
def make_noisy_dsprites(*, path: str | None = None) -> NoisyDSprites:
    """dSprites on U(0, 1) noise, ``min(sprite + noise, 1)``."""
    return NoisyDSprites(path=path)
