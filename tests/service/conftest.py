"""Service fixtures: one shared runtime (so the pipeline warms up once), an in-process
TestClient app for route contracts, and a real uvicorn server (UI mounted) where concurrency
and the Gradio client matter. Malformed uploads are built here, in code."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.config import Config
from service.http import create_app
from service.runtime import Runtime
from tests.conftest import ROOT, encode
from toonforge_testing.launch import free_port

MAX_UPLOAD = 2 * 1024 * 1024  # small, so that oversize bodies are cheap to build
PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"


@pytest.fixture(scope="session")
def service_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return replace(
        Config(),
        data_dir=tmp_path_factory.mktemp("service-data"),
        max_upload_bytes=MAX_UPLOAD,
        workers=2,
        queue_size=32,
    )


@pytest.fixture(scope="session")
def runtime(service_config: Config) -> Iterator[Runtime]:
    rt = Runtime(service_config)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def client(service_config: Config, runtime: Runtime) -> Iterator[TestClient]:
    """The API alone, in process; purges every 0.2 s so that TTL tests are quick."""
    app = create_app(service_config, runtime=runtime, purge_interval_s=0.2)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def server(service_config: Config, runtime: Runtime) -> Iterator[str]:
    """A real uvicorn serving API + Gradio UI on one port, as ``python app.py`` does."""
    from app import build_demo

    demo = build_demo(runtime)
    app = create_app(service_config, demo, runtime=runtime)
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_config=None)
    )
    thread = threading.Thread(target=srv.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="session")
def photo_bytes() -> bytes:
    return PHOTO.read_bytes()


@pytest.fixture(scope="session")
def truncated_jpeg(photo_bytes: bytes) -> bytes:
    return photo_bytes[: len(photo_bytes) // 2]


@pytest.fixture(scope="session")
def svg_bytes() -> bytes:
    return b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'


@pytest.fixture(scope="session")
def png_bomb() -> bytes:
    """A 40000 x 40000 PNG header over a tiny image: decoding it would need 4.8 GB."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")  # length(4) 'IHDR' width(4) height(4) ... crc(4)
    struct.pack_into(">II", data, ihdr + 4, 40000, 40000)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    struct.pack_into(">I", data, ihdr + 17, crc)
    return bytes(data)


@pytest.fixture(scope="session")
def tiny_png() -> bytes:
    return encode(np.full((40, 40, 3), 128, np.uint8), "PNG")


@pytest.fixture(scope="session")
def cat_jpeg(no_face: np.ndarray) -> bytes:
    return encode(no_face, "JPEG", quality=90)


def result_dirs(config: Config) -> list[Path]:
    root = config.data_dir / "results"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
