"""Quality score 0-100 for a figurine, with the reasons a user can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
import trimesh

from pipeline.landmarks import FaceAnalysis

# Points per criterion; they add up to 100.
WEIGHTS = {
    "detection": 20,
    "pose": 20,
    "sharpness": 15,
    "resolution": 15,
    "lighting": 15,
    "mesh": 15,
}


@dataclass
class QualityReport:
    score: int
    grade: str  # "good", "fair" or "poor"
    components: dict[str, float]  # criterion -> 0..1
    measures: dict[str, float]
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "score": self.score,
            "grade": self.grade,
            "components": {k: round(v, 3) for k, v in self.components.items()},
            "measures": {k: round(v, 3) for k, v in self.measures.items()},
            "reasons": list(self.reasons),
        }


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good``, linear in between (works for either direction)."""
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def face_crop(image: np.ndarray, face: FaceAnalysis) -> np.ndarray:
    x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
    h, w = image.shape[:2]
    return image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian on a face resized to 128 px wide, so sizes compare."""
    if gray.size == 0:
        return 0.0
    scale = 128.0 / gray.shape[1]
    small = cv2.resize(gray, (128, max(1, int(gray.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_64F).var())


def lighting(gray: np.ndarray) -> tuple[float, float, float]:
    """Mean brightness, contrast (std) and share of clipped pixels of a grey face crop."""
    if gray.size == 0:
        return 0.0, 0.0, 1.0
    clipped = float(((gray < 8) | (gray > 247)).mean())
    return float(gray.mean()), float(gray.std()), clipped


def mesh_checks(solid: trimesh.Trimesh) -> dict[str, float]:
    return {
        "watertight": float(solid.is_watertight),
        "winding_consistent": float(solid.is_winding_consistent),
        "positive_volume": float(solid.volume > 0),
        "triangles": float(len(solid.faces)),
    }


def score_quality(
    face: FaceAnalysis, photo: np.ndarray, solid: trimesh.Trimesh, notes: Sequence[str] = ()
) -> QualityReport:
    """Score the photo and the printable solid; ``notes`` are what the head stage could not
    find in the photo (hair, a person outline), passed on to the user as reasons."""
    gray = cv2.cvtColor(face_crop(photo, face), cv2.COLOR_RGB2GRAY)
    sharp = sharpness(gray)
    mean, contrast, clipped = lighting(gray)
    pose_deg = max(abs(face.pose.yaw), abs(face.pose.pitch))
    mesh = mesh_checks(solid)
    mesh_ok = mesh["watertight"] * mesh["winding_consistent"] * mesh["positive_volume"]

    components = {
        "detection": _ramp(face.confidence, 0.5, 0.9),
        "pose": _ramp(pose_deg, 40.0, 12.0) * _ramp(abs(face.pose.roll), 45.0, 15.0),
        "sharpness": _ramp(sharp, 20.0, 150.0),
        "resolution": _ramp(face.face_width_px, 48.0, 180.0),
        "lighting": min(_ramp(mean, 35.0, 90.0), _ramp(mean, 235.0, 190.0))
        * _ramp(contrast, 10.0, 30.0)
        * _ramp(clipped, 0.3, 0.05),
        "mesh": mesh_ok,
    }
    reasons = []
    if components["detection"] < 0.8:
        reasons.append(f"Face detection is unsure ({face.confidence:.2f}): use a clearer, front-lit photo.")
    if components["pose"] < 0.8:
        reasons.append(
            f"Head is turned or tilted (yaw {face.pose.yaw:.0f}°, pitch {face.pose.pitch:.0f}°, "
            f"roll {face.pose.roll:.0f}°): face the camera for the best likeness."
        )
    if components["sharpness"] < 0.8:
        reasons.append("The face is blurry: use a sharper photo.")
    if components["resolution"] < 0.8:
        reasons.append(
            f"The face is small ({face.face_width_px:.0f} px wide): crop closer or use a larger photo."
        )
    if components["lighting"] < 0.8:
        reasons.append("Lighting is too dark, too bright or too flat: use even, soft light.")
    if components["mesh"] < 1.0:
        reasons.append("The printable mesh failed a check: the STL may need repair in your slicer.")
    reasons.extend(notes)
    if face.face_count > 1:
        reasons.append(f"{face.face_count} faces found: the largest one was used.")
    score = int(round(sum(WEIGHTS[k] * v for k, v in components.items())))
    grade = "good" if score >= 80 else "fair" if score >= 55 else "poor"
    if not reasons:
        reasons.append("Sharp, well-lit, front-facing photo: nothing to improve.")
    measures = {
        "confidence": face.confidence,
        "yaw_deg": face.pose.yaw,
        "pitch_deg": face.pose.pitch,
        "roll_deg": face.pose.roll,
        "sharpness": sharp,
        "face_width_px": face.face_width_px,
        "brightness": mean,
        "contrast": contrast,
        "clipped_share": clipped,
        **{f"mesh_{k}": v for k, v in mesh.items()},
    }
    return QualityReport(score=score, grade=grade, components=components, measures=measures, reasons=reasons)
