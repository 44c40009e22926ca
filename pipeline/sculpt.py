"""Sculpt the face so that it survives printing in one colour.

A photo's depth is too shallow for plastic: at figurine scale the landmarks' own relief is a
few tenths of a millimetre around the eyes and lips. A sculptor exaggerates: the face's
deviation from a smooth base is amplified (caricature), and the features that carry identity
(brow ridge, eye sockets, lids, cheekbones, lips, nostrils) are modelled explicitly as
displacements of the frontal face surface.

Everything here is in the frontal frame of :func:`pipeline.head.frontalize`: units of half
the face width, x to the subject's left, y up, z towards the viewer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Half the face width in millimetres on a figurine printed at the default 100 mm: the head
# is ~39 mm tall (see tests/test_head.py, which measures it on the fused solid).
HALF_FACE_MM = 12.3

# How much the face's own relief is amplified around a smooth base surface.
CARICATURE_GAIN = 0.7
BROW_MM = 1.3  # brow ridge over each eye
SOCKET_MM = 1.3  # eye socket between brow and cheek
CHEEKBONE_MM = 1.0
LIPS_MM = 1.1


def mm(value_mm: float) -> float:
    """Millimetres at the default 100 mm height, in frontal units."""
    return value_mm / HALF_FACE_MM


# MediaPipe FaceMesh landmark polylines (subject's right = image left).
RIGHT_EYE_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
RIGHT_EYE_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
LEFT_EYE_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
LEFT_EYE_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
RIGHT_BROW = [(70, 46), (63, 53), (105, 52), (66, 65), (107, 55)]  # (upper, lower) pairs
LEFT_BROW = [(300, 276), (293, 283), (334, 282), (296, 295), (336, 285)]
UPPER_LIP_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LOWER_LIP_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
UPPER_LIP_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_LIP_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
CHEEKBONES = (117, 346)
RIGHT_IRIS, LEFT_IRIS = 468, 473  # refined landmarks: centre, then 4 points on the rim
IRIS = True
NOSTRILS = (98, 327)
NOSE_WINGS = ((129, 64, 98), (358, 294, 327))
EAR_LEVEL = (234, 454)  # face-oval points beside the eyes, where the ears attach


@dataclass(frozen=True)
class EyeStyle:
    """How the eyes are made to read in one colour."""

    name: str  # "sculpted": eyeballs and lids; "grooves": the ink lines carved in


SCULPTED = EyeStyle("sculpted")
GROOVES = EyeStyle("grooves")


def _segment_distance(points: np.ndarray, polyline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point to an open polyline, and the parameter t along it (0..1)."""
    a, b = polyline[:-1], polyline[1:]
    ab = b - a
    ap = points[:, None, :] - a[None]
    seg_len2 = np.maximum((ab * ab).sum(-1), 1e-12)
    t = np.clip((ap * ab).sum(-1) / seg_len2, 0.0, 1.0)
    d = np.linalg.norm(ap - t[..., None] * ab[None], axis=-1)
    nearest = d.argmin(axis=1)
    lengths = np.sqrt(seg_len2)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    along = (cumulative[nearest] + t[np.arange(len(points)), nearest] * lengths[nearest]) / cumulative[-1]
    return d[np.arange(len(points)), nearest], along


def _near(points: np.ndarray, shape: np.ndarray, margin: float) -> np.ndarray:
    """Indices of the points within ``margin`` of the bounding box of ``shape``: features are
    local, and evaluating them only there keeps the sculpt fast on a dense mesh."""
    lo, hi = shape.min(axis=0) - margin, shape.max(axis=0) + margin
    return np.flatnonzero(((points >= lo) & (points <= hi)).all(axis=1))


def _tube(points: np.ndarray, polyline: np.ndarray, height: float, width: float, taper: bool = True) -> np.ndarray:
    """A rounded ridge (height > 0) or groove (< 0) along a polyline, ``width`` across."""
    out = np.zeros(len(points))
    idx = _near(points, polyline, 1.2 * width)
    d, along = _segment_distance(points[idx], polyline)
    profile = np.exp(-0.5 * (d / (width / 2.5)) ** 2)
    if taper:  # fade at the ends, like a brush stroke
        profile *= np.sin(np.pi * np.clip(along, 0.0, 1.0)) ** 0.5
    out[idx] = height * profile
    return out


def _smoothstep_array(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _blob(points: np.ndarray, centre: np.ndarray, height: float, radii: tuple[float, float]) -> np.ndarray:
    r = (points - centre) / np.asarray(radii)
    return height * np.exp(-0.5 * (r * r).sum(axis=1))


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as PolygonPath

    return PolygonPath(polygon).contains_points(points)


def _soft_inside(points: np.ndarray, polygon: np.ndarray, softness: float) -> np.ndarray:
    """1 deep inside ``polygon``, 0 outside, a smooth ramp ``softness`` wide at its edge."""
    out = np.zeros(len(points))
    idx = _near(points, polygon, softness)
    closed = np.vstack([polygon, polygon[:1]])
    d, _ = _segment_distance(points[idx], closed)
    inside = _inside(points[idx], polygon)
    x = np.clip(d / softness, 0.0, 1.0)
    ramp = x * x * (3 - 2 * x)
    out[idx] = np.where(inside, 0.5 + 0.5 * ramp, 0.5 - 0.5 * ramp)
    return out


def caricature_depth(frontal: np.ndarray) -> np.ndarray:
    """Landmark depths with their deviation from a smooth quadratic base amplified."""
    x, y, z = frontal[:, 0], frontal[:, 1], frontal[:, 2]
    design = np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])
    coeffs, *_ = np.linalg.lstsq(design, z, rcond=None)
    base = design @ coeffs
    return base + CARICATURE_GAIN * (z - base)


def feature_relief(xy: np.ndarray, frontal: np.ndarray, eyes: EyeStyle = SCULPTED) -> np.ndarray:
    """Depth added at frontal points ``xy`` by the sculpted features (frontal units)."""
    p = frontal[:, :2]
    relief = np.zeros(len(xy))
    eye_width = float(np.linalg.norm(p[133] - p[33]))
    for upper_ids, lower_ids, brow, iris_idx in (
        (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, RIGHT_BROW, RIGHT_IRIS),
        (LEFT_EYE_UPPER, LEFT_EYE_LOWER, LEFT_BROW, LEFT_IRIS),
    ):
        upper, lower = p[upper_ids], p[lower_ids]
        brow_line = np.array([(p[a] + p[b]) / 2 for a, b in brow])
        centre = (upper.mean(axis=0) + lower.mean(axis=0)) / 2
        opening = np.vstack([upper, lower[::-1][1:-1]])
        # Brow ridge over the eye, and the socket between brow and cheek.
        relief += _tube(xy, brow_line, mm(BROW_MM), 0.55 * eye_width, taper=True)
        relief += _blob(xy, centre + [0.0, 0.3 * eye_width], -mm(SOCKET_MM), (0.75 * eye_width, 0.32 * eye_width))
        if eyes is SCULPTED:
            # An eyeball domed inside the opening, with a thick upper lid over it: the lid's
            # lower edge casts the dark line that reads as an eye in grey.
            inside = _soft_inside(xy, opening, 0.08 * eye_width)
            radius = 0.55 * eye_width
            r2 = ((xy - centre) ** 2).sum(axis=1) / radius**2
            relief += inside * mm(1.1) * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
            relief += _tube(xy, upper + [0.0, 0.03 * eye_width], mm(1.1), 0.34 * eye_width, taper=True)
            relief += _tube(xy, lower, mm(0.35), 0.3 * eye_width, taper=True)
            if IRIS:
                # A carved iris with a deeper pupil, as sculptors incise them: the dish's
                # upper wall is in shade, so the eye has a dark centre in one colour.
                iris_centre = p[iris_idx]
                iris_r = max(0.3 * eye_width, float(np.linalg.norm(p[iris_idx + 1 : iris_idx + 5] - iris_centre, axis=1).mean()))
                dist = np.linalg.norm(xy - iris_centre, axis=1) / iris_r
                relief -= inside * mm(0.55) * _smoothstep_array(1.0 - (dist - 0.85) / 0.3)
                relief -= inside * mm(0.5) * _smoothstep_array(1.0 - (dist - 0.35) / 0.2)
        else:
            # The cartoon's ink lines carved in: the upper lid line and brow as grooves.
            relief += _tube(xy, upper, -mm(0.5), 0.12 * eye_width, taper=False)
            relief += _tube(xy, lower, -mm(0.3), 0.08 * eye_width, taper=True)
            relief += _tube(xy, brow_line, -mm(0.45), 0.16 * eye_width, taper=True)
    # Cheekbones.
    for idx in CHEEKBONES:
        relief += _blob(xy, p[idx] + [0.0, 0.05], mm(CHEEKBONE_MM), (0.28, 0.18))
    # Lips stand out; the mouth line between them is carved.
    lips = np.vstack([p[UPPER_LIP_OUTER], p[LOWER_LIP_OUTER][::-1][1:-1]])
    relief += _soft_inside(xy, lips, 0.06) * mm(LIPS_MM)
    mouth = (p[UPPER_LIP_INNER] + p[LOWER_LIP_INNER]) / 2
    open_gap = float(np.linalg.norm(p[13] - p[14]))
    relief += _tube(xy, mouth, -mm(0.6), max(0.06, 1.2 * open_gap), taper=True)
    # Nostrils and the crease round each nose wing.
    for wing, nostril in zip(NOSE_WINGS, NOSTRILS):
        relief += _blob(xy, p[nostril] + [0.0, -0.02], -mm(0.6), (0.045, 0.03))
        relief += _tube(xy, p[list(wing)], -mm(0.35), 0.06, taper=True)
    return relief


INK_DEPTH_MM = 0.5
INK_WIDTH_MM = 1.4
SHADE_MM = 1.0
SHADE_SCALE = 4.0  # the neighbourhood a shade is compared with, in groove widths
SHADE_DETAIL_MM = 0.25  # Gaussian sigma: the finest shading detail carved
SHADE_CONTRAST = 0.3  # local contrast (share of the face's brightness) carved at full depth
# Shading by slope (see shading_relief): what is darker than its surroundings over
# SLOPE_SCALE_MM faces down, tilted by up to SHADE_SLOPE (rise per run: 0.5 is ~27 degrees) at
# full darkness. Measured with dlib on the 10 test people (grey print): under the likeness
# benchmark's light, median distance 0.695 with the depth carving alone, 0.692 with both;
# under the same lights mirrored (key on the viewer's right), 0.689 and 0.659. The slope
# alone, without the depth carving, was worse than either (0.75). It also brought the
# textured figurine from 0.503 to 0.498 and the colour print from 0.621 to 0.606. Brow,
# cheekbones and lips keep >= 0.8 mm of relief (tests/test_head.py) because the slope relief
# is lifted onto its floor (shading_relief).
SHADE_SLOPE = 0.5
SLOPE_SCALE_MM = 4.0
SLOPE_KEEP_MM = 6.0  # broader than this, the slope relief is taken out again: the face keeps its form
SHADE_TILT = (0.0, 1.0)  # (x right, y up): the light the dark areas face away from is overhead


def face_carving(
    texture: np.ndarray,
    bounds: tuple[float, float, float, float],
    skin: tuple[int, int, int],
    xy: np.ndarray,
    shade: np.ndarray | None = None,
) -> np.ndarray:
    """Depth (frontal units, > 0 is deeper) carved into the face at frontal points ``xy``.

    ``texture`` is the stylized face in the frontal frame spanning ``bounds`` (x0, x1, y0, y1).
    Three things are carved, all measured with the dlib recogniser to make a grey print more
    like its owner:
    - the cartoon's ink (what is much darker than the skin: brows, lash lines, lip line,
      glasses, beard outline), widened to a printable groove INK_WIDTH_MM across;
    - shading, lithophane-like: what is darker than its surroundings in ``shade`` (the photo
      in the same frame, else the texture) sits up to SHADE_MM deeper, so the print keeps the
      photo's own folds, eyelids and creases;
    - shading by slope: what is darker than its surroundings over a wider area (brows, eyes,
      the shadow under the nose and lip) faces down, away from an overhead light, so it is in
      shade all over (:func:`shading_relief`).
    """
    import cv2

    x0, x1, y0, y1 = bounds
    h, w = texture.shape[:2]
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    lum = texture.astype(np.float32) @ weights
    skin_lum = max(20.0, float(np.dot(skin, weights)))
    ink = np.clip((0.55 * skin_lum - lum) / (0.25 * skin_lum), 0.0, 1.0)
    px_per_unit = (w - 1) / (x1 - x0)
    sigma = max(1.0, mm(INK_WIDTH_MM) * px_per_unit / 4)
    ink = cv2.GaussianBlur(cv2.dilate(ink, np.ones((3, 3), np.uint8)), (0, 0), sigma)
    depth = mm(INK_DEPTH_MM) * np.clip(ink * 1.5, 0.0, 1.0)
    if shade is None:
        source = texture.astype(np.float32) @ weights
    else:
        source = shade.astype(np.float32) if shade.ndim == 2 else shade.astype(np.float32) @ weights
    # No detail finer than the mesh and a printer can hold.
    source = cv2.GaussianBlur(source, (0, 0), mm(SHADE_DETAIL_MM) * px_per_unit)
    local = source - cv2.GaussianBlur(source, (0, 0), SHADE_SCALE * sigma)
    reference = max(20.0, float(np.median(source[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4])))
    depth += mm(SHADE_MM) * np.clip(-local / (SHADE_CONTRAST * reference), -1.0, 1.0)
    # A carved hollow shades only at its rims; a dark area that faces down is in shade all over.
    wide = source - _broad_blur(source, mm(SLOPE_SCALE_MM) * px_per_unit)
    darkness = np.clip(-wide / (SHADE_CONTRAST * reference), -1.0, 1.0)
    depth += shading_relief(darkness, SHADE_SLOPE / px_per_unit, mm(SLOPE_KEEP_MM) * px_per_unit)
    u = ((xy[:, 0] - x0) / (x1 - x0) * (w - 1)).astype(np.float32)
    v = ((y1 - xy[:, 1]) / (y1 - y0) * (h - 1)).astype(np.float32)
    return cv2.remap(depth, u[None], v[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[0]


def _broad_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur for a wide ``sigma`` (pixels), done on a smaller copy: as smooth, and a
    fraction of the time of a kernel hundreds of pixels across."""
    import cv2

    factor = max(1, int(sigma // 6))
    h, w = image.shape
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)


def shading_relief(darkness: np.ndarray, slope: float, keep_px: float) -> np.ndarray:
    """Depth (> 0 deeper, same units as ``slope`` times pixels) whose surface faces away from
    an overhead light where ``darkness`` (H, W, in -1..1) is positive, and towards it where
    negative.

    A lit relief shows a picture by the direction its surface faces, not by how deep it is
    (Alexa and Matusik, "Reliefs as images", 2010): a region that faces down is in shade under a
    light from above. The wanted gradient, ``slope`` (height per pixel) times the darkness along
    SHADE_TILT, is integrated by solving Poisson's equation (cosine transform, free borders);
    the broad drift, wider than ``keep_px`` pixels, is removed so the face keeps its own form,
    and the result is lifted onto its local floor, so it mostly adds material. About 1 ms on
    the 256 px face texture."""
    import cv2
    from scipy.fft import dctn, idctn

    # Solved at half resolution: the height is an integral, smoother than the darkness.
    full_shape = darkness.shape
    darkness = cv2.resize(darkness.astype(np.float32), (full_shape[1] // 2, full_shape[0] // 2), interpolation=cv2.INTER_AREA)
    slope, keep_px = 2 * slope, keep_px / 2
    tx, ty = SHADE_TILT
    # Height rises towards the light over a dark area: its surface then faces away from it.
    # Rows run downwards, so "up" is -row.
    gx = slope * tx * darkness
    gy = -slope * ty * darkness
    div = np.zeros_like(darkness, dtype=np.float64)
    div[:, 1:] += gx[:, 1:] - gx[:, :-1]
    div[:, 0] += gx[:, 0]
    div[1:, :] += gy[1:, :] - gy[:-1, :]
    div[0, :] += gy[0, :]
    h, w = darkness.shape
    transformed = dctn(div, type=2, norm="ortho")
    ky = 2 * np.cos(np.pi * np.arange(h) / h) - 2
    kx = 2 * np.cos(np.pi * np.arange(w) / w) - 2
    denominator = ky[:, None] + kx[None, :]
    denominator[0, 0] = 1.0
    transformed /= denominator
    transformed[0, 0] = 0.0
    height = idctn(transformed, type=2, norm="ortho").astype(np.float32)
    height -= _broad_blur(height, keep_px)
    # Lifted onto its own (broadly smoothed) local floor: the tilt is made mostly by adding
    # material, so brows, lids, cheekbones and lips keep standing out of the face.
    size = int(2 * round(keep_px / 2) + 1)
    floor = cv2.erode(height, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    height -= np.minimum(_broad_blur(floor, keep_px), 0.0)
    return -cv2.resize(height, (full_shape[1], full_shape[0]), interpolation=cv2.INTER_LINEAR)


# The thinnest wall a hobby FDM printer holds is 1.2 mm (tools/wall_thickness.py); the ball
# is a little wider, for the mesh's own sampling of the surface between its vertices.
PRINTABLE_BALL_MM = 1.5
PRINTABLE_GRID_MM = 0.15  # pixel of the grid the face surface is opened on
PRINTABLE_ROUNDING_MM = 0.3  # Gaussian sigma of the rounding after the opening


def printable_surface(height: np.ndarray, pixel: float, diameter: float) -> np.ndarray:
    """The height field with every part that a ball ``diameter`` across cannot reach from
    inside removed (a rolling-ball morphological opening; ``pixel`` and ``diameter`` in the
    height's own units). What stays has, at each surface point, a ball of that diameter inside
    the solid touching it, so a ray cast inward along the normal crosses at least that much
    material: no ridge, lid, frame edge or wall between two grooves is thinner. Grooves and
    broad forms are left as they are (an opening never adds material)."""
    from scipy.ndimage import grey_opening

    radius = diameter / 2
    r_px = int(np.ceil(radius / pixel))
    offsets = np.arange(-r_px, r_px + 1) * pixel
    d2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    footprint = d2 <= radius * radius
    ball = np.sqrt(np.clip(radius * radius - d2, 0.0, None)) - radius  # the ball's cap, 0 at its top
    opened = grey_opening(height, footprint=footprint, structure=np.where(footprint, ball, 0.0), mode="nearest")
    return np.minimum(opened, height)
