"""Glasses, beards and moustaches: strong identity cues, found in the photo and sculpted.

Both are looked for in the photo warped into the head's frontal frame (see
:func:`pipeline.head.frontalize`), where the landmarks say where eyes, nose and lips are:

- glasses: a dark bridge between the eyes and dark rims under both eyes. The frame itself
  (the dark pixels round the eyes) is raised as a sculpted frame, GLASSES_MM proud;
- beard and moustache: hair-dark pixels (far from the skin colour, darker than it) covering
  the chin or the upper lip. They are raised as a volume BEARD_MM proud, and their colour is
  measured for colour prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.face_regions import feature_groups
from pipeline.sculpt import LOWER_LIP_OUTER, UPPER_LIP_OUTER, mm

GLASSES_MM = 0.9
BEARD_MM = 2.0
FRAME_WIDTH_MM = 1.3  # the raised frame is widened to this, so it prints
DARK = 0.62  # a pixel darker than this share of the skin's brightness is frame or beard
BRIDGE_SHARE = 0.22
RIM_SHARE = 0.2
BEARD_SHARE = 0.5

RGB = tuple[int, int, int]


@dataclass
class FaceFeatures:
    """What was found, and the raised height (frontal units) on the frontal texture grid."""

    glasses: bool
    beard: bool
    moustache: bool
    beard_rgb: RGB | None
    raised: np.ndarray  # (H, W) float32, frontal units

    def names(self) -> list[str]:
        return [n for n, found in (("glasses", self.glasses), ("beard", self.beard), ("moustache", self.moustache)) if found]


def _px(xy: np.ndarray, bounds: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    x0, x1, y0, y1 = bounds
    h, w = shape
    return np.column_stack([(xy[:, 0] - x0) / (x1 - x0) * (w - 1), (y1 - xy[:, 1]) / (y1 - y0) * (h - 1)])


def _share(mask: np.ndarray, region: np.ndarray) -> float:
    return float(mask[region].mean()) if region.any() else 0.0


def find_face_features(
    photo: np.ndarray,
    cartoon: np.ndarray,
    bounds: tuple[float, float, float, float],
    frontal: np.ndarray,
    skin: RGB,
) -> FaceFeatures:
    """Glasses, beard and moustache in ``photo`` (the photo in the frontal frame spanning
    ``bounds``; ``cartoon`` is the stylized face on the same grid, whose ink outlines even
    light frames), located with the ``frontal`` landmarks; ``skin`` is the skin colour."""
    h, w = photo.shape[:2]
    px_per_unit = (w - 1) / (bounds[1] - bounds[0])
    lm = _px(frontal[:, :2], bounds, (h, w))
    lum = photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    skin_lum = max(20.0, float(np.dot(skin, [0.299, 0.587, 0.114])))
    cartoon_lum = cartoon.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dark = (lum < DARK * skin_lum) | (cartoon_lum < 0.5 * np.median(cartoon_lum))
    yy, xx = np.mgrid[0:h, 0:w]

    def polygon_mask(idx, grow_px: float) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(m, cv2.convexHull(lm[idx].astype(np.int32)), 1)
        k = max(1, int(grow_px))
        return cv2.dilate(m, np.ones((2 * k + 1, 2 * k + 1), np.uint8)) > 0

    groups = feature_groups()
    eye_width = float(np.linalg.norm(lm[133] - lm[33]))
    raised = np.zeros((h, w), np.float32)

    # Glasses: a dark bridge between the inner eye corners, and dark rims under both eyes.
    inner_mid = (lm[133] + lm[362]) / 2
    gap = float(np.linalg.norm(lm[362] - lm[133]))
    bridge = (np.abs(xx - inner_mid[0]) < 0.3 * gap) & (np.abs(yy - (inner_mid[1] - 0.25 * eye_width)) < 0.4 * eye_width)

    def darkest_row(band: np.ndarray) -> float:
        """The darkest horizontal line in ``band``: a frame is a line, shading is not."""
        rows = [dark[r, band[r]].mean() for r in np.flatnonzero(band.any(axis=1))]
        return max(rows) if rows else 0.0

    rims = []
    for eye in ("right_eye", "left_eye"):
        centre = lm[groups[eye]].mean(axis=0)
        below = (yy > centre[1] + 0.3 * eye_width) & (yy < centre[1] + 1.2 * eye_width)
        rims.append(darkest_row((np.abs(xx - centre[0]) < 0.6 * eye_width) & below))
    glasses = darkest_row(bridge) > BRIDGE_SHARE and min(rims) > RIM_SHARE
    if glasses:
        around = np.zeros((h, w), bool)
        for eye in ("right_eye", "left_eye"):
            centre = lm[groups[eye]].mean(axis=0)
            around |= ((xx - centre[0]) / (1.05 * eye_width)) ** 2 + ((yy - centre[1]) / (0.85 * eye_width)) ** 2 < 1
        keep_out = polygon_mask(groups["right_eye"], 0.15 * eye_width) | polygon_mask(groups["left_eye"], 0.15 * eye_width)
        keep_out |= polygon_mask(groups["right_brow"], 0.05 * eye_width) | polygon_mask(groups["left_brow"], 0.05 * eye_width)
        frame = ((around | bridge) & dark & ~keep_out).astype(np.float32)
        sigma = max(1.0, mm(FRAME_WIDTH_MM) * px_per_unit / 3)
        frame = np.clip(cv2.GaussianBlur(cv2.dilate(frame, np.ones((3, 3), np.uint8)), (0, 0), sigma) * 2.0, 0, 1)
        raised += mm(GLASSES_MM) * frame

    # Beard and moustache: dark, non-skin hair below the nose, never the lips.
    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB).astype(np.float32)
    skin_lab = cv2.cvtColor(np.uint8([[skin]]), cv2.COLOR_RGB2LAB).astype(np.float32)[0, 0]
    hairy = (np.linalg.norm(lab - skin_lab, axis=-1) > 30) & (lab[..., 0] < skin_lab[0] - 15)
    lips = polygon_mask(np.array(UPPER_LIP_OUTER + LOWER_LIP_OUTER), 0.06 * px_per_unit)
    oval = np.zeros((h, w), np.uint8)
    from pipeline.face_regions import face_oval_ring

    cv2.fillPoly(oval, [lm[face_oval_ring()].astype(np.int32)], 1)
    # Well inside the outline: its edge and the throat below are shadow, not beard.
    oval = cv2.erode(oval, np.ones((7, 7), np.uint8)) > 0
    mouth_x0, mouth_x1 = lm[61, 0], lm[291, 0]
    upper_lip_zone = oval & (yy > lm[2, 1] + 0.02 * px_per_unit) & (yy < lm[0, 1]) & (xx > mouth_x0) & (xx < mouth_x1) & ~lips
    chin_zone = oval & (yy > lm[17, 1] + 0.04 * px_per_unit) & ~lips
    moustache = _share(hairy, upper_lip_zone) > BEARD_SHARE
    beard = _share(hairy, chin_zone) > BEARD_SHARE
    beard_rgb: RGB | None = None
    if beard or moustache:
        zone = (chin_zone if beard else np.zeros_like(oval)) | (upper_lip_zone if moustache else np.zeros_like(oval))
        below_nose = oval & (yy > lm[2, 1]) & ~lips
        grow = (hairy & below_nose).astype(np.uint8)
        grow = cv2.morphologyEx(grow, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        volume = cv2.GaussianBlur(grow.astype(np.float32), (0, 0), max(1.0, mm(1.2) * px_per_unit))
        volume *= cv2.dilate(zone.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        raised += mm(BEARD_MM) * np.clip(volume * 1.5, 0, 1)
        pixels = photo[hairy & zone]
        if len(pixels):
            med = np.median(pixels, axis=0)
            beard_rgb = (int(med[0]), int(med[1]), int(med[2]))
    return FaceFeatures(glasses, beard, moustache, beard_rgb, raised)


def raised_at(features: FaceFeatures, bounds: tuple[float, float, float, float], xy: np.ndarray) -> np.ndarray:
    """The raised height (frontal units) at frontal points ``xy``."""
    h, w = features.raised.shape
    p = _px(xy, bounds, (h, w)).astype(np.float32)
    return cv2.remap(features.raised, p[None, :, 0], p[None, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[0]
