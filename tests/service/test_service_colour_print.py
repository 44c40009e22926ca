"""The colour print over HTTP: the ``colors`` and ``palette`` form fields of ``POST /api/upload``
and the ``figurine.3mf`` / ``print_preview.png`` artifacts, with real uploads."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from PIL import Image

from tests.service.test_service_http import assert_error, upload

MODEL_PART = "3D/3dmodel.model"


def _threemf_colours(data: bytes) -> list[str]:
    """The base-material colours ("#RRGGBB", upper case) that ``figurine.3mf`` declares."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert MODEL_PART in archive.namelist(), archive.namelist()
        model = archive.read(MODEL_PART).decode("utf-8")
    assert 'unit="millimeter"' in model
    return [c.upper()[:7] for c in re.findall(r'displaycolor="(#[0-9A-Fa-f]{6,8})"', model)]


def _fetch(client, body: dict, key: str) -> bytes:
    response = client.get(body["artifacts"][key])
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("colors", [1, 2])
def test_colors_field_sets_the_filaments_of_the_3mf(client, photo_bytes, colors):
    response = upload(client, photo_bytes, colors=str(colors))
    assert response.status_code == 200, response.text
    body = response.json()
    palette = body["print"]["colors"]
    assert len(palette) == colors
    assert abs(sum(c["share"] for c in palette) - 1.0) < 0.01
    # the 3MF is served as a download and declares the same colours as the report
    threemf = client.get(body["artifacts"]["threemf"])
    assert threemf.headers["content-disposition"] == 'attachment; filename="figurine.3mf"'
    declared = _threemf_colours(threemf.content)
    assert declared == [c["hex"].upper() for c in palette]
    # the STL stays, and the print preview is a real picture
    assert _fetch(client, body, "stl")[:5] != b""
    with Image.open(io.BytesIO(_fetch(client, body, "print_preview"))) as preview:
        assert min(preview.size) >= 128


def test_palette_field_maps_to_the_users_filaments(client, photo_bytes):
    mine = ["#F2D6C4", "#3B2A20", "#C0392B"]
    # spaces and lower case are fine; the count comes from the palette, not from colors
    response = upload(client, photo_bytes, palette=" #f2d6c4, #3b2a20 ,#c0392b", colors="6")
    assert response.status_code == 200, response.text
    body = response.json()
    used = [c["hex"].upper() for c in body["print"]["colors"]]
    assert used and set(used) <= set(mine), used
    assert set(_threemf_colours(_fetch(client, body, "threemf"))) <= set(mine)


@pytest.mark.parametrize(
    "fields",
    [
        {"colors": "abc"},
        {"colors": "0"},
        {"colors": "9"},
        {"colors": "2.5"},
        {"colors": "-1"},
        {"palette": "#zzzzzz"},
        {"palette": "#12345"},
        {"palette": "red,#00ff00"},
        {"palette": ",".join(["#000000"] * 9)},
    ],
)
def test_bad_colour_fields_are_400_bad_parameter(client, photo_bytes, fields):
    body = assert_error(upload(client, photo_bytes, **fields), 400, "bad_parameter")
    assert ("colour" in body["detail"].lower()) or ("palette" in body["detail"].lower()), body
