"""``chamber_*``: the Causal Chamber's light-tunnel simulators as mixing functions.

The ``causalchamber`` package (Gamella et al., "Causal chambers as a real-world physical testbed
for AI methodology", Nature Machine Intelligence 2025; an optional extra:
``pip install 'crlkit[chamber]'``) ships NumPy simulators of its light tunnel. crlkit samples
the tunnel's causal inputs from a :class:`~crlkit.scm.LatentSCM` over the package's published
ground-truth graph (``ground_truth.graph("lt", "standard")`` restricted to the inputs), maps them
to their physical ranges and pushes them through a simulator:

=================  ==========================================  ===========================================
dataset            simulator                                   observation
=================  ==========================================  ===========================================
chamber_sensors    ``simulators.lt.Deterministic``             9 sensor readings (ir/vis of 3 light
                                                               sensors, current, 2 angle sensors),
                                                               standardised
chamber_f1         ``simulators.lt.ModelF1``                   camera image (3, S, S) in [0, 1]
chamber_f2         ``simulators.lt.ModelF2``                   camera image, sensor response and white balance
chamber_f3         ``simulators.lt.ModelF3``                   camera image, per-colour polarizer transmission
=================  ==========================================  ===========================================

The latents are the five inputs ``red, green, blue`` (LED brightness, 0-255) and ``pol_1,
pol_2`` (polarizer angles, -180..180 degrees). The published graph has no edge among them (they
are actuators set independently), so the latent model is five independent uniforms; with
``segments`` their scales vary by segment, as in ``synthetic`` (inputs may then leave their
physical ranges: the simulators extrapolate, and image colours clip). The simulators' parameters are
the calibrated values of the package's tutorials; the sensors' other inputs are fixed there too.

What the contracts say (``crlkit data list``):

- ``chamber_sensors`` is injective in the five inputs: RGB is read linearly by sensor 1 and the
  current, the angles linearly by the angle sensors; sensor 3 adds Malus's law cos²(pol_1 − pol_2).
- ``chamber_f1``, ``chamber_f2``, ``chamber_f3`` are **not injective**: each image is one colour
  (three numbers) inside a fixed hexagon, so five inputs cannot be told apart; the polarizers
  enter only through cos²(pol_1 − pol_2) (their difference, and its sign is lost), in F1
  brightness and polarization multiply the same factor, and saturated channels are clipped at 1.

Rendering: the colour comes from the package's own ``_simulate`` (on a one-pixel image), and the
image is that colour times the package's hexagon mask at ``image_size`` (the same pixels as the
package's full rendering, which tests check), which renders >= 10,000 images per second on a CPU.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from typing import Any

import numpy as np
import torch

from crlkit.data import register_dataset
from crlkit.data.synthetic import SyntheticData
from crlkit.errors import CrlkitError
from crlkit.mixing.base import Mixing

INPUTS = ("red", "green", "blue", "pol_1", "pol_2")
#: physical range of each input (causalchamber's documentation of the light tunnel)
RANGES = {"red": (0.0, 255.0), "green": (0.0, 255.0), "blue": (0.0, 255.0),
          "pol_1": (-180.0, 180.0), "pol_2": (-180.0, 180.0)}
INSTALL = "pip install 'crlkit[chamber]' (the causalchamber package)"

# Calibrated parameters from the causalchamber package's simulator tutorials.
_SENSOR_PARAMETERS = {
    "S": [[4.34165202, 2.8594438, 1.91565691], [0.89410569, 1.58679242, 2.68477163]],
    "d1": 0.1, "d2": 0.17, "d3": 0.25,
    "Ts": [0.42685688, 0.41231782, 0.46652526], "Tp": [0.2909342, 0.29624314, 0.30526271],
    "Tc": [0.00431032, 0.01447611, 0.02041075], "Q": [0.12834946, 0.12870338, 0.13078523],
    "C0": 58.13307318503893, "A": 1.42261211, "a1": 506.8049747171294, "a2": 510.98343062774353,
}
_SENSOR_FIXED = {"diode_ir_1": 2, "diode_ir_2": 2, "diode_ir_3": 2, "diode_vis_1": 1, "diode_vis_2": 1,
                 "diode_vis_3": 1, "t_ir_1": 3, "t_ir_2": 3, "t_ir_3": 3, "t_vis_1": 3, "t_vis_2": 3, "t_vis_3": 3,
                 "v_c": 5, "v_angle_1": 5, "v_angle_2": 5}
_CAMERA_S = [[0.2995802, 0.06920322, 0.028159], [0.04017132, 0.9209918, 0.31265], [0.00217392, 0.2071558, 0.75763]]
_WHITE = {"w_r": 2.65625, "w_g": 1.0, "w_b": 1.77344}
_HEXAGON = {"center_x": 0.5, "center_y": 0.5, "radius": 0.22, "offset": 0}
_NOT_INJECTIVE = ("each image is one colour (3 numbers) in a fixed hexagon: 5 inputs cannot be told apart; "
                  "pol_1 and pol_2 enter only through cos^2(pol_1 - pol_2); saturated channels clip at 1")


def chamber_available() -> bool:
    """Whether the optional ``causalchamber`` package can be imported."""
    try:
        _lt()
        return True
    except CrlkitError:
        return False


@functools.lru_cache(maxsize=1)
def _lt():
    """``causalchamber.simulators.lt`` (its citation banner on stdout is swallowed)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import causalchamber.simulators.lt as lt
    except ImportError:
        raise CrlkitError(f"the chamber_* datasets need the optional package causalchamber: {INSTALL}") from None
    return lt


def published_graph(configuration: str = "standard") -> np.ndarray:
    """The package's ground-truth graph of the light tunnel restricted to :data:`INPUTS` (0/1)."""
    _lt()
    with contextlib.redirect_stdout(io.StringIO()):
        from causalchamber.ground_truth import graph
    g = graph("lt", configuration)
    return (g.loc[list(INPUTS), list(INPUTS)].to_numpy() != 0).astype(float)


def simulator(kind: str):
    """The causalchamber simulator ``kind`` ("sensors", "f1", "f2", "f3") with calibrated parameters."""
    lt = _lt()
    if kind == "sensors":
        return lt.Deterministic(**{k: np.asarray(v, dtype=float) for k, v in _SENSOR_PARAMETERS.items()})
    if kind == "f1":
        return lt.ModelF1(image_size=1, **_HEXAGON)
    if kind == "f2":
        return lt.ModelF2(S=np.array(_CAMERA_S), exposure=0.8, image_size=1, **_WHITE, **_HEXAGON)
    if kind == "f3":
        return lt.ModelF3(S=np.array(_CAMERA_S), Tp=np.array([[0.29, 0.35, 0.33]]).T,
                          Tc=np.array([[0.02, 0.08, 0.18]]).T, exposure=2.5, image_size=1, **_WHITE, **_HEXAGON)
    raise CrlkitError(f"unknown chamber simulator {kind!r}; valid choices: sensors, f1, f2, f3")


def to_inputs(z: np.ndarray) -> dict[str, np.ndarray]:
    """Latents (uniform on [-1/2, 1/2] per input at unit segment scale) -> physical input values."""
    return {name: lo + (z[:, j] + 0.5) * (hi - lo) for j, (name, (lo, hi)) in enumerate(RANGES.items())}


class ChamberMixing(Mixing):
    """z -> the five physical inputs -> a causalchamber simulator's outputs.

    For ``"sensors"``: the 9 readings, standardised with fixed moments (from 4,096 draws of seed 0).
    For an image model: the hexagon's colour, 3 numbers in [0, 1] (rendered by
    :class:`ChamberData`)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.sim = simulator(kind)
        self.in_dim = len(INPUTS)
        self.out_dim = 9 if kind == "sensors" else 3
        self.mixing_class = "injective" if kind == "sensors" else "not_injective"
        self.mixing_note = ("linear in RGB (sensor 1, current) and in the angles; Malus's law at sensor 3"
                            if kind == "sensors" else _NOT_INJECTIVE)
        self.mean, self.std = np.zeros(self.out_dim), np.ones(self.out_dim)
        if kind == "sensors":
            raw = self._raw(np.random.default_rng(0).uniform(-0.5, 0.5, (4096, self.in_dim)))
            self.mean, self.std = raw.mean(0), raw.std(0) + 1e-12

    def _raw(self, z: np.ndarray) -> np.ndarray:
        inputs = to_inputs(z)
        if self.kind == "sensors":
            out = self.sim._simulate(**inputs, **{k: np.full(len(z), v) for k, v in _SENSOR_FIXED.items()},
                                     **self.sim.parameters())
            return np.stack(out, axis=1)
        params = {**self.sim.parameters(), "center_x": 0.0, "center_y": 0.0, "radius": 10.0, "image_size": 1}
        with warnings.catch_warnings():  # the package's np.cross on 2-d vectors (deprecated in NumPy 2)
            warnings.simplefilter("ignore", DeprecationWarning)
            return self.sim._simulate(**inputs, **params)[:, 0, 0, :]  # a covering hexagon: the clipped colour

    def forward(self, z: np.ndarray) -> np.ndarray:
        return (self._raw(np.asarray(z, dtype=np.float64)) - self.mean) / self.std

    def forward_torch(self, z: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.forward(z.detach().cpu().double().numpy()), dtype=z.dtype, device=z.device)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        raise CrlkitError(f"the chamber {self.kind} simulator has no inverse in crlkit")

    def __repr__(self) -> str:
        return f"ChamberMixing({self.kind})"


class ChamberData(SyntheticData):
    """A light-tunnel world: :class:`~crlkit.data.synthetic.SyntheticData` whose mixing is a
    causalchamber simulator; image models render ``(3, image_size, image_size)`` in [0, 1]."""

    def __init__(self, scm, kind: str, *, image_size: int = 64, name: str, options: dict):
        super().__init__(scm, ChamberMixing(kind), name=name, options=options)
        self.kind = kind
        self.image_size = int(image_size)
        if kind != "sensors":
            from causalchamber.simulators.lt.image.models_f import hexagon_mask

            if self.image_size < 4:
                raise CrlkitError(f"image_size must be >= 4; got {image_size}")
            with warnings.catch_warnings():  # the package's np.cross on 2-d vectors (deprecated in NumPy 2)
                warnings.simplefilter("ignore", DeprecationWarning)
                self.mask = hexagon_mask(image_size=self.image_size, **_HEXAGON).astype(np.float32)
            self.observation_shape = (3, self.image_size, self.image_size)

    def observations_from_factors(self, factors, rng=None, *, device: Any = None):
        if self.kind == "sensors":
            return super().observations_from_factors(factors, rng, device=device)
        z = factors.detach().cpu().double().numpy() if isinstance(factors, torch.Tensor) else np.asarray(factors, float)
        if z.ndim != 2 or z.shape[1] != self.num_factors:
            raise CrlkitError(f"factors must have shape (n, {self.num_factors}) for {self.name}; got {z.shape}")
        color = self.mixing(z).astype(np.float32)                           # (n, 3)
        images = np.empty((len(z), 3, self.image_size, self.image_size), dtype=np.float32)  # (n, 3, S, S)
        np.multiply(color[:, :, None, None], self.mask[None, None, :, :], out=images)
        return torch.as_tensor(images, device=device) if device is not None else images


def _make(kind: str, name: str, *, segments: int = 0, segment_scale=(0.5, 3.0), image_size: int = 64,
          seed: int = 0) -> ChamberData:
    from crlkit.scm import LatentSCM

    adjacency = published_graph()
    scm = LatentSCM(adjacency, noise="uniform", noise_scale=1.0 / (2.0 * np.sqrt(3.0)), names=INPUTS)
    if segments:
        scm = scm.with_segments(int(segments), scale_range=tuple(segment_scale),
                                seed=int(np.random.SeedSequence([int(seed), 0]).generate_state(1)[0]))
    options = dict(segments=segments, segment_scale=list(segment_scale), seed=seed)
    if kind != "sensors":
        options["image_size"] = image_size
    return ChamberData(scm, kind, image_size=image_size, name=name, options=options)


@register_dataset("chamber_sensors")
def make_chamber_sensors(*, segments: int = 0, segment_scale: tuple[float, float] = (0.5, 3.0),
                         seed: int = 0) -> ChamberData:
    """Light-tunnel sensor readings (9, standardised) from R, G, B, pol_1, pol_2; injective.
    ``segments``: the inputs' scales vary by segment (an auxiliary variable for iVAE/iFlow)."""
    return _make("sensors", "chamber_sensors", segments=segments, segment_scale=segment_scale, seed=seed)


def _image_factory(kind: str):
    def factory(*, segments: int = 0, segment_scale: tuple[float, float] = (0.5, 3.0), image_size: int = 64,
                seed: int = 0) -> ChamberData:
        return _make(kind, f"chamber_{kind}", segments=segments, segment_scale=segment_scale,
                     image_size=image_size, seed=seed)

    factory.__doc__ = (f"Light-tunnel camera images from causalchamber's Model {kind.upper()} "
                       f"(3 x image_size x image_size); not injective in its inputs.")
    return register_dataset(f"chamber_{kind}")(factory)


for _kind in ("f1", "f2", "f3"):
    _image_factory(_kind)
