"""3D Shapes (Burgess & Kim 2018), rendered procedurally by a small vectorised ray caster.

Factors, in this order (the official index order, orientation fastest):

============  ====  ====================================================
floor_hue       10  hue linspace(0, 0.9, 10) of the floor
wall_hue        10  hue linspace(0, 0.9, 10) of the three walls
object_hue      10  hue linspace(0, 0.9, 10) of the object
scale            8  linspace(0.75, 1.25, 8), size of the object
shape            4  cube, cylinder, sphere, capsule (lying along the room's x axis)
orientation     15  linspace(-30, 30, 15) degrees: the scene turns about the vertical axis
============  ====  ====================================================

The scene: an object standing on the floor in the middle of a room (back wall and two side
walls), seen by a perspective camera from above and in front; one directional light,
Lambert shading plus ambient light, and the object's cast shadow. Colours are fully
saturated hues (HSV s = v = 1) times the shading.

Only the geometry depends on (scale, shape, orientation): for each of the 8 x 4 x 15 = 480
combinations the renderer ray-casts once a per-pixel weight map for each material
(floor, wall, object: coverage x shading, 2 x 2 supersampled); an image is then
``sum_m weight[m] * rgb(hue_m)``, a gather and a small product on the requested device.
The maps are computed lazily, for the geometries a batch needs, and cached per process
(~20 ms per geometry on one CPU core; all 480 take ~10 s).

With ``path=`` the official ``3dshapes.h5`` is read instead (lazily, per batch).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from crlkit.data import register_dataset
from crlkit.data.base import GroundTruthData
from crlkit.data.render import finish, hsv_to_rgb, render_in_chunks, resolve_device

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
HUES = np.linspace(0.0, 0.9, 10)
SCALES = np.linspace(0.75, 1.25, 8)
ORIENTATIONS_DEG = np.linspace(-30.0, 30.0, 15)

IMAGE = 64
_SUPER = 2  # supersampling per axis
_ROOM_HALF = 3.0   # side walls at x = -3, +3; back wall at z = +3 (room frame)
_CAM_POS = np.array([0.0, 2.6, -6.0])
_CAM_TARGET = np.array([0.0, 0.9, 0.0])
_FOV_DEG = 40.0
_LIGHT = np.array([-0.45, 0.8, -0.4]) / np.linalg.norm([-0.45, 0.8, -0.4])  # towards the light
_AMBIENT = 0.35
_SHADOW = 0.45  # brightness kept in the object's shadow
_FAR = 1e9


@lru_cache(maxsize=1)
def _camera_rays() -> tuple[np.ndarray, np.ndarray]:
    """Ray origins and unit directions ``(P, 3)`` for P = (64 * 2)^2 sub-pixels (world frame)."""
    res = IMAGE * _SUPER
    fwd = _CAM_TARGET - _CAM_POS
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(np.array([0.0, 1.0, 0.0]), fwd)
    right /= np.linalg.norm(right)
    up = np.cross(fwd, right)
    half = np.tan(np.radians(_FOV_DEG) / 2.0)
    s = ((np.arange(res) + 0.5) / res * 2.0 - 1.0) * half
    sx, sy = np.meshgrid(s, -s)  # rows go down the image, y up
    d = fwd[None] + sx.reshape(-1, 1) * right[None] + sy.reshape(-1, 1) * up[None]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.broadcast_to(_CAM_POS, d.shape)
    d.flags.writeable = False
    return o, d


def _bounding_sphere(shape: int, size: float) -> tuple[np.ndarray, float]:
    """Centre and radius of a sphere enclosing the object (for a cheap first ray test)."""
    if shape == 0:
        h = 0.6 * size
        return np.array([0.0, h, 0.0]), h * np.sqrt(3.0)
    if shape == 1:
        r, hl = 0.6 * size, 0.65 * size
        return np.array([0.0, hl, 0.0]), float(np.hypot(r, hl))
    if shape == 2:
        r = 0.65 * size
        return np.array([0.0, r, 0.0]), r
    r, hl = 0.42 * size, 0.65 * size
    return np.array([0.0, r, 0.0]), hl + r


def _hit_object(shape: int, size: float, o: np.ndarray, d: np.ndarray):
    """First hit ``t`` (inf where none) and unit normal of the object, rays ``o + t d``.

    Only rays that meet the object's bounding sphere are traced exactly.
    """
    c, radius = _bounding_sphere(shape, size)
    oc = o - c
    b = np.einsum("ij,ij->i", oc, d)
    disc = b * b - (np.einsum("ij,ij->i", oc, oc) - (radius * 1.001) ** 2)
    cand = (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0.0)) > 0)
    t = np.full(o.shape[0], np.inf)
    normal = np.zeros(o.shape)
    if cand.any():
        t[cand], normal[cand] = _hit_object_exact(shape, size, np.ascontiguousarray(o[cand]), d[cand])
    return t, normal


def _hit_object_exact(shape: int, size: float, o: np.ndarray, d: np.ndarray):
    """First hit ``t`` (inf where none) and unit normal of the object, rays ``o + t d``.

    Object at the origin of the room frame, resting on the floor y = 0.
    """
    inf = np.full(o.shape[0], np.inf)
    normal = np.zeros_like(o)

    def take(t_new, n_new):
        nonlocal inf, normal
        better = t_new < inf
        inf = np.where(better, t_new, inf)
        normal = np.where(better[:, None], n_new, normal)

    def sphere(c, r):
        oc = o - c
        b = np.einsum("ij,ij->i", oc, d)
        disc = b * b - (np.einsum("ij,ij->i", oc, oc) - r * r)
        with np.errstate(invalid="ignore"):
            t = -b - np.sqrt(disc)
        t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        return t, (p - c) / r

    def cylinder(axis: int, c, r, half_len):
        """Finite open cylinder along ``axis`` through centre c, radius r (side only)."""
        others = [k for k in range(3) if k != axis]
        oc = o - c
        a0, a1 = others
        A = d[:, a0] ** 2 + d[:, a1] ** 2
        B = oc[:, a0] * d[:, a0] + oc[:, a1] * d[:, a1]
        C = oc[:, a0] ** 2 + oc[:, a1] ** 2 - r * r
        disc = B * B - A * C
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (-B - np.sqrt(disc)) / A
        along = oc[:, axis] + np.nan_to_num(t) * d[:, axis]
        ok = (disc >= 0) & (A > 1e-12) & (t > 1e-6) & (np.abs(along) <= half_len)
        t = np.where(ok, t, np.inf)
        p = oc + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        n = p.copy()
        n[:, axis] = 0.0
        return t, n / r

    def disc_cap(axis: int, c, r, sign: float):
        """Flat cap of a cylinder: plane x_axis = c_axis, radius r, outward normal sign."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (c[axis] - o[:, axis]) / d[:, axis]
        p = o + np.nan_to_num(t, posinf=0.0, neginf=0.0)[:, None] * d
        rr = np.sum((p - c) ** 2, axis=1)
        ok = np.isfinite(t) & (t > 1e-6) & (rr <= r * r) & (sign * d[:, axis] < 0)
        n = np.zeros_like(o)
        n[:, axis] = sign
        return np.where(ok, t, np.inf), n

    if shape == 0:  # cube of side 1.2 * size
        h = 0.6 * size
        lo, hi = np.array([-h, 0.0, -h]), np.array([h, 2 * h, h])
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (lo - o) / d, (hi - o) / d
        tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
        tmin = np.nan_to_num(tmin, nan=-np.inf)
        tmax = np.nan_to_num(tmax, nan=np.inf)
        tn, tf = tmin.max(axis=1), tmax.min(axis=1)
        ok = (tn <= tf) & (tn > 1e-6)
        face = tmin.argmax(axis=1)
        n = np.zeros_like(o)
        n[np.arange(len(o)), face] = -np.sign(d[np.arange(len(o)), face])
        take(np.where(ok, tn, np.inf), n)
    elif shape == 1:  # upright cylinder, radius 0.6 * size, height 1.3 * size
        r, hl = 0.6 * size, 0.65 * size
        c = np.array([0.0, hl, 0.0])
        take(*cylinder(1, c, r, hl))
        take(*disc_cap(1, c + np.array([0.0, hl, 0.0]), r, 1.0))
    elif shape == 2:  # sphere, radius 0.65 * size
        r = 0.65 * size
        take(*sphere(np.array([0.0, r, 0.0]), r))
    else:  # capsule lying along x: radius 0.42 * size, straight part 1.3 * size
        r, hl = 0.42 * size, 0.65 * size
        c = np.array([0.0, r, 0.0])
        take(*cylinder(0, c, r, hl))
        take(*sphere(c + np.array([hl, 0.0, 0.0]), r))
        take(*sphere(c - np.array([hl, 0.0, 0.0]), r))
    return inf, normal


def _material_maps(shape: int, size: float, orientation_deg: float) -> np.ndarray:
    """``(3, 64, 64)`` float32: per material (floor, wall, object), coverage x shading."""
    o, d = _camera_rays()
    # Turn the camera by -orientation about the vertical axis = turn the scene by +orientation.
    a = np.radians(-orientation_deg)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    o, d = o @ rot.T, d @ rot.T
    light = _LIGHT @ rot.T
    n_pts = o.shape[0]

    t_obj, n_obj = _hit_object(shape, size, o, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < 0, -o[:, 1] / d[:, 1], np.inf)
        t_back = np.where(d[:, 2] > 0, (_ROOM_HALF - o[:, 2]) / d[:, 2], np.inf)
        t_left = np.where(d[:, 0] < 0, (-_ROOM_HALF - o[:, 0]) / d[:, 0], np.inf)
        t_right = np.where(d[:, 0] > 0, (_ROOM_HALF - o[:, 0]) / d[:, 0], np.inf)
    ts = np.stack([t_floor, t_back, t_left, t_right, t_obj], axis=1)
    which = ts.argmin(axis=1)
    t = ts[np.arange(n_pts), which]
    normals = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    nrm = np.where((which == 4)[:, None], n_obj, normals[np.minimum(which, 3)])
    p = o + np.where(np.isfinite(t), t, _FAR)[:, None] * d
    lambert = np.clip(nrm @ light, 0.0, 1.0)
    # cast shadow: does a ray from the hit point towards the light meet the object?
    t_sh, _ = _hit_object(shape, size, p + 1e-4 * nrm, np.broadcast_to(light, p.shape))
    lit = np.where((which != 4) & np.isfinite(t_sh), _SHADOW, 1.0)
    shade = _AMBIENT + (1.0 - _AMBIENT) * lambert * lit
    # walls a little darker than the floor so the corner reads even at equal hue
    shade = np.where((which >= 1) & (which <= 3), shade * 0.9, shade)
    material = np.select([which == 0, which <= 3], [0, 1], 2)
    maps = np.zeros((3, n_pts))
    maps[material, np.arange(n_pts)] = shade
    maps = maps.reshape(3, IMAGE, _SUPER, IMAGE, _SUPER).mean(axis=(2, 4))
    return maps.astype(np.float32)


class _MaterialTable:
    """Material weight maps of the 480 geometries, ray-cast lazily on first use (per process).

    ``maps`` is ``(480, 3, 64, 64)`` float32 indexed by ``(scale * 4 + shape) * 15 + orientation``;
    ``done`` marks the geometries computed so far. Device copies are refreshed when new
    geometries have been computed since they were made.
    """

    def __init__(self):
        self.maps = np.zeros((8 * 4 * 15, 3, IMAGE, IMAGE), np.float32)
        self.done = np.zeros(8 * 4 * 15, bool)
        self.version = 0
        self._devices: dict[str, tuple[int, torch.Tensor, torch.Tensor]] = {}

    def ensure(self, geoms: np.ndarray) -> None:
        todo = np.unique(np.asarray(geoms))
        todo = todo[~self.done[todo]]
        for g in todo:
            k, rest = divmod(int(g), 4 * 15)
            s, j = divmod(rest, 15)
            self.maps[g] = _material_maps(s, float(SCALES[k]), float(ORIENTATIONS_DEG[j]))
            self.done[g] = True
        if len(todo):
            self.version += 1

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        entry = self._devices.get(key)
        if entry is None or entry[0] != self.version:
            maps = torch.from_numpy(self.maps) if device.type == "cpu" else torch.from_numpy(self.maps).to(device)
            entry = (self.version, maps, torch.from_numpy(_HUE_RGB).to(device))
            self._devices[key] = entry
        return entry[1], entry[2]


_HUE_RGB = hsv_to_rgb(HUES).astype(np.float32)  # (10, 3)
MATERIALS = _MaterialTable()


def geometry_index(factors) -> np.ndarray:
    """Index of the (scale, shape, orientation) geometry of each factor row."""
    f = np.asarray(factors)
    return (f[:, 3] * 4 + f[:, 4]) * 15 + f[:, 5]


def render_torch(factors, device) -> torch.Tensor:
    """``(n, 3, 64, 64)`` float32 images on ``device`` from valid factor indices."""
    device = torch.device(device)
    f_np = np.asarray(factors.cpu() if isinstance(factors, torch.Tensor) else factors)
    MATERIALS.ensure(geometry_index(f_np))
    maps, rgb = MATERIALS.on(device)
    f = torch.as_tensor(f_np, device=device).long()
    w = maps.index_select(0, (f[:, 3] * 4 + f[:, 4]) * 15 + f[:, 5])  # (n, 3 materials, H, W)
    colors = rgb[f[:, :3]]                                              # (n, 3 materials, 3 rgb)
    return torch.einsum("nmhw,nmc->nchw", w, colors).clamp_(0.0, 1.0)


class Shapes3D(GroundTruthData):
    """Procedural 3D Shapes, ``(n, 3, 64, 64)``; or the official ``3dshapes.h5`` with ``path=``."""

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    observation_shape = (3, IMAGE, IMAGE)

    def __init__(self, *, path: str | None = None):
        self.path = path
        self._file = None
        if path is not None:
            from crlkit.data.files import Shapes3DFile

            self._file = Shapes3DFile(path)
            self.factor_sizes = self._file.factor_sizes
            h, w, c = self._file.image_shape
            self.observation_shape = (c, h, w)

    def observations_from_factors(self, factors, rng: np.random.Generator | None = None,
                                  *, device: Any = None):
        """Render ``(n, 3, 64, 64)`` float32 images in [0, 1] (deterministic; ``rng`` unused)."""
        factors = self.validate_factors(factors)
        device = resolve_device(device)
        if self._file is not None:
            flat = np.ravel_multi_index(tuple(factors.T), self.factor_sizes)
            x = self._file.read(flat).astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
            x = np.ascontiguousarray(x)
            return x if device is None else torch.from_numpy(x).to(device)
        x = render_in_chunks(lambda a, b: render_torch(factors[a:b], device or "cpu"),
                             len(factors), self.observation_shape, device)
        return finish(x, device)


@register_dataset("shapes3d")
def make_shapes3d(*, path: str | None = None) -> Shapes3D:
    """3D Shapes; ``path`` reads the official ``3dshapes.h5`` instead of rendering."""
    return Shapes3D(path=path)
