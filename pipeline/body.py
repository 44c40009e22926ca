"""Turn a body template's primitives into meshes, in figure units."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import trimesh

from pipeline.templates import RGB, BodyTemplate, PartSpec, load_template


@dataclass
class FigurinePart:
    """One named, coloured (or textured) closed mesh of the figurine."""

    name: str
    mesh: trimesh.Trimesh
    rgb: RGB  # sRGB, as a person picks colours
    textured: bool = False

    def linear_rgba(self) -> list[float]:
        """The colour in linear light, as glTF's baseColorFactor and renderers expect it."""
        return [(c / 255.0) ** 2.2 for c in self.rgb] + [1.0]


def transformed(mesh: trimesh.Trimesh, matrix: np.ndarray) -> trimesh.Trimesh:
    """A moved copy of ``mesh`` that shares its material. (``Trimesh.copy`` would copy the
    texture too, and a copied image loses its JPEG encoding, so the GLB exporter would
    re-encode it as a slower, larger PNG.)"""
    visual = None
    if isinstance(mesh.visual, trimesh.visual.TextureVisuals):
        visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv, material=mesh.visual.material)
    vertices = trimesh.transformations.transform_points(mesh.vertices, matrix)
    return trimesh.Trimesh(vertices, mesh.faces, visual=visual, process=False)


def _primitive(spec: PartSpec) -> trimesh.Trimesh:
    s = spec.size
    if spec.shape == "box":
        return trimesh.creation.box(extents=s)
    if spec.shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=s[0])
    if spec.shape == "ellipsoid":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        mesh.apply_scale(s)
        return mesh
    if spec.shape == "hull":
        return trimesh.convex.convex_hull(np.array(spec.points))
    # capsule and cylinder: size = (radius, height), axis along y
    if spec.shape == "capsule":
        mesh = trimesh.creation.capsule(height=s[1], radius=s[0], count=[24, 12])
    else:
        mesh = trimesh.creation.cylinder(radius=s[0], height=s[1], sections=48)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    return mesh


def _placed(spec: PartSpec, mirrored: bool) -> trimesh.Trimesh:
    mesh = _primitive(spec)
    if spec.scale != (1.0, 1.0, 1.0):
        mesh.apply_scale(spec.scale)
    rx, ry, rz = np.radians(spec.rotate_deg)
    mesh.apply_transform(trimesh.transformations.euler_matrix(rx, ry, rz, axes="sxyz"))
    mesh.apply_translation(spec.at)
    if mirrored:
        mesh.apply_transform(np.diag([-1.0, 1.0, 1.0, 1.0]))  # trimesh re-winds reflections
    return mesh


@cache
def body_meshes(template_name: str) -> tuple[tuple[str, str, trimesh.Trimesh], ...]:
    """(part name, colour key, mesh) for every part; built once per template and shared,
    so callers must treat the meshes as read-only."""
    meshes: list[tuple[str, str, trimesh.Trimesh]] = []
    for spec in load_template(template_name).parts:
        if spec.mirror:
            meshes.append((f"{spec.name}_left", spec.color, _placed(spec, False)))
            meshes.append((f"{spec.name}_right", spec.color, _placed(spec, True)))
        else:
            meshes.append((spec.name, spec.color, _placed(spec, False)))
    return tuple(meshes)


def build_body(template: BodyTemplate, skin: RGB, hair: RGB) -> list[FigurinePart]:
    """Every part of the template as a closed mesh; mirrored parts get _left/_right names."""
    colours = dict(template.palette, skin=skin, hair=hair)
    return [FigurinePart(name, mesh, colours[key]) for name, key, mesh in body_meshes(template.name)]
