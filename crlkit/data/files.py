"""Loaders for the official dataset files, for users who have them (nothing is downloaded).

* dSprites: ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` with ``imgs`` (N, 64, 64)
  uint8 in {0, 1}, ``latents_values`` (N, 6), ``latents_classes`` (N, 6) int and
  ``metadata``. Columns of the latents: colour (always 0), shape, scale, orientation,
  posX, posY. Images are stored in C order over (shape, scale, orientation, posX, posY),
  posY fastest.
* 3D Shapes: ``3dshapes.h5`` with ``images`` (N, 64, 64, 3) uint8 and ``labels`` (N, 6)
  float factor values, C order over (floor hue, wall hue, object hue, scale, shape,
  orientation), orientation fastest.

Smaller files in the same format (fewer values per factor, same C order) load too; the
factor sizes are read from the file and the index order is checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crlkit.errors import CrlkitError

DSPRITES_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
SHAPES3D_FILENAME = "3dshapes.h5"


def _existing(path, default_name: str, what: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / default_name
    if not p.is_file():
        raise CrlkitError(
            f"{what} file not found: looked at {str(p.resolve())!r} (crlkit downloads nothing; "
            f"pass path= to your copy of {default_name}, or omit path to render procedurally)")
    return p


def _check_c_order(classes: np.ndarray, sizes: tuple[int, ...], what: str, path: Path) -> None:
    """Factor indices of row i must be ``np.unravel_index(i, sizes)``."""
    n = int(np.prod(sizes))
    if classes.shape[0] != n:
        raise CrlkitError(f"{what} file {str(path)!r}: {classes.shape[0]} images but the factor "
                          f"sizes {sizes} imply {n}")
    expected = np.stack(np.unravel_index(np.arange(n), sizes), axis=1)
    if not np.array_equal(classes, expected):
        raise CrlkitError(f"{what} file {str(path)!r} is not in C order over its factors")


def load_dsprites_npz(path) -> tuple[np.ndarray, tuple[int, ...], dict]:
    """Read a dSprites ``.npz``.

    Returns
    -------
    imgs : numpy.ndarray
        ``(N, 64, 64)`` uint8, row ``i`` = C-order index over (shape, scale, orientation, posX, posY).
    factor_sizes : tuple of int
        Values per factor, read from ``latents_classes`` (``(3, 6, 40, 32, 32)`` for the official file).
    values : dict
        Factor name -> the distinct factor values of the file (e.g. the scales), in index order.
    """
    p = _existing(path, DSPRITES_FILENAME, "dSprites")
    try:
        # allow_pickle=False: only plain arrays are read (``metadata``, a pickled dict, is not)
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in ("imgs", "latents_classes", "latents_values") if k not in f.files]
            if missing:
                raise CrlkitError(f"dSprites file {str(p)!r} lacks arrays {missing}; has {f.files}")
            imgs = np.asarray(f["imgs"])
            classes = np.asarray(f["latents_classes"]).astype(np.int64)
            values = np.asarray(f["latents_values"], dtype=np.float64)
    except (OSError, ValueError) as e:
        if isinstance(e, CrlkitError):
            raise
        raise CrlkitError(f"cannot read dSprites file {str(p)!r}: {e}") from None
    if imgs.ndim != 3 or classes.ndim != 2 or classes.shape[1] != 6:
        raise CrlkitError(f"dSprites file {str(p)!r}: expected imgs (N, H, W) and latents (N, 6); "
                          f"got {imgs.shape} and {classes.shape}")
    classes = classes[:, 1:]  # drop colour (constant)
    sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
    _check_c_order(classes, sizes, "dSprites", p)
    names = ("shape", "scale", "orientation", "posX", "posY")
    vals = {}
    for j, name in enumerate(names):
        # the value of index k of factor j, read at the row where the other factors are 0
        rows = np.arange(sizes[j]) * int(np.prod(sizes[j + 1:]))
        vals[name] = values[rows, j + 1]
    return imgs, sizes, vals


class Shapes3DFile:
    """Lazy reader of ``3dshapes.h5``: images are read from disk for each requested batch."""

    FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")

    def __init__(self, path):
        import h5py

        self.path = _existing(path, SHAPES3D_FILENAME, "3D Shapes")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise CrlkitError(f"cannot read 3D Shapes file {str(self.path)!r}: {e}") from None
        missing = [k for k in ("images", "labels") if k not in self._file]
        if missing:
            raise CrlkitError(f"3D Shapes file {str(self.path)!r} lacks datasets {missing}")
        self.images = self._file["images"]
        labels = np.asarray(self._file["labels"], dtype=np.float64)
        if labels.ndim != 2 or labels.shape[1] != 6 or self.images.shape[0] != labels.shape[0]:
            raise CrlkitError(f"3D Shapes file {str(self.path)!r}: expected images (N, 64, 64, 3) "
                              f"and labels (N, 6); got {self.images.shape} and {labels.shape}")
        self.values = [np.unique(labels[:, j]) for j in range(6)]
        self.factor_sizes = tuple(len(v) for v in self.values)
        classes = np.stack([np.searchsorted(v, labels[:, j]) for j, v in enumerate(self.values)], axis=1)
        _check_c_order(classes, self.factor_sizes, "3D Shapes", self.path)
        self.image_shape = tuple(self.images.shape[1:])

    def read(self, flat_index: np.ndarray) -> np.ndarray:
        """Images ``(n, H, W, 3)`` uint8 at the given flat indices (any order, repeats allowed)."""
        flat_index = np.asarray(flat_index, dtype=np.int64)
        uniq, inverse = np.unique(flat_index, return_inverse=True)  # h5py wants sorted, unique
        return np.asarray(self.images[uniq])[inverse]

    def close(self) -> None:
        self._file.close()
