"""Hair from the photo: segment it, then grow a hair volume of that shape around the skull.

Segmentation uses only what the landmarks stage already has: MediaPipe's person mask (a model
inside the mediapipe wheel) minus the face's own skin colour, refined by colour clustering
around the crown. The mask is then resampled into the head's frontal frame, where it decides
where the hair shell stands out of the skull (its fringe follows the photo's hairline), how
wide and tall it is, and whether it falls to the shoulders.

Units are those of :func:`pipeline.head.frontalize`: half the face width, y up, z forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import trimesh

from pipeline.face_texture import mirror_weight
from pipeline.landmarks import CHIN, FOREHEAD_TOP, FaceAnalysis

RGB = tuple[int, int, int]

# Frontal-frame raster on which the hair coverage is sampled.
WORK_SIZE = 320  # px: hair is segmented on a copy no larger than this
GRID_HALF_WIDTH = 2.6
GRID_STEP = 0.04
EDGE_SOFTNESS = 0.16  # frontal units: the blur on the hair coverage
SKIN_CLUSTER_DISTANCE = 14.0  # CIELAB distance from the skin beyond which a cluster is hair
HAIR_DISTANCE = 30.0  # CIELAB distance within which a pixel matches the hair colour
BALD_SHARE = 0.25  # below this share of hair in the band over the forehead: bald
TUCK = 0.55  # where there is no hair, the shell is pulled this far into the skull
EDGE_BASE = 0.55  # shell scale at the hair's edge (the skull is at ~0.94)
EDGE_DIVE = 0.12  # below this presence the shell dives to TUCK, hidden inside the head
SMOOTHING_ROUNDS = 12  # Taubin rounds: fewer leave a saw-toothed hairline (looked at on the 10 test people)
BALD_NOTE = (
    "No hair found above the forehead, so the figurine is bald. If that is wrong, use a photo "
    "that shows the whole head against a plain background."
)
PARTING_DEPTH = 0.055  # ~0.75 mm at 100 mm
PARTING_WIDTH = 0.1


@dataclass
class HairSegmentation:
    """The hair in the photo: a soft mask (H, W) in [0, 1], its colour and what we noticed."""

    mask: np.ndarray
    rgb: RGB | None  # None: bald, or no hair could be found
    notes: list[str] = field(default_factory=list)


@dataclass
class HairShape:
    """What the hair volume is built from, in frontal units."""

    style: str  # "bald", "short", "long" or "voluminous"
    coverage: np.ndarray  # (rows, cols) hair coverage in the frontal frame, row 0 at the top
    x0: float
    y_top: float
    parting_x: float


def _lab(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels.reshape(-1, 1, 3).astype(np.uint8), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)


def _lab_to_true(lab: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit LAB to CIELAB (L in 0..100, a and b centred on 0)."""
    return np.column_stack([lab[:, 0] * 100.0 / 255.0, lab[:, 1] - 128.0, lab[:, 2] - 128.0])


def segment_hair(photo: np.ndarray, face: FaceAnalysis) -> HairSegmentation:
    """The hair mask and colour: person pixels round the head that are not skin, clustered.

    Worked out on a copy at most WORK_SIZE px across (the mask is smooth, the colour a
    median); the mask comes back at the photo's size."""
    full_h, full_w = photo.shape[:2]
    factor = min(1.0, WORK_SIZE / max(full_h, full_w))
    if factor < 1.0:
        small = cv2.resize(photo, (int(full_w * factor), int(full_h * factor)), interpolation=cv2.INTER_AREA)
        result = _segment(small, face, factor)
        result.mask = cv2.resize(result.mask, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
        return result
    return _segment(photo, face, 1.0)


def _segment(photo: np.ndarray, face: FaceAnalysis, factor: float) -> HairSegmentation:
    h, w = photo.shape[:2]
    person = cv2.resize(face.person_mask, (w, h), interpolation=cv2.INTER_LINEAR)
    lm = face.landmarks_px * factor
    face_w, face_h = max(1.0, face.face_width_px * factor), max(1.0, face.face_height_px * factor)
    if float(person.max()) < 0.5:
        return HairSegmentation(np.zeros((h, w), np.float32), None, ["No person outline found: the figurine gets no hair."])

    lab = _lab_to_true(_lab(photo)).reshape(h, w, 3)
    # Skin: the middle of the face (cheeks and nose bridge), robust to a beard below.
    cx, cy = (face.bbox[0] + face.bbox[2]) / 2 * factor, (face.bbox[1] + face.bbox[3]) / 2 * factor
    half = int(max(2, 0.12 * face_w))
    cheeks = lab[int(cy - half) : int(cy + half), int(cx - 2 * half) : int(cx + 2 * half)].reshape(-1, 3)
    skin = np.median(cheeks, axis=0) if len(cheeks) else np.array([70.0, 15.0, 18.0])

    # Where hair can be: round the head, down to the shoulders, not inside the face.
    yy, xx = np.mgrid[0:h, 0:w]
    top = float(lm[FOREHEAD_TOP, 1])
    chin = float(lm[CHIN, 1])
    region = (person > 0.5) & (np.abs(xx - cx) < 1.6 * face_w) & (yy < chin + 0.6 * face_h)
    oval = np.zeros((h, w), np.uint8)
    from pipeline.face_regions import face_oval_ring

    cv2.fillPoly(oval, [lm[face_oval_ring(), :2].astype(np.int32)], 1)
    region &= oval == 0

    # The hair colour: cluster the person's pixels in the band over the forehead; the
    # biggest cluster that is not skin is the hair. Fair hair is near skin in colour, so the
    # clusters, not a fixed distance from skin, tell them apart.
    band = region & (yy > top - 0.3 * face_h) & (yy < top + 0.02 * face_h) & (np.abs(xx - cx) < 0.6 * face_w)
    samples = lab[band]
    if len(samples) < 30:
        return HairSegmentation(np.zeros((h, w), np.float32), None, ["No hair found above the forehead: the figurine gets no hair."])
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(samples.astype(np.float32), 3, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    counts = np.bincount(labels, minlength=3)
    hairlike = [i for i in range(3) if np.linalg.norm(centres[i] - skin) > SKIN_CLUSTER_DISTANCE]
    if not hairlike:
        return HairSegmentation(np.zeros((h, w), np.float32), None, [BALD_NOTE])
    main = max(hairlike, key=lambda i: counts[i])
    share = counts[hairlike].sum() / len(samples)
    if share < BALD_SHARE:
        return HairSegmentation(np.zeros((h, w), np.float32), None, [BALD_NOTE])
    hair_lab = np.median(samples[labels == main], axis=0)
    spread = float(np.std(samples[labels == main]))
    to_hair = np.linalg.norm(lab - hair_lab, axis=-1)
    to_skin = np.linalg.norm(lab - skin, axis=-1)
    mask = (region & (to_hair < to_skin) & (to_hair < HAIR_DISTANCE + spread)).astype(np.uint8)
    # Keep the hair that touches the band: drop stray hair-coloured clothes and background.
    _, comp = cv2.connectedComponents(mask, connectivity=8)
    crown = comp[band & (mask > 0)]
    keep = np.unique(crown[crown > 0])
    if len(keep):
        mask = np.isin(comp, keep).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(np.float32)
    hair_pixels = photo[mask > 0.5]
    rgb_med = np.median(hair_pixels, axis=0) if len(hair_pixels) else np.array([70, 50, 35])
    return HairSegmentation(mask, (int(rgb_med[0]), int(rgb_med[1]), int(rgb_med[2])))


def _axes(shape: tuple[int, int], x0: float, y_top: float) -> tuple[np.ndarray, np.ndarray]:
    """Frontal x of each column and y of each row of a coverage grid (row 0 at the top)."""
    rows, cols = shape
    return x0 + GRID_STEP * np.arange(cols), y_top - GRID_STEP * np.arange(rows)


def frontal_coverage(
    mask: np.ndarray, to_image, chin_y: float, crown_y: float, forehead_y: float
) -> tuple[np.ndarray, float, float]:
    """The hair mask resampled on a frontal-frame grid (row 0 at the top), softened.

    ``to_image`` maps frontal (x, y) to photo pixels. Where the photo is cropped above the
    forehead, hair is assumed (a head cut off by the frame still has a crown).
    Returns (coverage, x0, y_top).
    """
    x0, y_top = -GRID_HALF_WIDTH, crown_y
    cols = int(round(2 * GRID_HALF_WIDTH / GRID_STEP)) + 1
    rows = int(round((crown_y - (chin_y - 1.6)) / GRID_STEP)) + 1
    gx, gy = np.meshgrid(*_axes((rows, cols), x0, y_top))
    pos = to_image(np.column_stack([gx.ravel(), gy.ravel()])).astype(np.float32)
    map_x, map_y = pos[:, 0].reshape(rows, cols), pos[:, 1].reshape(rows, cols)

    def sampled_at(image: np.ndarray, rows_at: np.ndarray) -> np.ndarray:
        return cv2.remap(image, map_x, rows_at, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)

    mask = mask.astype(np.float32)
    sampled = sampled_at(mask, map_y)
    in_photo = sampled_at(np.ones_like(mask), map_y)
    # Cropped off the top of the photo, over the skull: where the hair runs into the top
    # edge, assume the crown carries on.
    top_edge = sampled_at(mask, np.zeros((rows, cols), np.float32))
    above = (gy > forehead_y) & (map_y < 0) & (np.abs(gx) < 1.3) & (top_edge > 0.5)
    above = above.astype(np.float32)
    sampled = sampled * in_photo + (1 - in_photo) * above * float(mask.max() > 0)
    # Soft edges, several hair-mesh vertices wide: a sharp mask edge would be a staircase.
    return cv2.GaussianBlur(sampled, (0, 0), EDGE_SOFTNESS / GRID_STEP), x0, y_top


def _inside(xs: np.ndarray, ys: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(rows, cols) mask of the grid points (xs across, ys down the rows) inside ``polygon``."""
    from matplotlib.path import Path as PolygonPath

    grid = np.column_stack([np.tile(xs, len(ys)), np.repeat(ys, len(xs))])
    return PolygonPath(polygon).contains_points(grid).reshape(len(ys), len(xs))


def clear_the_face(coverage: np.ndarray, x0: float, y_top: float, face_outline: np.ndarray, brow_y: float) -> np.ndarray:
    """``coverage`` with no hair inside the face outline below the brows: hair across the eyes
    and cheeks is something in front of the face (the texture drops it too), not a hairstyle
    to sculpt. A fringe down to the brows stays."""
    xs, ys = _axes(coverage.shape, x0, y_top)
    below = _smoothstep((brow_y - ys) / EDGE_SOFTNESS)[:, None]
    return coverage * (1.0 - below * _inside(xs, ys, face_outline))


def fill_hidden_side(
    coverage: np.ndarray, x0: float, y_top: float, chin_y: float, yaw_deg: float, face_outline: np.ndarray
) -> np.ndarray:
    """``coverage`` with the turned-away side of the head filled from its mirror image.

    A head turned in the photo shows one side's hair foreshortened or not at all, and a hair
    volume built from that is lopsided. On the columns the photo sees worse than their mirror
    (the face texture's rule, :func:`pipeline.face_texture.mirror_weight`), each point above
    the chin and outside the face outline (``face_outline``, frontal x, y) keeps the larger of
    its own and its mirror's coverage. Never inside the outline: the face there is the photo's
    own, and a fringe swept to one side is not copied onto the other. Never below the chin:
    long hair mirrored there ran into the shoulder behind and left a sub-millimetre wall."""
    xs, ys = _axes(coverage.shape, x0, y_top)
    weight = np.repeat(mirror_weight(len(xs), xs[0], xs[-1], yaw_deg)[None, :], len(ys), axis=0)
    weight *= (ys > chin_y)[:, None]
    if weight.any():
        weight *= ~_inside(xs, ys, face_outline)
    # The grid is symmetric about x = 0 (x0 = -GRID_HALF_WIDTH), so the mirror is a flip.
    return coverage * (1 - weight) + np.maximum(coverage, coverage[:, ::-1]) * weight


def _sample(coverage: np.ndarray, x0: float, y_top: float, xy: np.ndarray) -> np.ndarray:
    u = ((xy[:, 0] - x0) / GRID_STEP).astype(np.float32)
    v = ((y_top - xy[:, 1]) / GRID_STEP).astype(np.float32)
    return cv2.remap(coverage, u[None], v[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def hair_shape(coverage: np.ndarray, x0: float, y_top: float, chin_y: float, forehead_y: float) -> HairShape:
    """Style (short, long, voluminous) and parting side from the frontal coverage."""
    xs, ys = _axes(coverage.shape, x0, y_top)
    beside = (np.abs(xs) > 0.95) & (np.abs(xs) < 1.9)
    below_chin = (ys < chin_y + 0.3) & (ys > chin_y - 0.6)
    long_share = float(coverage[np.ix_(below_chin, beside)].mean()) if below_chin.any() else 0.0
    above = ys > forehead_y + 0.1
    height = float(ys[above][np.flatnonzero(coverage[above][:, np.abs(xs) < 0.6].max(axis=1) > 0.5)].max(initial=forehead_y))
    style = "long" if long_share > 0.3 else ("voluminous" if height - forehead_y > 1.3 else "short")
    # The parting goes on the side where the fringe sits higher (more forehead shows).
    fringe = (ys < forehead_y + 0.05) & (ys > forehead_y - 0.5)
    left = float(coverage[np.ix_(fringe, (xs < -0.1) & (xs > -0.8))].mean()) if fringe.any() else 0.0
    right = float(coverage[np.ix_(fringe, (xs > 0.1) & (xs < 0.8))].mean()) if fringe.any() else 0.0
    parting_x = -0.32 if left < right else 0.32
    return HairShape(style, coverage, x0, y_top, parting_x)


def hair_volume(
    shape: HairShape,
    unit: np.ndarray,
    faces: np.ndarray,
    radii: np.ndarray,
    centre: np.ndarray,
    chin_y: float,
    ear_top_y: float,
) -> trimesh.Trimesh:
    """A closed hair shell around a skull with semi-axes ``radii`` centred at ``centre``.

    ``unit`` are the directions of a closed sphere mesh (``faces``). Where the photo shows
    no hair the shell is pulled inside the skull, smoothly, so the union with the head has
    soft edges that follow the hairline instead of a staircase.
    """
    cov = shape.coverage
    rows = cov.shape[0]
    xs, ys = _axes(cov.shape, shape.x0, shape.y_top)

    # Silhouette: how far the hair reaches sideways at each height, each side, smoothed.
    def reach(side: np.ndarray) -> np.ndarray:
        hits = cov[:, side] > 0.5
        far = np.where(hits.any(axis=1), np.abs(xs[side])[np.argmax(hits * np.abs(xs[side]), axis=1)], 0.0)
        return cv2.GaussianBlur(far.astype(np.float32)[:, None], (0, 0), 3.0).ravel()

    reach_left, reach_right = reach(xs < 0), reach(xs > 0)
    shell = unit * radii * np.array([1.06, 1.05, 1.07])
    y = shell[:, 1] + centre[1]
    row = np.clip(np.round((shape.y_top - y) / GRID_STEP).astype(int), 0, rows - 1)
    side_reach = np.where(shell[:, 0] < 0, reach_left[row], reach_right[row])
    skull_half_width = 1.06 * radii[0] * np.sqrt(np.clip(1 - unit[:, 1] ** 2, 0.05, 1))
    widen = np.clip(side_reach / skull_half_width, 1.0, 1.4)
    shell[:, 0] *= widen
    shell[:, 2] *= 1.0 + 0.5 * (widen - 1.0)  # volume all round, not just a wider front
    # Height: the crown rises to the top of the photo's hair (when the photo shows it).
    crown_rows = cov[:, np.abs(xs) < 0.6].max(axis=1) > 0.5
    if crown_rows.any():
        hair_top = float(ys[np.argmax(crown_rows)])
        lift = np.clip((hair_top - centre[1]) / (radii[1] * 1.05), 1.0, 1.3)
        upper = shell[:, 1] > 0
        shell[upper, 1] *= lift
    position = shell + centre

    # Where the hair is: front-facing points follow the photo's coverage (the fringe and
    # the hairline); side and back points carry hair down to the ears, or the shoulders.
    front_cover = _sample(cov, shape.x0, shape.y_top, position[:, :2])
    if shape.style == "long":
        bottom = chin_y - 0.5
        hang = (unit[:, 2] < 0.3) & (unit[:, 1] < 0)
        stretch = (centre[1] - bottom) / radii[1]
        position[hang, 1] = centre[1] + shell[hang, 1] * stretch * (1.0 - 0.3 * _smoothstep(unit[hang, 2] / 0.3 + 1.0))
        back_bottom, side_bottom = bottom, bottom
    else:
        back_bottom, side_bottom = centre[1] - 0.75 * radii[1], ear_top_y
    backness = _smoothstep(-unit[:, 2] / 0.6)
    floor = side_bottom + (back_bottom - side_bottom) * backness
    behind = _smoothstep((position[:, 1] - floor) / 0.15)
    facing = _smoothstep((unit[:, 2] - 0.1) / 0.4)
    presence = facing * front_cover + (1 - facing) * behind
    presence = _smoothstep((presence - 0.2) / 0.6)

    offset = position - centre
    # Where there is hair the shell stands out; elsewhere it dives inside the head.
    bank = EDGE_BASE + (1.0 - EDGE_BASE) * presence
    dive = _smoothstep(presence / EDGE_DIVE)
    factor = TUCK + (bank - TUCK) * dive
    shell = trimesh.Trimesh(centre + offset * factor[:, None], faces, process=False)
    # Where the shell dives into the head, neighbouring vertices can be far apart in depth;
    # a few rounds of Taubin smoothing (no shrinkage) turn those teeth into a smooth edge.
    trimesh.smoothing.filter_taubin(shell, lamb=0.5, nu=-0.53, iterations=SMOOTHING_ROUNDS)

    # A parting, carved after smoothing: a groove from the front hairline over the crown.
    smoothed = np.asarray(shell.vertices)
    top_side = _smoothstep((unit[:, 1] - 0.2) / 0.3) * _smoothstep((unit[:, 2] + 0.5) / 0.4)
    across = (smoothed[:, 0] - shape.parting_x) / (PARTING_WIDTH / 2.5)
    groove = PARTING_DEPTH * top_side * np.exp(-0.5 * across**2)
    radial = smoothed - centre
    radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-6)
    shell.vertices = smoothed - radial * groove[:, None]
    return shell
