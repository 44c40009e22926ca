"""Stage 5: write the figurine files: textured GLB, printable STL, colour-print 3MF,
preview renders, report."""

from __future__ import annotations

import json
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import trimesh
from PIL import Image

from pipeline.body import FigurinePart, transformed
from pipeline.colorprint import (
    DEFAULT_COLORS,
    ColouredSurface,
    ColourPrint,
    separate_colours,
    start_coloured_union,
)
from pipeline.fusion import FusionResult
from pipeline.printability import PrintabilityReport, check_printability
from pipeline.render import get_renderer
from pipeline.threemf import PrintSettings, write_3mf
from pipeline.timing import timed

GLB_NAME = "figurine.glb"
STL_NAME = "figurine.stl"
GREY_GLB_NAME = "figurine_grey.glb"
# Unpainted PLA, a mid grey: the one-colour print as the viewer shows it.
CLAY_RGB = (161, 161, 161)
PREVIEW_NAME = "preview.png"
STYLIZED_NAME = "stylized.png"
REPORT_NAME = "report.json"
THREEMF_NAME = "figurine.3mf"
PRINT_PREVIEW_NAME = "print_preview.png"

# Figure space is y-up (glTF); slicers expect z-up.
Y_UP_TO_Z_UP = trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])


@dataclass(frozen=True)
class FilamentColour:
    """One filament of the colour print: sRGB hex and its share of the surface."""

    hex: str
    share: float

    def to_dict(self) -> dict:
        return {"hex": self.hex, "share": round(self.share, 4)}


@dataclass(frozen=True)
class ColourPrintSummary:
    """What ``figurine.3mf`` holds: its filaments, its size and whether it prints as is."""

    palette: list[FilamentColour]
    triangles: int
    printability: PrintabilityReport

    def to_dict(self) -> dict:
        return {
            "colors": [c.to_dict() for c in self.palette],
            "triangles": self.triangles,
            "printability": self.printability.to_dict(),
        }


@dataclass
class ExportResult:
    glb_path: Path
    stl_path: Path
    preview_path: Path
    stylized_path: Path
    height_mm: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    grey_glb_path: Path | None = None
    threemf_path: Path | None = None
    print_preview_path: Path | None = None
    colour_print: ColourPrintSummary | None = None


def figure_scene(parts: list[FigurinePart], metres: float) -> trimesh.Scene:
    """A glTF-ready scene with one named node per part, scaled to ``metres`` tall."""
    scene = trimesh.Scene()
    lo = np.min([p.mesh.bounds[0] for p in parts], axis=0)
    hi = np.max([p.mesh.bounds[1] for p in parts], axis=0)
    scale = metres / float(hi[1] - lo[1])
    placement = trimesh.transformations.scale_matrix(scale)
    placement[:3, 3] = np.array([-(lo[0] + hi[0]) / 2, -lo[1], -(lo[2] + hi[2]) / 2]) * scale
    for part in parts:
        mesh = transformed(part.mesh, placement)
        if not part.textured:
            mesh.visual = trimesh.visual.TextureVisuals(
                material=trimesh.visual.material.PBRMaterial(
                    name=part.name,
                    baseColorFactor=part.linear_rgba(),
                    metallicFactor=0.0,
                    roughnessFactor=0.7,
                )
            )
        scene.add_geometry(mesh, node_name=part.name, geom_name=part.name)
    return scene


def printable_solid(solid: trimesh.Trimesh, height_mm: float) -> trimesh.Trimesh:
    """The fused solid in millimetres, z up, standing on z = 0, centred on the origin."""
    mesh = solid.copy()
    mesh.apply_transform(Y_UP_TO_Z_UP)
    lo, hi = mesh.bounds
    mesh.apply_translation([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    mesh.apply_scale(height_mm / float(hi[2] - lo[2]))
    return mesh


def colour_print_parts(colour: ColourPrint) -> list[FigurinePart]:
    """The quantised model as one flat-coloured part per filament, for the renderer."""
    return [
        FigurinePart(
            f"filament_{i + 1}",
            trimesh.Trimesh(colour.mesh.vertices, colour.mesh.faces[colour.labels == i], process=False),
            (int(rgb[0]), int(rgb[1]), int(rgb[2])),
        )
        for i, rgb in enumerate(colour.palette_rgb)
        if np.any(colour.labels == i)
    ]


@dataclass(frozen=True)
class ColourPrintFiles:
    threemf_path: Path
    print_preview_path: Path
    summary: ColourPrintSummary


def write_colour_print(
    fusion: FusionResult,
    out_dir: Path,
    height_mm: float,
    colors: int,
    palette: Sequence[str] | None,
    timings: dict[str, float],
    union: Future[ColouredSurface] | None = None,
) -> ColourPrintFiles:
    """``figurine.3mf`` (the solid split into filament colours, painted for PrusaSlicer) and
    ``print_preview.png``; their times go into ``timings`` as threemf.* and print_preview.
    ``union``: the parts' coloured union, started earlier with ``start_coloured_union``."""
    with timed(timings, "threemf"):
        surface = None
        if union is not None:
            with timed(timings, "threemf.union_wait"):
                surface = union.result()
        figure_height = float(fusion.solid.extents[1])
        colour = separate_colours(
            fusion.parts, fusion.head.texture, colors, palette, height_mm / figure_height, surface=surface
        )
        for key, value in colour.timings_ms.items():
            timings[f"threemf.{key}"] = value
        printable = printable_solid(colour.mesh, height_mm)
        with timed(timings, "threemf.printability"):
            printability = check_printability(np.asarray(printable.vertices), np.asarray(printable.faces))
        with timed(timings, "threemf.write"):
            threemf_path = write_3mf(
                out_dir / THREEMF_NAME,
                printable.vertices,
                printable.faces,
                colour.labels,
                colour.palette_hex(),
                PrintSettings(supports=printability.needs_supports),
            )
    with timed(timings, "print_preview"):
        print_preview_path = out_dir / PRINT_PREVIEW_NAME
        image = get_renderer().render(colour_print_parts(colour))
        Image.fromarray(image).save(print_preview_path, compress_level=1)
    summary = ColourPrintSummary(
        palette=[FilamentColour(h, float(s)) for h, s in zip(colour.palette_hex(), colour.shares())],
        triangles=len(colour.mesh.faces),
        printability=printability,
    )
    return ColourPrintFiles(threemf_path, print_preview_path, summary)


def export_figurine(
    fusion: FusionResult,
    stylized: np.ndarray,
    out_dir: Path,
    height_mm: float,
    colors: int = DEFAULT_COLORS,
    palette: Sequence[str] | None = None,
) -> ExportResult:
    """Write the GLB, STL, colour 3MF, stylized image and preview renders into ``out_dir``.
    ``palette`` (the user's "#rrggbb" filaments) overrides ``colors``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with timed(timings, "files"):
        union = start_coloured_union(fusion.parts, timings, "threemf.union")  # runs meanwhile
        with timed(timings, "glb"):
            glb_path = out_dir / GLB_NAME
            figure_scene(fusion.parts, height_mm / 1000.0).export(glb_path, file_type="glb")

        with timed(timings, "stl"):
            stl_path = out_dir / STL_NAME
            printable_solid(fusion.solid, height_mm).export(stl_path, file_type="stl")

        with timed(timings, "grey_glb"):
            # The STL's solid for the browser's one-colour view. A viewer's STL loader turns
            # z-up into y-up by swapping axes, which mirrors the model in a right-handed scene;
            # a GLB is y-up already and is shown as it is, turning the way it is dragged.
            grey_glb_path = out_dir / GREY_GLB_NAME
            grey = FigurinePart("print", fusion.solid, CLAY_RGB)
            figure_scene([grey], height_mm / 1000.0).export(grey_glb_path, file_type="glb")

        with timed(timings, "stylized_png"):
            stylized_path = out_dir / STYLIZED_NAME
            Image.fromarray(stylized).save(stylized_path, compress_level=1)

        with timed(timings, "preview"):
            preview_path = out_dir / PREVIEW_NAME
            # Rendered here, not alongside fusion on the render thread: overlapping them saved no
            # wall time (both need the GIL for pyrender's Python side) and cost 15% more CPU.
            Image.fromarray(get_renderer().render(fusion.parts)).save(preview_path, compress_level=1)

        colour_files = write_colour_print(fusion, out_dir, height_mm, colors, palette, timings, union)
    return ExportResult(
        glb_path=glb_path,
        stl_path=stl_path,
        preview_path=preview_path,
        stylized_path=stylized_path,
        height_mm=height_mm,
        timings_ms=timings,
        grey_glb_path=grey_glb_path,
        threemf_path=colour_files.threemf_path,
        print_preview_path=colour_files.print_preview_path,
        colour_print=colour_files.summary,
    )


def write_report(report: dict, out_dir: Path) -> Path:
    path = out_dir / REPORT_NAME
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path
