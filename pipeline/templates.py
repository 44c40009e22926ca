"""Body templates: data files in ``templates/`` read into typed, validated specs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.errors import UnknownTemplateError

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
SHAPES = ("box", "capsule", "cylinder", "ellipsoid", "hull", "sphere")
# Colours filled in from the photo at fusion time rather than fixed by the template.
FACE_COLOURS = ("skin", "hair")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class PartSpec:
    """One primitive of a body, in figure units (ground at y = 0, head about 1 unit tall)."""

    name: str
    shape: str
    size: tuple[float, ...]
    at: tuple[float, float, float]
    color: str
    rotate_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    points: tuple[tuple[float, float, float], ...] = ()
    mirror: bool = False


@dataclass(frozen=True)
class BodyTemplate:
    name: str
    label: str
    description: str
    head_height: float
    neck_y: float
    pose: dict[str, str]
    palette: dict[str, RGB]
    parts: tuple[PartSpec, ...]


def _hex_to_rgb(value: str) -> RGB:
    value = value.lstrip("#")
    if len(value) != 6:
        raise ValueError(f"colour {value!r} is not #rrggbb")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def _part(raw: dict, palette: dict[str, RGB], where: str) -> PartSpec:
    shape = raw["shape"]
    if shape not in SHAPES:
        raise ValueError(f"{where}: unknown shape {shape!r}; use one of {SHAPES}")
    color = raw["color"]
    if color not in palette and color not in FACE_COLOURS:
        raise ValueError(f"{where}: colour {color!r} is not in the palette")
    if shape == "hull" and len(raw.get("points", ())) < 4:
        raise ValueError(f"{where}: a hull needs at least 4 points")
    return PartSpec(
        name=raw["name"],
        shape=shape,
        size=tuple(float(v) for v in raw.get("size", ())),
        at=tuple(float(v) for v in raw["at"]),  # type: ignore[arg-type]
        color=color,
        rotate_deg=tuple(float(v) for v in raw.get("rotate_deg", (0, 0, 0))),  # type: ignore[arg-type]
        scale=tuple(float(v) for v in raw.get("scale", (1, 1, 1))),  # type: ignore[arg-type]
        points=tuple(tuple(float(c) for c in p) for p in raw.get("points", ())),  # type: ignore[misc]
        mirror=bool(raw.get("mirror", False)),
    )


def _parse(path: Path) -> BodyTemplate:
    raw = json.loads(path.read_text(encoding="utf-8"))
    palette = {key: _hex_to_rgb(value) for key, value in raw["palette"].items()}
    parts = tuple(_part(p, palette, f"{path.name} part {i}") for i, p in enumerate(raw["parts"]))
    return BodyTemplate(
        name=raw["name"],
        label=raw["label"],
        description=raw["description"],
        head_height=float(raw["head_height"]),
        neck_y=float(raw["neck_y"]),
        pose=dict(raw.get("pose", {})),
        palette=palette,
        parts=parts,
    )


@cache
def template_names() -> tuple[str, ...]:
    """Available templates, ``default`` first."""
    names = sorted(p.stem for p in TEMPLATE_DIR.glob("*.json"))
    return tuple(sorted(names, key=lambda n: (n != "default", n)))


@cache
def load_template(name: str) -> BodyTemplate:
    """The template called ``name``; raises :class:`UnknownTemplateError` if there is none."""
    if name not in template_names():
        raise UnknownTemplateError(
            f"Unknown template {name!r}. Choose one of: {', '.join(template_names())}."
        )
    return _parse(TEMPLATE_DIR / f"{name}.json")
