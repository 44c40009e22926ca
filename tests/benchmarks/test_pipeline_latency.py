"""The in-process pipeline benchmark runs end to end and writes its documented JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_runs_at_one_size_write_json(tmp_path):
    out = tmp_path / "pipeline.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/pipeline_latency.py", "--runs", "2", "--warmup", "1",
         "--sizes", "512", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "512² p95" in proc.stdout and "Machine:" in proc.stdout
    assert "'torch' in sys.modules: False" in proc.stdout

    report = json.loads(out.read_text())
    keys = {"benchmark", "date", "machine", "load_average", "settings", "torch_imported",
            "diffusers_imported", "sizes"}
    assert keys <= set(report)
    assert report["torch_imported"] is False and report["diffusers_imported"] is False
    assert {"cpu_model", "logical_cores", "physical_cores"} <= set(report["machine"])
    assert report["settings"]["runs"] == 2 and report["settings"]["backend"] == "cpu"
    assert list(report["sizes"]) == ["512"]
    size = report["sizes"]["512"]
    assert size["working_size"] == [512, 512] and size["runs"] == 2
    assert size["target_p95_ms"] == 200.0 and isinstance(size["meets_target"], bool)
    stages = size["stages"]
    for key in ("validate", "landmarks", "stylize", "fusion", "export", "total"):
        stat = stages[key]
        assert stat["n"] == 2 and 0 < stat["p50"] <= stat["p95"] <= stat["max"]
    assert any(key.startswith("landmarks.") for key in stages)  # sub-stages are reported too
    parts = sum(stages[k]["p50"] for k in ("validate", "landmarks", "stylize", "fusion", "export"))
    assert parts <= stages["total"]["max"] * 1.05
