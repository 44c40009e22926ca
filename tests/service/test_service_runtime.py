"""service/runtime.py: what the UI and the API share, with the pipeline stubbed out."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest

import service.runtime as runtime_module
from pipeline.errors import NoFaceError
from service.http import create_app
from service.jobs import QueueFullError
from service.runtime import Runtime


@pytest.fixture
def rt(config):
    # in-thread, so that the monkeypatched pipeline below is the one that runs
    r = Runtime(replace(config, workers=1, queue_size=1, worker_processes=False))
    yield r
    r.close()


def fake_run(gate: threading.Event | None = None, fail: Exception | None = None):
    def run(image, options, *, out_dir, config, progress=None):
        out_dir.mkdir(parents=True)
        (out_dir / "figurine.glb").write_bytes(b"glb")
        if gate is not None:
            assert gate.wait(10)
        if fail is not None:
            raise fail
        return type("Result", (), {"timings_ms": {"total": 12.0, "validate": 1.0}})()

    return run


def test_a_finished_job_is_stored_and_measured(rt, monkeypatch):
    monkeypatch.setattr(runtime_module, "run", fake_run())
    done = rt.generate_sync(b"photo", runtime_module.Options(), interface="ui", owner="s1")
    assert rt.store.file(done.id, "figurine.glb").read_bytes() == b"glb"
    assert rt.metrics.jobs.labels("ui", "ok")._value.get() == 1
    assert rt.store.forget_owner("s1") == 1 and rt.store.count == 0


def test_a_failed_job_leaves_no_folder(rt, monkeypatch):
    monkeypatch.setattr(runtime_module, "run", fake_run(fail=NoFaceError("no face")))
    with pytest.raises(NoFaceError):
        asyncio.run(rt.generate(b"photo", runtime_module.Options(), interface="http"))
    assert list(rt.store.root.iterdir()) == []
    assert rt.metrics.jobs.labels("http", "no_face")._value.get() == 1


def test_full_pool_refuses_and_cancelled_jobs_free_their_reservation(rt, monkeypatch):
    gate = threading.Event()
    monkeypatch.setattr(runtime_module, "run", fake_run(gate=gate))
    options = runtime_module.Options()
    running_id, running = rt._submit(b"a", options, None, None, "http")
    queued_id, queued = rt._submit(b"b", options, None, None, "http")
    with pytest.raises(QueueFullError):
        rt.generate_sync(b"c", options, interface="ui")
    assert queued.cancel()
    assert not rt.store.path(queued_id).exists()
    gate.set()
    running.result(10)
    assert rt.store.file(running_id, "figurine.glb") is not None
    assert rt.store.count == 1  # the refused and the cancelled job left nothing behind


def test_create_app_takes_the_runtime_explicitly_and_configs_must_match(rt, config):
    with pytest.raises(ValueError):
        create_app(replace(config, workers=3), runtime=rt)
    # A UI without its runtime would not share the pool and store with the API.
    with pytest.raises(ValueError, match="runtime"):
        create_app(rt.config, object())
