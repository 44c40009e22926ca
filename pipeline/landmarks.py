"""Face detection, 478 FaceMesh landmarks, head pose and the person mask (MediaPipe).

Uses only the models shipped inside the mediapipe 0.10.21 wheel (legacy ``solutions`` graphs).
The graphs are not thread-safe, so each call borrows a set from a process-wide pool (as many
sets as calls ever ran at once).
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from pipeline.config import Config
from pipeline.errors import FaceTooSmallError, NoFaceError
from pipeline.timing import timed

# Landmark indices in MediaPipe's canonical face mesh.
RIGHT_EYE_OUTER = 33  # the subject's right eye, image left
LEFT_EYE_OUTER = 263
FOREHEAD_TOP = 10
CHIN = 152
NOSE_TIP = 1


@dataclass(frozen=True)
class HeadPose:
    """Degrees. yaw > 0: face turned towards image right; pitch > 0: looking up;
    roll > 0: head tilted counter-clockwise in the image."""

    yaw: float
    pitch: float
    roll: float


@dataclass
class FaceAnalysis:
    landmarks_px: np.ndarray  # (478, 3) float32: x, y in pixels; z in pixels, < 0 towards camera
    image_size: tuple[int, int]  # (width, height) of the working image
    face_count: int
    confidence: float
    pose: HeadPose
    rotation: np.ndarray  # (3, 3) columns: face right, up, towards viewer (camera frame, y up)
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    person_mask: np.ndarray  # (H, W) float32 in [0, 1]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def face_width_px(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def face_height_px(self) -> float:
        return self.bbox[3] - self.bbox[1]


class _Graphs:
    """One set of MediaPipe graphs; a graph serves one call at a time."""

    def __init__(self, max_faces: int) -> None:
        import mediapipe as mp  # heavy import, deferred until a photo arrives

        solutions: Any = mp.solutions
        self.mesh = solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=0.5,
        )
        self.detector = solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=0.5
        )
        self.segmenter = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


# Graphs are lent to one call at a time and kept for the next, whatever thread it runs on:
# kept per thread instead, every new thread built (and leaked) its own ~70 MB of graphs, and
# Ray Serve runs each request on whichever pool thread is free.
_free_graphs: dict[int, "queue.SimpleQueue[_Graphs]"] = {}
_free_graphs_lock = threading.Lock()


@contextlib.contextmanager
def _lent_graphs(config: Config) -> Iterator[_Graphs]:
    with _free_graphs_lock:
        free = _free_graphs.setdefault(config.max_faces, queue.SimpleQueue())
    try:
        graphs = free.get_nowait()
    except queue.Empty:
        graphs = _Graphs(config.max_faces)
    try:
        yield graphs
    finally:
        free.put(graphs)


def head_pose(points_px: np.ndarray) -> tuple[HeadPose, np.ndarray]:
    """Pose from the landmark geometry: eye line gives x, chin-to-forehead gives y."""
    p = np.asarray(points_px, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
    x_axis = p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]
    x_axis /= np.linalg.norm(x_axis)
    y_axis = p[FOREHEAD_TOP] - p[CHIN]
    y_axis -= x_axis * float(np.dot(y_axis, x_axis))
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    rotation = np.stack([x_axis, y_axis, z_axis], axis=1)
    yaw = math.degrees(math.atan2(z_axis[0], z_axis[2]))
    pitch = math.degrees(math.asin(float(np.clip(z_axis[1], -1.0, 1.0))))
    roll = math.degrees(math.atan2(x_axis[1], x_axis[0]))
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll), rotation


def _box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect_landmarks(image: np.ndarray, config: Config) -> FaceAnalysis:
    """Find the largest face in an RGB uint8 image; raise if there is none or it is too small."""
    with _lent_graphs(config) as graphs:
        return _analyse(image, config, graphs)


def _analyse(image: np.ndarray, config: Config, graphs: _Graphs) -> FaceAnalysis:
    height, width = image.shape[:2]
    timings: dict[str, float] = {}
    rgb = np.ascontiguousarray(image)

    with timed(timings, "detection"):
        detections = graphs.detector.process(rgb).detections or []

    with timed(timings, "facemesh"):
        meshes = graphs.mesh.process(rgb).multi_face_landmarks or []

    if not meshes:
        if detections:
            raise FaceTooSmallError(
                "A face was found but it is too small or blurred to model. "
                "Use a photo where the face fills at least a fifth of the frame."
            )
        raise NoFaceError(
            "No face found in this photo. Use a well-lit photo of one person "
            "looking roughly at the camera."
        )

    scale = np.array([width, height, width], dtype=np.float32)
    candidates = []
    for mesh in meshes:
        pts = np.array([(lm.x, lm.y, lm.z) for lm in mesh.landmark], dtype=np.float32) * scale
        x0, y0 = pts[:, 0].min(), pts[:, 1].min()
        x1, y1 = pts[:, 0].max(), pts[:, 1].max()
        candidates.append(((x1 - x0) * (y1 - y0), pts, (float(x0), float(y0), float(x1), float(y1))))
    candidates.sort(key=lambda c: c[0], reverse=True)
    _, points, bbox = candidates[0]

    confidence = 0.0
    for det in detections:
        rel = det.location_data.relative_bounding_box
        box = (
            rel.xmin * width,
            rel.ymin * height,
            (rel.xmin + rel.width) * width,
            (rel.ymin + rel.height) * height,
        )
        if _box_iou(box, bbox) > 0.3:
            confidence = max(confidence, float(det.score[0]))
    if confidence == 0.0:
        # FaceMesh's own detector found the face although the full-range detector did not:
        # it is real but hard, so report a low, honest confidence.
        confidence = 0.5
    face_count = max(len(meshes), len(detections))

    face_px = min(bbox[2] - bbox[0], bbox[3] - bbox[1])
    if face_px < config.min_face_px:
        raise FaceTooSmallError(
            f"The face is only {int(face_px)} px across; at least {config.min_face_px} px is "
            "needed. Crop closer to the face or use a larger photo."
        )

    pose, rotation = head_pose(points)

    with timed(timings, "segmentation"):
        mask = graphs.segmenter.process(rgb).segmentation_mask
    person_mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)

    return FaceAnalysis(
        landmarks_px=points,
        image_size=(width, height),
        face_count=face_count,
        confidence=confidence,
        pose=pose,
        rotation=rotation,
        bbox=bbox,
        person_mask=person_mask,
        timings_ms=timings,
    )
