"""service/http.py through an in-process TestClient: route contracts and every error class."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.http import create_app
from service.jobs import JobPool
from service.storage import ResultStore
from tests.service.conftest import MAX_UPLOAD, result_dirs

ERROR_KEYS = {"error", "detail"}


def upload(client, data: bytes, name: str = "photo.jpg", headers=None, **fields):
    files = {"file": (name, data, "application/octet-stream")}
    return client.post("/api/upload", files=files, data=fields, headers=headers)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and body["error"] == code
    assert body["detail"] and "Traceback" not in response.text
    assert response.headers["x-request-id"] and float(response.headers["x-process-time"]) >= 0
    return body


def metric_samples(client) -> dict:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def uploaded(client, photo_bytes):
    """One successful upload, with a path-traversal file name and forwarding headers (trusted on
    Spaces only) that must not matter."""
    before = {p.resolve() for p in result_dirs(client.app.state.runtime.config)}
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "elsewhere.example"}
    response = upload(
        client, photo_bytes, name="../../etc/passwd.jpg", headers=forwarded, template="casual", seed="3"
    )
    return before, response


def test_health_is_fast_json(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["version"]
    assert body["backends"]["cpu"]["available"] is True
    assert set(body["backends"]) == {"cpu", "diffusion"}
    assert body["uptime_s"] >= 0 and body["queue"]["workers"] == 2
    assert float(response.headers["x-process-time"]) < 0.5


def test_upload_contract(client, uploaded, service_config):
    before, response = uploaded
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"id", "template", "style", "backend", "timings_ms", "quality", "face", "artifacts"} <= set(body)
    assert (body["template"], body["style"], body["backend"]) == ("casual", "toon", "cpu")
    assert body["timings_ms"]["total"] > 0 and "export" in body["timings_ms"]
    assert body["face"]["count"] == 1 and 0 <= body["quality"]["score"] <= 100
    assert set(body["artifacts"]) == {
        "stylized", "glb", "stl", "preview", "report", "threemf", "print_preview", "grey_glb"
    }
    assert body["artifacts"]["glb"] == f"http://testserver/api/results/{body['id']}/figurine.glb"
    assert response.headers["x-request-id"] and float(response.headers["x-process-time"]) > 0

    # The client's file name never becomes a path: one new folder, named by the random id.
    after = {p.resolve() for p in result_dirs(service_config)}
    assert [p.name for p in after - before] == [body["id"]]
    assert not any("passwd" in str(p) for p in service_config.data_dir.rglob("*"))


@pytest.mark.parametrize(
    "key, media_type",
    [
        ("glb", "model/gltf-binary"),
        ("stl", "model/stl"),
        ("preview", "image/png"),
        ("stylized", "image/png"),
        ("report", "application/json"),
        ("threemf", "model/3mf"),
        ("print_preview", "image/png"),
        ("grey_glb", "model/gltf-binary"),
    ],
)
def test_artifacts_are_served_with_their_types(client, uploaded, key, media_type):
    body = uploaded[1].json()
    response = client.get(body["artifacts"][key])
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert int(response.headers["content-length"]) == len(response.content) > 0
    if key == "report":
        assert json.loads(response.content)["template"] == "casual"
    if key == "glb":
        assert response.content[:4] == b"glTF"


@pytest.mark.parametrize(
    "path",
    [
        "/api/results/{id}/photo.jpg",  # not a known artifact
        "/api/results/{id}/..%2F..%2Fetc%2Fpasswd",
        "/api/results/..%2F..%2Fetc/report.json",
        "/api/results/AAAAAAAAAAAAAAAAAAAAAA/report.json",  # well-formed, never issued
        "/api/results/short/report.json",
    ],
)
def test_result_lookup_only_serves_known_files_of_known_ids(client, uploaded, path):
    response = client.get(path.format(id=uploaded[1].json()["id"]))
    assert response.status_code == 404
    if response.headers.get("content-type", "").startswith("application/json"):
        assert response.json()["error"] == "not_found"


def test_request_id_is_echoed_when_sane_and_replaced_otherwise(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.get("/health", headers={"X-Request-ID": "bad id\twith\x01junk" * 20}).headers
    assert replaced["x-request-id"] != "bad id" and len(replaced["x-request-id"]) == 32


@pytest.mark.parametrize(
    "fixture, name, status, code",
    [
        ("empty", "empty.jpg", 400, "not_an_image"),
        ("text", "notes.jpg", 400, "not_an_image"),
        ("truncated_jpeg", "cut.jpg", 400, "truncated_image"),
        ("svg_bytes", "drawing.png", 415, "unsupported_format"),
        ("png_bomb", "bomb.png", 413, "image_too_large"),
        ("tiny_png", "tiny.png", 400, "image_too_small"),
        ("cat_jpeg", "cat.jpg", 400, "no_face"),
    ],
)
def test_malformed_photos_get_stable_4xx_codes(client, request, fixture, name, status, code):
    inline = {"empty": b"", "text": b"hello, this is not a photo\n" * 10}
    data = inline[fixture] if fixture in inline else request.getfixturevalue(fixture)
    assert_error(upload(client, data, name=name), status, code)


@pytest.mark.parametrize(
    "fields, status, code",
    [
        ({"template": "dragon"}, 422, "unknown_template"),
        ({"style": "oil"}, 422, "unknown_style"),
        ({"backend": "quantum"}, 422, "unknown_backend"),
        ({"backend": "diffusion"}, 503, "backend_unavailable"),
        ({"seed": "abc"}, 400, "bad_parameter"),
        ({"seed": "-1"}, 400, "bad_parameter"),
        ({"height_mm": "nan"}, 400, "bad_parameter"),
        ({"height_mm": "5000"}, 400, "bad_parameter"),
        ({"colour": "red"}, 400, "bad_parameter"),
    ],
)
def test_bad_options_are_refused_before_any_work(client, photo_bytes, fields, status, code):
    response = upload(client, photo_bytes, **fields)
    assert_error(response, status, code)
    if status == 503:
        assert int(response.headers["retry-after"]) > 0


def test_malformed_requests(client, photo_bytes):
    raw = client.post("/api/upload", content=photo_bytes, headers={"content-type": "image/jpeg"})
    assert_error(raw, 400, "bad_parameter")
    no_file = client.post("/api/upload", data={"template": "default"}, files={"other": ("x", b"1")})
    assert_error(no_file, 400, "bad_parameter")
    cut = b'--XyZ\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc'
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    assert_error(client.post("/api/upload", content=cut, headers=headers), 400, "bad_parameter")
    two = [("file", ("a.jpg", photo_bytes)), ("file", ("b.jpg", photo_bytes))]
    assert_error(client.post("/api/upload", files=two), 400, "bad_parameter")
    assert_error(upload(client, photo_bytes, template="x" * 5000), 400, "bad_parameter")


def test_oversize_bodies_are_refused_early(client):
    big = b"\xff" * (MAX_UPLOAD + 1)
    # Declared too large: refused from the Content-Length header alone.
    assert_error(upload(client, big + b"\0" * 70_000), 413, "image_too_large")
    # The file part alone over the limit, body under the header check.
    assert_error(upload(client, big), 413, "image_too_large")

    # No Content-Length (chunked): the streamed read stops at the cap.
    def chunks():
        yield b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
        for _ in range(MAX_UPLOAD // 65536 + 4):
            yield b"\0" * 65536

    response = client.post("/api/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=B"})
    assert_error(response, 413, "image_too_large")


def test_full_queue_answers_503_busy_with_retry_after(client, photo_bytes, monkeypatch):
    runtime = client.app.state.runtime
    tiny = JobPool(workers=1, queue_size=0)
    gate = threading.Event()
    blocker = tiny.submit(gate.wait, 10)
    monkeypatch.setattr(runtime, "jobs", tiny)
    try:
        response = upload(client, photo_bytes)
        assert_error(response, 503, "busy")
        assert int(response.headers["retry-after"]) >= 1
    finally:
        gate.set()
        blocker.result(5)
        tiny.shutdown()


def test_unexpected_errors_are_500_json_without_traceback(client, photo_bytes, monkeypatch, caplog):
    runtime = client.app.state.runtime

    async def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(runtime, "generate", explode)
    response = upload(client, photo_bytes)
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "internals" not in body["detail"]
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)  # log has it


def test_server_answers_normally_after_bad_input(client, uploaded):
    assert client.get("/health").status_code == 200
    assert client.get(uploaded[1].json()["artifacts"]["report"]).status_code == 200


def test_access_log_is_one_structured_line_without_file_names(client, photo_bytes, caplog):
    caplog.set_level("INFO", logger="toonforge.access")
    upload(client, photo_bytes, name="my-secret-selfie.jpg", template="nope")
    lines = [r.getMessage() for r in caplog.records if r.name == "toonforge.access"]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["route"] == "/api/upload" and entry["status"] == 422 and entry["error"] == "unknown_template"
    assert {"request_id", "duration_ms", "method"} <= set(entry)
    assert "selfie" not in lines[0]


def test_expired_results_are_purged_and_disk_cap_holds(client, photo_bytes, monkeypatch, tmp_path):
    runtime = client.app.state.runtime
    now = [1_000_000.0]
    # A cap of two and a half results keeps two.
    first = upload(client, photo_bytes).json()["id"]
    one_result = sum(f.stat().st_size for f in (runtime.store.root / first).rglob("*") if f.is_file())
    cap = int(2.5 * one_result)
    small = ResultStore(tmp_path / "results", ttl_s=30, max_bytes=cap, clock=lambda: now[0])
    monkeypatch.setattr(runtime, "store", small)
    ids = []
    for _ in range(3):
        response = upload(client, photo_bytes)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
        now[0] += 1
    on_disk = sum(f.stat().st_size for f in small.root.rglob("*") if f.is_file())
    assert on_disk <= cap
    assert sorted(p.name for p in small.root.iterdir()) == sorted(ids[1:])  # oldest evicted
    assert client.get(f"/api/results/{ids[0]}/report.json").status_code == 404

    now[0] += 31  # past the TTL: the background purge (every 0.2 s here) removes the rest
    assert client.get(f"/api/results/{ids[2]}/report.json").status_code == 404
    for _ in range(50):
        if not any(small.root.iterdir()):
            break
        threading.Event().wait(0.1)
    assert not any(small.root.iterdir())


def test_results_left_by_an_earlier_process_expire_at_startup(config):
    """On a Space's persistent volume results outlive the process: the first purge runs at
    startup, so the TTL holds across restarts."""
    results = config.data_dir / "results"
    stale, recent = results / ("A" * 22), results / ("B" * 22)
    for folder in (stale, recent):
        folder.mkdir(parents=True)
        (folder / "figurine.glb").write_bytes(b"glb")
    hour_ago = time.time() - 3601
    os.utime(stale, (hour_ago, hour_ago))
    quiet = replace(config, result_ttl_s=3600, workers=1, worker_processes=False)
    app = create_app(quiet, purge_interval_s=3600)  # no timed purge during this test
    try:
        with TestClient(app):
            for _ in range(50):
                if not stale.exists():
                    break
                time.sleep(0.1)
        assert not stale.exists() and recent.exists()
    finally:
        app.state.runtime.close()


def test_metrics_count_what_happened(client, photo_bytes):
    before = metric_samples(client)
    upload(client, b"", name="empty.jpg")
    upload(client, photo_bytes, template="nope")
    assert upload(client, photo_bytes).status_code == 200
    client.get("/health")
    after = metric_samples(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("toonforge_http_requests_total", route="/api/upload", method="POST", status="400") == 1
    assert delta("toonforge_http_requests_total", route="/api/upload", method="POST", status="422") == 1
    assert delta("toonforge_http_requests_total", route="/health", method="GET", status="200") == 1
    assert delta("toonforge_errors_total", code="not_an_image", interface="http") == 1
    assert delta("toonforge_errors_total", code="unknown_template", interface="http") == 1
    assert delta("toonforge_stage_duration_seconds_count", stage="total") == 1
    assert delta("toonforge_jobs_total", interface="http", outcome="ok") == 1
    assert after[("toonforge_http_request_duration_seconds_count", (("route", "/api/upload"),))] >= 2
    assert ("toonforge_http_requests_in_flight", ()) in after  # the /metrics call itself is in flight
    assert after[("toonforge_queue_depth", ())] == 0
    # The client's lifespan started the workers; none has died.
    assert after[("toonforge_worker_processes", ())] == 2
    assert after[("toonforge_worker_restarts", ())] == 0
