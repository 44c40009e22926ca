"""Colour separation for multi-material printing: the fused solid with one of N filament
colours on every triangle.

Steps: (1) union the parts with Manifold, carrying each vertex's texture UV and part index as
extra vertex properties, so every triangle of the solid knows where its colour comes from;
(2) choose N filament colours in CIELAB: the colours a likeness needs first (skin, the
face's dark features, hair, outfit, the skin's shadow), then area-weighted k-means (or take
the user's colours); (3) quantise the head texture to the face's own filaments, lightness
first, dropping colour lines thinner than the nozzle, and subdivide
the triangles that straddle a colour edge, keeping the mesh watertight; (4) merge colour
islands too small to print into their neighbour.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import cv2
import manifold3d
import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.body import FigurinePart
from pipeline.errors import OptionError
from pipeline.timing import timed

DEFAULT_COLORS = 4
MIN_COLORS, MAX_COLORS = 1, 8
REFINE_LEVELS = 2  # each level halves the edges on a colour edge; 2 reach ~the 0.4 mm nozzle
MIN_ISLAND_MM = 0.5  # smaller colour islands only cause pointless tool changes
MIN_FEATURE_MM = 0.4  # one nozzle width: thinner colour lines do not print
DARK_L = 30.0  # CIELAB lightness below which a texel is an eye, brow or ink line
MIN_DELTA_E = 12.0  # anchors closer than this would print as one colour anyway
SHADOW_DELTA_L = 10.0  # face texels this much darker than the skin (and not dark) are its shadow
# The face texture is matched to its filaments by a CIELAB distance with a and b at this
# weight: lightness leads, so shading keeps its place (a cheek's shadow prints in the darker
# filament, not in whichever is nearest in hue). Measured on the 10 likeness people at 4
# colours: median dlib distance 0.637 at 1.0, 0.621 at 0.5, 0.623 at 0.3.
FACE_TONE_AB_WEIGHT = 0.5
SKIN_LIKE_DELTA_E = 25.0  # a filament this near the skin reads as skin on a printed outfit
KMEANS_ITERATIONS = 12

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
# Property channels carried through the union: x, y, z, u, v, part index.
_U, _V, _PART = 3, 4, 5


@dataclass
class ColourPrint:
    """The solid (figure units, y up) with a filament colour per triangle."""

    mesh: trimesh.Trimesh  # watertight, refined where colours change
    labels: np.ndarray  # (triangles,) index into palette_rgb
    palette_rgb: np.ndarray  # (N, 3) uint8 sRGB filament colours
    timings_ms: dict[str, float] = field(default_factory=dict)

    def shares(self) -> np.ndarray:
        """Each colour's share of the surface area."""
        area = np.bincount(self.labels, self.mesh.area_faces, minlength=len(self.palette_rgb))
        return area / area.sum()

    def palette_hex(self) -> list[str]:
        return [rgb_to_hex(c) for c in self.palette_rgb]


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def parse_palette(colours: str | Sequence[str]) -> tuple[str, ...]:
    """User filament colours as normalised "#rrggbb"; ``colours`` is a list or "#hex,#hex"."""
    items = [c.strip() for c in colours.split(",")] if isinstance(colours, str) else [str(c).strip() for c in colours]
    items = [c for c in items if c]
    if not MIN_COLORS <= len(items) <= MAX_COLORS:
        raise OptionError(
            f"A palette needs {MIN_COLORS} to {MAX_COLORS} colours; got {len(items)}."
        )
    parsed = []
    for item in items:
        match = _HEX.match(item)
        if not match:
            raise OptionError(f"Palette colour {item!r} is not a hex colour like #d9a066.")
        parsed.append("#" + match.group(1).lower())
    return tuple(parsed)


def check_colors(colors: object) -> int:
    """The number of filament colours, checked to be a whole number in 1-8."""
    try:
        count = int(str(colors).strip())
    except ValueError:
        raise OptionError(f"Filament colours must be a whole number from 1 to 8; got {colors!r}.") from None
    if not MIN_COLORS <= count <= MAX_COLORS:
        raise OptionError(f"Filament colours must be from {MIN_COLORS} to {MAX_COLORS}; got {count}.")
    return count


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB uint8 to CIELAB (D65) float32, via OpenCV's exact float conversion."""
    flat = (np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0).astype(np.float32)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(*np.shape(rgb)[:-1], 3)


# ---------------------------------------------------------------- 1. coloured union


@dataclass
class ColouredSurface:
    """A closed mesh whose triangles know their source: per-corner texture UVs and the
    index of the part (in the parts list) each triangle comes from."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    corner_uv: np.ndarray  # (F, 3, 2) float32, only meaningful on textured parts
    part: np.ndarray  # (F,) int index into the parts list

    @cached_property
    def face_areas(self) -> np.ndarray:
        """Each triangle's area, computed once (the palette step asks twice)."""
        tri = self.vertices[self.faces]
        return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def _part_manifold(mesh: trimesh.Trimesh, index: int, uv: np.ndarray | None) -> manifold3d.Manifold:
    props = np.zeros((len(mesh.vertices), 6), np.float32)
    props[:, :3] = mesh.vertices
    if uv is not None:
        props[:, _U:_V + 1] = uv
    props[:, _PART] = index
    solid = manifold3d.Manifold(manifold3d.Mesh(vert_properties=props, tri_verts=np.asarray(mesh.faces, np.uint32)))
    if solid.status() != manifold3d.Error.NoError:
        raise ValueError(f"part {index} is not a closed manifold: {solid.status()}")
    return solid


# The untextured body parts are the same meshes for every photo of a template
# (``body.body_meshes`` is cached), so their union is kept, keyed on the meshes' identity;
# the entry holds the meshes, so an id is never reused while its key is stored.
_BODY_UNIONS: dict[tuple[int, ...], tuple[tuple[trimesh.Trimesh, ...], manifold3d.Manifold]] = {}
_MAX_BODY_UNIONS = 8  # a few templates; bounded in case a caller copies the body meshes
PER_PHOTO_PARTS = ("hair",)  # untextured parts built for each photo
STAND_PARTS = ("base",)


_BODY_UNIONS_LOCK = threading.Lock()


def _body_union(indexed: list[tuple[int, trimesh.Trimesh]]) -> manifold3d.Manifold:
    key = tuple(id(mesh) for _, mesh in indexed) + tuple(i for i, _ in indexed)
    with _BODY_UNIONS_LOCK:
        if key not in _BODY_UNIONS:
            if len(_BODY_UNIONS) >= _MAX_BODY_UNIONS:
                _BODY_UNIONS.pop(next(iter(_BODY_UNIONS)))
            solids = [_part_manifold(mesh, index, None) for index, mesh in indexed]
            union = manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add)
            _BODY_UNIONS[key] = (tuple(mesh for _, mesh in indexed), union)
        return _BODY_UNIONS[key][1]


def coloured_union(parts: Sequence[FigurinePart]) -> ColouredSurface:
    """The union of ``parts`` (the same solid as ``fusion.union_solid``), with the part and
    texture UV each triangle comes from. Manifold interpolates the extra vertex properties
    on every vertex it creates, so cut triangles keep their exact UVs."""
    # Body parts come from the template cache; the per-photo head and hair do not.
    body = [(i, p.mesh) for i, p in enumerate(parts) if not p.textured and p.name not in PER_PHOTO_PARTS]
    solids = [_body_union(body)] if body else []
    for index, part in enumerate(parts):
        if part.textured:
            solids.append(_part_manifold(part.mesh, index, np.asarray(part.mesh.visual.uv)))
        elif part.name in PER_PHOTO_PARTS:
            solids.append(_part_manifold(part.mesh, index, None))
    out = manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add).to_mesh()
    props = np.asarray(out.vert_properties)
    tris = np.asarray(out.tri_verts, np.int64)
    # Vertices split only by their properties are one point of the solid: merge them.
    merged = np.arange(len(props))
    merged[np.asarray(out.merge_from_vert, np.int64)] = np.asarray(out.merge_to_vert, np.int64)
    faces = merged[tris]
    used = np.zeros(len(props), bool)
    used[faces] = True
    return ColouredSurface(
        vertices=props[used, :3].astype(np.float64),
        faces=(np.cumsum(used) - 1)[faces],
        corner_uv=props[tris][:, :, _U:_V + 1],
        part=np.rint(props[tris[:, 0], _PART]).astype(np.int64),
    )


def start_coloured_union(
    parts: Sequence[FigurinePart], timings: dict[str, float], name: str = "union"
) -> "Future[ColouredSurface]":
    """:func:`coloured_union` on a thread of its own, its time stored as ``timings[name]``.
    Manifold releases the GIL while it works, so the union runs while the caller writes
    the other files (measured here: five unions beside a pure-Python loop took 635 ms in
    two threads, 905 ms one after the other). It adds no CPU to the request."""
    future: Future[ColouredSurface] = Future()

    def work() -> None:
        try:
            with timed(timings, name):
                surface = coloured_union(parts)
            future.set_result(surface)
        except BaseException as exc:  # handed to the caller, which raises it from result()
            future.set_exception(exc)

    threading.Thread(target=work, name="toonforge-colour-union", daemon=True).start()
    return future


# ---------------------------------------------------------------- 2. palette


def _texel_lookup(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest texel of ``image`` at ``uv`` (v up, as glTF UVs from head.py are)."""
    height, width = image.shape[:2]
    col = np.clip(np.rint(uv[..., 0] * (width - 1)), 0, width - 1).astype(np.int64)
    row = np.clip(np.rint((1.0 - uv[..., 1]) * (height - 1)), 0, height - 1).astype(np.int64)
    return image[row, col]


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(n, k) squared distances; summed per axis (numpy's reduce over a length-3 axis is slow)."""
    return sum((points[:, None, axis] - centres[None, :, axis]) ** 2 for axis in range(3))


def _weighted_kmeans(lab: np.ndarray, weight: np.ndarray, pinned: np.ndarray, k: int) -> np.ndarray:
    """``pinned`` centres plus ``k - len(pinned)`` more, by deterministic weighted k-means:
    each new seed where sqrt(weight) x squared distance to the centres so far is largest
    (a far colour covering some area, not one stray texel), then Lloyd iterations that move
    only the new centres."""
    centres = [c for c in pinned] or [lab[np.argmax(weight)]]
    while len(centres) < k:
        d2 = np.min(_squared_distances(lab, np.array(centres)), axis=1)
        centres.append(lab[np.argmax(np.sqrt(weight) * d2)])
    c = np.array(centres, np.float64)
    free = np.arange(len(c)) >= len(pinned)
    for _ in range(KMEANS_ITERATIONS if free.any() else 0):
        nearest = np.argmin(_squared_distances(lab, c), axis=1)
        mass = np.bincount(nearest, weight, minlength=len(c))
        moves = free & (mass > 0)
        for axis in range(3):
            total = np.bincount(nearest, weight * lab[:, axis], minlength=len(c))
            c[moves, axis] = total[moves] / mass[moves]
    return c


def _binned_colours(rgb: np.ndarray, weight: np.ndarray, bits: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Colours binned to ``bits`` per channel: each bin's weighted mean colour and weight.
    (One pass of bincount; ``np.unique`` over the rows sorts, 10x the time.)"""
    shift = 8 - bits
    packed = (
        (rgb[:, 0].astype(np.int64) >> shift) << (2 * bits)
        | (rgb[:, 1].astype(np.int64) >> shift) << bits
        | rgb[:, 2].astype(np.int64) >> shift
    )
    size = 1 << (3 * bits)
    total = np.bincount(packed, weight, minlength=size)
    filled = total > 0
    means = np.stack([np.bincount(packed, weight * rgb[:, c], minlength=size)[filled] for c in range(3)], 1)
    return np.clip(np.rint(means / total[filled, None]), 0, 255).astype(np.uint8), total[filled]


def _colour_samples(surface: ColouredSurface, parts: Sequence[FigurinePart], texture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sRGB colours of the visible surface and the area (figure units²) each covers."""
    area = surface.face_areas
    textured = np.array([p.textured for p in parts])[surface.part]
    part_rgb = np.array([p.rgb for p in parts], np.uint8)
    colours = [part_rgb[surface.part[~textured]]]
    weights = [area[~textured]]
    if textured.any():
        # Texels under the visible head triangles, each weighted by its share of their area:
        # the face detail (eyes, brows, mouth) is finer than the triangles.
        height, width = texture.shape[:2]
        uv = surface.corner_uv[textured]
        px = np.stack([uv[..., 0] * (width - 1), (1.0 - uv[..., 1]) * (height - 1)], -1)
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, list(np.rint(px).astype(np.int32)), 1)
        rows, cols = np.nonzero(mask)
        colours.append(texture[rows, cols])
        weights.append(np.full(len(rows), area[textured].sum() / max(len(rows), 1)))
    return _binned_colours(np.concatenate(colours), np.concatenate(weights))


@dataclass
class LikenessAnchors:
    """The colours a likeness needs, most important first, and those the face may print in."""

    colours: np.ndarray  # (n, 3) uint8 sRGB, in palette priority order
    face: np.ndarray  # (m, 3) uint8 sRGB: skin, dark features, hair and the skin's shadow


def choose_palette(rgb: np.ndarray, weight: np.ndarray, count: int, anchors_rgb: np.ndarray) -> np.ndarray:
    """``count`` filament colours (uint8 sRGB) for surface colours ``rgb`` covering ``weight``.

    ``anchors_rgb`` are the colours that carry the likeness, most important first (skin,
    eyes and brows, hair, outfit): area alone would spend the filaments on the large base
    and shoes and leave the eyes to a mid-tone. The first ``count`` anchors that differ
    visibly (Delta E > MIN_DELTA_E) are kept as they are; any further colours come from
    area-weighted k-means in CIELAB with those anchors pinned."""
    lab = srgb_to_lab(rgb).astype(np.float64)
    pinned: list[np.ndarray] = []
    for anchor in srgb_to_lab(np.asarray(anchors_rgb, np.uint8)).reshape(-1, 3).astype(np.float64):
        if len(pinned) < count and all(np.linalg.norm(anchor - p) > MIN_DELTA_E for p in pinned):
            pinned.append(anchor)
    centres = _weighted_kmeans(lab, weight, np.array(pinned).reshape(-1, 3), min(count, len(lab) + len(pinned)))
    return lab_to_srgb(centres)


def likeness_anchors(surface: ColouredSurface, parts: Sequence[FigurinePart], texture: np.ndarray) -> LikenessAnchors:
    """The colours a likeness needs, most important first: skin (the textured head's base
    colour), the face's dark features (mean of its near-black texels: eyes, brows, ink
    lines), hair, the outfit's main colour, the skin's shadow tone, then the outfit's other
    colours and the stand's (see :func:`_worst_first`).

    The shadow comes before a second outfit colour: a face in three tones (skin, shadow,
    features) is recognisable where skin and dark specks are not (at 4 colours, median dlib
    distance 0.649 -> 0.637 on the likeness set, 5 of the 10 gaining a shadow slot), and
    trousers printed in the shirt's colour cost the likeness nothing. It comes after the
    outfit's main colour so that skin, eyes, hair and outfit each keep a filament at N = 4."""
    likeness = [tuple(p.rgb) for p in parts if p.textured]
    texels = texture[::2, ::2].reshape(-1, 3)
    lightness = srgb_to_lab(texels)[:, 0]
    dark = lightness < DARK_L
    if dark.any():
        likeness.append(tuple(int(c) for c in np.rint(texels[dark].mean(axis=0))))
    likeness += [tuple(p.rgb) for p in parts if p.name in PER_PHOTO_PARTS]
    face = list(likeness)
    if likeness:
        skin_lightness = float(srgb_to_lab(np.array(likeness[:1], np.uint8))[0, 0])
        shade = (lightness >= DARK_L) & (lightness < skin_lightness - SHADOW_DELTA_L)
        if shade.any():
            face.append(tuple(int(c) for c in np.rint(texels[shade].mean(axis=0))))
    area = np.bincount(surface.part, surface.face_areas, minlength=len(parts))
    outfit: dict[tuple[int, ...], float] = {}
    stand: dict[tuple[int, ...], float] = {}
    for index, part in enumerate(parts):
        if part.textured or part.name in PER_PHOTO_PARTS:
            continue
        group = stand if part.name in STAND_PARTS else outfit
        group[tuple(part.rgb)] = group.get(tuple(part.rgb), 0.0) + float(area[index])
    ordered_outfit = _worst_first(outfit, likeness)
    ordered_stand = _worst_first({c: a for c, a in stand.items() if c not in outfit}, likeness + ordered_outfit)
    ordered = likeness + ordered_outfit[:1] + face[len(likeness):] + ordered_outfit[1:] + ordered_stand
    return LikenessAnchors(
        colours=np.array(ordered, np.uint8).reshape(-1, 3), face=np.array(face, np.uint8).reshape(-1, 3)
    )


def _worst_first(areas: dict[tuple[int, ...], float], chosen: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """``areas``' colours in the order a greedy palette wants them: next, the colour that
    would print worst without a filament of its own: its area x Delta E to the nearest
    colour chosen so far. (Area alone put a superhero's red cape before the blue suit and
    printed the suit black; squared Delta E put small blue jeans before a large green top.)"""
    colours = list(areas)
    if not colours:
        return []
    lab = srgb_to_lab(np.array(colours, np.uint8)).reshape(-1, 3).astype(np.float64)
    taken = srgb_to_lab(np.array(chosen, np.uint8)).reshape(-1, 3).astype(np.float64) if chosen else np.empty((0, 3))
    weight = np.array([areas[c] for c in colours])
    order: list[tuple[int, ...]] = []
    remaining = list(range(len(colours)))
    while remaining:
        if len(taken):
            nearest = np.sqrt(np.min(_squared_distances(lab[remaining], taken), axis=1))
        else:
            nearest = np.ones(len(remaining))
        best = remaining[int(np.argmax(weight[remaining] * nearest))]
        order.append(colours[best])
        taken = np.vstack([taken, lab[best]])
        remaining.remove(best)
    return order


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(np.asarray(lab, np.float32).reshape(-1, 1, 3), cv2.COLOR_LAB2RGB).reshape(-1, 3)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def nearest_colour(rgb: np.ndarray, palette_rgb: np.ndarray) -> np.ndarray:
    """Index of the palette colour nearest (in CIELAB) to each colour of ``rgb`` (..., 3)."""
    lab = srgb_to_lab(rgb).reshape(-1, 3)
    pal = srgb_to_lab(palette_rgb).reshape(-1, 3)
    return np.argmin(_squared_distances(lab, pal), axis=1).reshape(np.shape(rgb)[:-1])


def nearest_colour_lut(palette_rgb: np.ndarray, bits: int = 5, ab_weight: float = 1.0) -> np.ndarray:
    """Palette index nearest in CIELAB for every sRGB colour, binned to ``bits`` per channel:
    one small table, then any image quantises by lookup. ``ab_weight`` < 1 lets lightness
    lead over hue."""
    levels = 1 << bits
    centres = ((np.arange(levels) + 0.5) * (256 / levels)).astype(np.uint8)
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
    scale = np.array([1.0, ab_weight, ab_weight], np.float32)
    lab = srgb_to_lab(grid).reshape(-1, 3) * scale
    pal = srgb_to_lab(palette_rgb).reshape(-1, 3) * scale
    return np.argmin(_squared_distances(lab, pal), axis=1).astype(np.uint8).reshape(levels, levels, levels)


def label_image(
    texture: np.ndarray,
    palette_rgb: np.ndarray,
    min_feature_px: int = 1,
    allowed: np.ndarray | None = None,
    ab_weight: float = 1.0,
) -> np.ndarray:
    """The texture quantised to palette indices, without features narrower than
    ``min_feature_px`` texels (see :func:`drop_thin_features`). ``allowed``: the palette
    indices the texture may use (default all); ``ab_weight``: see :func:`nearest_colour_lut`."""
    allowed = np.arange(len(palette_rgb)) if allowed is None else np.asarray(allowed)
    lut = allowed.astype(np.uint8)[nearest_colour_lut(palette_rgb[allowed], ab_weight=ab_weight)]
    shift = 8 - 5
    labels = lut[texture[..., 0] >> shift, texture[..., 1] >> shift, texture[..., 2] >> shift]
    return drop_thin_features(labels, min_feature_px) if min_feature_px > 1 else labels


def drop_thin_features(labels: np.ndarray, width_px: int) -> np.ndarray:
    """Give every texel of a colour patch narrower than ``width_px`` the colour of the
    nearest wide patch. Anti-aliased edges between two colours otherwise quantise to a
    third (a brown rim between black eyes and skin), and a line thinner than the nozzle
    prints as nothing but tool changes."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width_px, width_px))
    kept = np.full(labels.shape, 255, np.uint8)
    for label in np.unique(labels):
        opened = cv2.morphologyEx((labels == label).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        kept[opened > 0] = label
    thin = kept == 255
    if not thin.any() or thin.all():
        return labels
    # For each thin texel, the label of the nearest kept texel.
    _, nearest = cv2.distanceTransformWithLabels(thin.astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    kept_index = np.zeros(int(nearest.max()) + 1, np.uint8)
    kept_index[nearest[~thin]] = kept[~thin]
    return np.where(thin, kept_index[nearest], kept)


def _feature_px(parts: Sequence[FigurinePart], texture: np.ndarray, mm_per_unit: float) -> int:
    """MIN_FEATURE_MM in texels: the texture spans the head's width (head.py's frontal UVs)."""
    widths = [p.mesh.extents[0] for p in parts if p.textured]
    if not widths:
        return 1
    texel_mm = widths[0] * mm_per_unit / texture.shape[1]
    return max(1, int(round(MIN_FEATURE_MM / texel_mm)) | 1)  # odd, so the kernel is centred


def _face_filaments(parts: Sequence[FigurinePart], anchors: LikenessAnchors, palette_rgb: np.ndarray) -> np.ndarray:
    """The palette indices the face texture may print in: all but the filaments chosen for
    the outfit and the stand (unless one is also a face colour), so a blue shirt never
    speckles the eyes, while extra k-means colours can still shade the face."""
    body = [p.rgb for p in parts if not p.textured and p.name not in PER_PHOTO_PARTS]
    taken = set(nearest_colour(np.array(body, np.uint8), palette_rgb).tolist()) if body else set()
    if len(anchors.face):
        taken -= set(nearest_colour(anchors.face, palette_rgb).tolist())
    allowed = np.array([i for i in range(len(palette_rgb)) if i not in taken])
    return allowed if len(allowed) else np.arange(len(palette_rgb))


def _part_filaments(part_rgb: np.ndarray, palette_rgb: np.ndarray, skin_rgb: np.ndarray) -> np.ndarray:
    """Each plain part's filament: the nearest one, except that a part whose own colour is
    not skin never prints in a skin-like filament. At 4 colours a superhero's red cape,
    emblem and boots were nearest the skin and printed as bare skin; now they take the
    nearest of the other filaments (the dark one, say), as a painter short of red would."""
    labels = nearest_colour(part_rgb, palette_rgb)
    if not len(skin_rgb):
        return labels
    pal = srgb_to_lab(palette_rgb).reshape(-1, 3)
    skin = srgb_to_lab(np.asarray(skin_rgb, np.uint8).reshape(1, 3)).reshape(1, 3)
    skin_like = _squared_distances(pal, skin)[:, 0] < SKIN_LIKE_DELTA_E**2
    others = np.flatnonzero(~skin_like)
    if not skin_like.any() or not len(others):
        return labels
    lab = srgb_to_lab(part_rgb).reshape(-1, 3)
    wrong = (_squared_distances(lab, skin)[:, 0] >= SKIN_LIKE_DELTA_E**2) & skin_like[labels]
    if wrong.any():
        labels[wrong] = others[np.argmin(_squared_distances(lab[wrong], pal[others]), axis=1)]
    return labels


# ---------------------------------------------------------------- 3. refinement


def _paired_sides(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each face side's undirected edge key, and the sides in key order. On a closed
    manifold every edge has exactly two sides, so the sorted sides come in pairs: one sort,
    where ``np.unique`` would need a second pass for its inverse."""
    vertex_count = int(faces.max()) + 1
    following = np.roll(faces, -1, axis=1)  # side i runs from corner i to corner i + 1
    keys = (np.minimum(faces, following) * vertex_count + np.maximum(faces, following)).ravel()
    order = np.argsort(keys)
    if not np.array_equal(keys[order[0::2]], keys[order[1::2]]):
        raise ValueError("mesh is not a closed manifold: an edge has other than two faces")
    return keys, order


def _edge_ids(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges and, for each face side (v0v1, v1v2, v2v0), its edge id."""
    keys, order = _paired_sides(faces)
    ids = np.empty(len(keys), np.int64)
    ids[order] = np.arange(len(keys)) // 2
    edge_keys = keys[order[0::2]]
    vertex_count = int(faces.max()) + 1
    return np.stack([edge_keys // vertex_count, edge_keys % vertex_count], 1), ids.reshape(-1, 3)


def _split(surface: ColouredSurface, marked: np.ndarray) -> ColouredSurface:
    """Halve every side of the ``marked`` triangles. Neighbours with split sides are cut to
    match (1, 2 or 3 split sides -> 2, 3 or 4 triangles), so no T-junction opens a crack.
    New vertices are edge midpoints on flat triangles: the solid's shape does not change."""
    faces = surface.faces
    edges, side_edge = _edge_ids(faces)
    split = np.zeros(len(edges), bool)
    split[side_edge[marked].ravel()] = True
    midpoint_index = np.full(len(edges), -1)
    midpoint_index[split] = len(surface.vertices) + np.arange(split.sum())
    vertices = np.vstack([surface.vertices, surface.vertices[edges[split]].mean(axis=1)])

    side_split = split[side_edge]  # (F, 3)
    count = side_split.sum(1)
    new_faces, new_uv, new_part = [faces[count == 0]], [surface.corner_uv[count == 0]], [surface.part[count == 0]]
    for n_split in (1, 2, 3):
        sel = np.nonzero(count == n_split)[0]
        if not len(sel):
            continue
        # Rotate each face so its split sides come first (1: side 0; 2: sides 0 and 1).
        pattern = side_split[sel]
        if n_split == 1:
            shift = np.argmax(pattern, axis=1)
        elif n_split == 2:
            shift = (np.argmin(pattern, axis=1) + 1) % 3
        else:
            shift = np.zeros(len(sel), np.int64)
        order = (shift[:, None] + np.arange(3)[None]) % 3
        f = np.take_along_axis(faces[sel], order, 1)
        uv = np.take_along_axis(surface.corner_uv[sel], order[:, :, None], 1)
        m = np.take_along_axis(midpoint_index[side_edge[sel]], order, 1)  # midpoint of side i
        muv = (uv + np.roll(uv, -1, axis=1)) / 2  # UV at the midpoint of side i
        v0, v1, v2 = f[:, 0], f[:, 1], f[:, 2]
        u0, u1, u2 = uv[:, 0], uv[:, 1], uv[:, 2]
        if n_split == 1:
            tris = [(v0, m[:, 0], v2), (m[:, 0], v1, v2)]
            uvs = [(u0, muv[:, 0], u2), (muv[:, 0], u1, u2)]
        elif n_split == 2:
            tris = [(m[:, 0], v1, m[:, 1]), (v0, m[:, 0], m[:, 1]), (v0, m[:, 1], v2)]
            uvs = [(muv[:, 0], u1, muv[:, 1]), (u0, muv[:, 0], muv[:, 1]), (u0, muv[:, 1], u2)]
        else:
            tris = [(v0, m[:, 0], m[:, 2]), (m[:, 0], v1, m[:, 1]), (m[:, 2], m[:, 1], v2), (m[:, 0], m[:, 1], m[:, 2])]
            uvs = [(u0, muv[:, 0], muv[:, 2]), (muv[:, 0], u1, muv[:, 1]), (muv[:, 2], muv[:, 1], u2), (muv[:, 0], muv[:, 1], muv[:, 2])]
        for t, u in zip(tris, uvs):
            new_faces.append(np.stack(t, 1))
            new_uv.append(np.stack(u, 1))
            new_part.append(surface.part[sel])
    return ColouredSurface(vertices, np.concatenate(new_faces), np.concatenate(new_uv), np.concatenate(new_part))


# Where a triangle is sampled to tell whether it straddles a colour edge: the corners,
# side midpoints and centre, as barycentric weights.
_PROBES = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]],
    np.float32,
)


def _straddles(surface: ColouredSurface, textured: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probes = _PROBES @ surface.corner_uv[textured]  # (F, 7, 2); matmul: 0.5 ms where einsum took 6
    seen = _texel_lookup(labels, probes)
    marked = np.zeros(len(surface.faces), bool)
    marked[np.nonzero(textured)[0]] = np.any(seen != seen[:, :1], axis=1)
    return marked


# ---------------------------------------------------------------- 4. small islands


def face_adjacency(faces: np.ndarray) -> np.ndarray:
    """(pairs, 2) faces sharing an edge, for a closed manifold (two faces per edge)."""
    _, order = _paired_sides(faces)
    return (order // 3).reshape(-1, 2)


def merge_small_islands(mesh: trimesh.Trimesh, labels: np.ndarray, min_size: float, rounds: int = 3) -> np.ndarray:
    """Relabel connected same-colour patches smaller than ``min_size`` across (the diameter
    of a disc of the patch's area, mesh units) with the colour they share most edges with."""
    labels = labels.copy()
    adjacency = face_adjacency(np.asarray(mesh.faces))
    min_area = np.pi / 4 * min_size**2
    triangles = mesh.vertices[mesh.faces]
    area = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
    for _ in range(rounds):
        same = labels[adjacency[:, 0]] == labels[adjacency[:, 1]]
        pairs = adjacency[same]
        n = len(labels)
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        n_comp, comp = connected_components(graph, directed=False)
        small = np.bincount(comp, area, minlength=n_comp) < min_area
        if not small.any():
            break
        # Border votes: for each small patch, how many edges it shares with each colour.
        border = adjacency[~same]
        votes = np.zeros((n_comp, labels.max() + 1))
        for a, b in ((0, 1), (1, 0)):
            ca = comp[border[:, a]]
            keep = small[ca]
            np.add.at(votes, (ca[keep], labels[border[keep, b]]), 1)
        has_neighbour = votes.sum(1) > 0
        target = np.argmax(votes, axis=1)
        change = small[comp] & has_neighbour[comp]
        if not change.any():
            break
        labels[change] = target[comp[change]]
    return labels


# ---------------------------------------------------------------- the whole step


def separate_colours(
    parts: Sequence[FigurinePart],
    texture: np.ndarray,
    colors: int = DEFAULT_COLORS,
    palette: Sequence[str] | None = None,
    mm_per_unit: float = 1.0,
    surface: ColouredSurface | None = None,
) -> ColourPrint:
    """The figurine's solid with one of ``colors`` filament colours per triangle, or the
    nearest of the user's ``palette`` colours. ``mm_per_unit`` sizes the island limit.
    ``surface``: ``coloured_union(parts)`` if the caller has it already (a fusion stage
    that unions with :func:`coloured_union` saves the second union, ~40 ms)."""
    timings: dict[str, float] = {}
    # Every other texel: 0.11 mm at 100 mm, still finer than the refined triangles' 0.3 mm,
    # and a quarter of the work for every texture step below.
    texture = np.ascontiguousarray(texture[::2, ::2])
    if surface is None:
        with timed(timings, "union"):
            surface = coloured_union(parts)
    textured_part = np.array([p.textured for p in parts])
    part_rgb = np.array([p.rgb for p in parts], np.uint8)
    with timed(timings, "palette"):
        feature_px = _feature_px(parts, texture, mm_per_unit)
        if palette:
            # The user's filaments: each texel in the nearest of them, as promised.
            palette_rgb = np.array([hex_to_rgb(c) for c in palette], np.uint8)
            labels_image = label_image(texture, palette_rgb, feature_px)
            part_label = nearest_colour(part_rgb, palette_rgb)
        else:
            rgb, weight = _colour_samples(surface, parts, texture)
            anchors = likeness_anchors(surface, parts, texture)
            palette_rgb = choose_palette(rgb, weight, colors, anchors.colours)
            labels_image = label_image(
                texture, palette_rgb, feature_px, _face_filaments(parts, anchors, palette_rgb), FACE_TONE_AB_WEIGHT
            )
            part_label = _part_filaments(part_rgb, palette_rgb, part_rgb[textured_part][:1])
    with timed(timings, "refine"):
        for _ in range(REFINE_LEVELS if len(palette_rgb) > 1 else 0):
            textured = textured_part[surface.part]
            marked = _straddles(surface, textured, labels_image)
            if not marked.any():
                break
            surface = _split(surface, marked)
        textured = textured_part[surface.part]
        labels = part_label[surface.part]
        centre_uv = surface.corner_uv[textured].mean(axis=1)
        labels[textured] = _texel_lookup(labels_image, centre_uv)
        mesh = trimesh.Trimesh(surface.vertices, surface.faces, process=False)
    with timed(timings, "islands"):
        if len(palette_rgb) > 1:
            labels = merge_small_islands(mesh, labels, MIN_ISLAND_MM / mm_per_unit)
    return ColourPrint(mesh=mesh, labels=labels.astype(np.int64), palette_rgb=palette_rgb, timings_ms=timings)
