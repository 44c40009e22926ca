"""A clean face texture: what the photo does not show of the face is filled, not smeared.

The face texture lives in the head's frontal frame (see :func:`pipeline.head.frontalize`),
symmetric about x = 0, so the face's symmetry plane is the texture's middle column and a
mirrored copy is just the image flipped left to right. Two things are filled from it:

- the far side of a turned head: foreshortened in the photo, it would stretch a few pixels
  of cheek, ear or background across half the figurine's face;
- occluders: whatever the person mask says is not the person (a held object, the background
  showing through), inside the face outline.

Where the mirror is no better, the caller's skin colour takes over.
"""

from __future__ import annotations

import numpy as np

# A point of the face whose surface faces the camera less than this (cosine) is "hidden".
VISIBLE_COSINE = 0.75
FADE = 0.2
FACE_WRAP = 1.15  # half the face width over sin(the angle round the head at its edge)


def facing(x: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Cosine between the camera and the surface at frontal x (face half-widths), for a head
    turned by ``yaw_deg`` (positive: towards image right). The face is treated as a
    cylinder round its vertical axis: enough to tell the turned-away side."""
    around = np.arcsin(np.clip(x / FACE_WRAP, -1.0, 1.0))
    return np.cos(np.radians(yaw_deg) + around)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def mirror_weight(width: int, x0: float, x1: float, yaw_deg: float) -> np.ndarray:
    """Per texture column: how much of the mirrored image to use (0 keeps the photo)."""
    x = np.linspace(x0, x1, width)
    own, mirrored = facing(x, yaw_deg), facing(-x, yaw_deg)
    hidden = _smoothstep((VISIBLE_COSINE - own) / FADE)
    return hidden * _smoothstep((mirrored - own) / FADE)


def clean_face(
    warped: np.ndarray, x_range: tuple[float, float], yaw_deg: float, occluded: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``warped`` (H, W, C) with its hidden side and occluders replaced by the mirror image.

    Returns the cleaned image and a (H, W) mask of pixels neither the photo nor its mirror
    shows (to be painted with skin by the caller).
    """
    h, w = warped.shape[:2]
    column_weight = mirror_weight(w, *x_range, yaw_deg)
    out = warped.copy()
    mirrored = warped[:, ::-1]
    cols = np.flatnonzero(column_weight > 0)  # the turned-away side, if any
    if len(cols):
        wgt = column_weight[cols][None, :, None] if warped.ndim == 3 else column_weight[cols][None, :]
        out[:, cols] = (warped[:, cols] * (1 - wgt) + mirrored[:, cols] * wgt).astype(warped.dtype)
    unknown = np.zeros((h, w), bool)
    if occluded is not None and occluded.any():
        mirrored_occluded = occluded[:, ::-1]
        unknown = occluded & mirrored_occluded
        swap = occluded & ~mirrored_occluded
        out[swap] = mirrored[swap]
    return out, unknown
