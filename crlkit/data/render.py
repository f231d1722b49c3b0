"""Shared helpers of the image datasets: devices, colours and image grids.

Rendering in crlkit is vectorised tensor code: a batch of factor vectors becomes a batch
of images without a per-image Python loop, in NumPy on the CPU or in torch on the device
the caller names (so a GPU renders on the GPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from crlkit.errors import CrlkitError


def resolve_device(device: Any) -> torch.device | None:
    """``None`` (NumPy output) or a ``torch.device``; an unknown device string is a CrlkitError."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise CrlkitError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CrlkitError(f"device {str(device)!r} was asked for but CUDA is not available here")
    return dev


def finish(x: torch.Tensor, device: torch.device | None):
    """Return ``x`` as NumPy when no device was asked for, else as a tensor on ``device``."""
    if device is None:
        return x.detach().cpu().numpy()
    return x.to(device)


def render_in_chunks(fn, n: int, shape: tuple[int, ...], device: torch.device | None,
                     chunk: int = 256) -> torch.Tensor:
    """Fill a ``(n, *shape)`` float32 tensor with ``fn(start, stop)`` chunk by chunk.

    On the CPU the output is allocated by NumPy (which asks the kernel for huge pages) and
    small chunks keep temporaries in cache and reused by the allocator: on a busy 2-core
    machine, fresh page faults of large temporaries otherwise dominate the render time.
    On another device the whole batch is one chunk.
    """
    if device is not None and device.type != "cpu":
        return fn(0, n)
    out = torch.from_numpy(np.empty((n,) + tuple(shape), np.float32))
    for a in range(0, n, chunk):
        out[a:a + chunk] = fn(a, min(a + chunk, n))
    return out


def hsv_to_rgb(h: np.ndarray, s: float | np.ndarray = 1.0, v: float | np.ndarray = 1.0) -> np.ndarray:
    """HSV -> RGB for arrays of hues in [0, 1); returns ``(..., 3)`` floats in [0, 1]."""
    h = np.asarray(h, dtype=np.float64)
    s = np.broadcast_to(np.asarray(s, dtype=np.float64), h.shape)
    v = np.broadcast_to(np.asarray(v, dtype=np.float64), h.shape)
    # Standard piecewise-linear form: channel k is v - v s max(0, min(q, 4 - q, 1)),
    # q = (n + 6 h) mod 6 with n = 5, 3, 1 for R, G, B.
    out = []
    for n in (5.0, 3.0, 1.0):
        q = np.mod(n + 6.0 * h, 6.0)
        out.append(v - v * s * np.clip(np.minimum(q, 4.0 - q), 0.0, 1.0))
    return np.stack(out, axis=-1)


def image_grid(images: np.ndarray, *, ncols: int | None = None, pad: int = 2,
               pad_value: float = 1.0) -> np.ndarray:
    """Tile ``(n, C, H, W)`` images in [0, 1] into one ``(H', W', 3)`` uint8 RGB array.

    One-channel images are shown in grey. Rows are filled left to right.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"image_grid expects (n, C, H, W); got {images.shape}")
    n, c, h, w = images.shape
    if c == 1:
        images = np.repeat(images, 3, axis=1)
    elif c != 3:
        raise ValueError(f"image_grid shows 1 or 3 channels; got {c}")
    ncols = int(ncols or int(np.ceil(np.sqrt(n))))
    nrows = int(np.ceil(n / ncols))
    grid = np.full((3, nrows * (h + pad) + pad, ncols * (w + pad) + pad), pad_value, np.float32)
    for i in range(n):  # n is a handful of thumbnails; the loop is over tiles, not pixels
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, y:y + h, x:x + w] = images[i]
    return (np.clip(grid, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def save_png(path, rgb: np.ndarray, *, upscale: int = 1) -> None:
    """Write an ``(H, W, 3)`` uint8 array as PNG atomically (nearest-neighbour ``upscale``)."""
    import os
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(rgb)
    if upscale > 1:
        img = img.resize((rgb.shape[1] * upscale, rgb.shape[0] * upscale), Image.NEAREST)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
