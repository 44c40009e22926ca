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
from dataclasses import field as dataclass_field
from functools import cache

import cv2
import numpy as np
import trimesh
from PIL import Image
from scipy.spatial import Delaunay

from pipeline.face_regions import face_oval_ring, feature_groups
from pipeline.face_features import FaceFeatures, find_face_features, raised_at
from pipeline.face_texture import clean_face
from pipeline.hair import clear_the_face, fill_hidden_side, frontal_coverage, hair_shape, hair_volume, segment_hair
from pipeline.landmarks import CHIN, FOREHEAD_TOP, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER, FaceAnalysis
from pipeline.timing import timed
from pipeline.sculpt import (
    HALF_FACE_MM,
    NOSTRILS,
    PRINTABLE_BALL_MM,
    PRINTABLE_GRID_MM,
    PRINTABLE_ROUNDING_MM,
    SCULPTED,
    caricature_depth,
    face_carving,
    feature_relief,
    mm,
    printable_surface,
)

# Head ellipsoid semi-axes in units of half the face width: a big round chibi cranium.
HEAD_A, HEAD_B, HEAD_C = 1.32, 1.58, 1.55
RELIEF_GAIN = 1.0  # the sculpt module does the exaggeration (pipeline.sculpt)
BLEND_BAND = 0.22  # width of the seam between face surface and skull
SKULL_FIT_BAND = 0.6  # how far round the head the skull bends to meet the face edge
JAW_MARGIN = 1.04  # the jaw sits just outside the face outline
EAR_THICKNESS = 0.11  # half thickness, frontal units: ~2.7 mm thick at 100 mm
EYES = SCULPTED  # measured against GROOVES with dlib: see docs in pipeline/sculpt.py
INK_GROOVES = True  # carve the cartoon's ink and the photo's shading into the face
SHADE_FROM_PHOTO = True  # shading relief from the photo (else from the cartoon)
STRAND_DISTANCE = 22.0  # 8-bit LAB distance to the hair colour for a strand across the face
BROW_TOPS = [105, 334]  # MediaPipe: the top of each brow, halfway along
RIM_PIN_WEIGHT = 0.6  # face vertices blended more than this keep their sculpted depth
RIM_SMOOTHING = 6
DEPTH_GRID = 160  # samples across the face for the smoothed depth
DEPTH_SMOOTHING = 0.03  # Gaussian sigma of that smoothing, frontal units (~0.4 mm)
TEXTURE_WIDTH = 512
SPHERE_RINGS, SPHERE_SEGMENTS = 64, 96
# Rings are spaced as theta = pi * s**RING_WARP: over half of them cover the face, where the
# sculpted lids, lips and grooves need ~0.4 mm spacing at 100 mm; the back of the skull is smooth.
RING_WARP = 1.6
HAIR_RINGS, HAIR_SEGMENTS = 40, 80

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
    ears: trimesh.Trimesh | None = None  # closed, skin-coloured; unioned into the print
    mm_per_unit: float = 0.0  # millimetres per head unit at the default 100 mm height
    notes: list[str] = dataclass_field(default_factory=list)  # what was not found, for the report
    landmarks: np.ndarray | None = None  # (478, 3) frontalized landmarks in head units
    timings_ms: dict[str, float] = dataclass_field(default_factory=dict)
    face_features: list[str] = dataclass_field(default_factory=list)  # "glasses", "beard", "moustache"
    beard_rgb: RGB | None = None  # the beard's colour, for colour prints


@cache
def _front_pole_sphere(rings: int, segments: int, warp: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere whose pole points forward (+z): its rings are densest over the face."""
    theta = np.pi * np.linspace(0.0, 1.0, rings + 1)[1:-1] ** warp
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


def _distance_to_polygon(points: np.ndarray, polygon: np.ndarray, samples_per_edge: int = 8) -> np.ndarray:
    """Distance from each point to a closed polygon's outline (to within a small fraction of
    an edge: the outline is sampled densely and searched with a k-d tree)."""
    from scipy.spatial import cKDTree

    t = np.linspace(0.0, 1.0, samples_per_edge, endpoint=False)[None, :, None]
    outline = (polygon[:, None] + t * (np.roll(polygon, -1, axis=0) - polygon)[:, None]).reshape(-1, 2)
    return cKDTree(outline).query(points)[0]


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
        from matplotlib.tri import Triangulation

        # matplotlib's trapezoid-map search: scipy's walk sometimes falls back to brute
        # force on these slivers (measured at 80-600 ms for one call, 2 ms otherwise).
        points = frontal[mesh, :2]
        self._finder = Triangulation(points[:, 0], points[:, 1], self._tri.simplices).get_trifinder()
        self._depth_values = frontal[mesh, 2]
        self._image_values = image_xy[mesh]
        design = np.column_stack([frontal[mesh, :2], np.ones(MESH_POINTS)])
        self._affine, *_ = np.linalg.lstsq(design, image_xy[mesh], rcond=None)
        self._extent = (points.min(axis=0) - 0.05, points.max(axis=0) + 0.05)
        self._smooth: np.ndarray | None = None  # the blurred depth grid, made on first use

    def _interpolate(self, xy: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Barycentric interpolation over the landmark triangulation; NaN outside it.
        (Done by hand: scipy's LinearNDInterpolator is far slower on its first calls.)"""
        simplex = np.asarray(self._finder(xy[:, 0], xy[:, 1]))
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

    def smooth_depth(self, xy: np.ndarray) -> np.ndarray:
        """Depth with the triangulation's facets blurred away (NaN outside the landmarks).

        A fine mesh reproduces every crease of the piecewise-linear landmark surface; in
        grey those creases read as wrinkles and cost likeness. So the depth is rasterised
        once on a grid over the face, blurred (normalised, so the face edge is not pulled in)
        and sampled.
        """
        if self._smooth is None:
            lo, hi = self._extent
            n = DEPTH_GRID
            gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
            grid = self.depth(np.column_stack([gx.ravel(), gy.ravel()])).reshape(n, n)
            known = np.isfinite(grid).astype(np.float32)
            px = DEPTH_SMOOTHING / float(max(hi - lo)) * (n - 1)
            num = cv2.GaussianBlur(np.nan_to_num(grid).astype(np.float32), (0, 0), px)
            den = cv2.GaussianBlur(known, (0, 0), px)
            self._smooth = np.where(known > 0, num / np.maximum(den, 1e-6), np.nan).astype(np.float32)
        lo, hi = self._extent
        n = DEPTH_GRID
        u = ((xy[:, 0] - lo[0]) / (hi[0] - lo[0]) * (n - 1)).astype(np.float32)
        v = ((xy[:, 1] - lo[1]) / (hi[1] - lo[1]) * (n - 1)).astype(np.float32)
        return cv2.remap(self._smooth, u[None], v[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)[0]

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


@dataclass
class _FrontalWarp:
    """Pixel maps from the frontal texture to the photo, and the frame they span."""

    map_x: np.ndarray
    map_y: np.ndarray
    bounds: tuple[float, float, float, float]  # x0, x1, y0, y1 in frontal units

    @classmethod
    def build(cls, field: _FaceField, centre_y: float) -> "_FrontalWarp":
        width = TEXTURE_WIDTH
        height = int(round(width * HEAD_B / HEAD_A))
        x0, x1, y0, y1 = -HEAD_A, HEAD_A, centre_y - HEAD_B, centre_y + HEAD_B
        grid = 64  # the warp is smooth: a coarse grid, upsampled, is enough
        gx, gy = np.meshgrid(np.linspace(x0, x1, grid), np.linspace(y1, y0, grid))
        coarse = field.image_position(np.column_stack([gx.ravel(), gy.ravel()]))
        map_x = cv2.resize(coarse[:, 0].reshape(grid, grid).astype(np.float32), (width, height))
        map_y = cv2.resize(coarse[:, 1].reshape(grid, grid).astype(np.float32), (width, height))
        return cls(map_x, map_y, (x0, x1, y0, y1))

    def scaled(self, factor: float) -> "_FrontalWarp":
        """The same warp on a texture ``factor`` times the size."""
        h, w = self.map_x.shape
        size = (max(8, int(round(w * factor))), max(8, int(round(h * factor))))
        return _FrontalWarp(cv2.resize(self.map_x, size), cv2.resize(self.map_y, size), self.bounds)

    def warp(self, image: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
        return cv2.remap(image, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=border)

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        x0, x1, y0, y1 = self.bounds
        h, w = self.map_x.shape
        return np.column_stack([(xy[:, 0] - x0) / (x1 - x0) * (w - 1), (y1 - xy[:, 1]) / (y1 - y0) * (h - 1)])


def _occluders(
    frontal_photo: np.ndarray,
    warp: _FrontalWarp,
    face: FaceAnalysis,
    frontal: np.ndarray,
    hair_rgb: RGB | None,
) -> np.ndarray:
    """Frontal-frame mask of what covers the face: not the person (objects, background), or
    hair-coloured strands across the forehead and cheeks (never the eyes, brows, nose, lips,
    nor the mouth and chin, where a beard is the person's own)."""
    h_img, w_img = face.person_mask.shape[:2]
    sx, sy = w_img / face.image_size[0], h_img / face.image_size[1]
    person = cv2.remap(face.person_mask, warp.map_x * sx, warp.map_y * sy, cv2.INTER_LINEAR)
    occluded = person < 0.5
    if hair_rgb is not None:
        lab = cv2.cvtColor(frontal_photo, cv2.COLOR_RGB2LAB).astype(np.float32)
        hair_lab = cv2.cvtColor(np.uint8([[hair_rgb]]), cv2.COLOR_RGB2LAB).astype(np.float32)[0, 0]
        strands = np.linalg.norm(lab - hair_lab, axis=-1) < STRAND_DISTANCE
        keep = np.zeros(strands.shape, np.uint8)
        for name, idx in feature_groups().items():
            hull = cv2.convexHull(warp.to_px(frontal[idx, :2]).astype(np.int32))
            cv2.fillConvexPoly(keep, hull, 1)
        keep = cv2.dilate(keep, np.ones((15, 15), np.uint8))
        below_nose = warp.to_px(frontal[[NOSE_TIP], :2])[0, 1]
        keep[int(below_nose) :, :] = 1  # moustache, beard, lips: the person's own
        occluded |= strands & (keep == 0)
    return occluded


def _frontal_texture(
    image: np.ndarray, warp: _FrontalWarp, oval_xy: np.ndarray, yaw_deg: float, occluded: np.ndarray
) -> tuple[np.ndarray, RGB]:
    """``image`` in the frontal frame, its hidden side and occluders filled from the mirrored
    half (pipeline.face_texture), skin outside the face oval."""
    warped, unknown = clean_face(warp.warp(image), warp.bounds[:2], yaw_deg, occluded)
    height, width = warped.shape[:2]
    oval_px = warp.to_px(oval_xy).astype(np.int32)
    inner = np.zeros((height, width), np.uint8)
    cv2.fillPoly(inner, [oval_px], 255)
    inner = cv2.erode(inner, np.ones((11, 11), np.uint8))  # keep background off the cheeks
    lum = warped.mean(axis=2)
    skin = _median_rgb(warped[(inner > 0) & (lum > 70) & ~unknown][::4], (230, 190, 160))
    inner[unknown] = 0
    alpha = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), 3.0)
    plain = np.empty_like(warped)
    plain[:] = skin
    texture = cv2.blendLinear(warped, plain, alpha, 1.0 - alpha)
    return texture, skin


def _cartoon_hair(rgb: RGB) -> RGB:
    """Slightly richer hair: a photo's median hair colour looks washed out in plastic.
    Mild, so fair stays fair and grey stays grey."""
    hsv = cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.12, 0, 255)
    hsv[..., 2] = hsv[..., 2] * 0.95
    r, g, b = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return (int(r), int(g), int(b))


def _as_jpeg(texture: np.ndarray) -> Image.Image:
    """A JPEG-backed image: the GLB exporter then embeds it as JPEG, far faster than PNG."""
    buf = io.BytesIO()
    Image.fromarray(texture).save(buf, format="JPEG", quality=90)
    buf.seek(0)
    return Image.open(buf)


def _oval_half_width(oval_xy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Half the face outline's width at heights ``y`` (clamped to the outline's extent)."""
    half = np.zeros(len(y))
    for side in (oval_xy[:, 0] < 0, oval_xy[:, 0] >= 0):
        chain = oval_xy[side]
        order = np.argsort(chain[:, 1])
        half += np.abs(np.interp(y, chain[order, 1], chain[order, 0])) / 2
    return half


def _shape_jaw(verts: np.ndarray, oval_xy: np.ndarray, centre_y: float, eye_y: float, mouth_y: float) -> None:
    """Narrow the skull below the eyes to the person's own cheeks, jaw and chin (in place):
    the head is then a head, not an egg with a face on it."""
    y = verts[:, 1]
    band = _smoothstep((eye_y - y) / max(eye_y - mouth_y, 1e-3))
    ellipse = HEAD_A * np.sqrt(np.clip(1.0 - ((y - centre_y) / HEAD_B) ** 2, 1e-4, None))
    target = np.minimum(JAW_MARGIN * _oval_half_width(oval_xy, y) + 0.04, ellipse)
    verts[:, 0] *= 1.0 + band * (target / ellipse - 1.0)
    # A jaw is shallower front to back than a cranium: pull the back of the lower head in.
    back = verts[:, 2] < 0
    verts[back, 2] *= 1.0 - 0.18 * band[back]


def _skull_meets_face(
    points: np.ndarray, centre_z: float, oval_xy: np.ndarray, field: _FaceField
) -> np.ndarray:
    """Skull depth at the front ``points``, moved so it runs into the face outline.

    Where the face edge stands in front of (or behind) the skull, the difference is carried
    outwards and faded over SKULL_FIT_BAND: cheeks, jaw and temples become one surface with
    the face instead of a mask's rim standing on an egg.
    """
    from matplotlib.path import Path as PolygonPath

    centroid = oval_xy.mean(axis=0)
    rim = centroid + (oval_xy - centroid) * 0.97  # just inside, where the depth is defined
    rim_depth = field.smooth_depth(rim)
    rim_depth = np.where(np.isfinite(rim_depth), rim_depth, field.depth(rim))
    skull_z = points[:, 2].copy()
    # The skull's depth at each rim point, from the nearest front vertex.
    from scipy.spatial import cKDTree

    nearest = cKDTree(points[:, :2]).query(rim)[1]
    residual = np.nan_to_num(rim_depth - skull_z[nearest])
    residual = np.convolve(np.concatenate([residual[-2:], residual, residual[:2]]), np.ones(5) / 5, "valid")
    # Residual at each point: from its nearest rim point, faded with distance outside.
    dist, idx = cKDTree(rim).query(points[:, :2])
    outside = ~PolygonPath(oval_xy).contains_points(points[:, :2])
    fade = np.where(outside, _smoothstep(1.0 - dist / SKULL_FIT_BAND), 1.0)
    # Nothing moves behind the skull's widest section.
    fade *= _smoothstep((points[:, 2] - centre_z) / 0.35)
    return skull_z + residual[idx] * fade


def _soften_rim(verts: np.ndarray, faces: np.ndarray, pinned: np.ndarray) -> None:
    """Taubin-smooth everything but the face's interior (in place): the rim where face and
    skull meet, and the chin's lower edge, would otherwise keep a sharp lip whose thin edge
    a printer cannot hold."""
    mesh = trimesh.Trimesh(verts, faces, process=False)
    operator = trimesh.smoothing.laplacian_calculation(mesh, equal_weight=True, pinned_vertices=pinned.tolist())
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=RIM_SMOOTHING, laplacian_operator=operator)
    verts[:] = mesh.vertices


def _ear_meshes(verts: np.ndarray, frontal: np.ndarray, centre_z: float) -> trimesh.Trimesh:
    """Two ears: flattened, tilted ellipsoids on the sides of the skull at eye-to-nose height."""
    ears = []
    top = frontal[[RIGHT_EYE_OUTER, LEFT_EYE_OUTER], 1].mean() + 0.08
    bottom = frontal[[NOSTRILS[0], NOSTRILS[1]], 1].mean() - 0.02
    ear_y = (top + bottom) / 2
    half_height = max(0.18, (top - bottom) / 2)
    ear_z = centre_z - 0.25
    near = (np.abs(verts[:, 1] - ear_y) < 0.08) & (np.abs(verts[:, 2] - ear_z) < 0.15)
    for sign in (-1.0, 1.0):
        side = near & (np.sign(verts[:, 0]) == sign)
        skull_x = float(np.abs(verts[side, 0]).max()) if side.any() else HEAD_A * 0.9
        ear = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        ear.apply_scale([EAR_THICKNESS, half_height, 0.62 * half_height])
        # Tilted back and flared away from the head, as ears are.
        ear.apply_transform(trimesh.transformations.rotation_matrix(np.radians(-12), [1, 0, 0]))
        ear.apply_transform(trimesh.transformations.rotation_matrix(np.radians(sign * 28), [0, 1, 0]))
        ear.apply_translation([sign * (skull_x - 0.02), ear_y, ear_z])
        ears.append(ear)
    return trimesh.util.concatenate(ears)



def _printable_face_depth(
    xy: np.ndarray,
    oval_xy: np.ndarray,
    field: "_FaceField",
    frontal: np.ndarray,
    small_texture: np.ndarray,
    bounds: tuple[float, float, float, float],
    skin: RGB,
    shade: np.ndarray | None,
    features: FaceFeatures,
) -> np.ndarray:
    """The sculpted face's depth at frontal points ``xy`` (inside the outline): landmark
    surface, sculpted features, carved ink and shading, raised glasses and beard.

    It is built on a grid over the face and opened with a rolling ball (see
    :func:`pipeline.sculpt.printable_surface`), so nothing narrower than a printable wall
    stands proud, then sampled at ``xy``."""
    from matplotlib.path import Path as PolygonPath

    pixel = mm(PRINTABLE_GRID_MM)
    lo, hi = oval_xy.min(axis=0) - 2 * pixel, oval_xy.max(axis=0) + 2 * pixel
    nx, ny = int(np.ceil((hi[0] - lo[0]) / pixel)) + 1, int(np.ceil((hi[1] - lo[1]) / pixel)) + 1
    gx, gy = np.meshgrid(lo[0] + pixel * np.arange(nx), lo[1] + pixel * np.arange(ny))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    outline = PolygonPath(oval_xy)
    inside = outline.contains_points(grid)
    g = grid[inside]
    # The blend weight and the sculpted features are smooth: evaluated on every other grid
    # point and interpolated (they are most of the sculpt's time on the full grid).
    coarse = grid.reshape(ny, nx, 2)[::2, ::2].reshape(-1, 2)
    coarse_shape = ((ny + 1) // 2, (nx + 1) // 2)
    near = cv2.dilate(inside.reshape(ny, nx)[::2, ::2].astype(np.uint8), np.ones((3, 3), np.uint8)).ravel() > 0
    coarse_weight = np.zeros(len(coarse))
    coarse_relief = np.zeros(len(coarse))
    coarse_weight[near] = outline.contains_points(coarse[near]) * _smoothstep(
        _distance_to_polygon(coarse[near], oval_xy) / BLEND_BAND
    )
    coarse_relief[near] = feature_relief(coarse[near], frontal, EYES)
    rows, cols = np.nonzero(inside.reshape(ny, nx))
    at = (cols.astype(np.float32)[None] / 2, rows.astype(np.float32)[None] / 2)
    weight = cv2.remap(coarse_weight.reshape(coarse_shape).astype(np.float32), *at, cv2.INTER_LINEAR)[0]
    relief = cv2.remap(coarse_relief.reshape(coarse_shape).astype(np.float32), *at, cv2.INTER_LINEAR)[0].astype(np.float64)
    smooth = field.smooth_depth(g)
    if INK_GROOVES:
        # Not at the face's edge: the cartoon's outline there is the silhouette, not a line,
        # and a groove just inside the outline (the shadow under a chin) would leave a thin
        # lip where the face blends into the skull. (Inside a beard the carving stays:
        # measured, its texture helps the likeness.)
        relief -= weight * weight * face_carving(small_texture, bounds, skin, g, shade)
    # A beard reaches the jaw line: fade it only in the outer part of the seam.
    relief += np.sqrt(weight) * raised_at(features, bounds, g)
    smooth = np.where(np.isnan(smooth), 0.0, smooth)
    # Outside the outline each grid point takes its nearest face value: a feature that runs
    # out to the outline (a beard to the jaw) is opened there too, not left free.
    from scipy.ndimage import distance_transform_edt

    total = np.zeros(len(grid), np.float64)
    total[inside] = smooth + relief
    nearest = distance_transform_edt(~inside.reshape(ny, nx), return_distances=False, return_indices=True)
    total = total.reshape(ny, nx)[nearest[0], nearest[1]]
    opened = printable_surface(total, pixel, mm(PRINTABLE_BALL_MM)).ravel()
    relief_grid = np.zeros(len(grid), np.float32)
    relief_grid[inside] = opened[inside] - smooth
    # Rounded a little further: the head mesh samples the face every ~0.4 mm, and a steep
    # groove wall running across its triangles would come out as a row of thin teeth.
    relief_grid = cv2.GaussianBlur(relief_grid.reshape(ny, nx), (0, 0), mm(PRINTABLE_ROUNDING_MM) / pixel).ravel()
    u = ((xy[:, 0] - lo[0]) / pixel).astype(np.float32)
    v = ((xy[:, 1] - lo[1]) / pixel).astype(np.float32)
    relief_at = cv2.remap(relief_grid.reshape(ny, nx), u[None], v[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[0]
    return field.smooth_depth(xy) + relief_at


def build_head(face: FaceAnalysis, stylized: np.ndarray, photo: np.ndarray) -> HeadResult:
    """Closed textured head, ears and hair shell for ``face``, textured from ``stylized``."""
    timings: dict[str, float] = {}
    # 1. the face in its own frame, and a chibi skull narrowed to its jaw
    with timed(timings, "skull"):
        frontal = frontalize(face)
        oval = face_oval_ring()
        oval_xy = frontal[oval, :2]
        # The sculpted depth: the face's relief amplified like a caricature.
        sculpted = frontal.copy()
        sculpted[:, 2] = caricature_depth(frontal)
        field = _FaceField(sculpted, face.landmarks_px[:, :2].astype(np.float64), oval_xy)

        chin_y = float(frontal[CHIN, 1])
        centre_y = chin_y + 0.8 * HEAD_B

        unit, faces = _front_pole_sphere(SPHERE_RINGS, SPHERE_SEGMENTS, RING_WARP)
        verts = unit * np.array([HEAD_A, HEAD_B, HEAD_C])
        verts[:, 1] += centre_y
        # Sit the skull so that its front meets the face outline.
        rim = 1.0 - (oval_xy[:, 0] / HEAD_A) ** 2 - ((oval_xy[:, 1] - centre_y) / HEAD_B) ** 2
        centre_z = float(np.mean(sculpted[oval, 2] - HEAD_C * np.sqrt(np.clip(rim, 0.0, None))))
        eye_y = float(frontal[[RIGHT_EYE_OUTER, LEFT_EYE_OUTER], 1].mean())
        mouth_y = float(frontal[[61, 291], 1].mean())
        _shape_jaw(verts, oval_xy, centre_y, eye_y, mouth_y)
        verts[:, 2] += centre_z

    # 2. hair segmentation, and the clean face texture (hidden side, occluders mirrored)
    with timed(timings, "hair_segmentation"):
        segmentation = segment_hair(photo, face)
    with timed(timings, "texture"):
        warp = _FrontalWarp.build(field, centre_y)
        # The photo in the frontal frame feeds masks and relief, not the texture: half size.
        coarse = warp.scaled(0.5)
        frontal_photo = coarse.warp(photo)
        occluded_coarse = _occluders(frontal_photo, coarse, face, frontal, segmentation.rgb)
        occluded = cv2.resize(occluded_coarse.astype(np.uint8), warp.map_x.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
        texture, skin = _frontal_texture(stylized, warp, oval_xy, face.pose.yaw, occluded)

    # 3. the face: landmark surface, sculpted features, carved ink and shading, soft rim
    with timed(timings, "sculpt"):
        front = unit[:, 2] > 0.0
        xy = verts[front, :2]
        from matplotlib.path import Path as PolygonPath

        inside = PolygonPath(oval_xy).contains_points(xy)
        weight = np.zeros(len(xy))
        weight[inside] = _smoothstep(_distance_to_polygon(xy[inside], oval_xy) / BLEND_BAND)
        skull_z = _skull_meets_face(verts[front], centre_z, oval_xy, field)
        verts[front, 2] = skull_z
        depth = skull_z.copy()
        small_texture = cv2.resize(texture, coarse.map_x.shape[::-1], interpolation=cv2.INTER_AREA)
        shade = None
        if INK_GROOVES and SHADE_FROM_PHOTO:
            grey = cv2.cvtColor(frontal_photo, cv2.COLOR_RGB2GRAY)
            shade = clean_face(grey, warp.bounds[:2], face.pose.yaw, occluded_coarse)[0]
        features = find_face_features(frontal_photo, small_texture, warp.bounds, frontal, skin)
        depth[inside] = _printable_face_depth(
            xy[inside], oval_xy, field, frontal, small_texture, warp.bounds, skin, shade, features
        )
        depth = np.where(np.isnan(depth), skull_z, depth)
        face_z = skull_z + RELIEF_GAIN * (depth - skull_z)
        # Never carve the face behind the skull's own back half.
        verts[front, 2] = np.maximum((1 - weight) * skull_z + weight * face_z, centre_z)
        _soften_rim(verts, faces, np.flatnonzero(front)[weight > RIM_PIN_WEIGHT])

        uv = _head_uv(verts, unit, warp.bounds)
        ears = _ear_meshes(verts, frontal, centre_z)

    # 4. the hair volume, grown from the segmentation
    with timed(timings, "hair_volume"):
        hair, style = _hair_from_segmentation(segmentation, field, frontal, chin_y, centre_y, centre_z, eye_y, face)
        hair_rgb = _cartoon_hair(segmentation.rgb) if segmentation.rgb is not None else None
    nose_relief = _nose_relief(sculpted[NOSE_TIP], centre_y, centre_z)

    # Head units: skull centre at the origin, skull height 1.
    shift = np.array([0.0, centre_y, centre_z])
    scale = 1.0 / (2 * HEAD_B)
    head_verts = (verts - shift) * scale
    hair_verts = (np.asarray(hair.vertices) - shift) * scale
    ear_verts = (np.asarray(ears.vertices) - shift) * scale

    head = _textured_mesh(head_verts, faces, uv, texture)
    return HeadResult(
        head=head,
        hair=trimesh.Trimesh(hair_verts, hair.faces, process=False),
        texture=texture,
        skin_rgb=skin,
        hair_rgb=hair_rgb or skin,
        hair_style=style,
        nose_relief=nose_relief * scale,
        chin_y=(chin_y - centre_y) * scale,
        ears=trimesh.Trimesh(ear_verts, ears.faces, process=False),
        mm_per_unit=HALF_FACE_MM / scale,
        notes=segmentation.notes,
        landmarks=(sculpted - shift) * scale,
        timings_ms=timings,
        face_features=features.names(),
        beard_rgb=features.beard_rgb,
    )


def _head_uv(verts: np.ndarray, unit: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """Texture coordinates: the front by its frontal x, y; the back half maps radially onto
    the skin border of the texture, so no triangle between front and back smears the face
    across the side of the head."""
    x0, x1, y0, y1 = bounds
    uv = np.column_stack([(verts[:, 0] - x0) / (x1 - x0), (verts[:, 1] - y0) / (y1 - y0)])
    back = unit[:, 2] <= 0.0
    radial = unit[back, :2] / np.maximum(np.linalg.norm(unit[back, :2], axis=1, keepdims=True), 1e-9)
    uv[back] = 0.5 + 0.49 * radial
    return np.clip(uv, 0.0, 1.0)


def _hair_from_segmentation(segmentation, field, frontal, chin_y, centre_y, centre_z, eye_y, face):
    """The hair shell grown from the photo's hair mask (its turned-away side filled from the
    seen one, round the face), and its style."""
    forehead_y = float(frontal[FOREHEAD_TOP, 1])
    coverage, grid_x0, grid_top = frontal_coverage(
        segmentation.mask, field.image_position, chin_y, centre_y + 1.6 * HEAD_B, forehead_y
    )
    outline = frontal[face_oval_ring(), :2]
    coverage = fill_hidden_side(coverage, grid_x0, grid_top, chin_y, face.pose.yaw, outline)
    coverage = clear_the_face(coverage, grid_x0, grid_top, outline, float(frontal[BROW_TOPS, 1].mean()))
    shape = hair_shape(coverage, grid_x0, grid_top, chin_y, forehead_y)
    style = shape.style if segmentation.rgb is not None else "bald"
    hair_unit, hair_faces = _front_pole_sphere(HAIR_RINGS, HAIR_SEGMENTS, 1.3)
    hair = hair_volume(
        shape,
        hair_unit,
        hair_faces,
        np.array([HEAD_A, HEAD_B, HEAD_C]),
        np.array([0.0, centre_y, centre_z]),
        chin_y,
        eye_y + 0.12,  # the ears' top
    )
    return hair, style


def _nose_relief(nose: np.ndarray, centre_y: float, centre_z: float) -> float:
    """How far the nose tip stands out of the skull (frontal units)."""
    nose_rim = 1.0 - (nose[0] / HEAD_A) ** 2 - ((nose[1] - centre_y) / HEAD_B) ** 2
    skull_at_nose = centre_z + HEAD_C * np.sqrt(max(nose_rim, 0.0))
    return float(centre_z + RELIEF_GAIN * (nose[2] - centre_z) - skull_at_nose)


def _textured_mesh(verts: np.ndarray, faces: np.ndarray, uv: np.ndarray, texture: np.ndarray) -> trimesh.Trimesh:
    material = trimesh.visual.material.PBRMaterial(
        name="face",
        baseColorTexture=_as_jpeg(texture),
        metallicFactor=0.0,
        roughnessFactor=0.8,
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(verts, faces, visual=visual, process=False)
