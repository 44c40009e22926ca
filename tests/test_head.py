import numpy as np
import pytest

from pipeline.head import build_head, frontalize
from pipeline.landmarks import CHIN, FOREHEAD_TOP, NOSE_TIP
from pipeline.stylize.cartoon import CartoonStylizer


@pytest.fixture(scope="module")
def head(astronaut, astronaut_face):
    stylized = CartoonStylizer().stylize(astronaut, astronaut_face, "toon", seed=0).image
    return build_head(astronaut_face, stylized, astronaut)


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


def test_face_relief_shows_in_a_side_view(head):
    """The nose stands out of the skull: the profile has a bump where a sphere would not."""
    v = head.head.vertices
    assert head.nose_relief > 0.02
    front = v[:, 2].max()
    # The most forward point is near the middle of the face, not at its edge.
    tip = v[np.argmax(v[:, 2])]
    assert abs(tip[0]) < 0.08
    # At eye height the face is flatter than at the nose.
    assert front - np.percentile(v[v[:, 2] > 0, 2], 90) > 0.01


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
