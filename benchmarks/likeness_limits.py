"""Where the prints lose the likeness: the same dlib measure as ``benchmarks/likeness.py`` on
renders that each add back one thing a print cannot have.

    python benchmarks/likeness_limits.py

For each test person the real pipeline runs once (default options). Then, all framed and lit as
in ``likeness.py``:

- ``grey``: ``figurine.stl`` in clay (as ``likeness.py``), relief and all;
- ``clay``: the textured GLB's own parts, every one in the same clay: its shape alone;
- ``clay_ink``: the same, with the face texture's ink (what is much darker than the skin: eyes,
  brows, lash and lip lines) painted on in grey;
- ``clay_ink_hair``: and the hair part at its own lightness;
- ``clay_face``: the whole face texture in grey, every part clay: what a one-colour sculpture
  would have to show by its shape alone to be as recognisable as the textured figurine;
- ``colour_print``: ``figurine.3mf`` in its filament colours (as ``likeness.py``);
- ``palette_per_pixel``: the textured GLB with its face texture mapped, texel by texel, to the
  nearest of the 3MF's own filaments (CIELAB): no mesh, no island merging, no thin-line
  dropping. When the colour print scores about the same, its mesh is not what holds it back;
  the palette is.

Writes ``benchmarks/results/likeness_limits.json`` and ``docs/likeness_limits.md``. About a
minute for the ten test people on a 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks import likeness  # noqa: E402
from pipeline.body import FigurinePart  # noqa: E402
from pipeline.colorprint import hex_to_rgb, nearest_colour, srgb_to_lab  # noqa: E402
from pipeline.export import CLAY_RGB  # noqa: E402

RESULTS_PATH = ROOT / "benchmarks" / "results" / "likeness_limits.json"
DOC_PATH = ROOT / "docs" / "likeness_limits.md"
LUMA = np.array([0.299, 0.587, 0.114])
INK_SHARE = 0.55  # of the skin's lightness: darker texels are ink (as pipeline.sculpt carves)
CLAY_SRGB = CLAY_RGB[0]  # the grey of the one-colour view and of likeness.py's clay render

KIND_NOTES = {
    "grey": "figurine.stl in clay (likeness.py)",
    "clay": "the GLB's shape in clay",
    "clay_ink": "+ the face's ink in grey",
    "clay_ink_hair": "+ ink, and hair at its own lightness",
    "clay_face": "+ the whole face texture in grey",
    "colour_print": "figurine.3mf in its filaments (likeness.py)",
    "palette_per_pixel": "GLB, face texture mapped per texel to the 3MF's filaments",
    "face_in_2_tones": "GLB, face texture in its best 2 colours, other parts their own",
    "face_in_3_tones": "GLB, face texture in its best 3 colours, other parts their own",
}
TONE_KINDS = {"face_in_2_tones": 2, "face_in_3_tones": 3}


def _face_part(scene: trimesh.Scene) -> str:
    return next(name for name, mesh in scene.geometry.items() if _texture(mesh) is not None)


def _texture(mesh: trimesh.Trimesh) -> Image.Image | None:
    visual = mesh.visual
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.material is not None:
        return getattr(visual.material, "baseColorTexture", None)
    return None


def _part_srgb(mesh: trimesh.Trimesh) -> np.ndarray:
    """A plain part's displayed colour (8-bit sRGB) from its glTF base colour factor."""
    factor = np.asarray(mesh.visual.material.baseColorFactor, np.float64)[:3] / 255.0  # trimesh keeps uint8
    return np.clip(255.0 * factor ** (1 / 2.2), 0, 255)


def _plain(mesh: trimesh.Trimesh, grey: float) -> None:
    level = int(np.clip(round(grey), 0, 255))
    mesh.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(
            baseColorFactor=FigurinePart("clay", mesh, (level,) * 3).linear_rgba(),
            metallicFactor=0.0,
            roughnessFactor=0.65,
        )
    )


def skin_lightness(texture: np.ndarray) -> float:
    """The face texture's skin lightness: the median luma of its middle ninth."""
    lum = texture.astype(np.float64) @ LUMA
    h, w = lum.shape
    return max(1.0, float(np.median(lum[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3])))


def grey_texture(texture: np.ndarray, ink_only: bool) -> np.ndarray:
    """The face texture (RGB uint8) as grey albedo, the skin at clay's lightness: every texel,
    or (``ink_only``) only what is darker than INK_SHARE of the skin, the rest plain clay."""
    lum = texture.astype(np.float64) @ LUMA
    skin = skin_lightness(texture)
    grey = lum / skin * CLAY_SRGB
    if ink_only:
        grey = np.where(lum < INK_SHARE * skin, grey, CLAY_SRGB)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def palette_texture(texture: np.ndarray, palette_rgb: np.ndarray) -> np.ndarray:
    """Each texel replaced by the nearest palette colour in CIELAB."""
    palette_rgb = np.asarray(palette_rgb, np.uint8)
    return palette_rgb[nearest_colour(texture, palette_rgb)]


def tone_texture(texture: np.ndarray, tones: int) -> np.ndarray:
    """The texture (RGB uint8) in its best ``tones`` colours: k-means in CIELAB (fixed seed),
    each texel replaced by the mean sRGB colour of its cluster."""
    import cv2

    flat = texture.reshape(-1, 3)
    lab = srgb_to_lab(flat).reshape(-1, 3).astype(np.float32)
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, _ = cv2.kmeans(lab, tones, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    means = np.array([flat[labels == k].mean(axis=0) for k in range(tones)])
    return np.rint(means[labels]).astype(np.uint8).reshape(texture.shape)


def restyled(glb_path: Path, kind: str, palette_rgb: np.ndarray | None = None) -> trimesh.Scene:
    """The figurine's GLB scene painted as ``kind`` (one of GLB_KINDS)."""
    out = trimesh.load(glb_path)
    face_name = _face_part(out)
    face = out.geometry[face_name]
    texture = np.asarray(_texture(face).convert("RGB"))
    skin_lum = skin_lightness(texture)
    for name, mesh in out.geometry.items():
        if name == face_name:
            continue
        grey = CLAY_SRGB
        if kind == "clay_ink_hair" and name == "hair":
            grey = CLAY_SRGB * float(_part_srgb(mesh) @ LUMA) / max(skin_lum, 1.0)
        if kind not in ("palette_per_pixel", *TONE_KINDS):
            _plain(mesh, grey)
    if kind == "palette_per_pixel":
        painted = palette_texture(texture, palette_rgb)
    elif kind in TONE_KINDS:
        painted = tone_texture(texture, TONE_KINDS[kind])
    elif kind == "clay":
        painted = np.full_like(texture, CLAY_SRGB)
    else:
        painted = grey_texture(texture, ink_only=kind != "clay_face")
    face.visual.material.baseColorTexture = Image.fromarray(painted)
    return out


GLB_KINDS = ("clay", "clay_ink", "clay_ink_hair", "clay_face", "palette_per_pixel", *TONE_KINDS)
KINDS = ("grey", *GLB_KINDS[:4], "colour_print", *GLB_KINDS[4:])


def person_images(person: likeness.Person, work_dir: Path) -> dict[str, np.ndarray]:
    from pipeline.runner import run

    result = run(likeness.load_photo(person), out_dir=work_dir)
    palette = np.array([hex_to_rgb(c.hex) for c in result.colour_print.palette], np.uint8)
    images = {
        "grey": likeness.render_stl_grey(result.stl_path, result.glb_path),
        "colour_print": likeness.render_colour_print(result.threemf_path, result.glb_path),
    }
    for kind in GLB_KINDS:
        path = work_dir / f"limits_{kind}.glb"
        restyled(result.glb_path, kind, palette).export(path, file_type="glb")
        images[kind] = likeness.render_figurine_front(path)
    return images


def measure(people, images_of: Callable[[likeness.Person], dict[str, np.ndarray]]) -> dict:
    descriptors = likeness.photo_descriptors(people)
    rows = {}
    for person in people:
        images = images_of(person)
        rows[person.id] = {}
        for kind in KINDS:
            found = likeness.face_descriptor(images[kind], likeness.RENDER_UPSAMPLE)
            distances = {other.id: likeness.descriptor_distance(found, descriptors[other.id]) for other in people}
            own = distances[person.id]
            rows[person.id][kind] = {
                "distance": round(own, 4),
                "nearest_own": found is not None and own < min(d for k, d in distances.items() if k != person.id),
            }
    summary = {
        kind: {
            "median": round(float(np.median([rows[p][kind]["distance"] for p in rows])), 4),
            "nearest_own": int(sum(rows[p][kind]["nearest_own"] for p in rows)),
        }
        for kind in KINDS
    }
    return {"summary": summary, "people": rows}


def markdown(report: dict) -> str:
    lines = [
        "# Where the prints lose the likeness",
        "",
        "Made by `python benchmarks/likeness_limits.py` (raw figures in "
        "[`benchmarks/results/likeness_limits.json`](../benchmarks/results/likeness_limits.json)); "
        "the measure is [likeness.md](likeness.md)'s: dlib distance to the person's own photo, "
        f"median of the {len(report['people'])} test people, and for how many the render is nearer "
        "to its own photo than to every other person's.",
        "",
        "| render | what it shows | median distance | nearest to own photo |",
        "|---|---|---|---|",
    ]
    for kind in KINDS:
        s = report["summary"][kind]
        lines.append(f"| `{kind}` | {KIND_NOTES[kind]} | {s['median']:.3f} | {s['nearest_own']} of {len(report['people'])} |")
    lines += [
        "",
        "How to read it: the `clay_*` rows keep the figurine's shape and paint back, in grey, one "
        "thing a one-colour print cannot carry. `palette_per_pixel` maps every texel of the face to "
        "its nearest filament of the 3MF, with no mesh in the way: when `colour_print` scores about "
        "the same, the palette, not the mesh, is what limits the colour print. The `face_in_*_tones` "
        "rows give the face its own best 2 or 3 colours and every other part its true colour: the "
        "most a palette can do with that many filaments for the face. At the default 4 filaments, "
        "skin, eyes, hair and outfit each take one (issue 11), so the face has 2 of them unless the "
        "hair is as dark as the eyes and shares theirs.",
        "",
        f"Measured {report['date']} on {report['machine']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=Path, default=likeness.PEOPLE_JSON)
    args = parser.parse_args(argv)
    people = likeness.load_people(args.people)
    with tempfile.TemporaryDirectory(prefix="toonforge-limits-") as tmp:
        report = measure(people, lambda person: person_images(person, Path(tmp) / person.id))
    report["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report["machine"] = f"{platform.platform()}, {os.cpu_count()} logical cores"
    RESULTS_PATH.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    DOC_PATH.write_text(markdown(report), encoding="utf-8")
    for kind in KINDS:
        s = report["summary"][kind]
        print(f"{kind:18s} median {s['median']:.3f}  nearest own photo {s['nearest_own']}/{len(people)}  ({KIND_NOTES[kind]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
