"""Pendulum (CausalVAE, Yang et al. 2021): a pendulum and a light cast a shadow on the ground.

Causal graph over the factors (``graph[i, j] = 1`` iff factor i -> factor j)::

    pendulum_angle ---> shadow_length   <--- light_angle
    pendulum_angle ---> shadow_position <--- light_angle

Factors and their discretisation (the geometry follows the reference generator,
``trustworthyAI/research/CausalVAE/causal_data/pendulum.py``; units there are nominal
"degrees" v that enter the geometry as v * pi / 200 rad):

================  ====  =========================================================
pendulum_angle      84  v = -40, ..., 43   (angle theta = v pi / 200 from vertical)
light_angle         88  v = 60, ..., 147   (angle phi = v pi / 200 of the light rays)
shadow_length       40  bins of width 0.25 over [3, 13) scene units
shadow_position     72  bins of width 0.25 over [2, 20) scene units
================  ====  =========================================================

Scene units: x in [0, 20] (left to right), y in [-1, 21] (bottom to top), mapped onto the
whole 64 x 64 canvas. The pendulum hangs from (10, 10.5), rod length 8, ball radius 1.5
(firebrick); the sun (orange, radius 3) sits at height 20.5 on the light ray through the
pivot. Light rays have slope tan(phi); the shadow on the ground line y = -0.5 spans the
projections of the pivot and of the ball's far edge (distance 9.5 from the pivot):
``proj(x, y) = x + (-0.5 - y) cot(phi)``, position = the midpoint of the two projections and
length = max(3, |their difference|), as in the reference. The reference skips v = 100
(phi = pi/2, where its tan-based formula divides by zero); with cot the vertical light is
well defined, so it is kept here.

Semantics of the derived factors: ``sample_factors`` draws the two roots uniformly and sets
the shadow factors to the bins of the geometric values. ``observations_from_factors``
renders the exact geometric shadow where a shadow factor equals its geometric bin, and the
bin centre otherwise -- so an intervention on a shadow factor (:meth:`Pendulum.intervene`,
:meth:`Pendulum.intervene_factors`)
draws a shadow that the pendulum and light do not explain, as in CausalVAE's
intervention experiments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from crlkit.data import register_dataset
from crlkit.data.base import GroundTruthData
from crlkit.data.render import finish, render_in_chunks, resolve_device
from crlkit.errors import CrlkitError

FACTOR_NAMES = ("pendulum_angle", "light_angle", "shadow_length", "shadow_position")
PENDULUM_VALUES = np.arange(-40, 44)
LIGHT_VALUES = np.arange(60, 148)
LENGTH_RANGE = (3.0, 13.0)
POSITION_RANGE = (2.0, 20.0)
BIN = 0.25
FACTOR_SIZES = (len(PENDULUM_VALUES), len(LIGHT_VALUES),
                int(round((LENGTH_RANGE[1] - LENGTH_RANGE[0]) / BIN)),
                int(round((POSITION_RANGE[1] - POSITION_RANGE[0]) / BIN)))
GRAPH = np.array([[0, 0, 1, 1],
                  [0, 0, 1, 1],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0]], dtype=np.int64)

IMAGE = 64
PIVOT = (10.0, 10.5)
ROD, BALL_EDGE, BALL_R, SUN_R, SUN_Y, GROUND_Y = 8.0, 9.5, 1.5, 3.0, 20.5, -0.5
LINE_HALF = 0.5  # half-width of the rod and the shadow (matplotlib linewidth 3 in the reference)
X_RANGE, Y_RANGE = (0.0, 20.0), (-1.0, 21.0)
FIREBRICK = (178 / 255, 34 / 255, 34 / 255)
ORANGE = (1.0, 165 / 255, 0.0)


def shadow_geometry(pendulum_value, light_value):
    """Exact shadow ``(length, position)`` in scene units for nominal angle values (arrays)."""
    theta = np.asarray(pendulum_value, dtype=np.float64) * np.pi / 200.0
    phi = np.asarray(light_value, dtype=np.float64) * np.pi / 200.0
    cot = np.cos(phi) / np.sin(phi)
    bx = PIVOT[0] + BALL_EDGE * np.sin(theta)
    by = PIVOT[1] - BALL_EDGE * np.cos(theta)
    p_pivot = PIVOT[0] + (GROUND_Y - PIVOT[1]) * cot
    p_ball = bx + (GROUND_Y - by) * cot
    return np.maximum(3.0, np.abs(p_pivot - p_ball)), (p_pivot + p_ball) / 2.0


def _to_bin(value, lo: float, size: int) -> np.ndarray:
    return np.clip(np.floor((np.asarray(value) - lo) / BIN), 0, size - 1).astype(np.int64)


def _bin_centre(index, lo: float) -> np.ndarray:
    return lo + (np.asarray(index, dtype=np.float64) + 0.5) * BIN


def _coverage(dist: torch.Tensor, px: float) -> torch.Tensor:
    """Anti-aliased coverage of a shape from the signed distance (scene units) of a pixel."""
    return (0.5 - dist / px).clamp_(0.0, 1.0)


def _rows(y_lo: float, y_hi: float) -> slice:
    """Image rows whose pixel centres lie in scene heights [y_lo, y_hi]."""
    h = (Y_RANGE[1] - Y_RANGE[0]) / IMAGE
    r0 = int(np.ceil((Y_RANGE[1] - y_hi) / h - 0.5))
    r1 = int(np.floor((Y_RANGE[1] - y_lo) / h - 0.5))
    return slice(max(r0, 0), min(r1, IMAGE - 1) + 1)


# Each element only touches a band of rows (1 scene unit of margin; anti-aliasing reaches
# half a pixel, 0.16 units): the pendulum y in [1, 11], the sun above 17.5, the shadow below 0.
_PENDULUM_ROWS = _rows(PIVOT[1] - ROD - BALL_R - 1.0, PIVOT[1] + LINE_HALF + 1.0)
_SUN_ROWS = _rows(SUN_Y - SUN_R - 1.0, Y_RANGE[1])
_SHADOW_ROWS = _rows(Y_RANGE[0], GROUND_Y + LINE_HALF + 1.0)


def render_torch(params: np.ndarray, device) -> torch.Tensor:
    """Render ``(n, 3, 64, 64)`` images on ``device``.

    ``params`` is ``(n, 4)`` float64: pendulum value, light value, shadow length and
    shadow position (scene units). Elements are painted in the reference's order (rod,
    ball, sun, shadow) with anti-aliased coverage from their signed distance fields,
    each evaluated only on the rows it can reach.
    """
    device = torch.device(device)
    p = torch.as_tensor(params, dtype=torch.float32, device=device)
    n = p.shape[0]
    theta, phi = p[:, 0] * (np.pi / 200.0), p[:, 1] * (np.pi / 200.0)
    length, mid = p[:, 2], p[:, 3]
    px = (X_RANGE[1] - X_RANGE[0]) / IMAGE  # ~pixel size in scene units
    xs = X_RANGE[0] + (torch.arange(IMAGE, device=device, dtype=torch.float32) + 0.5) * px
    ys = Y_RANGE[1] - (torch.arange(IMAGE, device=device, dtype=torch.float32) + 0.5) * (
        (Y_RANGE[1] - Y_RANGE[0]) / IMAGE)
    X = xs.view(1, 1, IMAGE)

    def col(v):  # (n,) -> (n, 1, 1)
        return v.view(n, 1, 1)

    def paint(img_rows: torch.Tensor, dist: torch.Tensor, rgb) -> None:
        a = _coverage(dist, px).unsqueeze(1)  # (n, 1, rows, W)
        c = torch.tensor(rgb, device=device, dtype=torch.float32).view(1, 3, 1, 1)
        img_rows.mul_(1.0 - a).add_(c * a)

    img = torch.ones((n, 3, IMAGE, IMAGE), device=device)
    ball_x = PIVOT[0] + ROD * torch.sin(theta)
    ball_y = PIVOT[1] - ROD * torch.cos(theta)

    # rod (distance to the segment pivot -> ball centre), then the ball
    Y = ys[_PENDULUM_ROWS].view(1, -1, 1)
    dx, dy = col(ball_x) - PIVOT[0], col(ball_y) - PIVOT[1]
    t = (((X - PIVOT[0]) * dx + (Y - PIVOT[1]) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0)
    band = img[:, :, _PENDULUM_ROWS]
    paint(band, torch.hypot(X - PIVOT[0] - t * dx, Y - PIVOT[1] - t * dy) - LINE_HALF, (0.0, 0.0, 0.0))
    paint(band, torch.hypot(X - col(ball_x), Y - col(ball_y)) - BALL_R, FIREBRICK)

    # the sun, on the light ray through the pivot at height SUN_Y
    Y = ys[_SUN_ROWS].view(1, -1, 1)
    sun_x = PIVOT[0] + (SUN_Y - PIVOT[1]) * torch.cos(phi) / torch.sin(phi)
    paint(img[:, :, _SUN_ROWS], torch.hypot(X - col(sun_x), Y - SUN_Y) - SUN_R, ORANGE)

    # the shadow: a thick segment on y = -0.5 from mid - length/2 to mid + length/2
    Y = ys[_SHADOW_ROWS].view(1, -1, 1)
    ex = (torch.abs(X - col(mid)) - col(length) / 2.0).clamp(min=0.0)  # (n, 1, W)
    ey = (Y - GROUND_Y).expand(n, -1, IMAGE)                             # (n, rows, W)
    paint(img[:, :, _SHADOW_ROWS], torch.hypot(ex.expand_as(ey), ey) - LINE_HALF, (0.0, 0.0, 0.0))
    return img


class Pendulum(GroundTruthData):
    """The CausalVAE pendulum, ``(n, 3, 64, 64)``, with its causal graph (see module docstring)."""

    name = "pendulum"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    observation_shape = (3, IMAGE, IMAGE)
    graph = GRAPH

    def derived_factors(self, roots: np.ndarray) -> np.ndarray:
        """Shadow (length, position) bin indices ``(n, 2)`` from root indices ``(n, 2)``."""
        roots = np.asarray(roots, dtype=np.int64)
        length, pos = shadow_geometry(PENDULUM_VALUES[roots[:, 0]], LIGHT_VALUES[roots[:, 1]])
        return np.stack([_to_bin(length, LENGTH_RANGE[0], FACTOR_SIZES[2]),
                         _to_bin(pos, POSITION_RANGE[0], FACTOR_SIZES[3])], axis=1)

    def __init__(self, interventions: dict | None = None):
        # do(factor = index) applied by sample_factors: {column: index}; empty = observational
        self.interventions = self._targets(interventions or {})

    def _targets(self, targets: dict) -> dict[int, Any]:
        cols = {}
        for key, value in targets.items():
            j = self.factor_names.index(key) if isinstance(key, str) and key in self.factor_names else key
            if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < self.num_factors:
                raise CrlkitError(f"unknown intervention target {key!r} for {self.name}; valid: "
                                  f"{', '.join(self.factor_names)} (or their columns 0-{self.num_factors - 1})")
            cols[int(j)] = value
        return cols

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Roots uniform over their values; the shadow factors follow from them (the graph).

        Under interventions (see :meth:`intervene`) the targeted factors are set and the
        untargeted shadow factors still follow the (possibly intervened) roots."""
        roots = super().sample_factors(n, rng)[:, :2]
        f = np.concatenate([roots, self.derived_factors(roots)], axis=1)
        return self.intervene_factors(f, self.interventions) if self.interventions else f

    def intervene(self, values: dict) -> "Pendulum":
        """The dataset under ``do(values)``: ``{factor name or column: index}``; sampling then
        sets those factors and recomputes their untargeted descendants (like
        ``SyntheticData.intervene``)."""
        merged = dict(self.interventions)
        merged.update(self._targets(values))
        for j, v in merged.items():
            if not np.isscalar(v) or not 0 <= int(v) < self.factor_sizes[j]:
                raise CrlkitError(f"intervention value for {self.factor_names[j]!r} must be an index "
                                  f"in [0, {self.factor_sizes[j] - 1}]; got {v!r}")
        return Pendulum(merged)

    def intervene_factors(self, factors, targets: dict) -> np.ndarray:
        """``do(targets)`` on given factor rows: set the targeted factor indices and recompute
        the untargeted descendants (the shadow factors) from the roots.

        ``targets`` maps a factor name or column to an index (or an array of ``n`` indices).
        """
        f = self.validate_factors(factors).copy()
        cols = self._targets(targets)
        for j, value in cols.items():
            f[:, j] = value
        derived = self.derived_factors(f[:, :2])
        for k, j in enumerate((2, 3)):
            if j not in cols:
                f[:, j] = derived[:, k]
        return self.validate_factors(f)

    def scene_parameters(self, factors: np.ndarray) -> np.ndarray:
        """``(n, 4)`` float64 values rendered: angles (nominal) and shadow (scene units)."""
        pend, light = PENDULUM_VALUES[factors[:, 0]], LIGHT_VALUES[factors[:, 1]]
        length, pos = shadow_geometry(pend, light)
        geo = self.derived_factors(factors[:, :2])
        length = np.where(factors[:, 2] == geo[:, 0], length, _bin_centre(factors[:, 2], LENGTH_RANGE[0]))
        pos = np.where(factors[:, 3] == geo[:, 1], pos, _bin_centre(factors[:, 3], POSITION_RANGE[0]))
        return np.stack([pend, light, length, pos], axis=1).astype(np.float64)

    def info(self) -> dict:
        out = super().info()
        out["graph"] = self.graph.tolist()
        if self.interventions:
            out["interventions"] = {self.factor_names[j]: int(v) for j, v in self.interventions.items()}
        return out

    def observations_from_factors(self, factors, rng: np.random.Generator | None = None,
                                  *, device: Any = None):
        """Render ``(n, 3, 64, 64)`` float32 images in [0, 1] (deterministic; ``rng`` unused)."""
        factors = self.validate_factors(factors)
        device = resolve_device(device)
        params = self.scene_parameters(factors)
        x = render_in_chunks(lambda a, b: render_torch(params[a:b], device or "cpu"),
                             len(params), self.observation_shape, device)
        return finish(x, device)


@register_dataset("pendulum")
def make_pendulum() -> Pendulum:
    """The CausalVAE pendulum with its 4-factor causal graph."""
    return Pendulum()
