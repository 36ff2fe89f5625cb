"""A small event data set made from static images, so the event path runs without downloads.

Saccade-style, like N-MNIST: the image moves along a closed triangle (three saccades) with sub-pixel
shifts (bilinear, zero fill); a DVS-like pixel emits an ON event where the intensity rose by more than
``threshold`` since the previous frame and an OFF event where it fell. Output (N, T, 2C, H, W) of {0, 1}:
ON channels first, then OFF channels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from neuromap.errors import NeuromapError

# Triangle vertices in units of the saccade amplitude, (dy, dx); the path starts and ends at (0, 0).
_TRIANGLE = ((0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (0.0, 0.0))


def saccade_path(steps: int, amplitude: float) -> np.ndarray:
    """(steps + 1, 2) positions (dy, dx) in pixels, uniformly spaced along the triangle."""
    verts = np.asarray(_TRIANGLE) * amplitude
    seg = np.linalg.norm(np.diff(verts, axis=0), axis=1)
    where = np.linspace(0.0, seg.sum(), steps + 1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    k = np.clip(np.searchsorted(cum, where, side="right") - 1, 0, len(seg) - 1)
    frac = ((where - cum[k]) / seg[k])[:, None]
    return verts[k] + frac * (verts[k + 1] - verts[k])


def saccade_events(images: np.ndarray | torch.Tensor, steps: int, *, amplitude: float = 1.5,
                   threshold: float = 0.1) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] -> ON/OFF event frames (N, steps, 2C, H, W), float32 {0, 1}."""
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4:
        raise NeuromapError(f"saccade_events: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if steps < 1 or not amplitude > 0 or not threshold > 0:  # written so that NaN fails
        raise NeuromapError(f"saccade_events: steps, amplitude and threshold must be > 0 "
                            f"(got {steps}, {amplitude:g}, {threshold:g})")
    n, c, h, w = x.shape
    path = torch.as_tensor(saccade_path(steps, amplitude), dtype=torch.float32)
    # Moving the content by (dy, dx) pixels samples the image at (y - dy, x - dx); a pixel is 2/size wide
    # in grid_sample's normalised coordinates (align_corners=False).
    affine = torch.zeros(len(path), 2, 3)
    affine[:, 0, 0] = affine[:, 1, 1] = 1.0
    affine[:, 0, 2] = -2.0 * path[:, 1] / w
    affine[:, 1, 2] = -2.0 * path[:, 0] / h
    grid = F.affine_grid(affine, [len(path), c, h, w], align_corners=False)
    frames = torch.stack([F.grid_sample(x, grid[k].expand(n, h, w, 2), mode="bilinear", padding_mode="zeros",
                                        align_corners=False) for k in range(len(path))], dim=1)
    diff = frames[:, 1:] - frames[:, :-1]
    return torch.cat([(diff > threshold), (diff < -threshold)], dim=2).to(torch.float32)
