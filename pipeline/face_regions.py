"""Named groups of MediaPipe FaceMesh landmark indices (eyes, brows, lips, oval)."""

from __future__ import annotations

from functools import cache

import numpy as np


def _indices(connections: frozenset[tuple[int, int]]) -> np.ndarray:
    return np.array(sorted({i for edge in connections for i in edge}), dtype=np.int64)


@cache
def feature_groups() -> dict[str, np.ndarray]:
    """Index arrays for each facial feature that must stay sharp when stylizing."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    return {
        "right_eye": _indices(fmc.FACEMESH_RIGHT_EYE | fmc.FACEMESH_RIGHT_IRIS),
        "left_eye": _indices(fmc.FACEMESH_LEFT_EYE | fmc.FACEMESH_LEFT_IRIS),
        "right_brow": _indices(fmc.FACEMESH_RIGHT_EYEBROW),
        "left_brow": _indices(fmc.FACEMESH_LEFT_EYEBROW),
        "lips": _indices(fmc.FACEMESH_LIPS),
        "nose": _indices(fmc.FACEMESH_NOSE),
    }


@cache
def face_oval_ring() -> np.ndarray:
    """Face-oval landmark indices in order around the face."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    nxt = dict(fmc.FACEMESH_FACE_OVAL)
    start = min(nxt)
    ring = [start]
    while nxt[ring[-1]] != start:
        ring.append(nxt[ring[-1]])
    return np.array(ring, dtype=np.int64)
