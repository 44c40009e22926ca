"""benchmarks/load_test.py launches the real app (worker processes included), loads it and
reports throughput, latency, errors, /health under load, memory and CPU per upload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_load_test_reports_every_figure(tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/load_test.py", "--requests", "8", "--concurrency", "4",
         "--single", "4", "--warmup", "2", "--health-samples", "10", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
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
