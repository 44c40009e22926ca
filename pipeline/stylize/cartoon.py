"""The embedded CPU cartoon backend: no weights, no download, a few tens of milliseconds.

Steps: cut the person out with MediaPipe's selfie mask and put them on a clean backdrop;
smooth with an edge-preserving filter; flatten colours with a small k-means palette; draw
dark outlines; then paste back a lightly-smoothed copy of the eyes, brows and mouth so the
person stays recognisable.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.face_regions import face_oval_ring, feature_groups
from pipeline.landmarks import FaceAnalysis
from pipeline.stylize.base import Availability, ProgressFn, StylizeResult, check_style
from pipeline.timing import timed


@dataclass(frozen=True)
class Look:
    """Parameters of one selectable look."""

    colours: int
    smooth_passes: int
    line_px: int
    line_block: int  # adaptive-threshold neighbourhood, odd
    line_c: int  # adaptive-threshold offset: higher means fewer lines
    saturation: float
    halftone: bool
    backdrop: tuple[tuple[int, int, int], tuple[int, int, int]]  # gradient top, bottom


LOOKS: dict[str, Look] = {
    "toon": Look(
        colours=9,
        smooth_passes=2,
        line_px=1,
        line_block=9,
        line_c=7,
        saturation=1.25,
        halftone=False,
        backdrop=((214, 236, 250), (168, 208, 240)),
    ),
    "comic": Look(
        colours=6,
        smooth_passes=2,
        line_px=2,
        line_block=7,
        line_c=6,
        saturation=1.45,
        halftone=True,
        backdrop=((255, 236, 160), (250, 200, 90)),
    ),
}

PROCESS_SIDE = 384  # smoothing and palette run at this size; lines are drawn at full size


def _backdrop(height: int, width: int, look: Look) -> np.ndarray:
    top, bottom = (np.array(c, dtype=np.float32) for c in look.backdrop)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).astype(np.uint8)


def _person_alpha(face: FaceAnalysis, shape: tuple[int, int]) -> np.ndarray:
    """Soft person mask; the face oval is always kept even if segmentation missed part of it."""
    alpha = cv2.resize(face.person_mask, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    oval = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(oval, [face.landmarks_px[face_oval_ring(), :2].astype(np.int32)], 1)
    alpha = np.maximum(alpha, oval.astype(np.float32))
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=max(1.0, shape[1] / 512))
    return np.clip((alpha - 0.35) / 0.3, 0.0, 1.0)


def _feature_mask(face: FaceAnalysis, shape: tuple[int, int]) -> np.ndarray:
    """Soft mask over eyes, brows and lips, grown a little so lashes and lip lines are kept."""
    mask = np.zeros(shape, dtype=np.uint8)
    for name, idx in feature_groups().items():
        if name == "nose":
            continue
        hull = cv2.convexHull(face.landmarks_px[idx, :2].astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
    grow = max(3, int(face.face_width_px * 0.04)) | 1
    mask = cv2.dilate(mask, np.ones((grow, grow), np.uint8))
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=grow / 2)


def _palette(
    image: np.ndarray, face_region: np.ndarray, colours: int, rng: np.random.Generator
) -> np.ndarray:
    """Flatten colours with k-means in Lab space. Half the sample comes from the face so that
    skin gets tones of its own instead of being merged with the background's greys."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    face_idx = np.flatnonzero(face_region.reshape(-1))
    picks = [rng.choice(len(lab), size=min(len(lab), 2500), replace=False)]
    if len(face_idx):
        picks.append(rng.choice(face_idx, size=2500, replace=True))
    sample = lab[np.concatenate(picks)]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 12, 1.0)
    cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))
    _, _, centres = cv2.kmeans(sample, colours, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    # Nearest centre by expanding |a-b|^2 = |a|^2 - 2ab + |b|^2; the |a|^2 term is constant.
    scores = lab @ centres.T * -2.0 + (centres**2).sum(axis=1)
    flat = centres[np.argmin(scores, axis=1)].astype(np.uint8).reshape(image.shape)
    return cv2.cvtColor(flat, cv2.COLOR_LAB2RGB)


def _saturate(image: np.ndarray, factor: float) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def _outlines(gray: np.ndarray, look: Look, skin: np.ndarray) -> np.ndarray:
    """Dark line mask (1 = ink) from a smoothed grey image. On skin only strong lines are
    kept, so cheeks and the side of the nose stay clean instead of blotchy."""
    blurred = cv2.medianBlur(gray, 5)
    edges = cv2.adaptiveThreshold(
        blurred, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, look.line_block, look.line_c
    )
    strict = cv2.adaptiveThreshold(
        blurred, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, look.line_block, look.line_c * 3
    )
    ink = np.where(skin, strict == 0, edges == 0).astype(np.uint8)
    # Drop specks: lines must be at least a few pixels long to count.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= 12
    keep[0] = False
    ink = keep[labels].astype(np.uint8)
    if look.line_px > 1:
        ink = cv2.dilate(ink, np.ones((look.line_px, look.line_px), np.uint8))
    return ink


def _halftone(image: np.ndarray, shading: np.ndarray, period: int) -> np.ndarray:
    """Comic-book dots in the darker tones."""
    h, w = shading.shape
    # Row and column terms broadcast: a full-size coordinate grid cost 36 ms at 1024 px.
    dx = (np.arange(w) % period - period / 2) ** 2
    dy = (np.arange(h) % period - period / 2) ** 2
    dots = (dy[:, None] + dx[None, :]) < (period / 3.2) ** 2
    shade = (shading < 110) & dots
    out = image.copy()
    out[shade] = (out[shade].astype(np.float32) * 0.72).astype(np.uint8)
    return out


class CartoonStylizer:
    """Face-aware cartoon filter (OpenCV + MediaPipe masks)."""

    name = "cpu"
    styles = tuple(LOOKS)

    def availability(self) -> Availability:
        return Availability(available=True)

    def stylize(
        self,
        image: np.ndarray,
        face: FaceAnalysis,
        style: str,
        seed: int,
        progress: ProgressFn | None = None,
    ) -> StylizeResult:
        check_style(self, style)
        look = LOOKS[style]
        rng = np.random.default_rng(seed)
        timings: dict[str, float] = {}
        h, w = image.shape[:2]

        with timed(timings, "matte"):
            alpha = _person_alpha(face, (h, w))[..., None]
            backdrop = _backdrop(h, w, look)

        with timed(timings, "flatten"):
            scale = min(1.0, PROCESS_SIDE / max(h, w))
            small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            for _ in range(look.smooth_passes):
                small = cv2.bilateralFilter(small, d=7, sigmaColor=40, sigmaSpace=7)
            oval_small = np.zeros(small.shape[:2], dtype=np.uint8)
            ring = (face.landmarks_px[face_oval_ring(), :2] * scale).astype(np.int32)
            cv2.fillPoly(oval_small, [ring], 1)
            flat_small = _palette(_saturate(small, look.saturation), oval_small, look.colours, rng)
            flat = cv2.resize(flat_small, (w, h), interpolation=cv2.INTER_LINEAR)
            flat = cv2.medianBlur(flat, 5 if max(h, w) > 600 else 3)
        if progress:
            progress(0.5, "cartoon colours")

        with timed(timings, "lines"):
            detail = cv2.bilateralFilter(image, d=5, sigmaColor=25, sigmaSpace=5)
            detail = _saturate(detail, 1.1)
            features = _feature_mask(face, (h, w))[..., None]
            toon = flat.astype(np.float32) * (1 - features) + detail.astype(np.float32) * features

            gray_small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            gray = cv2.resize(gray_small, (w, h), interpolation=cv2.INTER_LINEAR)
            skin = np.zeros((h, w), np.uint8)
            cv2.fillPoly(skin, [face.landmarks_px[face_oval_ring(), :2].astype(np.int32)], 1)
            skin = (skin > 0) & (features[..., 0] < 0.5)
            ink = _outlines(gray, look, skin).astype(np.float32)
            # Person silhouette gets a clean outer line too.
            edge = cv2.morphologyEx((alpha[..., 0] > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT,
                                    np.ones((2 + look.line_px, 2 + look.line_px), np.uint8))
            ink = np.maximum(ink * alpha[..., 0], edge.astype(np.float32))
            ink_colour = np.array([28, 22, 30], dtype=np.float32)
            toon = toon * (1 - ink[..., None]) + ink_colour * ink[..., None]
            toon = np.clip(toon, 0, 255).astype(np.uint8)
            if look.halftone:
                toon = _halftone(toon, gray, period=max(4, w // 160))

        out = toon.astype(np.float32) * alpha + backdrop.astype(np.float32) * (1 - alpha)
        if progress:
            progress(1.0, "cartoon done")
        return StylizeResult(
            image=np.clip(out + 0.5, 0, 255).astype(np.uint8),
            backend=self.name,
            style=style,
            timings_ms=timings,
        )
