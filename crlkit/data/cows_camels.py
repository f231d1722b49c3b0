"""Cows and camels: a procedural image dataset with a confounded background (shortcut learning).

The generative process (one environment ``e`` with background-agreement ``rho_e``)::

    environment e ──> place u ~ Bernoulli(1/2)           (pasture / desert: the confounder)
    animal     = u        with prob. a_e, else 1 - u      (0 cow, 1 camel)
    background = u        with prob. b_e, else 1 - u      (0 grass, 1 sand)
    shape      = animal   with prob. 1 - shape_noise      (the silhouette drawn; an "atypical" animal
                                                           is drawn with the other class's shape)
    label      = animal   with prob. 1 - eta              (annotation noise)
    nuisances  ~ uniform, independent of all the above    (position, size, flip, pose, colour, texture)

``a_e`` and ``b_e`` are chosen so that ``P(background = animal | e) = a b + (1 - a)(1 - b) = rho_e``
(``a = b = (1 + sqrt(2 rho - 1)) / 2`` for ``rho >= 1/2``; ``b = 1 - a`` with ``a = (1 + sqrt(1 - 2 rho)) / 2``
below). The environment sets how strongly the hidden place ties the animal to the background: the
graph over factors is ``environment -> {animal, background}``, ``place -> {animal, background}``,
``animal -> shape``.

Images are rendered at 64x64 and average-pooled to ``image_size`` (64, 32 or 16; the classifiers
of :mod:`crlkit.robust` use 16 for CPU speed). Rendering is vectorised in torch and a deterministic
function of the factors: ``x = m * animal + (1 - m) * background`` with ``m`` the silhouette mask, so
a background swap changes only pixels outside the animal (exactly so at 64x64; at lower resolutions
mixed edge pixels also change). Background textures come from a fixed bank drawn from
``texture_seed``.

The animal is deliberately the *harder* cue (Beery et al. 2018; the IRM paper's thought experiment):
it is small (``animal_scale``), of low contrast (``contrast`` blends its colour towards a neutral
olive that lies between grass and sand) and of varied colour, and in training a share
``shape_noise`` of animals carries the other class's silhouette, so that the background
(agreement ``rho``) is the more reliable predictor whenever ``shape_noise > 1 - rho`` and the
shortcut is the Bayes-optimal rule of the training distribution, however long a model trains.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from crlkit.data import register_dataset
from crlkit.data.base import GroundTruthData, as_generator
from crlkit.data.samplers import BatchSampler, register_sampler
from crlkit.errors import CrlkitError

RENDER_SIZE = 64  # internal rendering resolution (pixels); outputs are pooled from it

ANIMALS = ("cow", "camel")
BACKGROUNDS = ("grass", "sand")

# Animal colours (RGB in [0, 1]) before the contrast blend: browns, greys, black, cream, red.
_PALETTE = np.array([
    [0.45, 0.30, 0.15], [0.30, 0.20, 0.10], [0.72, 0.56, 0.36], [0.52, 0.52, 0.52],
    [0.14, 0.14, 0.14], [0.88, 0.84, 0.70], [0.62, 0.30, 0.20], [0.55, 0.48, 0.30],
], dtype=np.float32)
# Colour every animal is blended towards as contrast -> 0 (between grass and sand means).
_NEUTRAL = np.array([0.56, 0.62, 0.38], dtype=np.float32)
_SIZES = (7.0, 8.0, 9.0, 10.0)  # body half-length in pixels at 64x64, times animal_scale
_NUM_POSX, _NUM_POSY, _NUM_POSE = 8, 4, 4

FACTOR_NAMES = ("environment", "place", "animal", "background", "shape",
                "pos_x", "pos_y", "size", "flip", "pose", "colour", "texture")
_IDX = {n: i for i, n in enumerate(FACTOR_NAMES)}


def _agreement_probs(rho: float) -> tuple[float, float]:
    """(a, b) with a b + (1 - a)(1 - b) = rho: P(animal = place), P(background = place)."""
    s = math.sqrt(abs(2.0 * rho - 1.0))
    a = 0.5 * (1.0 + s)
    return (a, a) if rho >= 0.5 else (a, 1.0 - a)


def check_probability(name: str, value: float) -> float:
    """Raise CrlkitError unless ``value`` is a probability in [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CrlkitError(f"{name} must be a number in [0, 1]; got {value!r}") from None
    if not (0.0 <= v <= 1.0) or math.isnan(v):
        raise CrlkitError(f"{name} must be in [0, 1]; got {value!r}")
    return v


@dataclasses.dataclass
class Split:
    """A labelled sample of the dataset (all tensors on one device).

    ``group = 2 * animal + background`` (0 cow/grass, 1 cow/sand, 2 camel/grass, 3 camel/sand);
    ``label_group`` uses the observed (possibly noisy) label instead of the animal, as a group
    annotator would.
    """

    x: torch.Tensor            # (n, 3, H, W) float32 in [0, 1]
    y: torch.Tensor            # (n,) float32 observed label (1 = camel)
    factors: np.ndarray        # (n, 12) int64, columns FACTOR_NAMES
    env: torch.Tensor          # (n,) int64 environment index
    group: torch.Tensor        # (n,) int64, 2 * animal + background
    label_group: torch.Tensor  # (n,) int64, 2 * label + background

    def __len__(self) -> int:
        return len(self.y)


class CowsCamels(GroundTruthData):
    """Cows on grass, camels on sand: a confounded, procedurally rendered classification task.

    Parameters
    ----------
    rhos : sequence of float
        ``P(background matches the animal)`` in each environment (one environment per value);
        e.g. ``(0.99, 0.91)`` for two training environments, ``(0.5,)`` for a balanced test set,
        ``(0.05,)`` for a reversed one.
    shape_noise : float
        Share of animals drawn with the other class's silhouette (0 for test sets).
    eta : float
        Label noise: probability that the observed label is the other class.
    contrast : float
        Animal colour = neutral + contrast * (palette colour - neutral); lower is harder.
    animal_scale : float
        Multiplies the animal's size; lower is harder.
    image_size : int
        Output resolution: 64, 32 or 16 (average-pooled from the 64x64 rendering).
    num_textures : int
        Background textures per background type (a nuisance factor).
    texture_seed : int
        Seed of the texture bank (the same for every split, so backgrounds are one population).
    """

    name = "cows_camels"

    def __init__(self, rhos=(0.95,), *, shape_noise: float = 0.0, eta: float = 0.0,
                 contrast: float = 0.5, animal_scale: float = 1.0, image_size: int = 64,
                 num_textures: int = 16, texture_seed: int = 0):
        if isinstance(rhos, (int, float)):
            rhos = (rhos,)
        rhos = tuple(check_probability("rho", r) for r in rhos)
        if not rhos:
            raise CrlkitError("rhos must name at least one environment")
        self.rhos = rhos
        self.shape_noise = check_probability("shape_noise", shape_noise)
        self.eta = check_probability("eta", eta)
        self.contrast = check_probability("contrast", contrast)
        if not (0.3 <= float(animal_scale) <= 2.0):
            raise CrlkitError(f"animal_scale must be in [0.3, 2.0]; got {animal_scale!r}")
        self.animal_scale = float(animal_scale)
        if image_size not in (16, 32, 64):
            raise CrlkitError(f"image_size must be one of 16, 32, 64; got {image_size!r}")
        self.image_size = int(image_size)
        if int(num_textures) < 1:
            raise CrlkitError(f"num_textures must be >= 1; got {num_textures!r}")
        self.num_textures = int(num_textures)
        self.texture_seed = int(texture_seed)
        self.factor_names = FACTOR_NAMES
        self.factor_sizes = (len(rhos), 2, 2, 2, 2, _NUM_POSX, _NUM_POSY, len(_SIZES), 2, _NUM_POSE,
                             len(_PALETTE), self.num_textures)
        self.observation_shape = (3, self.image_size, self.image_size)
        g = np.zeros((len(FACTOR_NAMES),) * 2, dtype=np.int64)
        for src, dst in [("environment", "animal"), ("environment", "background"), ("place", "animal"),
                         ("place", "background"), ("animal", "shape")]:
            g[_IDX[src], _IDX[dst]] = 1
        self.graph = g
        self._bank: torch.Tensor | None = None

    # --- the causal model ---------------------------------------------------------------
    def sample_factors(self, n: int, rng, *, env_weights=None) -> np.ndarray:
        """Draw ``n`` factor rows from the confounded model (environments uniform by default)."""
        rng = as_generator(rng)
        k = len(self.rhos)
        env = rng.choice(k, size=n, p=env_weights) if k > 1 else np.zeros(n, dtype=np.int64)
        ab = np.array([_agreement_probs(r) for r in self.rhos])  # (k, 2)
        place = rng.integers(0, 2, size=n)
        animal = np.where(rng.random(n) < ab[env, 0], place, 1 - place)
        background = np.where(rng.random(n) < ab[env, 1], place, 1 - place)
        shape = np.where(rng.random(n) < self.shape_noise, 1 - animal, animal)
        nuis = [rng.integers(0, s, size=n) for s in self.factor_sizes[5:]]
        return np.stack([env, place, animal, background, shape, *nuis], axis=1).astype(np.int64)

    def sample_labels(self, factors: np.ndarray, rng) -> np.ndarray:
        """Observed labels: the animal, flipped with probability ``eta``."""
        rng = as_generator(rng)
        animal = np.asarray(factors)[:, _IDX["animal"]]
        return np.where(rng.random(len(animal)) < self.eta, 1 - animal, animal).astype(np.int64)

    def sample_split(self, n: int, rng, *, device: Any = "cpu", balanced_groups: bool = False) -> Split:
        """``n`` labelled images. ``balanced_groups=True`` draws the same number per
        (label, background) group, each from this dataset's conditional distribution."""
        rng = as_generator(rng)
        if balanced_groups:
            factors, labels = self._balanced_factors(n, rng)
        else:
            factors = self.sample_factors(n, rng)
            labels = self.sample_labels(factors, rng)
        return self.split_from_factors(factors, labels, device=device)

    def split_from_factors(self, factors: np.ndarray, labels: np.ndarray, *, device: Any = "cpu") -> Split:
        factors = self.validate_factors(factors)
        dev = torch.device(device)
        x = self.observations_from_factors(factors, device=dev)
        lab = torch.as_tensor(labels, dtype=torch.long, device=dev)
        bg = torch.as_tensor(factors[:, _IDX["background"]], device=dev)
        an = torch.as_tensor(factors[:, _IDX["animal"]], device=dev)
        return Split(x=x, y=lab.float(), factors=factors,
                     env=torch.as_tensor(factors[:, 0], device=dev), group=2 * an + bg,
                     label_group=2 * lab + bg)

    def _balanced_factors(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        per = [n // 4 + (1 if g < n % 4 else 0) for g in range(4)]
        got_f, got_l = [[] for _ in range(4)], [[] for _ in range(4)]
        counts = [0] * 4
        for _ in range(1000):
            f = self.sample_factors(max(4 * n, 256), rng)
            lab = self.sample_labels(f, rng)
            grp = 2 * lab + f[:, _IDX["background"]]
            for g in range(4):
                need = per[g] - counts[g]
                if need > 0:
                    idx = np.flatnonzero(grp == g)[:need]
                    got_f[g].append(f[idx]); got_l[g].append(lab[idx]); counts[g] += len(idx)
            if counts == per:
                break
        else:
            raise CrlkitError("cannot draw group-balanced data: a (label, background) group has "
                              "probability ~0 under these rhos/eta")
        order = rng.permutation(n)
        return np.concatenate(sum(got_f, []))[order], np.concatenate(sum(got_l, []))[order]

    # --- counterfactuals ----------------------------------------------------------------
    @staticmethod
    def swap_background(factors: np.ndarray) -> np.ndarray:
        """The same animals (shape, pose, colour, position) on the other background."""
        f = np.array(factors, copy=True)
        f[:, _IDX["background"]] = 1 - f[:, _IDX["background"]]
        return f

    @staticmethod
    def swap_animal(factors: np.ndarray) -> np.ndarray:
        """The other class's animal (silhouette) with the same pose, colour, position and background."""
        f = np.array(factors, copy=True)
        f[:, _IDX["animal"]] = 1 - f[:, _IDX["animal"]]
        f[:, _IDX["shape"]] = 1 - f[:, _IDX["shape"]]
        return f

    # --- rendering ----------------------------------------------------------------------
    def observations_from_factors(self, factors, rng=None, *, device: Any = None, part: str = "full"):
        """Render images, float32 in [0, 1], ``(n, 3, image_size, image_size)``.

        ``part``: ``"full"``; ``"foreground"`` (the animal on neutral grey); ``"background"``
        (the background without the animal). Deterministic in ``factors`` (``rng`` is unused).
        Returns NumPy unless ``device`` is given.
        """
        if part not in ("full", "foreground", "background"):
            raise CrlkitError(f"unknown part {part!r}; valid choices: background, foreground, full")
        factors = self.validate_factors(factors)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        out = torch.empty((len(factors), *self.observation_shape), dtype=torch.float32, device=dev)
        for s in range(0, len(factors), 512):
            out[s:s + 512] = self._render(factors[s:s + 512], dev, part)
        return out if device is not None else out.numpy()

    def _texture_bank(self, device) -> torch.Tensor:
        if self._bank is None:
            self._bank = _make_texture_bank(self.num_textures, self.texture_seed)
        return self._bank.to(device)

    def _render(self, f: np.ndarray, dev, part: str) -> torch.Tensor:
        n, R = len(f), RENDER_SIZE
        col = lambda name: torch.as_tensor(f[:, _IDX[name]], device=dev)  # noqa: E731
        if part == "foreground":
            img = torch.full((n, 3, R, R), 0.5, device=dev)
        else:
            img = self._texture_bank(dev)[col("background"), col("texture")].clone()  # (n, 3, R, R)
        if part != "background":
            body, patches = _silhouettes(f, dev, self.animal_scale)
            base = torch.as_tensor(_PALETTE, device=dev)[col("colour")]  # (n, 3)
            neutral = torch.as_tensor(_NEUTRAL, device=dev)
            colour = neutral + self.contrast * (base - neutral)
            patch_col = neutral + self.contrast * ((1.0 - base) - neutral)
            body, patches = body[:, None], patches[:, None]  # (n, 1, R, R) in {0, 1}
            fg = colour[:, :, None, None] + patches * (patch_col - colour)[:, :, None, None]
            img = img * (1.0 - body) + body * fg
        if self.image_size != R:
            img = F.avg_pool2d(img, R // self.image_size)
        return img.clamp_(0.0, 1.0)

    def animal_mask(self, factors) -> np.ndarray:
        """Boolean ``(n, 64, 64)`` silhouette masks at the rendering resolution."""
        factors = self.validate_factors(factors)
        body, _ = _silhouettes(factors, torch.device("cpu"), self.animal_scale)
        return body.numpy().astype(bool)


# --- silhouettes ----------------------------------------------------------------------------
def _capsule(u, v, p0, p1, r):
    """Points within distance r of the segment p0 -> p1 (p* are (u, v) pairs of (n,1,1) or floats)."""
    (u0, v0), (u1, v1) = p0, p1
    du, dv = u1 - u0, v1 - v0
    t = (((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv + 1e-9)).clamp(0.0, 1.0)
    return (u - u0 - t * du) ** 2 + (v - v0 - t * dv) ** 2 <= r * r


def _ellipse(u, v, cu, cv, ru, rv, power: float = 2.0):
    return (((u - cu) / ru).abs() ** power + ((v - cv) / rv).abs() ** power) <= 1.0


def _silhouettes(f: np.ndarray, dev, animal_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(body mask, patch mask), each (n, 64, 64) float {0, 1}.

    Shapes are evaluated on a window around each animal (then pasted into the canvas), in the
    animal's local frame: u along the body (facing +u after the flip), v downwards, in units of
    the body half-length."""
    n, R = len(f), RENDER_SIZE
    size_np = np.asarray(_SIZES, dtype=np.float32)[f[:, _IDX["size"]]] * animal_scale
    margin = 1.0 * max(_SIZES) * animal_scale
    cx_np = np.linspace(margin, R - margin, _NUM_POSX)[f[:, _IDX["pos_x"]]]
    cy_np = np.linspace(0.44 * R, 0.6 * R, _NUM_POSY)[f[:, _IDX["pos_y"]]]
    half = int(math.ceil(1.25 * max(_SIZES) * animal_scale)) + 1  # window half-width (pixels)
    W = 2 * half
    ox = np.floor(cx_np).astype(np.int64) - half  # window origin in canvas pixels
    oy = np.floor(cy_np).astype(np.int64) - half
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=dev).view(-1, 1, 1)  # noqa: E731
    win = torch.arange(W, dtype=torch.float32, device=dev) + 0.5
    flip = np.where(f[:, _IDX["flip"]] == 1, -1.0, 1.0)
    u = (win.view(1, 1, W) + t(ox - cx_np)) / t(size_np) * t(flip)  # (n, 1, W)
    v = (win.view(1, W, 1) + t(oy - cy_np)) / t(size_np)            # (n, W, 1)
    u, v = torch.broadcast_to(u, (n, W, W)), torch.broadcast_to(v, (n, W, W))
    pose = f[:, _IDX["pose"]]
    body = torch.zeros((n, W, W), dtype=torch.bool, device=dev)
    patch = torch.zeros_like(body)
    is_camel = f[:, _IDX["shape"]] == 1
    for camel, sel in ((False, np.flatnonzero(~is_camel)), (True, np.flatnonzero(is_camel))):
        if len(sel):
            b, p = (_camel if camel else _cow)(u[sel], v[sel], pose[sel], t)
            body[sel], patch[sel] = b, p
    # paste the windows into a padded canvas, then crop
    canvas = torch.zeros((2, n, R + 2 * W, R + 2 * W), dtype=torch.bool, device=dev)
    rows = torch.as_tensor(oy + W, device=dev).view(n, 1, 1) + torch.arange(W, device=dev).view(1, W, 1)
    cols = torch.as_tensor(ox + W, device=dev).view(n, 1, 1) + torch.arange(W, device=dev).view(1, 1, W)
    idx = torch.arange(n, device=dev).view(n, 1, 1)
    canvas[0, idx, rows, cols] = body
    canvas[1, idx, rows, cols] = patch
    out = canvas[:, :, W:W + R, W:W + R].float()
    return out[0], out[1]


def _cow(u, v, pose, t):
    """Blocky body, short legs, low head on a short neck, thin tail, patches."""
    swing = t((pose % 2) * 0.16 - 0.08)
    tilt = t((pose // 2) * 0.18 - 0.09)
    pp = t(pose)
    cow = _ellipse(u, v, 0.0, 0.0, 0.75, 0.3, power=4.0)
    cow |= _ellipse(u, v, 0.92, -0.12 + tilt, 0.2, 0.16, power=3.0)
    cow |= _capsule(u, v, (0.6, -0.08), (0.85, -0.1 + tilt), 0.14)
    for x0 in (-0.6, -0.42, 0.42, 0.6):
        cow |= _capsule(u, v, (x0, 0.15), (x0 + swing, 0.62), 0.075)
    cow |= _capsule(u, v, (-0.74, -0.2), (-0.86, 0.25), 0.035)
    patch = (_ellipse(u, v, -0.35 + 0.1 * pp, -0.08, 0.2, 0.16)
             | _ellipse(u, v, 0.25, 0.08 - 0.04 * pp, 0.17, 0.13)
             | _ellipse(u, v, -0.05 - 0.05 * pp, 0.15, 0.12, 0.1))
    patch &= _ellipse(u, v, 0.0, 0.0, 0.72, 0.28, power=4.0)
    return cow, patch


def _camel(u, v, pose, t):
    """Rounded body, one hump (poses 0-1) or two (2-3), long legs, long upright neck, small head."""
    swing = t((pose % 2) * 0.16 - 0.08)
    tilt = t((pose // 2) * 0.18 - 0.09)
    camel = _ellipse(u, v, 0.0, 0.0, 0.62, 0.24)
    one = t(pose < 2) > 0
    hump1 = _ellipse(u, v, -0.05, -0.22, 0.32, 0.28)
    hump2 = _ellipse(u, v, -0.28, -0.2, 0.19, 0.26) | _ellipse(u, v, 0.16, -0.2, 0.19, 0.26)
    camel |= torch.where(one, hump1, hump2)
    camel |= _capsule(u, v, (0.45, -0.02), (0.78, -0.7 + tilt), 0.09)
    camel |= _ellipse(u, v, 0.9, -0.72 + tilt, 0.18, 0.09)
    for x0 in (-0.45, -0.3, 0.32, 0.47):
        camel |= _capsule(u, v, (x0, 0.1), (x0 + swing, 0.9), 0.055)
    camel |= _capsule(u, v, (-0.6, -0.05), (-0.7, 0.3), 0.03)
    return camel, torch.zeros_like(camel)


# --- background textures ------------------------------------------------------------------
def _smooth_noise(gen: torch.Generator, k: int, R: int, cells: int) -> torch.Tensor:
    """(k, R, R) value noise: a cells x cells grid of N(0,1) upsampled bicubically."""
    coarse = torch.randn(k, 1, cells, cells, generator=gen)
    return F.interpolate(coarse, size=(R, R), mode="bicubic", align_corners=False)[:, 0]


def _make_texture_bank(k: int, seed: int) -> torch.Tensor:
    """(2, k, 3, 64, 64): k grass textures (green, blades and clumps) and k sand textures
    (beige, dunes and grain), fixed by ``seed``."""
    R = RENDER_SIZE
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(R, dtype=torch.float32), torch.arange(R, dtype=torch.float32),
                            indexing="ij")
    # grass: base green, clumps (coarse noise), blades (noise smeared vertically)
    blades = torch.randn(k, 1, R + 6, R, generator=gen)
    blades = F.avg_pool2d(blades, kernel_size=(7, 1), stride=1)[:, 0] * 1.2  # (k, R, R)
    clumps = _smooth_noise(gen, k, R, 6)
    shade = 0.9 + 0.2 * torch.rand(k, 1, 1, generator=gen)
    g_base = torch.tensor([0.27, 0.52, 0.18]).view(1, 3, 1, 1)
    grass = g_base * shade[:, None] * (1 + 0.12 * clumps[:, None] + 0.16 * blades[:, None])
    # sand: base beige, dune bands with wavy crests, fine grain
    lam = 9.0 + 10.0 * torch.rand(k, 1, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(k, 1, 1, generator=gen)
    wav = 2 * math.pi * torch.rand(k, 1, 1, generator=gen)
    dunes = torch.sin(2 * math.pi * (yy / lam + 0.25 * torch.sin(2 * math.pi * xx / 40.0 + wav)) + phase)
    grain = torch.randn(k, R, R, generator=gen)
    shade = 0.92 + 0.16 * torch.rand(k, 1, 1, generator=gen)
    s_base = torch.tensor([0.86, 0.74, 0.5]).view(1, 3, 1, 1)
    sand = s_base * shade[:, None] * (1 + 0.07 * dunes[:, None] + 0.04 * grain[:, None])
    return torch.stack([grass, sand]).clamp(0.0, 1.0)


@register_dataset("cows_camels")
def make_cows_camels(rhos=(0.95,), *, shape_noise: float = 0.0, eta: float = 0.0, contrast: float = 0.5,
                     animal_scale: float = 1.0, image_size: int = 64, num_textures: int = 16,
                     texture_seed: int = 0) -> CowsCamels:
    """Registry factory for :class:`CowsCamels` (see its parameters)."""
    return CowsCamels(rhos, shape_noise=shape_noise, eta=eta, contrast=contrast, animal_scale=animal_scale,
                      image_size=image_size, num_textures=num_textures, texture_seed=texture_seed)


@register_sampler("cause_pair")
class CausePairSampler(BatchSampler):
    """Pairs that differ by an intervention on one cause of the label's confounded model: the
    background swapped (``p_background``) or the animal swapped (class and silhouette), all
    nuisances kept. The batch has the ``"pair"`` kind's layout, so weakly supervised models that
    train on pairs can train on these: ``{"x", "x2", "factors", "factors2", "changed" (B, d) bool,
    "k" (B,)}``."""

    def __init__(self, dataset: GroundTruthData, *, batch_size: int, seed: int, device="cpu",
                 p_background: float = 0.5):
        if not isinstance(dataset, CowsCamels):
            raise CrlkitError(f"the cause_pair sampler needs the cows_camels dataset; got {dataset.name!r}")
        super().__init__(dataset, batch_size=batch_size, seed=seed, device=device)
        self.p_background = check_probability("p_background", p_background)

    def next_batch(self) -> dict[str, torch.Tensor]:
        ds, b = self.dataset, self.batch_size
        f1 = ds.sample_factors(b, self.rng)
        on_bg = self.rng.random(b) < self.p_background
        f2 = np.where(on_bg[:, None], ds.swap_background(f1), ds.swap_animal(f1))
        x = ds.observations_from_factors(np.concatenate([f1, f2]), device=self.device)
        changed = f1 != f2
        return {"x": x[:b], "x2": x[b:], "factors": self.to_tensor(f1, torch.long),
                "factors2": self.to_tensor(f2, torch.long), "changed": torch.as_tensor(changed, device=self.device),
                "k": torch.as_tensor(changed.sum(1), dtype=torch.long, device=self.device)}
