"""The sculpt's shading by slope: dark areas of the photo face away from an overhead light."""

import numpy as np

from pipeline.sculpt import SHADE_TILT, shading_relief

SLOPE = 0.5  # height per pixel (heights in pixels) over a fully dark area: ~27 degrees
KEEP_PX = 40.0
SHAPE = (400, 300)
BAND = (slice(180, 210), slice(110, 190))  # a dark band 30 rows tall
INSIDE = (slice(184, 206), slice(120, 180))


def _lit(height: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Lambert shading of a height field (rows run downwards, height towards the viewer)."""
    d_row, d_col = np.gradient(height)
    # Surface normal of z = height(x, y) with y up (= -row): (-dz/dx, -dz/dy, 1).
    normals = np.stack([-d_col, d_row, np.ones_like(height)], axis=-1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.clip(normals @ (light / np.linalg.norm(light)), 0.0, None)


def _band(sign: float = 1.0) -> np.ndarray:
    darkness = np.zeros(SHAPE, np.float32)
    darkness[BAND] = sign
    return darkness


def test_a_dark_area_faces_down_and_reads_darker_under_an_overhead_light():
    assert SHADE_TILT == (0.0, 1.0)
    height = -shading_relief(_band(), SLOPE, KEEP_PX)
    d_row = np.gradient(height)[0][INSIDE]
    # Rising towards the top of the image over the whole band, by a good part of the asked slope.
    assert (d_row < 0).all()
    assert 0.4 * SLOPE < -np.median(d_row) < 1.2 * SLOPE
    overhead = np.array([0.0, 1.0, 1.0])
    shading = _lit(height, overhead)
    flat = _lit(np.zeros_like(height), overhead)
    assert shading[INSIDE].mean() < 0.8 * flat[INSIDE].mean()


def test_a_bright_area_faces_up_and_no_contrast_carves_nothing():
    height = -shading_relief(_band(-1.0), SLOPE, KEEP_PX)
    assert (np.gradient(height)[0][INSIDE] > 0).all()
    assert np.abs(shading_relief(np.zeros((80, 60), np.float32), SLOPE, KEEP_PX)).max() < 1e-6


def test_the_relief_mostly_adds_material_and_stays_local():
    relief = shading_relief(_band(), SLOPE, KEEP_PX)
    assert relief.shape == SHAPE
    height = -relief
    rise = 30 * SLOPE  # the band's own rise at the full slope
    assert height.max() <= rise
    # Lifted onto its floor: what it removes is a fraction of what it adds.
    assert -height.min() < 0.5 * height.max()
    assert height[height > 0].sum() > 3 * -height[height < 0].sum()
    # Nothing left three keep-widths above or below the band.
    far = np.ones(SHAPE, bool)
    far[60:330] = False
    assert np.abs(height[far]).max() < 0.05 * height.max()
