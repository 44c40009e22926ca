"""The whole pipeline with ``backend=diffusion`` on the tiny SDXL model, through the CLI."""

import json
import os
import subprocess
import sys

import trimesh

from tests.conftest import ROOT, encode


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )


def test_cli_makes_a_figurine_with_the_diffusion_backend(astronaut, tiny_diffusion_env, tmp_path):
    photo = tmp_path / "me.jpg"
    photo.write_bytes(encode(astronaut, "JPEG"))
    proc = _cli([str(photo), "--backend", "diffusion", "--style", "comic", "--template", "superhero",
                 "--out", str(tmp_path / "out")], tiny_diffusion_env)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out" / "me"
    report = json.loads((out / "report.json").read_text())
    assert report["backend"] == "diffusion" and report["style"] == "comic"
    assert report["timings_ms"]["stylize"] > 0
    assert trimesh.load(out / "figurine.stl").is_watertight


def test_cli_without_weights_exits_2_with_a_clear_message(astronaut, tmp_path):
    photo = tmp_path / "me.jpg"
    photo.write_bytes(encode(astronaut, "JPEG"))
    env = {"TOONFORGE_DIFFUSION_MODEL": str(tmp_path / "missing-model")}
    proc = _cli([str(photo), "--backend", "diffusion", "--out", str(tmp_path / "out")], env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:") and "TOONFORGE_DIFFUSION_MODEL" in proc.stderr
