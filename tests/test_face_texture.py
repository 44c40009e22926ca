import numpy as np

from pipeline.face_texture import clean_face, facing, mirror_weight


def test_a_frontal_face_is_left_alone():
    assert np.all(mirror_weight(256, -1.3, 1.3, 0.0) == 0)


def test_the_turned_away_side_comes_from_the_mirror():
    # yaw > 0: the face turns towards image right, so its right half (x > 0) turns away.
    weight = mirror_weight(256, -1.3, 1.3, 35.0)
    x = np.linspace(-1.3, 1.3, 256)
    assert weight[x < 0].max() == 0
    assert weight[(x > 0.5) & (x < 1.1)].min() > 0.9
    assert facing(np.array([0.8]), 35.0)[0] < facing(np.array([-0.8]), 35.0)[0]


def test_occluders_are_filled_from_the_mirror_or_left_to_skin():
    # Left half dark grey, right half a gradient; a block on the right is occluded.
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :20] = 90
    image[:, 20:] = np.linspace(100, 200, 20, dtype=np.uint8)[None, :, None]
    occluded = np.zeros((40, 40), bool)
    occluded[10:20, 25:30] = True
    occluded[30:35, 5:10] = True
    occluded[30:35, 30:35] = True  # and its mirror: nothing shows that spot
    out, unknown = clean_face(image, (-1.0, 1.0), 0.0, occluded)
    assert np.all(out[10:20, 25:30] == 90)  # the mirrored left half
    assert np.all(out[:10] == image[:10])  # untouched elsewhere
    assert unknown[30:35, 30:35].all() and unknown.sum() == 50
