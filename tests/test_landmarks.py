import numpy as np
import pytest
from PIL import Image

from pipeline import errors
from pipeline.landmarks import detect_landmarks, head_pose


def test_astronaut_face(astronaut_face):
    face = astronaut_face
    assert face.landmarks_px.shape == (478, 3)
    assert face.face_count == 1
    assert face.confidence > 0.8
    # The face sits in the upper middle of the portrait.
    x0, y0, x1, y1 = face.bbox
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200
    assert abs(face.pose.yaw) < 15 and abs(face.pose.roll) < 10
    assert face.person_mask.shape == (512, 512)
    assert face.person_mask[120, 225] > 0.5  # on the face
    assert face.person_mask[20, 500] < 0.5  # background, top right


def test_roll_follows_a_tilted_head(astronaut, session_config):
    tilted = np.asarray(Image.fromarray(astronaut).rotate(20, center=(225, 125)))
    face = detect_landmarks(tilted, session_config)
    # PIL rotates counter-clockwise, so the head's roll grows by about 20 degrees.
    upright = detect_landmarks(astronaut, session_config)
    assert 12 < face.pose.roll - upright.pose.roll < 28


def test_yaw_sign_from_a_mirrored_pose():
    pts = np.zeros((478, 3), np.float32)
    pts[33] = (100, 100, 0)
    pts[263] = (200, 100, -30)  # the left eye is nearer the camera: turned to image left
    pts[10] = (150, 50, 0)
    pts[152] = (150, 250, 0)
    pose, rotation = head_pose(pts)
    assert pose.yaw < -5
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)


def test_several_faces_use_the_largest(portrait, session_config):
    small = np.asarray(Image.fromarray(portrait).resize((200, 240)))
    canvas = np.full((480, 700, 3), 235, np.uint8)
    canvas[:, :400] = portrait
    canvas[120:360, 460:660] = small
    face = detect_landmarks(canvas, session_config)
    assert face.face_count == 2
    assert face.bbox[2] < 400  # the big face on the left


def test_no_face(no_face, session_config):
    with pytest.raises(errors.NoFaceError, match="No face found"):
        detect_landmarks(no_face, session_config)


def test_tiny_face(astronaut, session_config):
    # The whole portrait shrunk into a corner of a larger empty frame: the face is ~40 px.
    canvas = np.full((600, 600, 3), 200, np.uint8)
    canvas[:240, :240] = np.asarray(Image.fromarray(astronaut).resize((240, 240)))
    with pytest.raises(errors.FaceTooSmallError):
        detect_landmarks(canvas, session_config)


def test_graphs_are_reused_across_short_lived_threads(astronaut, session_config):
    """Ray Serve runs each request on whichever pool thread is free; graphs kept per thread
    were rebuilt (and leaked, ~70 MB each) on every new thread."""
    import threading

    from pipeline import landmarks

    detect_landmarks(astronaut, session_config)
    free = landmarks._free_graphs[session_config.max_faces]
    built = free.qsize()  # earlier tests may have run detections side by side
    faces = []
    for _ in range(3):
        thread = threading.Thread(target=lambda: faces.append(detect_landmarks(astronaut, session_config)))
        thread.start()
        thread.join()
    assert len(faces) == 3
    assert free.qsize() == built  # three calls one after another needed no new graphs
