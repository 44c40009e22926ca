"""deploy/prometheus.yml and deploy/grafana/toonforge.json for real: Debian's ``prometheus``
binary scrapes two running front ends (one in local process mode, one in Ray mode on a
one-node loopback Ray cluster) and Ray's own metrics, and every query of the dashboard must
return data through Prometheus' HTTP API. There is no Grafana server here, so the dashboard
JSON itself is checked for its structure.

Both front ends run at once against one Prometheus, so that the local-worker panels and the
Ray replica panels are checked in one start-up (about a minute on this 2-core machine).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from service.metrics import Metrics
from tests.conftest import ROOT
from toonforge_testing.launch import HOST, LaunchedApp, free_port, launched_app, log_tail, scratch_env

PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "toonforge.json"
PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"
LOG_DIR = ROOT / "test-artifacts" / "prometheus"
ROWS = ["Traffic", "Errors", "Queue", "Workers (local mode)", "Ray cluster (Ray mode)"]
# What Grafana puts in for its built-in variables. A minute is long enough that the test's
# uploads stay inside the window while it checks every query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}
METRIC_NAME = re.compile(r"\b((?:toonforge|ray)_[a-z_]+)\b")
READY_TIMEOUT_S = 150
DATA_TIMEOUT_S = 60  # Ray's agent exports replica metrics every few seconds
SCRAPE_INTERVAL = "1s"
# Counters the test's first traffic creates: each must have been scraped once before the
# second traffic, or a rate over them could see no rise.
FIRST_SAMPLES = [
    'count(toonforge_errors_total{code="truncated_image"}) >= 2',
    "ray_serve_deployment_processing_latency_ms_count",
]
# Traffic and errors really happened in the test: these panels must show more than zeros.
MUST_BE_POSITIVE = {"Request rate per route", "Latency per route, p50 and p95",
                    "Pipeline stage latency, p50 and p95", "Errors by code", "Error responses by status",
                    "Jobs by outcome", "Worker processes alive", "Cluster ready", "Jobs per node",
                    "Serve replicas alive", "Serve replica starts", "Serve processing latency p95"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries(dash: dict) -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` of every target of every panel, Grafana's variables put in."""
    found = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            found.append((panel["title"], expr))
    return found


# -- the dashboard's structure -------------------------------------------------------------------
def test_the_dashboard_is_a_well_formed_grafana_dashboard():
    dash = dashboard()
    assert dash["uid"] == "toonforge" and dash["title"] and isinstance(dash["schemaVersion"], int)
    (variable,) = dash["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    panels = dash["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    assert [p["title"] for p in panels if p["type"] == "row"] == ROWS
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert all(t["expr"].strip() and t["datasource"] == panel["datasource"] for t in targets)
    # Every panel sits under a row, in reading order.
    assert panels[0]["type"] == "row"
    assert [p["gridPos"]["y"] for p in panels] == sorted(p["gridPos"]["y"] for p in panels)


def test_the_dashboard_uses_only_metrics_the_app_exports():
    exported = set()
    for metric in Metrics("test").registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(metric.type, [""])
        exported |= {metric.name + suffix for suffix in suffixes}
    used = {name for _title, expr in queries(dashboard()) for name in METRIC_NAME.findall(expr)}
    ours = {name for name in used if name.startswith("toonforge_")}
    assert ours and ours <= exported, ours - exported
    # Ray's own (Serve's replicas) are checked against a real Ray in the test below.
    assert used - ours == {
        "ray_serve_deployment_replica_healthy",
        "ray_serve_deployment_replica_starts_total",
        "ray_serve_deployment_processing_latency_ms_bucket",
    }


# -- the config and queries, through Prometheus itself ---------------------------------------------
def test_promtool_accepts_the_config_and_every_dashboard_query(tmp_path: Path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("Debian's prometheus package is not installed (tools/setup.sh --dev installs it)")
    check = subprocess.run([promtool, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # promtool parses PromQL in rule files: every dashboard query as a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": expr} for index, (_title, expr) in enumerate(queries(dashboard()))
    ]}]}
    rules_path = tmp_path / "dashboard_rules.yml"
    rules_path.write_text(yaml.safe_dump(rules))
    check = subprocess.run([promtool, "check", "rules", str(rules_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@contextlib.contextmanager
def prometheus(workdir: Path, front_ends: list[str], ray_targets: list[str]) -> Iterator[str]:
    """Debian's ``prometheus`` on a loopback port with deploy/prometheus.yml, its targets swapped
    for ours and a 1 s scrape interval; its own storage in ``workdir``. Yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus package is not installed (tools/setup.sh --dev installs it)")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL)
    targets = {"toonforge": front_ends, "ray": ray_targets}
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://{HOST}:{port}"
    log_path = LOG_DIR / "prometheus.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address={HOST}:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{url}/-/ready"):
            assert process.poll() is None and time.monotonic() < deadline, log_tail(log_path)
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, trust_env=False, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(app: LaunchedApp) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=app.url, trust_env=False, timeout=10) as client:
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, log_tail(app.log_path)
            time.sleep(0.25)


def upload(url: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{url}/api/upload", files={"file": ("photo.jpg", data, "image/jpeg")},
                      trust_env=False, timeout=120)


def instant(prometheus_url: str, expr: str) -> list[float]:
    """The values of an instant query now (``[]`` when it returns no series)."""
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, trust_env=False, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return [float(series["value"][1]) for series in body["data"]["result"]]


def test_every_dashboard_query_returns_data_from_a_real_prometheus(tmp_path: Path):
    pytest.importorskip("ray", reason="the Ray panels need requirements-ray.txt (in requirements-dev.txt)")
    from toonforge_testing.ray_cluster import LOOPBACK, RAY_QUIET, local_ray_cluster

    photo = PHOTO.read_bytes()
    ray_metrics_port = free_port(LOOPBACK)
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(
            local_ray_cluster(tmp_path / "cluster", node_cpus=(1,), metrics_export_port=ray_metrics_port)
        )
        ray_app = stack.enter_context(launched_app(
            env=scratch_env(tmp_path / "ray-front-end", **RAY_QUIET, TOONFORGE_RAY_ADDRESS=cluster.address,
                            TOONFORGE_RAY_MIN_REPLICAS="1", TOONFORGE_RAY_MAX_REPLICAS="1"),
            log_path=LOG_DIR / "app-ray.log",
        ))
        local_app = stack.enter_context(launched_app(
            env=scratch_env(tmp_path / "local-front-end", TOONFORGE_WORKERS="1"),
            log_path=LOG_DIR / "app-local.log",
        ))
        apps = [local_app, ray_app]
        prom = stack.enter_context(prometheus(
            tmp_path / "prometheus",
            front_ends=[app.url.removeprefix("http://") for app in apps],
            ray_targets=[f"{LOOPBACK}:{ray_metrics_port}"],
        ))
        for app in apps:
            wait_ready(app)
        # Real traffic on both: uploads, and bad ones, before and after Prometheus has sampled
        # the counters, so that they rise between samples (a rate needs two). Ray's agent exports
        # on its own clock, so a fixed pause could end before it had sampled the Serve histogram.
        for app in apps:
            assert upload(app.url, photo).status_code == 200
            assert upload(app.url, photo[: len(photo) // 2]).json()["error"] == "truncated_image"
        for series in FIRST_SAMPLES:
            wait_for_series(prom, series)
        for app in apps:
            assert upload(app.url, photo).status_code == 200
            assert upload(app.url, photo[: len(photo) // 2]).status_code == 400

        targets = httpx.get(f"{prom}/api/v1/targets", trust_env=False, timeout=10).json()["data"]["activeTargets"]
        assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
            ("ray", "up"), ("toonforge", "up"), ("toonforge", "up")
        ], [(t["scrapeUrl"], t["lastError"]) for t in targets]

        missing = check_queries(prom)
        assert missing == [], "\n".join(missing)


def wait_for_series(prom: str, expr: str) -> None:
    """Poll until Prometheus has a sample of ``expr`` (its first scrape of the series)."""
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while not instant(prom, expr):
        assert time.monotonic() < deadline, f"Prometheus never sampled {expr}"
        time.sleep(0.5)


def check_queries(prom: str) -> list[str]:
    """Poll until every dashboard query returns a finite value (a positive one where the test
    made traffic) or the time is up; the queries still failing, with what they returned."""
    pending = queries(dashboard())
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while True:
        failing = []
        for title, expr in pending:
            values = [v for v in instant(prom, expr) if math.isfinite(v)]
            good = any(v > 0 for v in values) if title in MUST_BE_POSITIVE else bool(values)
            if not good:
                failing.append((title, expr))
        if not failing or time.monotonic() > deadline:
            return [f"{title}: {expr} -> {instant(prom, expr)}" for title, expr in failing]
        pending = failing
        time.sleep(1)
