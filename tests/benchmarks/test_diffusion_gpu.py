"""The GPU benchmark script runs end to end on CPU with the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_cpu_run_writes_json(tmp_path):
    out = tmp_path / "diffusion_gpu.json"
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/diffusion_gpu.py",
            "--tiny",
            "--device",
            "cpu",
            "--runs",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # tiny kernels: threads only add spin-waiting
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "p50 ms" in proc.stdout
    report = json.loads(out.read_text())
    assert {
        "benchmark",
        "tiny",
        "device",
        "device_name",
        "dtype",
        "torch",
        "diffusers",
        "build_s",
        "results",
    } <= set(report)
    assert report["tiny"] is True and report["device"] == "cpu"
    rows = report["results"]
    assert {(r["size"], r["steps"]) for r in rows} == {(128, 4), (128, 30), (64, 4), (64, 30)}
    for row in rows:
        assert {"mode", "unet_steps", "runs", "p50_ms", "p95_ms", "mean_ms", "peak_mem_mb"} <= set(
            row
        )
        assert row["runs"] == 1 and 0 < row["p50_ms"] <= row["p95_ms"]
        assert row["peak_mem_mb"] is None  # CPU run: no GPU memory to report
