"""Hair from the photo: segmentation colour against hand-marked boxes, bald heads, and the
volume's shape (fringe, length, parting) from coverage grids built in code."""

import cv2
import numpy as np
import pytest

from pipeline.face_regions import face_oval_ring
from pipeline.fusion import fuse_template
from pipeline.hair import GRID_STEP, HairShape, hair_shape, hair_volume, segment_hair
from pipeline.head import HEAD_A, HEAD_B, HEAD_C, _front_pole_sphere
from pipeline.landmarks import detect_landmarks
from pipeline.stylize.cartoon import CartoonStylizer

# Hair in skimage's astronaut portrait, marked by hand (x0, y0, x1, y1), never by the code.
ASTRONAUT_HAIR_BOXES = [(195, 35, 240, 50), (150, 60, 175, 100), (270, 65, 290, 105)]


def _cielab(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(np.asarray(rgb, np.float32).reshape(1, -1, 3) / 255.0, cv2.COLOR_RGB2LAB)
    return lab.reshape(-1, 3)


def test_hair_colour_is_the_photo_hair_colour(astronaut, astronaut_face):
    seg = segment_hair(astronaut, astronaut_face)
    assert seg.rgb is not None and not seg.notes
    marked = np.concatenate([astronaut[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in ASTRONAUT_HAIR_BOXES])
    reference = np.median(marked, axis=0)
    delta_e = float(np.linalg.norm(_cielab(seg.rgb) - _cielab(reference)))
    assert delta_e < 20, (seg.rgb, reference, delta_e)
    # The mask finds the marked hair and leaves the face alone.
    for x0, y0, x1, y1 in ASTRONAUT_HAIR_BOXES:
        assert seg.mask[y0:y1, x0:x1].mean() > 0.5
    lm = astronaut_face.landmarks_px
    cheek = lm[[50, 280], :2].astype(int)
    assert all(seg.mask[y, x] < 0.5 for x, y in cheek)


@pytest.fixture(scope="module")
def bald_astronaut(astronaut, astronaut_face) -> np.ndarray:
    """The astronaut with her hair painted over in her own skin colour: a bald head."""
    photo = astronaut.copy()
    lm = astronaut_face.landmarks_px
    cheek = np.median(photo[int(lm[50, 1]) - 4 : int(lm[50, 1]) + 4, int(lm[50, 0]) - 4 : int(lm[50, 0]) + 4].reshape(-1, 3), axis=0)
    head = np.zeros(photo.shape[:2], np.uint8)
    cx, cy = int(lm[:, 0].mean()), int(lm[10, 1])
    cv2.ellipse(head, (cx, cy + 10), (85, 80), 0, 0, 360, 1, -1)
    face = np.zeros_like(head)
    cv2.fillPoly(face, [lm[face_oval_ring(), :2].astype(np.int32)], 1)
    photo[(head > 0) & (face == 0)] = cheek.astype(np.uint8)
    return photo


def test_a_bald_head_gets_no_hair(bald_astronaut, session_config):
    face = detect_landmarks(bald_astronaut, session_config)
    stylized = CartoonStylizer().stylize(bald_astronaut, face, "toon", seed=0).image
    fusion = fuse_template(face, stylized, bald_astronaut, "default")
    assert fusion.head.hair_style == "bald"
    assert "hair" not in {p.name for p in fusion.parts}
    assert fusion.solid.is_watertight and fusion.solid.body_count == 1
    # The report says why.
    assert any("No hair found" in r for r in fusion.quality.reasons)


def test_no_person_outline_still_gives_a_figurine(astronaut, astronaut_face):
    """Segmentation found nothing: no crash, a figurine, and a reason in the report."""
    from dataclasses import replace

    face = replace(astronaut_face, person_mask=np.zeros_like(astronaut_face.person_mask))
    stylized = CartoonStylizer().stylize(astronaut, astronaut_face, "toon", seed=0).image
    fusion = fuse_template(face, stylized, astronaut, "default")
    assert fusion.solid.is_watertight and fusion.solid.body_count == 1
    assert fusion.head.hair_style == "bald"
    assert any("person outline" in r for r in fusion.quality.reasons)


# --- the hair volume, from coverage grids built in code --------------------------------

CHIN_Y, FOREHEAD_Y, CENTRE_Y = -1.2, 0.9, 1.2 - 1.2  # frontal units, as build_head lays them out
CENTRE = np.array([0.0, CHIN_Y + 0.8 * HEAD_B, 0.0])
RADII = np.array([HEAD_A, HEAD_B, HEAD_C])


def _coverage(hairline_y: float, bottom_y: float, fringe_left: float = 0.0) -> tuple[np.ndarray, float, float]:
    """A frontal coverage grid: hair above ``hairline_y`` across the face, and beside the
    face (|x| > 1) down to ``bottom_y``; a fringe lowered by ``fringe_left`` on x < 0."""
    x0, y_top = -2.6, CENTRE[1] + 1.6 * HEAD_B
    ys = y_top - GRID_STEP * np.arange(int((y_top - CHIN_Y + 1.6) / GRID_STEP) + 1)
    xs = x0 + GRID_STEP * np.arange(int(5.2 / GRID_STEP) + 1)
    gx, gy = np.meshgrid(xs, ys)
    head = (gx / 1.45) ** 2 + ((gy - CENTRE[1]) / 1.75) ** 2 < 1
    line = hairline_y - np.where(gx < 0, fringe_left, 0.0)
    cover = head & ((gy > line) | (np.abs(gx) > 1.0)) & (gy > bottom_y)
    cover |= (np.abs(gx) > 1.0) & (np.abs(gx) < 1.6) & (gy > bottom_y) & (gy < CENTRE[1])
    return cover.astype(np.float32), x0, y_top


def _volume(shape: HairShape):
    unit, faces = _front_pole_sphere(48, 80, 1.3)
    return hair_volume(shape, unit, faces, RADII, CENTRE, CHIN_Y, FOREHEAD_Y - 0.9)


def _skull_radius(points: np.ndarray) -> np.ndarray:
    """How far out of the skull ellipsoid each point is (> 1: outside)."""
    return np.linalg.norm((points - CENTRE) / RADII, axis=1)


def test_short_hair_hugs_the_skull_and_follows_the_hairline():
    shape = hair_shape(*_coverage(FOREHEAD_Y, CENTRE[1] - 0.2), CHIN_Y, FOREHEAD_Y)
    assert shape.style == "short"
    hair = _volume(shape)
    assert hair.is_watertight
    v = np.asarray(hair.vertices)
    outside = _skull_radius(v) > 1.02
    # Hair stands out of the skull above the hairline at the front, not below it.
    front = (np.abs(v[:, 0]) < 0.3) & (v[:, 2] > 0.5)
    assert outside[front & (v[:, 1] > FOREHEAD_Y + 0.2)].all()
    assert not outside[front & (v[:, 1] < FOREHEAD_Y - 0.2)].any()
    # Short: nothing below the chin; at the sides it stops above the ears.
    assert v[outside, 1].min() > CHIN_Y
    sides = outside & (np.abs(v[:, 0]) > 0.9 * HEAD_A) & (v[:, 2] > -0.2)
    assert v[sides, 1].min() > FOREHEAD_Y - 0.9 - 0.2


def test_long_hair_falls_to_the_shoulders():
    shape = hair_shape(*_coverage(FOREHEAD_Y, CHIN_Y - 1.0), CHIN_Y, FOREHEAD_Y)
    assert shape.style == "long"
    v = np.asarray(_volume(shape).vertices)
    outside = _skull_radius(v) > 1.02
    assert v[outside, 1].min() < CHIN_Y  # below the chin, at the back and sides
    assert v[outside & (v[:, 1] < CHIN_Y), 2].max() < 0.6  # never in front of the face


def test_parting_is_a_groove_on_the_side_where_the_fringe_is_higher():
    shape = hair_shape(*_coverage(FOREHEAD_Y, CENTRE[1] - 0.2, fringe_left=0.3), CHIN_Y, FOREHEAD_Y)
    assert shape.parting_x > 0  # the fringe hangs lower on the left: parting on the right
    v = np.asarray(_volume(shape).vertices)
    top = (v[:, 1] > CENTRE[1] + 0.8 * HEAD_B) & (np.abs(v[:, 2] - 0.4) < 0.25)
    radius = np.linalg.norm(v - CENTRE, axis=1)
    at_parting = top & (np.abs(v[:, 0] - shape.parting_x) < 0.03)
    beside = top & (np.abs(v[:, 0] - shape.parting_x) > 0.15) & (np.abs(v[:, 0] - shape.parting_x) < 0.3)
    assert radius[at_parting].mean() < radius[beside].mean() - 0.02


def test_the_figurine_hair_colour_is_within_delta_e_20_of_the_photo(astronaut, astronaut_face):
    from pipeline.head import build_head

    stylized = CartoonStylizer().stylize(astronaut, astronaut_face, "toon", seed=0).image
    head = build_head(astronaut_face, stylized, astronaut)
    marked = np.concatenate([astronaut[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in ASTRONAUT_HAIR_BOXES])
    delta_e = float(np.linalg.norm(_cielab(head.hair_rgb) - _cielab(np.median(marked, axis=0))))
    assert delta_e < 20
