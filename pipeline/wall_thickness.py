"""Wall thickness of a printable solid, measured on the mesh itself.

Points are sampled uniformly over the surface; from each one a ray is cast inward, along the
reversed face normal, and the distance to the first other surface it meets is the local wall
thickness there. A thin fin, an ear, a fringe or a parting ridge shows up as short rays. Uses
plain numpy (Möller–Trumbore), so neither Embree nor an R-tree is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

MIN_WALL_MM = 1.2  # the thinnest wall a hobby FDM printer reliably prints (issue 10)


@dataclass(frozen=True)
class WallThickness:
    """Local wall thickness at sampled surface points, in the mesh's units (mm for an STL)."""

    min: float  # inf when every ray went further than max_distance
    p1: float  # 1st percentile: the thin end without a single unlucky ray
    samples: int
    max_distance: float  # rays were followed this far; thicker walls read as inf
    missed: int  # rays that met no surface within max_distance
    thinnest_point: tuple[float, float, float]
    thicknesses: np.ndarray  # per sample; inf where nothing was met within max_distance

    def thinner_than(self, limit: float) -> int:
        """How many sampled points have a wall thinner than ``limit``."""
        return int(np.sum(self.thicknesses < limit))


def _candidate_pairs_near(
    triangles: np.ndarray, origins: np.ndarray, directions: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ray, triangle) pairs that may meet, for short rays: triangles near each ray's segment,
    found with a k-d tree of small triangles' centres; the few large ones by their boxes."""
    from scipy.spatial import cKDTree

    centres = triangles.mean(axis=1)
    radius = np.linalg.norm(triangles - centres[:, None], axis=2).max(axis=1)
    small_limit = max(4.0 * float(np.median(radius)), 1e-12)
    small = np.flatnonzero(radius <= small_limit)
    large = np.flatnonzero(radius > small_limit)
    reach = max_distance / 2 + float(radius[small].max(initial=0.0))
    near = cKDTree(centres[small]).query_ball_point(origins + directions * (max_distance / 2), reach)
    counts = np.fromiter((len(n) for n in near), dtype=np.int64, count=len(near))
    ray_i = np.repeat(np.arange(len(origins)), counts)
    flat = np.concatenate([np.asarray(n, dtype=np.int64) for n in near]) if counts.sum() else small[:0]
    tri_i = small[flat]
    all_rays = len(origins)  # one chunk: the large triangles are few
    pairs = _candidate_pairs_all(triangles[large], origins, directions, max_distance, all_rays)
    ray_big, tri_big = next(pairs)
    return np.concatenate([ray_i, ray_big]), np.concatenate([tri_i, large[tri_big]])


def _candidate_pairs_all(
    triangles: np.ndarray, origins: np.ndarray, directions: np.ndarray, max_distance: float, chunk: int = 128
):
    """(ray, triangle) pairs whose boxes overlap, chunk by chunk: for long rays."""
    tri_lo, tri_hi = triangles.min(axis=1), triangles.max(axis=1)
    ends = origins + directions * max_distance
    seg_lo, seg_hi = np.minimum(origins, ends), np.maximum(origins, ends)
    for first in range(0, len(origins), chunk):
        rays = slice(first, first + chunk)
        overlap = np.all(
            (seg_lo[rays, None, :] <= tri_hi[None]) & (seg_hi[rays, None, :] >= tri_lo[None]), axis=2
        )
        ray_i, tri_i = np.nonzero(overlap)
        yield ray_i + first, tri_i


def _first_hits(
    triangles: np.ndarray, origins: np.ndarray, directions: np.ndarray, max_distance: float, skip: np.ndarray
) -> np.ndarray:
    """Distance along each ray to the nearest triangle within ``max_distance`` (inf if none),
    ignoring triangle ``skip[i]`` for ray ``i``. Narrow phase: Moller-Trumbore, plain numpy."""
    short = max_distance < 0.2 * float(np.linalg.norm(np.ptp(triangles.reshape(-1, 3), axis=0)))
    batches = (
        [_candidate_pairs_near(triangles, origins, directions, max_distance)]
        if short
        else _candidate_pairs_all(triangles, origins, directions, max_distance)
    )
    best = np.full(len(origins), np.inf)
    for ray_i, tri_i in batches:
        keep = tri_i != skip[ray_i]
        ray_i, tri_i = ray_i[keep], tri_i[keep]
        a, b, c = triangles[tri_i, 0], triangles[tri_i, 1], triangles[tri_i, 2]
        e1, e2, d = b - a, c - a, directions[ray_i]
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        t_vec = origins[ray_i] - a
        u = np.einsum("ij,ij->i", t_vec, p) * inv
        q = np.cross(t_vec, e1)
        v = np.einsum("ij,ij->i", d, q) * inv
        t = np.einsum("ij,ij->i", e2, q) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t <= max_distance)
        np.minimum.at(best, ray_i[hit], t[hit])
    return best


def wall_thickness(
    mesh: trimesh.Trimesh, samples: int = 2000, seed: int = 0, max_distance: float | None = None
) -> WallThickness:
    """Cast ``samples`` rays inward from random surface points and measure how far each goes
    before leaving the solid. ``max_distance`` (default: the whole mesh) bounds each ray: a
    short bound is much faster and enough to find walls thinner than it."""
    if len(mesh.faces) == 0:
        raise ValueError("the mesh has no faces")
    reach = float(np.linalg.norm(mesh.extents)) if max_distance is None else float(max_distance)
    points, faces = trimesh.sample.sample_surface(mesh, samples, seed=seed)
    inward = -mesh.face_normals[faces]
    # Start a hair inside the surface, so the ray does not meet the face it starts on.
    start_offset = 1e-6 * float(mesh.scale)
    origins = points + inward * start_offset
    thickness = _first_hits(mesh.triangles, origins, inward, reach, skip=faces) + start_offset
    missed = ~np.isfinite(thickness)
    thinnest = int(np.argmin(thickness))
    return WallThickness(
        min=float(thickness.min()),
        p1=float(np.percentile(thickness, 1, method="lower")),  # inf-safe
        samples=samples,
        max_distance=reach,
        missed=int(missed.sum()),
        thinnest_point=tuple(float(v) for v in points[thinnest]),
        thicknesses=thickness,
    )
