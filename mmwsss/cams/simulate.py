# Copyright (c) mmwsss contributors.
"""Simulated CAMs from ground-truth masks, for measurements without a model.

Refinement steps (heuristic targets, random walks, confident labels) can be
measured on CAMs that look like a classifier's without training one:
:func:`simulate_cams` turns a mask into raw class maps with the usual
defects of CAMs, on the classifier's coarse grid:

- activation peaked on the object's core (its most "discriminative" part):
  inside the object the map is ``(1 - core) + core * dt / max(dt)`` with
  ``dt`` the distance to the object's border;
- spill across the border: a Gaussian blur of ``spill`` times the image
  side;
- a false activation in the background with probability ``false_prob``
  (a context blob of amplitude U(0.2, 0.5));
- multiplicative log-normal noise per coarse cell (``noise``);
- area pooling to the stride-``stride`` grid and an affine map to logits
  ``scale * x - offset`` (so the ReLU of eq. (3) cuts the background).

Classes absent from the mask get negative logits. The result is
deterministic for a given ``rng``. It is a stand-in whose *relative*
effects (e.g. of dropout or of a renormalisation) are informative; absolute
mIoUs of real CAMs differ.
"""
from typing import Optional

import cv2
import numpy as np

__all__ = ['simulate_cams']


def simulate_cams(gt: np.ndarray,
                  num_classes: int,
                  stride: int = 16,
                  spill: float = 0.06,
                  core: float = 0.6,
                  false_prob: float = 0.5,
                  noise: float = 0.3,
                  scale: float = 8.0,
                  offset: float = 1.0,
                  ignore_index: int = 255,
                  rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Raw CAM logits ``(num_classes - 1, H // stride, W // stride)``.

    Args:
        gt (np.ndarray): ``(H, W)`` mask, 0 background, ``1..C-1`` classes,
            ``ignore_index`` ignored (treated as background).
        num_classes (int): Classes including background.
        stride (int): Output stride of the simulated classifier.
        spill (float): Blur sigma as a fraction of the image side.
        core (float): Weight of the distance-to-border peak, in [0, 1].
        false_prob (float): Probability of a false background activation
            per present class.
        noise (float): Sigma of the log-normal noise per coarse cell.
        scale (float): Logit scale.
        offset (float): Logit offset.
        ignore_index (int): Ignored mask value.
        rng (np.random.Generator, optional): Random generator.

    Returns:
        np.ndarray: float32 raw maps, one per foreground class.
    """
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f'gt must be (H, W), got shape {gt.shape}')
    if not 0 <= core <= 1:
        raise ValueError(f'core must be in [0, 1], got {core}')
    rng = np.random.default_rng(0) if rng is None else rng
    h, w = gt.shape
    hs, ws = max(1, h // stride), max(1, w // stride)
    side = float(np.sqrt(h * w))
    out = np.empty((num_classes - 1, hs, ws), np.float32)
    yy, xx = np.mgrid[:h, :w]
    for c in range(1, num_classes):
        m = (gt == c)
        if not m.any():
            out[c - 1] = -offset - rng.random()
            continue
        dt = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 5)
        x = m * ((1 - core) + core * dt / max(float(dt.max()), 1e-6))
        bg = np.flatnonzero(~m & (gt != ignore_index))
        if rng.random() < false_prob and bg.size:
            p = bg[rng.integers(bg.size)]
            cy, cx = divmod(int(p), w)
            sig = 0.08 * side
            x = x + rng.uniform(0.2, 0.5) * np.exp(-((yy - cy)**2 +
                                                     (xx - cx)**2) /
                                                   (2 * sig**2))
        x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), spill * side)
        x = x / max(float(x.max()), 1e-6)
        pooled = cv2.resize(x, (ws, hs), interpolation=cv2.INTER_AREA)
        pooled = pooled * np.exp(noise * rng.standard_normal(pooled.shape))
        out[c - 1] = scale * pooled - offset
    return out
