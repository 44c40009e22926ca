"""benchmarks/load_test.py launches the real app (worker processes included), loads it and
reports throughput, latency, errors, /health under load, memory and CPU per upload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_test(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``benchmarks/load_test.py`` run as a user runs it, and the JSON report it wrote."""
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/load_test.py", *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_a_small_load_test_reports_every_figure(tmp_path):
    proc, report = _load_test(
        tmp_path, "--requests", "8", "--concurrency", "4", "--single", "4", "--warmup", "2", "--health-samples", "10"
    )
    single, concurrent = report["single_client"], report["concurrent"]
    assert (single["ok"], single["errors"]) == (4, 0)
    assert (concurrent["ok"], concurrent["errors"]) == (8, 0)
    latency = concurrent["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] < 120_000
    assert report["throughput_ratio_vs_1_client"] > 0
    assert report["health_ms"]["busy_samples"] > 0 and report["health_ms"]["idle_p50"] > 0
    # The server's RSS counts its worker processes; workers did the pipeline's CPU work.
    assert report["peak_server_rss_mb"] > 300
    cpu = report["cpu_ms_per_upload"]["concurrent"]
    assert cpu["workers"] > cpu["server"] > 0
    assert "Toonforge load test" in proc.stdout and "ratio" in proc.stdout


def test_ray_runs_the_same_load_in_both_modes_side_by_side(tmp_path):
    pytest.importorskip("ray", reason="--ray needs requirements-ray.txt (in requirements-dev.txt)")
    proc, report = _load_test(
        tmp_path, "--ray", "--workers", "1", "--requests", "4", "--concurrency", "2", "--single", "2",
        "--warmup", "1", "--health-samples", "5",
    )
    local, ray = report["local"], report["ray"]
    assert (local["mode"], ray["mode"]) == ("process", "ray")
    for run in (local, ray):
        assert (run["concurrent"]["ok"], run["concurrent"]["errors"]) == (4, 0)
        assert (run["single_client"]["ok"], run["single_client"]["errors"]) == (2, 0)
        assert 0 < run["single_client"]["http_overhead_ms_p50"] < run["single_client"]["latency_ms"]["p50"]
    # Ray mode: the replicas did the pipeline's work, and Ray's own processes are accounted for.
    cpu = ray["cpu_ms_per_upload"]["concurrent"]
    assert cpu["workers"] > cpu["server"] > 0
    assert cpu["ray_gcs"] > 0 and cpu["ray_raylet"] > 0
    assert "ray_gcs" not in local["cpu_ms_per_upload"]["concurrent"]
    comparison = report["comparison"]
    assert comparison["throughput_ratio_ray_vs_local"] > 0
    assert comparison["errors"] == {"local": 0, "ray": 0}
    assert "local worker processes vs Ray Serve" in proc.stdout and "Ray vs local throughput" in proc.stdout


def test_ray_refuses_a_url():
    proc = subprocess.run(
        [sys.executable, "benchmarks/load_test.py", "--ray", "--url", "http://127.0.0.1:1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "takes no --url" in proc.stderr
