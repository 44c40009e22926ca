import json

import pytest

from pipeline.body import build_body
from pipeline.errors import UnknownTemplateError
from pipeline.templates import TEMPLATE_DIR, load_template, template_names


def test_three_templates_default_first():
    assert template_names() == ("default", "casual", "superhero")


@pytest.mark.parametrize("name", ["default", "superhero", "casual"])
def test_every_part_is_a_closed_mesh(name):
    template = load_template(name)
    parts = build_body(template, skin=(230, 190, 160), hair=(60, 40, 30))
    assert {p.name for p in parts} >= {"base", "neck"}
    for part in parts:
        assert part.mesh.is_watertight, part.name
        assert part.mesh.volume > 0, part.name
    names = [p.name for p in parts]
    assert len(names) == len(set(names))


def test_template_specific_parts():
    superhero = {p.name for p in load_template("superhero").parts}
    casual = {p.name for p in load_template("casual").parts}
    assert {"cape", "emblem"} <= superhero
    assert {"hoodie", "hood", "sneaker"} <= casual and "leg" in casual
    assert load_template("casual").palette["jeans"][2] > 120  # jeans are blue


def test_mirrored_parts_are_symmetric():
    parts = {p.name: p.mesh for p in build_body(load_template("default"), (1, 1, 1), (1, 1, 1))}
    left, right = parts["arm_left"].centroid, parts["arm_right"].centroid
    assert left[0] == pytest.approx(-right[0]) and left[1] == pytest.approx(right[1])


def test_unknown_template():
    with pytest.raises(UnknownTemplateError, match="default, casual, superhero"):
        load_template("pirate")


def test_bad_template_data_is_rejected(tmp_path, monkeypatch):
    raw = json.loads((TEMPLATE_DIR / "default.json").read_text())
    raw["parts"][0]["shape"] = "teapot"
    from pipeline import templates

    with pytest.raises(ValueError, match="teapot"):
        path = tmp_path / "broken.json"
        path.write_text(json.dumps(raw))
        templates._parse(path)
