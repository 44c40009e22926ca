import numpy as np
import pytest

import pipeline.head as head_module
from pipeline.fusion import fuse_template
from pipeline.head import build_head, frontalize
from pipeline.landmarks import CHIN, FOREHEAD_TOP, NOSE_TIP
from pipeline.sculpt import CHEEKBONES, LEFT_BROW, LEFT_EYE_UPPER, RIGHT_BROW, RIGHT_EYE_UPPER, UPPER_LIP_OUTER
from pipeline.stylize.cartoon import CartoonStylizer


@pytest.fixture(scope="module")
def stylized(astronaut, astronaut_face):
    return CartoonStylizer().stylize(astronaut, astronaut_face, "toon", seed=0).image


@pytest.fixture(scope="module")
def head(astronaut, astronaut_face, stylized):
    return build_head(astronaut_face, stylized, astronaut)


@pytest.fixture(scope="module")
def unsculpted(astronaut, astronaut_face, stylized):
    """The same head with the sculpting and carving switched off: the face as the landmarks
    give it."""
    saved = head_module.feature_relief, head_module.face_carving
    head_module.feature_relief = lambda xy, frontal, eyes: np.zeros(len(xy))
    head_module.face_carving = lambda texture, bounds, skin, xy, shade=None: np.zeros(len(xy))
    try:
        return build_head(astronaut_face, stylized, astronaut)
    finally:
        head_module.feature_relief, head_module.face_carving = saved


@pytest.fixture(scope="module")
def mm_per_head_unit(astronaut, astronaut_face, stylized):
    """Millimetres per head unit on the fused figurine printed 100 mm tall."""
    fusion = fuse_template(astronaut_face, stylized, astronaut, "default")
    solid_height = fusion.solid.bounds[1][1] - fusion.solid.bounds[0][1]
    from pipeline.templates import load_template

    return 100.0 / solid_height * load_template("default").head_height


def test_frontalized_landmarks_are_upright(astronaut_face):
    q = frontalize(astronaut_face)
    assert q[FOREHEAD_TOP, 1] > q[CHIN, 1]
    assert q[NOSE_TIP, 2] == q[:, 2].max() or q[NOSE_TIP, 2] > np.percentile(q[:, 2], 95)


def test_head_is_closed_and_textured(head):
    assert head.head.is_watertight and head.head.volume > 0
    assert head.hair.is_watertight
    uv = head.head.visual.uv
    assert uv.shape == (len(head.head.vertices), 2)
    assert uv.min() >= 0 and uv.max() <= 1
    assert head.texture.shape[2] == 3


def test_millimetre_scale_matches_the_printed_figurine(head, mm_per_head_unit):
    """The sculpt sizes its features in mm at 100 mm; that scale must match the real print."""
    assert head.mm_per_unit == pytest.approx(mm_per_head_unit, rel=0.15)


def _relief_mm(head, unsculpted, centre_xy, radius, mm_per_unit):
    """Largest outward and inward change of the surface near ``centre_xy`` (head units), in mm."""
    v, v0 = head.head.vertices, unsculpted.head.vertices
    near = (np.linalg.norm(v0[:, :2] - centre_xy, axis=1) < radius) & (v0[:, 2] > 0)
    assert near.sum() > 5, "the mesh is too coarse to carry the feature"
    dz = (v[near, 2] - v0[near, 2]) * mm_per_unit
    return float(dz.max()), float(dz.min())


def test_features_stand_out_by_at_least_0_8_mm_at_100_mm(head, unsculpted, mm_per_head_unit):
    lm = head.landmarks[:, :2]
    eye_width = float(np.linalg.norm(lm[133] - lm[33]))
    for brow in (RIGHT_BROW, LEFT_BROW):
        centre = np.mean([(lm[a] + lm[b]) / 2 for a, b in brow], axis=0)
        assert _relief_mm(head, unsculpted, centre, 0.3 * eye_width, mm_per_head_unit)[0] >= 0.8
    for lid in (RIGHT_EYE_UPPER, LEFT_EYE_UPPER):
        centre = lm[lid].mean(axis=0)
        high, low = _relief_mm(head, unsculpted, centre, 0.6 * eye_width, mm_per_head_unit)
        assert high >= 0.8  # the lid and eyeball
        assert low <= -0.8  # the socket and carved iris
    for idx in CHEEKBONES:
        assert _relief_mm(head, unsculpted, lm[idx], 0.3 * eye_width, mm_per_head_unit)[0] >= 0.8
    lips = lm[UPPER_LIP_OUTER].mean(axis=0)
    assert _relief_mm(head, unsculpted, lips, 0.4 * eye_width, mm_per_head_unit)[0] >= 0.8
    # And the nose stands well out of the skull.
    assert head.nose_relief * mm_per_head_unit >= 0.8


def test_the_nose_is_the_most_forward_point(head):
    v = head.head.vertices
    tip = v[np.argmax(v[:, 2])]
    assert abs(tip[0]) < 0.08
    assert np.linalg.norm(tip[:2] - head.landmarks[NOSE_TIP, :2]) < 0.05


def test_jaw_follows_the_face_outline(head):
    """Below the mouth the head is as wide as the face outline, not as the cranium."""
    v = head.head.vertices
    lm = head.landmarks
    cranium = np.ptp(v[np.abs(v[:, 1] - 0.1) < 0.02, 0])
    mouth_y = lm[[61, 291], 1].mean()
    jaw = np.ptp(v[np.abs(v[:, 1] - mouth_y) < 0.02, 0])
    face_at_mouth = np.ptp(lm[np.abs(lm[:, 1] - mouth_y) < 0.04, 0])
    assert jaw < 0.9 * cranium
    assert jaw < 1.35 * face_at_mouth


def test_ears_on_both_sides(head):
    ears = head.ears
    assert ears is not None and ears.is_watertight
    parts = ears.split(only_watertight=True)
    assert len(parts) == 2
    xs = sorted(p.centroid[0] for p in parts)
    head_half = np.abs(head.head.vertices[:, 0]).max()
    assert xs[0] < -0.8 * head_half and xs[1] > 0.8 * head_half


def test_texture_carries_the_face(head):
    # The centre of the texture is the face; the corners are plain skin.
    h, w = head.texture.shape[:2]
    centre = head.texture[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
    corner = head.texture[:20, :20]
    assert centre.std() > 20
    assert corner.reshape(-1, 3).std(axis=0).max() < 3
    assert np.allclose(corner.reshape(-1, 3).mean(axis=0), head.skin_rgb, atol=3)


def test_hair_colour_and_style_from_photo(head):
    r, g, b = head.hair_rgb
    assert r > b and head.hair_style in {"short", "voluminous", "long"}  # fair/brown hair
    assert head.hair_rgb != head.skin_rgb
