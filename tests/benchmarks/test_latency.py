"""benchmarks/latency.py --quick launches the real app, measures it and writes JSON + markdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("validate", "landmarks", "stylize", "fusion", "export")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("latency")
    proc = subprocess.run(
        [sys.executable, "benchmarks/latency.py", "--quick",
         "--json", str(out / "latest.json"), "--markdown", str(out / "latency.md"),
         "--pipeline-json", str(out / "absent.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "latest.json").read_text()), (out / "latency.md").read_text(), proc.stdout


def test_json_has_every_table_with_sane_values(quick_run):
    report, _, _ = quick_run
    assert {"benchmark", "date", "machine", "settings", "seed_placeholders", "api", "end_to_end",
            "stylize", "fusion", "resources", "concurrency"} <= set(report)
    assert report["settings"]["quick"] is True and report["settings"]["launched"] is True

    health = report["api"]["health"]
    assert health["n"] == 20 and 0 < health["p50"] <= health["p95"] <= health["p99"] < 2000
    assert report["api"]["upload_512"]["n"] == 2

    assert list(report["end_to_end"]) == ["512", "768", "1024"]
    for row in report["end_to_end"].values():
        assert row["runs"] == 2
        # client >= server >= pipeline total for every request, so these are never negative
        assert row["upload"]["min"] >= 0 and row["overhead"]["min"] >= 0 and row["server_extra"]["min"] >= 0
        assert row["overhead"]["min"] >= row["upload"]["min"]
        assert row["client"]["p50"] >= row["pipeline_total"]["min"]
        for stage in STAGES:
            assert 0 < row["stages"][stage]["p50"] < row["pipeline_total"]["max"]

    stylize = report["stylize"]
    assert set(stylize) == {"cpu", "diffusion"}
    assert stylize["cpu"]["available"] is True and list(stylize["cpu"]["sizes"]) == ["512", "768", "1024"]
    if not stylize["diffusion"]["available"]:
        assert stylize["diffusion"]["reason"] and stylize["diffusion"]["sizes"] == {}
    assert list(report["fusion"]["templates"]) == ["default", "superhero", "casual"]
    assert all(v["p50"] > 0 for v in report["fusion"]["templates"].values())

    res = report["resources"]
    assert res["measured"] is True
    assert 50 < res["idle_fresh"]["rss_mb"] <= res["busy_1024"]["rss_peak_mb"] < 16000
    assert res["busy_1024"]["cpu_percent"] > res["idle_warm"]["cpu_percent"] >= 0

    conc = report["concurrency"]
    assert conc["clients"] == 10 and conc["requests"] == 10
    assert conc["ok"] + sum(v for k, v in conc["statuses"].items() if k != "200") == 10
    assert conc["throughput_rps"] > 0


def test_markdown_sets_measures_beside_the_seed(quick_run):
    report, text, stdout = quick_run
    assert text in stdout
    for heading in ("## API", "## End to end per size", "## Stylization per size and backend",
                    "## Fusion per template", "## Resources", "## Concurrency", "## Definitions"):
        assert heading in text
    for seed in ("1,198", "1,548", "2,087", "1.8", "87.5"):
        assert seed in text
    assert report["machine"]["cpu_model"] in text and report["date"] in text
    assert "In-process pipeline stages" not in text  # --pipeline-json pointed at no file
