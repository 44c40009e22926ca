"""Stage 4: build the head, seat it on the chosen body and fuse everything into one solid."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

import manifold3d
import numpy as np
import trimesh

from pipeline.body import FigurinePart, body_meshes, build_body, transformed
from pipeline.head import HeadResult, build_head
from pipeline.landmarks import FaceAnalysis
from pipeline.quality import QualityReport, score_quality
from pipeline.templates import load_template
from pipeline.timing import timed

NECK_OVERLAP = 0.06  # how far the neck reaches into the head, so the union joins them


@dataclass
class FusionResult:
    parts: list[FigurinePart]  # named, coloured parts for the viewer (y up, ground at y = 0)
    solid: trimesh.Trimesh  # watertight union of every part, for printing
    template: str
    head: HeadResult
    quality: QualityReport
    timings_ms: dict[str, float] = field(default_factory=dict)


def start_manifold_single_threaded() -> None:
    """Start Manifold's TBB scheduler with one thread. TBB sizes its pool from the CPU
    affinity of the thread that first uses it, so that thread's affinity is narrowed to one
    core for a tiny union and then restored. Measured here: its helper thread saved 8 ms of
    a 45 ms union and cost 38 ms of CPU per photo, CPU that concurrent requests need."""
    if not hasattr(os, "sched_setaffinity"):
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        cube = manifold3d.Manifold.cube((1.0, 1.0, 1.0))
        manifold3d.Manifold.batch_boolean([cube, cube.translate((0.5, 0.5, 0.5))], manifold3d.OpType.Add)
    finally:
        os.sched_setaffinity(0, cores)


def to_manifold(mesh: trimesh.Trimesh) -> manifold3d.Manifold:
    solid = manifold3d.Manifold(
        manifold3d.Mesh(
            vert_properties=np.asarray(mesh.vertices, dtype=np.float32),
            tri_verts=np.asarray(mesh.faces, dtype=np.uint32),
        )
    )
    if solid.status() != manifold3d.Error.NoError:
        raise ValueError(f"part is not a closed manifold: {solid.status()}")
    return solid


def union_solid(solids: list[manifold3d.Manifold]) -> trimesh.Trimesh:
    """One closed manifold from overlapping closed parts."""
    result = manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add).to_mesh()
    return trimesh.Trimesh(result.vert_properties[:, :3], result.tri_verts, process=False)


@cache
def _body_solid(template_name: str) -> manifold3d.Manifold:
    """The union of a template's body parts: the same for every photo, so made once."""
    solids = [to_manifold(mesh) for _, _, mesh in body_meshes(template_name)]
    return manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add)


def fuse_template(
    face: FaceAnalysis, stylized: np.ndarray, photo: np.ndarray, template_name: str
) -> FusionResult:
    """The figurine: head from ``face`` textured with ``stylized``, on template ``template_name``."""
    template = load_template(template_name)
    timings: dict[str, float] = {}

    with timed(timings, "head"):
        head = build_head(face, stylized, photo)
    timings.update({f"head.{name}": ms for name, ms in head.timings_ms.items()})

    with timed(timings, "body"):
        # Head units have skull height 1; the chin sits just above the neck top.
        size = template.head_height
        placement = trimesh.transformations.scale_matrix(size)
        placement[:3, 3] = [0.0, template.neck_y + NECK_OVERLAP - head.chin_y * size, 0.02]
        head_mesh = transformed(head.head, placement)
        hair_mesh = transformed(head.hair, placement)
        ears_mesh = transformed(head.ears, placement) if head.ears is not None else None
        parts = build_body(template, head.skin_rgb, head.hair_rgb)
        parts.append(FigurinePart("head", head_mesh, head.skin_rgb, textured=True))
        if ears_mesh is not None:
            parts.append(FigurinePart("ears", ears_mesh, head.skin_rgb))
        if head.hair_style != "bald":
            parts.append(FigurinePart("hair", hair_mesh, head.hair_rgb))

    with timed(timings, "union"):
        head_solids = [to_manifold(head_mesh)]
        if ears_mesh is not None:
            head_solids.append(to_manifold(ears_mesh))
        if head.hair_style != "bald":
            head_solids.append(to_manifold(hair_mesh))
        solid = union_solid([_body_solid(template.name), *head_solids])

    with timed(timings, "quality"):
        quality = score_quality(face, photo, solid, head.notes)
    return FusionResult(
        parts=parts,
        solid=solid,
        template=template.name,
        head=head,
        quality=quality,
        timings_ms=timings,
    )
