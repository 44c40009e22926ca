"""The front end's side of Ray mode without a cluster: what goes on the wire and how a
replica's answer lands in the result store."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray", reason="Ray mode needs requirements-ray.txt (in requirements-dev.txt)")

from pipeline import Options, run  # noqa: E402
from service.ray_backend import ReplicaFailedError, _store, image_bytes  # noqa: E402
from service.ray_deployments import RemoteOutcome  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"


def test_photos_travel_as_bytes_whatever_form_they_came_in(tmp_path: Path):
    data = PHOTO.read_bytes()
    assert image_bytes(data) == data and image_bytes(bytearray(data)) == data
    # A path (the UI's upload) is read here: it means nothing on another node.
    assert image_bytes(str(PHOTO)) == data and image_bytes(PHOTO) == data
    pixels = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    for image in (pixels, Image.fromarray(pixels)):
        decoded = np.asarray(Image.open(io.BytesIO(image_bytes(image))))
        assert np.array_equal(decoded, pixels)  # lossless


@pytest.fixture(scope="module")
def replica_outcome(tmp_path_factory: pytest.TempPathFactory) -> RemoteOutcome:
    """What a replica answers, made as a replica makes it: a real run in a scratch folder,
    the files read back as bytes, the folder gone."""
    scratch = tmp_path_factory.mktemp("replica") / "result"
    result = run(PHOTO.read_bytes(), Options(), out_dir=scratch)
    files = {p.name: p.read_bytes() for p in scratch.iterdir() if p.is_file()}
    for p in scratch.iterdir():
        p.unlink()
    scratch.rmdir()
    return RemoteOutcome("node", "replica", 1, result=result, files=files)


def test_a_replicas_files_land_in_our_store_and_the_result_points_there(
    replica_outcome: RemoteOutcome, tmp_path: Path
):
    out_dir = tmp_path / "results" / "some-id"
    result = _store(replica_outcome, out_dir)
    assert result.out_dir == out_dir
    for path in (result.glb_path, result.stl_path, result.preview_path, result.stylized_path, result.report_path):
        assert path.parent == out_dir and path.read_bytes() == replica_outcome.files[path.name]
    assert result.glb_path.read_bytes()[:4] == b"glTF"
    assert result.stylized.shape[2] == 3  # the cartoon reads back from our copy


def test_a_file_name_that_is_a_path_is_refused(replica_outcome: RemoteOutcome, tmp_path: Path):
    sneaky = RemoteOutcome(
        "node", "replica", 1, result=replica_outcome.result, files={"../escape.txt": b"x"}
    )
    with pytest.raises(ReplicaFailedError, match="escape"):
        _store(sneaky, tmp_path / "results" / "id")
    assert not (tmp_path / "results" / "escape.txt").exists()
