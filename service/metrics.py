"""Prometheus metrics on a per-app registry (so that tests can build several apps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import generate_latest

from pipeline import STAGES

if TYPE_CHECKING:
    from service.jobs import JobPool
    from service.storage import ResultStore
    from service.worker import WorkerProcesses

# HTTP latencies span 1 ms (/health) to tens of seconds (an upload waiting in a full queue).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Only the top-level stages get histograms: sub-stage keys are backend-specific and would
# make the label set open-ended. They stay in report.json and the request log.
STAGE_LABELS = (*STAGES, "total")


class Metrics:
    """Every metric the service exports, registered on one private registry."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "toonforge_http_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "toonforge_http_request_duration_seconds",
            "Request duration (until the response is sent), per route.",
            ["route"], buckets=HTTP_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "toonforge_http_requests_in_flight", "HTTP requests being handled now.", registry=r
        )
        self.errors = Counter(
            "toonforge_errors", "Errors returned to users, by stable code and interface.",
            ["code", "interface"], registry=r,
        )
        self.stage = Histogram(
            "toonforge_stage_duration_seconds", "Pipeline stage durations (from timings_ms).",
            ["stage"], buckets=STAGE_BUCKETS, registry=r,
        )
        self.jobs = Counter(
            "toonforge_jobs", "Pipeline jobs by interface and outcome.",
            ["interface", "outcome"], registry=r,
        )
        self.queue_depth = Gauge(
            "toonforge_queue_depth", "Jobs admitted but waiting for a worker.", registry=r
        )
        self.jobs_running = Gauge("toonforge_jobs_running", "Jobs running on a worker.", registry=r)
        self.results_stored = Gauge(
            "toonforge_results_stored", "Finished results kept on disk.", registry=r
        )
        self.results_bytes = Gauge(
            "toonforge_results_bytes", "Disk bytes used by finished results.", registry=r
        )
        self.workers_alive = Gauge(
            "toonforge_worker_processes", "Pipeline worker processes alive now.", registry=r
        )
        self.worker_restarts = Gauge(
            "toonforge_worker_restarts", "Worker processes replaced after dying, since start.", registry=r
        )
        # Ray mode only (zero otherwise): which node ran each job, replica deaths retried.
        self.cluster_jobs = Counter(
            "toonforge_cluster_jobs", "Jobs answered by the Ray cluster, by node id.", ["node"], registry=r
        )
        self.cluster_retries = Counter(
            "toonforge_cluster_retries", "Jobs sent again after a replica failed mid-job.", registry=r
        )
        self.cluster_ready = Gauge(
            "toonforge_cluster_ready", "1 while the Ray deployments are up and reachable.", registry=r
        )
        Info("toonforge_build", "Toonforge version.", registry=r).info({"version": version})

    def bind(self, jobs: "JobPool", store: "ResultStore", processes: "WorkerProcesses | None" = None) -> None:
        """Read the pool, store and worker gauges at scrape time, so they are never stale."""
        self.queue_depth.set_function(lambda: jobs.waiting)
        self.jobs_running.set_function(lambda: jobs.running)
        self.results_stored.set_function(lambda: store.count)
        self.results_bytes.set_function(lambda: store.total_bytes)
        if processes is not None:
            self.workers_alive.set_function(lambda: len(processes.pids))
            self.worker_restarts.set_function(lambda: processes.restarts)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_stages(self, timings_ms: Mapping[str, float]) -> None:
        for stage in STAGE_LABELS:
            if stage in timings_ms:
                self.stage.labels(stage).observe(timings_ms[stage] / 1000.0)

    def count_error(self, code: str, interface: str) -> None:
        self.errors.labels(code, interface).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
