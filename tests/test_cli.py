import json
import subprocess
import sys

import pytest
import trimesh

from tests.conftest import ROOT, encode


def _cli(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def test_batch_with_one_bad_photo(astronaut, tmp_path):
    good = tmp_path / "me.jpg"
    good.write_bytes(encode(astronaut, "JPEG"))
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    out = tmp_path / "out"
    proc = _cli(str(good), str(bad), "--out", str(out), "--template", "casual", "--height-mm", "80")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "notes.png" in error_lines[0] and "not an image" in error_lines[0]
    files = {p.name for p in (out / "me").iterdir()}
    assert files == {"figurine.glb", "figurine.stl", "figurine_grey.glb", "figurine.3mf", "preview.png",
                     "print_preview.png", "stylized.png", "report.json"}
    stl = trimesh.load(out / "me" / "figurine.stl")
    assert stl.is_watertight and abs(stl.extents[2] - 80) < 0.1
    assert not (out / "notes").exists() or not any((out / "notes").iterdir())


def test_success_exit_zero(astronaut, tmp_path):
    photo = tmp_path / "a.png"
    photo.write_bytes(encode(astronaut, "PNG"))
    proc = _cli(str(photo), "--out", str(tmp_path / "o"), "--style", "comic", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert "quality" in proc.stdout


def test_bad_option_exits_2_with_one_line(tmp_path):
    proc = _cli("whatever.jpg", "--out", str(tmp_path), "--style", "oil")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Unknown style" in proc.stderr


def test_colors_and_palette(astronaut, tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(encode(astronaut, "JPEG"))
    proc = _cli(str(photo), "--out", str(tmp_path / "o"), "--colors", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "o" / "a" / "report.json").read_text())
    assert len(report["print"]["colors"]) == 2
    proc = _cli(str(photo), "--out", str(tmp_path / "p"), "--palette", "#FFFFFF,#000000,#3050c0")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "p" / "a" / "report.json").read_text())
    assert [c["hex"] for c in report["print"]["colors"]] == ["#ffffff", "#000000", "#3050c0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--colors", "9"), "Filament colours must be from 1 to 8; got 9"),
        (("--colors", "0"), "Filament colours must be from 1 to 8; got 0"),
        (("--colors", "four"), "Filament colours must be a whole number"),
        (("--palette", "#ffffff,#12zz45"), "'#12zz45'"),
    ],
)
def test_bad_colour_options_exit_2_with_one_line(tmp_path, args, message):
    proc = _cli("whatever.jpg", "--out", str(tmp_path), *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr, proc.stderr
    assert not any(tmp_path.iterdir())


def test_missing_file_is_a_user_error(tmp_path):
    proc = _cli(str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Cannot read the file" in proc.stderr
