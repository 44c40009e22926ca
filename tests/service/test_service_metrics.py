"""service/metrics.py: private registries and the exported families."""

from prometheus_client.parser import text_string_to_metric_families

from service.jobs import JobPool
from service.metrics import Metrics
from service.storage import ResultStore


def _samples(metrics: Metrics) -> dict:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_registries_are_independent(tmp_path):
    a, b = Metrics("1"), Metrics("1")
    a.observe_request("/health", "GET", 200, 0.001)
    key = ("toonforge_http_requests_total", (("method", "GET"), ("route", "/health"), ("status", "200")))
    assert _samples(a)[key] == 1
    assert key not in _samples(b)


def test_stages_errors_and_live_gauges(tmp_path):
    m = Metrics("9.9")
    pool = JobPool(1, 3)
    store = ResultStore(tmp_path, ttl_s=60, max_bytes=100)
    m.bind(pool, store)
    m.observe_stages({"validate": 5.0, "landmarks.detection": 3.0, "total": 1500.0})
    m.count_error("no_face", "http")
    s = _samples(m)
    assert s[("toonforge_stage_duration_seconds_count", (("stage", "validate"),))] == 1
    assert s[("toonforge_stage_duration_seconds_sum", (("stage", "total"),))] == 1.5
    assert not any(k[1] == (("stage", "landmarks.detection"),) for k in s)  # bounded label set
    assert s[("toonforge_errors_total", (("code", "no_face"), ("interface", "http")))] == 1
    assert s[("toonforge_queue_depth", ())] == 0
    assert s[("toonforge_build_info", (("version", "9.9"),))] == 1
    pool.shutdown()
