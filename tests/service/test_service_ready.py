"""/ready in local mode: 503 until the pipeline is warm, then 200; /health tells the mode."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from pipeline.config import Config
from service.http import create_app
from service.runtime import Runtime

WARM_TIMEOUT_S = 90  # a warm-up run on a busy shared 2-core machine


@pytest.mark.parametrize(("worker_processes", "mode"), [(True, "process"), (False, "thread")])
def test_ready_waits_for_the_warm_up_then_stays_200(tmp_path, worker_processes: bool, mode: str):
    config = replace(Config(), data_dir=tmp_path, workers=1, worker_processes=worker_processes)
    runtime = Runtime(config)
    try:
        assert not runtime.ready  # nothing started yet
        with TestClient(create_app(config, runtime=runtime)) as client:  # lifespan starts it
            first = client.get("/ready")
            assert first.status_code == 503 and first.json() == {"ready": False, "mode": mode}
            assert first.headers["Retry-After"] == "1"
            assert client.get("/health").json()["queue"]["mode"] == mode  # liveness meanwhile
            deadline = time.monotonic() + WARM_TIMEOUT_S
            while (ready := client.get("/ready")).status_code == 503:
                assert time.monotonic() < deadline, "the pipeline never got warm"
                time.sleep(0.1)
            assert ready.status_code == 200 and ready.json() == {"ready": True, "mode": mode}
    finally:
        runtime.close()
