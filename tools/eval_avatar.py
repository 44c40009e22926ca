"""Measure how good a Toonforge avatar is: face found, likeness, cartoon-ness, printable mesh.

    python tools/eval_avatar.py --original PHOTO --avatar IMAGE [--figurine GLB] --output JSON

Every measure is a function here so tests and notebooks can call it directly. Both images are
read the way the app reads an upload (``pipeline.validate``: EXIF orientation, 1024 px working
copy), so the photo's landmarks live in the same frame as the avatar the pipeline wrote.

Exit status: 0 when the measures were written (also when no face is found in the avatar:
that is a result, not an error); 2 with a one-line message when an input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.config import Config  # noqa: E402
from pipeline.errors import FaceTooSmallError, NoFaceError, ToonforgeError  # noqa: E402
from pipeline.landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER, detect_landmarks  # noqa: E402

CROP_PX = 128  # side of the aligned face crops compared by SSIM and the identity model
MEASURE_SIDE = 512  # cartoon measures run at this long side so photo and avatar compare
QUANT_SHIFT = 4  # palette: keep 4 bits per channel (16 levels) before counting colours
PALETTE_COVERAGE = 0.9
FLAT_GRADIENT = 2.0  # grey levels per pixel below which a pixel counts as flat
LBPH_GRID = (8, 8)
IDENTITY_NOTE = (
    "Indicative only: LBPH compares local texture (local binary patterns), which stylization "
    "deliberately flattens, so a low score on a cartoon does not mean another person."
)


# What trimesh raises on a damaged file (it has no exception family of its own for parsing).
PARSE_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, struct.error)


class UnreadableInput(Exception):
    """An input file is missing or not a usable image or mesh (exit status 2)."""


# ---------------------------------------------------------------- reading


def load_image(path: Path, config: Config) -> np.ndarray:
    """RGB uint8 working copy of an image file, exactly as the app would see the upload."""
    from pipeline.validate import validate_image

    if not Path(path).is_file():
        raise UnreadableInput(f"{path}: no such file")
    try:
        return validate_image(Path(path), config).image
    except ToonforgeError as exc:
        raise UnreadableInput(f"{path}: {exc.detail}") from exc


# ---------------------------------------------------------------- face and landmarks


@dataclass
class FaceFinding:
    found: bool
    confidence: float | None
    count: int
    reason: str  # "" when found, else the pipeline's error code and message
    landmarks: np.ndarray | None = None  # (478, 2) pixels

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("landmarks")
        d["confidence"] = None if self.confidence is None else round(self.confidence, 3)
        return d


def find_face(image: np.ndarray, config: Config) -> FaceFinding:
    """The pipeline's own face verdict: no face or a too-small face means not found."""
    try:
        face = detect_landmarks(image, config)
    except (NoFaceError, FaceTooSmallError) as exc:
        return FaceFinding(False, None, 0, f"{exc.code}: {exc.detail}")
    points = face.landmarks_px[:, :2].astype(np.float64)
    return FaceFinding(True, face.confidence, face.face_count, "", points)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2 x 3 similarity (rotation, uniform scale, translation) that best maps src onto dst
    in the least-squares sense (Umeyama 1991); reflections are excluded."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sing, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = float((sing * sign).sum() / var_s) if var_s > 0 else 1.0
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def interocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners (FaceMesh 33 and 263)."""
    return float(np.linalg.norm(points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER]))


def landmark_error(photo_pts: np.ndarray, avatar_pts: np.ndarray) -> float:
    """Mean point distance after a similarity alignment of avatar onto photo landmarks,
    divided by the photo's inter-ocular distance (0 = same geometry)."""
    aligned = apply_affine(umeyama(avatar_pts, photo_pts), avatar_pts)
    return float(np.linalg.norm(aligned - photo_pts, axis=1).mean() / interocular(photo_pts))


def canonical_points(points: np.ndarray, side: int = CROP_PX, margin: float = 0.08) -> np.ndarray:
    """The landmarks turned so the eye line is level and scaled to fill a side x side crop."""
    eye = points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER]
    angle = -math.atan2(eye[1], eye[0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    p = points @ rot.T
    lo, hi = p.min(axis=0), p.max(axis=0)
    scale = side * (1 - 2 * margin) / float((hi - lo).max())
    return (p - (lo + hi) / 2) * scale + side / 2


def aligned_grey_crop(
    image: np.ndarray, points: np.ndarray, target: np.ndarray, side: int = CROP_PX
) -> np.ndarray:
    """Grey face crop warped so that ``points`` land on ``target``."""
    matrix = umeyama(points, target)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < 1.0:
        # warpAffine has no area filter: blur first so a large face does not alias when shrunk.
        grey = cv2.GaussianBlur(grey, (0, 0), sigmaX=(1.0 / scale - 1.0) / 2.0 + 1e-3)
    return cv2.warpAffine(grey, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def face_oval_mask(target: np.ndarray, side: int = CROP_PX) -> np.ndarray:
    from pipeline.face_regions import face_oval_ring

    mask = np.zeros((side, side), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(target[face_oval_ring()]).astype(np.int32)], 1)
    return mask.astype(bool)


def face_ssim(photo_crop: np.ndarray, avatar_crop: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM inside the face oval of two aligned grey crops (backdrops do not count)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(photo_crop, avatar_crop, data_range=255, full=True)
    return float(full[mask].mean())


# ---------------------------------------------------------------- cartoon-ness


def _at_measure_size(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = MEASURE_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def palette_size(image: np.ndarray, coverage: float = PALETTE_COVERAGE) -> int:
    """Number of colours (after keeping 4 bits per channel) that cover ``coverage`` of pixels."""
    q = (image >> QUANT_SHIFT).astype(np.int32)
    bits = 8 - QUANT_SHIFT
    codes = (q[..., 0] << (2 * bits)) | (q[..., 1] << bits) | q[..., 2]
    counts = np.sort(np.bincount(codes.ravel()))[::-1]
    share = np.cumsum(counts) / counts.sum()
    return int(np.searchsorted(share, coverage) + 1)


def gradient_magnitude(grey: np.ndarray) -> np.ndarray:
    """Grey levels per pixel (a 3x3 Sobel of a unit ramp reads 8, hence the division)."""
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(gx, gy) / 8.0


def cartoon_measures(image: np.ndarray) -> dict[str, float]:
    """Palette size, flat-region share and edge density, at a 512 px long side."""
    small = _at_measure_size(image)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return {
        "palette_size": palette_size(small),
        "flat_share": round(float((gradient_magnitude(grey) < FLAT_GRADIENT).mean()), 4),
        "edge_density": round(float((cv2.Canny(grey, 100, 200) > 0).mean()), 4),
    }


def more_cartoon_like(avatar: dict, photo: dict) -> bool:
    """Fewer colours and more flat area than the photo: what a cartoon rendering does."""
    return avatar["palette_size"] < photo["palette_size"] and avatar["flat_share"] > photo["flat_share"]


# ---------------------------------------------------------------- identity


def lbph_similarity(photo_crop: np.ndarray, avatar_crop: np.ndarray) -> dict:
    """OpenCV's LBPH face recognizer trained on the photo crop, asked about the avatar crop.

    Each of the grid's cells holds a normalised 256-bin histogram and OpenCV compares them with
    the alternative chi-square distance, at most 4 per cell; so 1 - distance / (4 * cells) is
    1 for identical texture statistics and 0 for disjoint ones.
    """
    if not hasattr(cv2, "face"):
        return {"model": None, "similarity": None, "distance": None,
                "note": "cv2.face (opencv-contrib-python) is not installed: no identity model."}
    gx, gy = LBPH_GRID
    recognizer = cv2.face.LBPHFaceRecognizer_create(radius=1, neighbors=8, grid_x=gx, grid_y=gy)
    recognizer.train([photo_crop], np.array([0], dtype=np.int32))
    _, distance = recognizer.predict(avatar_crop)
    max_distance = 4.0 * gx * gy
    return {
        "model": f"OpenCV LBPHFaceRecognizer (radius 1, 8 neighbours, {gx}x{gy} grid) on aligned "
        f"{CROP_PX} px grey crops",
        "similarity": round(float(np.clip(1.0 - distance / max_distance, 0.0, 1.0)), 4),
        "distance": round(float(distance), 3),
        "note": IDENTITY_NOTE,
    }


# ---------------------------------------------------------------- figurine


def _manifold_status(mesh) -> str:
    import manifold3d

    data = manifold3d.Mesh(
        vert_properties=np.asarray(mesh.vertices, dtype=np.float32),
        tri_verts=np.asarray(mesh.faces, dtype=np.uint32),
    )
    return str(manifold3d.Manifold(data).status()).split(".")[-1]


def solid_checks(mesh) -> dict:
    """Printability of one mesh: the pipeline's own checks plus manifold3d's verdict."""
    from pipeline.quality import mesh_checks

    checks = {k: (int(v) if k == "triangles" else bool(v)) for k, v in mesh_checks(mesh).items()}
    status = _manifold_status(mesh)
    checks["manifold"] = status == "NoError"
    checks["manifold_status"] = status
    return checks


def _has_texture(geometry) -> bool:
    material = getattr(geometry.visual, "material", None)
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    return image is not None and getattr(geometry.visual, "uv", None) is not None


def figurine_checks(glb_path: Path, stl_path: Path | None = None) -> dict:
    """GLB (metres, y up): parts, triangles, texture, height; STL (mm, z up): printability."""
    import trimesh

    if not glb_path.is_file():
        raise UnreadableInput(f"{glb_path}: no such file")
    try:
        scene = trimesh.load(glb_path, file_type="glb", force="scene")
    except PARSE_ERRORS as exc:
        raise UnreadableInput(f"{glb_path}: not a readable GLB ({exc})") from exc
    if not scene.geometry:
        raise UnreadableInput(f"{glb_path}: the GLB holds no mesh")
    meshes = scene.dump(concatenate=False)
    lo, hi = scene.bounds
    glb = {
        "parts": len(scene.geometry),
        "triangles": int(sum(len(m.faces) for m in meshes)),
        "textured_parts": sorted(name for name, g in scene.geometry.items() if _has_texture(g)),
        "texture_present": any(_has_texture(g) for g in scene.geometry.values()),
        "parts_watertight": all(m.is_watertight for m in meshes),
        "height_mm": round(float(hi[1] - lo[1]) * 1000.0, 2),
    }
    stl_path = stl_path if stl_path is not None else glb_path.with_suffix(".stl")
    stl = None
    if stl_path.is_file():
        try:
            solid = trimesh.load(stl_path, file_type="stl", force="mesh")
        except PARSE_ERRORS as exc:
            raise UnreadableInput(f"{stl_path}: not a readable STL ({exc})") from exc
        s_lo, s_hi = solid.bounds
        height = round(float(s_hi[2] - s_lo[2]), 2)
        stl = {"path": str(stl_path), **solid_checks(solid), "height_mm": height}
        stl["heights_agree"] = math.isclose(stl["height_mm"], glb["height_mm"], rel_tol=0.01)
    return {"glb": glb, "stl": stl, "watertight": None if stl is None else stl["watertight"]}


# ---------------------------------------------------------------- all together


def evaluate(
    original: Path, avatar: Path, figurine: Path | None = None, config: Config | None = None
) -> dict:
    """Every measure for one avatar; raises :class:`UnreadableInput` for unreadable files."""
    config = config or Config.from_env()
    photo_img = load_image(original, config)
    avatar_img = load_image(avatar, config)
    figurine_result = figurine_checks(Path(figurine)) if figurine is not None else None

    photo_face = find_face(photo_img, config)
    avatar_face = find_face(avatar_img, config)
    photo_cartoon = cartoon_measures(photo_img)
    avatar_cartoon = cartoon_measures(avatar_img)

    likeness: dict = {"landmark_nme": None, "ssim_face": None,
                      "identity": {"model": None, "similarity": None, "distance": None, "note": ""}}
    if photo_face.found and avatar_face.found:
        p_pts, a_pts = photo_face.landmarks, avatar_face.landmarks
        target = canonical_points(p_pts)
        p_crop = aligned_grey_crop(photo_img, p_pts, target)
        a_crop = aligned_grey_crop(avatar_img, a_pts, target)
        likeness = {
            "landmark_nme": round(landmark_error(p_pts, a_pts), 4),
            "ssim_face": round(face_ssim(p_crop, a_crop, face_oval_mask(target)), 4),
            "identity": lbph_similarity(p_crop, a_crop),
        }
    else:
        likeness["identity"]["note"] = "Needs a face in both images."

    return {
        "inputs": {
            "original": str(original),
            "avatar": str(avatar),
            "figurine": None if figurine is None else str(figurine),
            "original_size": [photo_img.shape[1], photo_img.shape[0]],
            "avatar_size": [avatar_img.shape[1], avatar_img.shape[0]],
        },
        "face": {"photo": photo_face.to_dict(), "avatar": avatar_face.to_dict()},
        "face_found": avatar_face.found,
        "face_confidence": avatar_face.to_dict()["confidence"],
        "likeness": {
            **likeness,
            "landmark_method": "478 FaceMesh points (x, y); avatar aligned onto photo by a similarity "
            "(Umeyama); mean distance / photo inter-ocular distance (outer eye corners)",
            "ssim_method": f"skimage SSIM of aligned {CROP_PX} px grey crops, mean inside the face oval",
        },
        "cartoon": {
            "avatar": avatar_cartoon,
            "photo": photo_cartoon,
            "more_cartoon_like_than_photo": more_cartoon_like(avatar_cartoon, photo_cartoon),
            "method": f"at {MEASURE_SIDE} px long side; palette: colours at 4 bits/channel covering "
            f"{PALETTE_COVERAGE:.0%} of pixels; flat: Sobel gradient < {FLAT_GRADIENT} levels/px; "
            "edges: Canny(100, 200)",
        },
        "figurine": figurine_result,
    }


def summary_lines(result: dict) -> list[str]:
    face = result["face"]["avatar"]
    found = f"yes (confidence {face['confidence']:.2f})" if face["found"] else f"no ({face['reason']})"
    lines = [f"face in avatar: {found}"]
    like = result["likeness"]
    if like["landmark_nme"] is not None:
        ident = like["identity"]["similarity"]
        lines.append(
            f"likeness: landmark NME {like['landmark_nme']:.3f}, face SSIM {like['ssim_face']:.3f}, "
            f"LBPH identity {'n/a' if ident is None else f'{ident:.3f}'} (indicative)"
        )
    c = result["cartoon"]
    lines.append(
        f"cartoon: palette {c['avatar']['palette_size']} vs photo {c['photo']['palette_size']}, "
        f"flat {c['avatar']['flat_share']:.0%} vs {c['photo']['flat_share']:.0%}, "
        f"edges {c['avatar']['edge_density']:.1%} vs {c['photo']['edge_density']:.1%} -> "
        + ("more cartoon-like than the photo" if c["more_cartoon_like_than_photo"]
           else "NOT more cartoon-like")
    )
    fig = result["figurine"]
    if fig is not None:
        glb = fig["glb"]
        text = (
            f"figurine: {glb['parts']} parts, {glb['triangles']} triangles, "
            f"texture {'yes' if glb['texture_present'] else 'no'}, height {glb['height_mm']:.1f} mm"
        )
        if fig["stl"] is not None:
            stl = fig["stl"]
            text += (f"; STL watertight {stl['watertight']}, manifold {stl['manifold']}, "
                     f"{stl['height_mm']:.1f} mm")
        lines.append(text)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, required=True, help="the user's photo")
    parser.add_argument("--avatar", type=Path, required=True, help="the cartoon image (stylized.png)")
    parser.add_argument("--figurine", type=Path, help="figurine.glb (the STL beside it is checked too)")
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args.original, args.avatar, args.figurine)
    except UnreadableInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for line in summary_lines(result):
        print(line)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
