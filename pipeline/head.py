"""Build a closed, textured chibi head from the 478 landmarks, plus a hair shell.

The head is an ellipsoid whose front is replaced by the person's face surface (frontalized
landmarks, so nose, brows and lips stand out in a side view). Its texture is the stylized
photo warped into the same frontal frame, so UVs are simply the frontal x, y of each vertex.
Hair is a second closed shell whose face window is pushed inside the head: no cutting, so
both meshes stay watertight for printing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import trimesh
from PIL import Image
from scipy.spatial import Delaunay

from pipeline.face_regions import face_oval_ring
from pipeline.landmarks import CHIN, FOREHEAD_TOP, NOSE_TIP, FaceAnalysis

# Head ellipsoid semi-axes in units of half the face width: a big round chibi cranium.
HEAD_A, HEAD_B, HEAD_C = 1.32, 1.58, 1.55
RELIEF_GAIN = 1.0  # the frontalized landmarks already read well at figurine scale
BLEND_BAND = 0.22  # width of the seam between face surface and skull
TEXTURE_WIDTH = 512
SPHERE_RINGS, SPHERE_SEGMENTS = 64, 96
HAIR_RINGS, HAIR_SEGMENTS = 40, 72

MESH_POINTS = 468  # FaceMesh points before the refined iris points

RGB = tuple[int, int, int]


@dataclass
class HeadResult:
    """Meshes are in head units: skull centre at the origin, skull height 1, y up, z forward."""

    head: trimesh.Trimesh  # textured
    hair: trimesh.Trimesh
    texture: np.ndarray  # frontalized stylized face, RGB uint8
    skin_rgb: RGB
    hair_rgb: RGB
    hair_style: str
    nose_relief: float  # how far the nose tip stands out of the skull, in head units
    chin_y: float


@cache
def _front_pole_sphere(rings: int, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere whose pole points forward (+z): its rings are densest over the face."""
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring_verts = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1)
    verts = np.vstack([[0.0, 0.0, 1.0], ring_verts.reshape(-1, 3), [0.0, 0.0, -1.0]])
    n_ring = rings - 1
    idx = 1 + np.arange(n_ring * segments).reshape(n_ring, segments)
    nxt = np.roll(idx, -1, axis=1)
    faces = [np.stack([np.zeros(segments, int), idx[0], nxt[0]], -1)]
    quads_a = np.stack([idx[:-1], nxt[1:], nxt[:-1]], -1).reshape(-1, 3)
    quads_b = np.stack([idx[:-1], idx[1:], nxt[1:]], -1).reshape(-1, 3)
    faces += [quads_a, quads_b]
    back = len(verts) - 1
    faces.append(np.stack([np.full(segments, back), nxt[-1], idx[-1]], -1))
    faces_array = np.vstack(faces)
    verts.flags.writeable = False  # cached and shared between calls
    faces_array.flags.writeable = False
    return verts, faces_array


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ab = b - a
    ap = points[:, None, :] - a[None]
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=-1).min(axis=1)


def frontalize(face: FaceAnalysis) -> np.ndarray:
    """Landmarks in the face's own frame, pose removed, in units of half the face width."""
    p = face.landmarks_px.astype(np.float64) * np.array([1.0, -1.0, -1.0])
    oval = face_oval_ring()
    q = (p - p[oval].mean(axis=0)) @ face.rotation
    q /= (q[oval, 0].max() - q[oval, 0].min()) / 2
    q[:, 2] -= q[oval, 2].mean()
    return q


class _FaceField:
    """Piecewise-linear maps from frontal (x, y) to face depth and to photo position.

    Only points inside the face outline are interpolated: scipy's simplex search is slow for
    points outside the triangulation, and an affine fit serves those well enough.
    """

    def __init__(self, frontal: np.ndarray, image_xy: np.ndarray, outline: np.ndarray) -> None:
        from matplotlib.path import Path as PolygonPath  # 0.1 s to import; only heads need it

        self._outline = PolygonPath(outline)
        # The 10 iris points sit almost on top of eye points; their sliver triangles send
        # scipy's simplex search into its brute-force fallback, so leave them out.
        mesh = slice(0, MESH_POINTS)
        self._tri = Delaunay(frontal[mesh, :2])
        self._depth_values = frontal[mesh, 2]
        self._image_values = image_xy[mesh]
        design = np.column_stack([frontal[mesh, :2], np.ones(MESH_POINTS)])
        self._affine, *_ = np.linalg.lstsq(design, image_xy[mesh], rcond=None)

    def _interpolate(self, xy: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Barycentric interpolation over the landmark triangulation; NaN outside it.
        (Done by hand: scipy's LinearNDInterpolator is far slower on its first calls.)"""
        simplex = self._tri.find_simplex(xy)
        found = simplex >= 0
        transform = self._tri.transform[simplex[found]]
        bary2 = np.einsum("nij,nj->ni", transform[:, :2], xy[found] - transform[:, 2])
        bary = np.column_stack([bary2, 1.0 - bary2.sum(axis=1)])
        corners = values[self._tri.simplices[simplex[found]]]
        out = np.full((len(xy),) + values.shape[1:], np.nan)
        out[found] = np.einsum("nk,nk...->n...", bary, corners)
        return out

    def depth(self, xy: np.ndarray) -> np.ndarray:
        return self._interpolate(xy, self._depth_values)

    def image_position(self, xy: np.ndarray) -> np.ndarray:
        pos = np.column_stack([xy, np.ones(len(xy))]) @ self._affine
        inside = self._outline.contains_points(xy)
        pos[inside] = self._interpolate(xy[inside], self._image_values)
        return pos


def _median_rgb(pixels: np.ndarray, fallback: RGB) -> RGB:
    if len(pixels) < 20:
        return fallback
    med = np.median(pixels.reshape(-1, 3), axis=0)
    return (int(med[0]), int(med[1]), int(med[2]))


def _frontal_texture(
    stylized: np.ndarray, field: _FaceField, oval_xy: np.ndarray, centre_y: float
) -> tuple[np.ndarray, RGB, tuple[float, float, float, float]]:
    """Warp the stylized face into the frontal frame; paint skin outside the face oval."""
    width = TEXTURE_WIDTH
    height = int(round(width * HEAD_B / HEAD_A))
    x0, x1, y0, y1 = -HEAD_A, HEAD_A, centre_y - HEAD_B, centre_y + HEAD_B
    grid = 64  # the warp is smooth: a coarse grid, upsampled, is enough
    gx, gy = np.meshgrid(np.linspace(x0, x1, grid), np.linspace(y1, y0, grid))
    coarse = field.image_position(np.column_stack([gx.ravel(), gy.ravel()]))
    map_x = cv2.resize(coarse[:, 0].reshape(grid, grid).astype(np.float32), (width, height))
    map_y = cv2.resize(coarse[:, 1].reshape(grid, grid).astype(np.float32), (width, height))
    warped = cv2.remap(stylized, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def to_px(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [(xy[:, 0] - x0) / (x1 - x0) * (width - 1), (y1 - xy[:, 1]) / (y1 - y0) * (height - 1)]
        )

    oval_px = to_px(oval_xy).astype(np.int32)
    inner = np.zeros((height, width), np.uint8)
    cv2.fillPoly(inner, [oval_px], 255)
    inner = cv2.erode(inner, np.ones((11, 11), np.uint8))  # keep background off the cheeks
    lum = warped.mean(axis=2)
    skin = _median_rgb(warped[(inner > 0) & (lum > 70)], (230, 190, 160))
    alpha = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), 3.0)[..., None]
    texture = warped * alpha + np.array(skin, np.float32) * (1 - alpha)
    return np.clip(texture, 0, 255).astype(np.uint8), skin, (x0, x1, y0, y1)


def _cartoon_hair(rgb: RGB) -> RGB:
    """Richer, slightly darker hair: a photo's median hair colour looks washed out in plastic."""
    hsv = cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.35, 0, 255)
    hsv[..., 2] = hsv[..., 2] * 0.85
    r, g, b = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return (int(r), int(g), int(b))


def _measure_hair(photo: np.ndarray, face: FaceAnalysis) -> tuple[RGB | None, str, float]:
    """Hair colour (None when bald), style and volume, from the photo around the face."""
    h, w = photo.shape[:2]
    mask = cv2.resize(face.person_mask, (w, h)) > 0.5
    lm = face.landmarks_px
    face_h = max(1.0, face.face_height_px)
    x0, x1 = int(max(0, face.bbox[0])), int(min(w, face.bbox[2]))
    # The photo's own skin tone, from the middle of the face.
    cx, cy = (face.bbox[0] + face.bbox[2]) / 2, (face.bbox[1] + face.bbox[3]) / 2
    half = 0.12 * face.face_width_px
    cheeks = photo[int(cy - half) : int(cy + half), int(cx - 2 * half) : int(cx + 2 * half)]
    skin = np.median(cheeks.reshape(-1, 3), axis=0) if cheeks.size else np.array([200, 160, 140])

    top = float(lm[FOREHEAD_TOP, 1])
    band = slice(int(max(0, top - 0.3 * face_h)), int(max(0, top - 0.03 * face_h)))
    region = photo[band, x0:x1][mask[band, x0:x1]].astype(np.float32)
    # Hair is whatever in that band is not skin: a high forehead must not dilute it.
    hairy = region[np.linalg.norm(region - skin, axis=1) > 45] if len(region) else region
    if len(region) < 20 or len(hairy) < 0.25 * len(region):
        return None, "bald", 0.0
    hair = _cartoon_hair(_median_rgb(hairy, (70, 50, 35)))
    # Height of the person silhouette above the forehead, relative to face height.
    rows = np.flatnonzero(mask[:, x0:x1].any(axis=1))
    crown = rows[0] if len(rows) else top
    height_ratio = float(np.clip((top - crown) / face_h, 0.0, 0.8))
    # Long hair: hair-coloured silhouette beside the jaw, outside the face.
    chin_y = int(min(h - 1, lm[CHIN, 1]))
    jaw = slice(int(max(0, chin_y - 0.25 * face_h)), chin_y)
    side_w = int(0.25 * face.face_width_px)
    sides = np.concatenate(
        [
            photo[jaw, max(0, x0 - side_w) : x0][mask[jaw, max(0, x0 - side_w) : x0]],
            photo[jaw, x1 : min(w, x1 + side_w)][mask[jaw, x1 : min(w, x1 + side_w)]],
        ]
    )
    near_hair = (np.linalg.norm(sides.astype(float) - hair, axis=1) < 45).mean() if len(sides) else 0.0
    style = "long" if near_hair > 0.5 else ("voluminous" if height_ratio > 0.35 else "short")
    return hair, style, height_ratio


def _hair_shell(
    style: str, height_ratio: float, centre: np.ndarray, hairline_y: float
) -> trimesh.Trimesh:
    verts, faces = _front_pole_sphere(HAIR_RINGS, HAIR_SEGMENTS)
    puff = 1.07 + 0.18 * height_ratio
    shell = verts * np.array([HEAD_A * 1.07, HEAD_B * puff, HEAD_C * 1.09]) + centre
    shell[:, 1] += HEAD_B * (puff - 1.0) * 0.6
    shell[:, 2] -= 0.04
    centre_y = float(centre[1])
    direction = verts
    if style == "long":
        # Let the back and sides hang down towards the shoulders.
        back = (direction[:, 1] < 0) & (direction[:, 2] < 0.35)
        shell[back, 1] = centre_y + (shell[back, 1] - centre_y) * 1.3
    # Hair reaches ear level at the sides and the nape at the back (lower still when long).
    side_bottom = centre_y - (0.95 * HEAD_B if style == "long" else 0.1 * HEAD_B)
    back_bottom = centre_y - (0.95 * HEAD_B if style == "long" else 0.72 * HEAD_B)
    backness = _smoothstep(-direction[:, 2] / 0.6)
    bottom = side_bottom + (back_bottom - side_bottom) * backness
    face_window = (shell[:, 1] < hairline_y) & (direction[:, 2] > 0.05) & (np.abs(shell[:, 0]) < 1.12)
    tucked = face_window | (shell[:, 1] < bottom)
    # Tucked vertices go inside the skull, where the union hides them.
    shell[tucked] = (shell[tucked] - centre) * 0.8 + centre
    return trimesh.Trimesh(shell, faces, process=False)


def _as_jpeg(texture: np.ndarray) -> Image.Image:
    """A JPEG-backed image: the GLB exporter then embeds it as JPEG, far faster than PNG."""
    buf = io.BytesIO()
    Image.fromarray(texture).save(buf, format="JPEG", quality=90)
    buf.seek(0)
    return Image.open(buf)


def build_head(face: FaceAnalysis, stylized: np.ndarray, photo: np.ndarray) -> HeadResult:
    """Closed textured head and hair shell for ``face``, textured from ``stylized``."""
    frontal = frontalize(face)
    oval = face_oval_ring()
    oval_xy = frontal[oval, :2]
    field = _FaceField(frontal, face.landmarks_px[:, :2].astype(np.float64), oval_xy)

    chin_y = float(frontal[CHIN, 1])
    centre_y = chin_y + 0.8 * HEAD_B

    unit, faces = _front_pole_sphere(SPHERE_RINGS, SPHERE_SEGMENTS)
    verts = unit * np.array([HEAD_A, HEAD_B, HEAD_C])
    verts[:, 1] += centre_y
    # Sit the skull so that its front meets the face outline.
    rim = 1.0 - (oval_xy[:, 0] / HEAD_A) ** 2 - ((oval_xy[:, 1] - centre_y) / HEAD_B) ** 2
    centre_z = float(np.mean(frontal[oval, 2] - HEAD_C * np.sqrt(np.clip(rim, 0.0, None))))
    verts[:, 2] += centre_z

    front = unit[:, 2] > 0.0
    xy = verts[front, :2]
    from matplotlib.path import Path as PolygonPath

    inside = PolygonPath(oval_xy).contains_points(xy)
    weight = np.zeros(len(xy))
    weight[inside] = _smoothstep(_distance_to_polygon(xy[inside], oval_xy) / BLEND_BAND)
    skull_z = verts[front, 2]
    depth = skull_z.copy()
    depth[inside] = field.depth(xy[inside])
    depth = np.where(np.isnan(depth), skull_z, depth)
    face_z = skull_z + RELIEF_GAIN * (depth - skull_z)
    # Never carve the face behind the skull's own back half.
    verts[front, 2] = np.maximum((1 - weight) * skull_z + weight * face_z, centre_z)

    texture, skin, (x0, x1, y0, y1) = _frontal_texture(stylized, field, oval_xy, centre_y)
    uv = np.column_stack([(verts[:, 0] - x0) / (x1 - x0), (verts[:, 1] - y0) / (y1 - y0)])
    # The back half maps radially onto the skin border of the texture, so no triangle
    # between front and back smears the face across the side of the head.
    back = unit[:, 2] <= 0.0
    radial = unit[back, :2] / np.maximum(np.linalg.norm(unit[back, :2], axis=1, keepdims=True), 1e-9)
    uv[back] = 0.5 + 0.49 * radial
    uv = np.clip(uv, 0.0, 1.0)

    hair_rgb, style, height_ratio = _measure_hair(photo, face)
    hairline_y = float(frontal[FOREHEAD_TOP, 1]) - 0.05
    hair = _hair_shell(style, height_ratio, np.array([0.0, centre_y, centre_z]), hairline_y)

    nose = frontal[NOSE_TIP]
    nose_rim = 1.0 - (nose[0] / HEAD_A) ** 2 - ((nose[1] - centre_y) / HEAD_B) ** 2
    skull_at_nose = centre_z + HEAD_C * np.sqrt(max(nose_rim, 0.0))
    nose_relief = float(centre_z + RELIEF_GAIN * (nose[2] - centre_z) - skull_at_nose)

    # Head units: skull centre at the origin, skull height 1.
    shift = np.array([0.0, centre_y, centre_z])
    scale = 1.0 / (2 * HEAD_B)
    head_verts = (verts - shift) * scale
    hair_verts = (np.asarray(hair.vertices) - shift) * scale

    material = trimesh.visual.material.PBRMaterial(
        name="face",
        baseColorTexture=_as_jpeg(texture),
        metallicFactor=0.0,
        roughnessFactor=0.8,
    )
    head = trimesh.Trimesh(
        head_verts,
        faces,
        visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
        process=False,
    )
    hair_mesh = trimesh.Trimesh(hair_verts, hair.faces, process=False)
    return HeadResult(
        head=head,
        hair=hair_mesh,
        texture=texture,
        skin_rgb=skin,
        hair_rgb=hair_rgb or skin,
        hair_style=style,
        nose_relief=nose_relief * scale,
        chin_y=(chin_y - centre_y) * scale,
    )
