"""Load test for the Toonforge HTTP API (loopback only).

Starts ``python app.py --port <free>`` itself, or targets a running server with ``--url``, and
reports throughput, latency percentiles, errors, peak server RSS, /health latency idle and
while busy, HTTP overhead (client latency - timings_ms.total) and the throughput gain of
``--concurrency`` clients over one.

``--ray`` runs the same load twice in one run, side by side: local worker processes, then Ray
Serve replicas on a one-node Ray cluster that it starts on the loopback (the same number of
workers and replicas), and adds Ray's own CPU (GCS, raylet, the rest) per upload.

    python benchmarks/load_test.py --quick
    python benchmarks/load_test.py --requests 1000 --concurrency 10 --json out/load.json
    python benchmarks/load_test.py --ray --json benchmarks/results/load_test_ray.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from toonforge_testing.launch import LaunchedApp, launched_app, scratch_env  # noqa: E402
from toonforge_testing.ray_cluster import RAY_QUIET, LocalRayCluster, local_ray_cluster  # noqa: E402

PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
STARTUP_TIMEOUT_S = 120
HEALTH_POLL_S = 0.1  # often enough for percentiles, rare enough not to slow the uploads
READY_TIMEOUT_S = 240  # Ray replicas importing and warming the pipeline on a busy machine
# Ray mode's targets (issue 12): its throughput against local mode's, its overhead per request.
RAY_THROUGHPUT_TARGET = 0.9
RAY_OVERHEAD_TARGET_MS = 25.0


@dataclass
class Run:
    """Outcome of one batch of uploads."""

    latencies_s: list[float] = field(default_factory=list)
    overheads_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def joined(self, other: "Run") -> "Run":
        """Both runs as one (their walls add: they ran one after the other)."""
        errors = dict(self.errors)
        for key, count in other.errors.items():
            errors[key] = errors.get(key, 0) + count
        return Run(
            self.latencies_s + other.latencies_s,
            self.overheads_ms + other.overheads_ms,
            errors,
            self.wall_s + other.wall_s,
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(stack: contextlib.ExitStack, workdir: Path, **env: str) -> LaunchedApp:
    """``app.py`` with its data, Gradio temp dir and log in ``workdir`` and ``env`` added to its
    environment; stopped when ``stack`` closes."""
    try:
        return stack.enter_context(
            launched_app(env=scratch_env(workdir, **env), log_path=workdir / "server.log", timeout_s=STARTUP_TIMEOUT_S)
        )
    except RuntimeError as exc:  # a message for the shell, not a traceback
        raise SystemExit(f"{exc}\nsee {workdir / 'server.log'}") from None


def wait_ready(url: str, log_path: Path) -> None:
    """Until ``/ready`` says 200: local workers warm, or Ray replicas up."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
        while http.get("/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} not ready within {READY_TIMEOUT_S} s; see {log_path}")
            time.sleep(0.5)


def server_pid(url: str) -> int | None:
    """The pid listening on the URL's port (needs permission to see sockets)."""
    port = urlparse(url).port
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    except psutil.AccessDenied:
        return None
    return None


class RssSampler(threading.Thread):
    """Samples the server's resident memory (with its children, and ``others``: Ray's
    replicas, which are not its children) until stopped; keeps the peak."""

    def __init__(self, pid: int | None, others: Callable[[], list[psutil.Process]] = list) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid) if pid else None
        self.others = others
        self.peak = 0
        self.stop = threading.Event()

    def sample(self) -> None:
        if self.process is None:
            return
        try:
            procs = [self.process, *self.process.children(recursive=True), *self.others()]
        except psutil.NoSuchProcess:  # the server itself is gone
            self.stop.set()
            return
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker replaced meanwhile
                total += proc.memory_info().rss
        self.peak = max(self.peak, total)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.2)


def cpu_seconds(pid: int | None) -> dict[str, float]:
    """CPU time so far of the server process, its worker processes and this client."""
    mine = psutil.Process().cpu_times()
    snapshot = {"client": mine.user + mine.system, "server": 0.0, "workers": 0.0}
    if pid is None:
        return snapshot
    with contextlib.suppress(psutil.NoSuchProcess):
        server = psutil.Process(pid)
        times = server.cpu_times()
        snapshot["server"] = times.user + times.system
        for child in server.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                snapshot["workers"] += times.user + times.system
    return snapshot


def ray_cpu_seconds(pid: int | None, cluster: LocalRayCluster) -> dict[str, float]:
    """:func:`cpu_seconds` in Ray mode: the replicas are the workers, and Ray's own processes
    (every process the nodes' ``ray start`` started) are split into GCS, raylets and the rest
    (Serve's controller, the dashboard and runtime-env agents, the log monitor, idle workers)."""
    snapshot = cpu_seconds(pid)  # client and front end (it has no worker processes in Ray mode)
    snapshot.update(workers=0.0, ray_gcs=0.0, ray_raylet=0.0, ray_other=0.0)
    for role, proc in _ray_processes(cluster):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            snapshot[role] += times.user + times.system
    return snapshot


def ray_replicas(cluster: LocalRayCluster) -> list[psutil.Process]:
    """The pipeline replicas' processes on the cluster's nodes."""
    return [proc for role, proc in _ray_processes(cluster) if role == "workers"]


def _ray_processes(cluster: LocalRayCluster) -> Iterator[tuple[str, psutil.Process]]:
    """Every process the nodes' ``ray start`` started, with its role (:func:`_ray_role`)."""
    for node in cluster.nodes:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(node.process.pid)
            for proc in (root, *root.children(recursive=True)):
                with contextlib.suppress(psutil.NoSuchProcess):
                    yield _ray_role(proc), proc


def _ray_role(proc: psutil.Process) -> str:
    name = proc.name()
    if name == "gcs_server":
        return "ray_gcs"
    if name == "raylet":
        return "ray_raylet"
    # Ray names its workers' processes after the actor they host ("ray::ServeReplica:app:...").
    if any(arg.startswith("ray::ServeReplica") for arg in proc.cmdline()[:1]):
        return "workers"
    return "ray_other"


def cpu_per_upload_ms(before: dict[str, float], after: dict[str, float], run: "Run") -> dict[str, float]:
    """Where the machine's CPU went, per successful upload."""
    count = max(1, run.ok)
    return {key: round((after[key] - before[key]) * 1000 / count, 1) for key in before}


def mean_cpu(a: dict[str, float], a_count: int, b: dict[str, float], b_count: int) -> dict[str, float]:
    total = max(1, a_count + b_count)
    return {key: round((a[key] * a_count + b[key] * b_count) / total, 1) for key in a}


class HealthPoller(threading.Thread):
    """GET /health in a loop while uploads run."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies_ms: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set():
                self.latencies_ms.append(health_once(http))
                self.stop.wait(HEALTH_POLL_S)


def health_once(http: httpx.Client) -> float:
    start = time.perf_counter()
    response = http.get("/health")
    elapsed = (time.perf_counter() - start) * 1000
    response.raise_for_status()
    return elapsed


def uploads(url: str, photo: bytes, count: int, concurrency: int) -> Run:
    run = Run()
    lock = threading.Lock()
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(i: int) -> None:
        if not hasattr(local, "http"):  # one keep-alive connection per client thread
            local.http = httpx.Client(base_url=url, timeout=600)
            with lock:
                clients.append(local.http)
        start = time.perf_counter()
        try:
            response = local.http.post(
                "/api/upload", files={"file": ("photo.jpg", photo, "image/jpeg")}, data={"seed": str(i)}
            )
            elapsed = time.perf_counter() - start
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            with lock:
                run.errors[type(exc).__name__] = run.errors.get(type(exc).__name__, 0) + 1
            return
        with lock:
            if response.status_code == 200:
                run.latencies_s.append(elapsed)
                run.overheads_ms.append(elapsed * 1000 - body["timings_ms"]["total"])
            else:
                code = f"{response.status_code} {body.get('error', '?')}"
                run.errors[code] = run.errors.get(code, 0) + 1

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    run.wall_s = time.perf_counter() - start
    for client in clients:
        client.close()
    return run


def summarize(run: Run) -> dict:
    ms = [x * 1000 for x in run.latencies_s]
    return {
        "ok": run.ok,
        "errors": sum(run.errors.values()),
        "errors_by_kind": run.errors,
        "wall_s": round(run.wall_s, 2),
        "throughput_rps": round(run.throughput, 3),
        "latency_ms": {
            "p50": round(percentile(ms, 50), 1),
            "p95": round(percentile(ms, 95), 1),
            "p99": round(percentile(ms, 99), 1),
        },
        "http_overhead_ms_p50": round(percentile(run.overheads_ms, 50), 2),
    }


def measure(
    url: str,
    pid: int | None,
    args: argparse.Namespace,
    cpu: Callable[[], dict[str, float]],
    replicas: Callable[[], list[psutil.Process]] = list,
) -> dict:
    """Warm-up, the one-client baseline (half before, half after), the concurrent run with
    /health polled meanwhile; ``cpu`` snapshots CPU seconds by role, ``replicas`` lists the
    Ray replicas whose memory counts with the server's."""
    photo = args.photo.read_bytes()
    rss = RssSampler(pid, replicas)
    rss.start()
    try:
        print(f"warm-up: {args.warmup} uploads", flush=True)
        warm = uploads(url, photo, args.warmup, min(args.warmup, args.concurrency))
        if warm.errors:
            raise SystemExit(f"warm-up failed: {warm.errors}")
        with httpx.Client(base_url=url, timeout=10) as http:
            for _ in range(10):  # connection set-up and first-call costs out of the numbers
                health_once(http)
            idle_health = [health_once(http) for _ in range(args.health_samples)]

        # The one-client baseline is taken half before and half after the concurrent run,
        # so that a machine whose speed drifts (a shared VM does) favours neither side.
        first_half = (args.single + 1) // 2
        print(f"one client: {first_half} uploads", flush=True)
        before = cpu()
        single = uploads(url, photo, first_half, 1)
        single_cpu = cpu_per_upload_ms(before, cpu(), single)

        print(f"{args.concurrency} clients: {args.requests} uploads", flush=True)
        poller = HealthPoller(url)
        poller.start()
        before = cpu()
        loaded = uploads(url, photo, args.requests, args.concurrency)
        loaded_cpu = cpu_per_upload_ms(before, cpu(), loaded)
        poller.stop.set()
        poller.join()

        print(f"one client again: {args.single - first_half} uploads", flush=True)
        before = cpu()
        second = uploads(url, photo, args.single - first_half, 1)
        single_cpu = mean_cpu(single_cpu, single.ok, cpu_per_upload_ms(before, cpu(), second), second.ok)
        single = single.joined(second)
    finally:
        rss.stop.set()
        rss.join()
        rss.sample()

    return {
        "url": url,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "single_client": summarize(single),
        "concurrent": summarize(loaded),
        "throughput_ratio_vs_1_client": round(loaded.throughput / single.throughput, 2)
        if single.throughput
        else None,
        "health_ms": {
            "idle_p50": round(percentile(idle_health, 50), 2),
            "idle_p95": round(percentile(idle_health, 95), 2),
            "busy_p50": round(percentile(poller.latencies_ms, 50), 2),
            "busy_p95": round(percentile(poller.latencies_ms, 95), 2),
            "busy_samples": len(poller.latencies_ms),
        },
        "peak_server_rss_mb": round(rss.peak / 2**20, 1) if rss.peak else None,
        "cpu_ms_per_upload": {"single_client": single_cpu, "concurrent": loaded_cpu},
        "cpu_count": os.cpu_count(),
    }


def measure_local(args: argparse.Namespace, workdir: Path) -> dict:
    """The load against ``app.py`` with ``args.workers`` local worker processes."""
    with contextlib.ExitStack() as stack:
        print(f"local mode: starting app.py with {args.workers} worker processes ...", flush=True)
        app = start_server(stack, workdir / "local", TOONFORGE_WORKERS=str(args.workers))
        wait_ready(app.url, app.log_path)
        print(f"server {app.url} (pid {app.pid}, log {app.log_path})", flush=True)
        result = measure(app.url, app.pid, args, lambda: cpu_seconds(app.pid))
    shutil.rmtree(workdir / "local" / "data", ignore_errors=True)  # ~2 MB of results per upload
    return {"mode": "process", "workers": args.workers, **result}


def measure_ray(args: argparse.Namespace, workdir: Path) -> dict:
    """The same load against ``app.py`` in Ray mode: a one-node cluster on the loopback with
    ``args.workers`` CPUs and as many pipeline replicas. Ray runs with what serving needs only:
    no dashboard, usage stats or metrics recording (see toonforge_testing/ray_cluster.py)."""
    with contextlib.ExitStack() as stack:
        print(f"Ray mode: starting a one-node Ray cluster with {args.workers} CPUs ...", flush=True)
        cluster = stack.enter_context(local_ray_cluster(workdir / "ray-cluster", node_cpus=(args.workers,)))
        app = start_server(
            stack,
            workdir / "ray",
            **RAY_QUIET,
            RAY_enable_metrics_collection="0",  # the front end is a Ray driver too
            TOONFORGE_RAY_ADDRESS=cluster.address,
            TOONFORGE_RAY_MIN_REPLICAS=str(args.workers),
            TOONFORGE_RAY_MAX_REPLICAS=str(args.workers),
        )
        print(f"server {app.url} (pid {app.pid}, log {app.log_path}); waiting for the replicas", flush=True)
        wait_ready(app.url, app.log_path)
        result = measure(
            app.url, app.pid, args, lambda: ray_cpu_seconds(app.pid, cluster), lambda: ray_replicas(cluster)
        )
    shutil.rmtree(workdir / "ray" / "data", ignore_errors=True)
    return {"mode": "ray", "replicas": args.workers, "cluster": cluster.address, **result}


def compare(local: dict, ray: dict) -> dict:
    """Ray mode against local mode, with the issue's targets."""
    ratio = ray["concurrent"]["throughput_rps"] / local["concurrent"]["throughput_rps"]
    overhead = ray["single_client"]["http_overhead_ms_p50"]
    return {
        "throughput_ratio_ray_vs_local": round(ratio, 3),
        "throughput_target": RAY_THROUGHPUT_TARGET,
        "throughput_target_met": ratio >= RAY_THROUGHPUT_TARGET,
        "ray_overhead_ms_p50_c1": overhead,
        "extra_overhead_ms_p50_c1": round(overhead - local["single_client"]["http_overhead_ms_p50"], 2),
        "overhead_target_ms": RAY_OVERHEAD_TARGET_MS,
        "overhead_target_met": overhead <= RAY_OVERHEAD_TARGET_MS,
        "errors": {"local": _errors(local), "ray": _errors(ray)},
    }


def _errors(run: dict) -> int:
    return run["single_client"]["errors"] + run["concurrent"]["errors"]


def main(argv: list[str] | None = None) -> int:
    # A plain kill would skip the `with` blocks and leave the app and the Ray cluster running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="target a running server (loopback only) instead of starting one")
    parser.add_argument("--ray", action="store_true", help="local processes and Ray mode side by side")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="with --ray: worker processes, and Ray CPUs and replicas")
    parser.add_argument("--requests", "-n", type=int, default=1000)
    parser.add_argument("--concurrency", "-c", type=int, default=10)
    parser.add_argument("--single", type=int, default=20, help="uploads for the one-client baseline")
    parser.add_argument("--warmup", type=int, default=4, help="uploads before measuring")
    parser.add_argument("--health-samples", type=int, default=200)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--quick", action="store_true", help="small run: 30 uploads, 5 single, 50 health")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.single, args.health_samples = 30, 5, 50
    if args.ray and args.url:
        parser.error("--ray starts its own servers and cluster; it takes no --url")

    workdir = Path(tempfile.mkdtemp(prefix="toonforge-load-"))
    if args.ray:
        load_before = os.getloadavg()
        local = measure_local(args, workdir)
        ray = measure_ray(args, workdir)
        result = {
            "benchmark": "load_test --ray",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average": {"before": [round(x, 2) for x in load_before],
                             "after": [round(x, 2) for x in os.getloadavg()]},
            "local": local,
            "ray": ray,
            "comparison": compare(local, ray),
        }
        print_side_by_side(result)
        failed = result["comparison"]["errors"]["local"] + result["comparison"]["errors"]["ray"] > 0
    else:
        with contextlib.ExitStack() as stack:
            if args.url:
                host = urlparse(args.url).hostname
                if host not in LOOPBACK:
                    parser.error(f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))}), got {host}")
                url = args.url.rstrip("/")
                pid = server_pid(url)
            else:
                print("starting app.py ...", flush=True)
                app = start_server(stack, workdir)
                url, pid = app.url, app.pid
                print(f"server {url} (pid {pid}, log {app.log_path})", flush=True)
            result = measure(url, pid, args, lambda: cpu_seconds(pid))
        shutil.rmtree(workdir / "data", ignore_errors=True)  # ~2 MB of results per upload
        print_report(result)
        failed = _errors(result) > 0
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 1 if failed else 0


def print_side_by_side(r: dict) -> None:
    local, ray, cmp = r["local"], r["ray"], r["comparison"]
    n, c = local["requests"], local["concurrency"]

    def row(label: str, value: Callable[[dict], str]) -> None:
        print(f"  {label:<28}{value(local):<30}{value(ray)}")

    def lat(run: dict) -> str:
        q = run["latency_ms"]
        return f"{q['p50']:.0f} / {q['p95']:.0f} / {q['p99']:.0f} ms"

    print()
    print(f"Toonforge load test, {n} x {c}: local worker processes vs Ray Serve, on this machine "
          f"({local['cpu_count']} cores, load {r['load_average']['before'][0]:.2f} before)")
    local_head = f"local ({local['workers']} workers)"
    print(f"  {'':<28}{local_head:<30}ray ({ray['replicas']} replicas, 1 node)")
    row("uploads ok / errors", lambda x: f"{x['concurrent']['ok']} / {x['concurrent']['errors']} "
        f"{x['concurrent']['errors_by_kind'] or ''}".strip())
    row(f"throughput c={c}", lambda x: f"{x['concurrent']['throughput_rps']:.2f} req/s")
    row("throughput c=1", lambda x: f"{x['single_client']['throughput_rps']:.2f} req/s")
    row(f"latency c={c} p50/p95/p99", lambda x: lat(x["concurrent"]))
    row("latency c=1 p50/p95/p99", lambda x: lat(x["single_client"]))
    row("overhead p50 c=1", lambda x: f"{x['single_client']['http_overhead_ms_p50']:.1f} ms")
    row(f"overhead p50 c={c} (+queue)", lambda x: f"{x['concurrent']['http_overhead_ms_p50']:.0f} ms")
    row("/health busy p50 / p95", lambda x: f"{x['health_ms']['busy_p50']:.1f} / {x['health_ms']['busy_p95']:.1f} ms")
    row("peak RSS server+workers", lambda x: f"{x['peak_server_rss_mb']} MB")
    print(f"  CPU ms per upload at c={c}:")
    roles = ("client", "server", "workers", "ray_gcs", "ray_raylet", "ray_other")
    names = {"server": "front end", "workers": "workers / replicas", "ray_gcs": "Ray GCS",
             "ray_raylet": "Ray raylet", "ray_other": "Ray other"}
    for role in roles:
        row(f"  {names.get(role, role)}", lambda x, role=role: (
            f"{x['cpu_ms_per_upload']['concurrent'][role]:.1f}"
            if role in x["cpu_ms_per_upload"]["concurrent"] else "-"))
    row("  total", lambda x: f"{sum(x['cpu_ms_per_upload']['concurrent'].values()):.1f}")
    print(f"  Ray vs local throughput    {cmp['throughput_ratio_ray_vs_local']:.3f}x "
          f"(target >= {cmp['throughput_target']}: {'met' if cmp['throughput_target_met'] else 'NOT met'})")
    print(f"  Ray overhead p50 at c=1    {cmp['ray_overhead_ms_p50_c1']:.1f} ms, "
          f"{cmp['extra_overhead_ms_p50_c1']:+.1f} ms over local "
          f"(target <= {cmp['overhead_target_ms']:g} ms: {'met' if cmp['overhead_target_met'] else 'NOT met'})")


def print_report(r: dict) -> None:
    one, many = r["single_client"], r["concurrent"]
    lat = many["latency_ms"]
    health = r["health_ms"]
    rss = f"{r['peak_server_rss_mb']} MB" if r["peak_server_rss_mb"] else "n/a (server pid not visible)"
    print()
    print(f"Toonforge load test against {r['url']}")
    print(f"  uploads             {many['ok']} ok, {many['errors']} errors {many['errors_by_kind'] or ''}")
    print(f"  throughput          {many['throughput_rps']:.2f} req/s at c={r['concurrency']}, "
          f"{one['throughput_rps']:.2f} req/s at c=1  (ratio {r['throughput_ratio_vs_1_client']}x)")
    print(f"  latency c={r['concurrency']:<3}       p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, p99 {lat['p99']:.0f} ms")
    print(f"  latency c=1         p50 {one['latency_ms']['p50']:.0f} ms, p95 {one['latency_ms']['p95']:.0f} ms")
    print(f"  HTTP overhead p50   {one['http_overhead_ms_p50']:.1f} ms at c=1 "
          f"({many['http_overhead_ms_p50']:.0f} ms at c={r['concurrency']}, incl. queue wait)")
    print(f"  /health             idle p50 {health['idle_p50']:.2f} ms, p95 {health['idle_p95']:.2f} ms; "
          f"busy p50 {health['busy_p50']:.2f} ms, p95 {health['busy_p95']:.2f} ms ({health['busy_samples']} samples)")
    print(f"  peak server RSS     {rss}")
    for phase, label in (("single_client", "c=1"), ("concurrent", f"c={r['concurrency']}")):
        cpu = r["cpu_ms_per_upload"][phase]
        print(f"  CPU per upload {label:<5}server {cpu['server']:.0f} ms, workers {cpu['workers']:.0f} ms, "
              f"client {cpu['client']:.0f} ms ({r['cpu_count']} cores)")


if __name__ == "__main__":
    sys.exit(main())
