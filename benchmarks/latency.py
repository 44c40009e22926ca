"""Latency baseline of the real app, over HTTP and in-process; regenerates docs/latency.md.

    python benchmarks/latency.py [--runs 10] [--quick] [--url http://host:port]
                                 [--json benchmarks/results/latest.json] [--markdown docs/latency.md]

Without ``--url`` it starts ``python app.py --port <free port>`` itself (results in a temporary
data dir), waits for ``GET /health``, measures, and stops it again. It measures:

* the API: ``GET /health`` and ``POST /api/upload`` (mean, p50, p95, p99);
* end to end per size (512, 768, 1024 px square astronaut, JPEG) over HTTP, split into upload,
  the pipeline's stages (from the response's ``timings_ms``) and overhead;
* the server's memory (RSS) and CPU use, idle and during the 1024 px requests (psutil);
* 10 concurrent clients: throughput and latency percentiles;
* in-process: stylization per size for each available backend, fusion per body template.

Timed cases run round-robin (512, 768, 1024, 512, ...), so a burst of other load on the machine
lands on every case alike.

Definitions (also written into the markdown): ``client`` is the time the client sees, from
sending the request to having the whole response body; ``server`` is the server's own
``X-Process-Time`` header (request received to response started); ``upload = client - server``
(connection, transfer of the request and response, HTTP parsing); ``overhead = client -
timings_ms.total`` (everything that is not the pipeline, upload included).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script: the repository's packages and pipeline_latency
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import httpx  # noqa: E402
import psutil  # noqa: E402

from pipeline import STAGES  # noqa: E402
from pipeline_latency import (  # noqa: E402
    DEFAULT_SIZES,
    astronaut_at,
    format_table,
    jpeg_bytes,
    load_average,
    machine_info,
    machine_line,
    summarize,
)
from toonforge_testing.launch import launched_app, scratch_env  # noqa: E402

SIZES = DEFAULT_SIZES
TEMPLATES = ("default", "superhero", "casual")  # the UI's order, not alphabetical
# The seed's placeholder baseline, shown beside every measured figure it has a counterpart for.
SEED = {
    "end_to_end_ms": {"512": 1198.0, "768": 1548.0, "1024": 2087.0},
    "health_p50_ms": 1.8,
    "overhead_512_ms": 87.5,
}
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"
DEFAULT_MARKDOWN = ROOT / "docs" / "latency.md"
DEFAULT_PIPELINE_JSON = ROOT / "benchmarks" / "results" / "pipeline_latency.json"
UPLOAD_FIELDS = {"template": "default", "style": "toon", "backend": "cpu", "seed": "0", "height_mm": "100"}
REQUEST_TIMEOUT_S = 600.0


@dataclass
class Settings:
    runs: int
    health_runs: int
    clients: int
    requests_per_client: int
    idle_s: float
    warmup: int  # untimed runs per size (HTTP) or per size/template (in-process) before timing


def settings_for(quick: bool, runs: int | None, clients: int) -> Settings:
    if quick:
        return Settings(runs or 2, 20, clients, 1, 1.0, 0)
    return Settings(runs or 10, 200, clients, 2, 3.0, 1)


# ---------------------------------------------------------------- resources


class ProcessWatch:
    """RSS and CPU time of the server process and its children, sampled on a thread."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_rss = 0
        self.cpu_s = 0.0  # CPU seconds and wall seconds of the block, set when it ends
        self.wall_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _family(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for p in self._family():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._family():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = p.cpu_times()
                total += times.user + times.system
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "ProcessWatch":
        self.peak_rss = self.rss()
        self._cpu0, self._t0 = self.cpu_seconds(), time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.cpu_s = self.cpu_seconds() - self._cpu0
        self.wall_s = time.perf_counter() - self._t0

    @property
    def cpu_percent(self) -> float:
        """CPU seconds per wall second x 100: 100 is one core fully busy."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s else 0.0


def wait_until_quiet(watch_pid: int, percent: float = 10.0, timeout_s: float = 60.0) -> None:
    """Until the server and its workers use under ``percent`` of a core for a second: the
    workers warm up on a bundled photo right after start, which is not idle use."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if idle_usage(watch_pid, 1.0)["cpu_percent"] < percent:
            return


def idle_usage(watch_pid: int, seconds: float) -> dict:
    with ProcessWatch(watch_pid, interval_s=0.1) as watch:
        time.sleep(seconds)
    return {"rss_mb": round(watch.peak_rss / 2**20, 1), "cpu_percent": round(watch.cpu_percent, 1)}


# ---------------------------------------------------------------- HTTP measures


@dataclass
class Sample:
    client_ms: float
    server_ms: float | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    status: int = 200
    error: str = ""


def post_upload(client: httpx.Client, url: str, body: bytes) -> Sample:
    files = {"file": ("photo.jpg", body, "image/jpeg")}
    start = time.perf_counter()
    response = client.post(f"{url}/api/upload", files=files, data=UPLOAD_FIELDS)
    client_ms = (time.perf_counter() - start) * 1000  # httpx has read the whole body by now
    header = response.headers.get("x-process-time")
    server_ms = float(header) * 1000 if header else None
    if response.status_code != 200:
        return Sample(client_ms, server_ms, {}, response.status_code, response.text[:300])
    return Sample(client_ms, server_ms, response.json()["timings_ms"], response.status_code)


def checked(sample: Sample) -> Sample:
    """Timed requests must succeed: a failed one would time an error page, not the pipeline."""
    if sample.status != 200:
        raise RuntimeError(f"POST /api/upload answered {sample.status}: {sample.error}")
    return sample


def measure_health(client: httpx.Client, url: str, runs: int) -> dict:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(f"{url}/health")
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return summarize(samples)


def end_to_end(samples: Sequence[Sample]) -> dict:
    """Client, server, upload, stage and overhead summaries of one size's requests."""
    out: dict = {
        "runs": len(samples),
        "client": summarize([s.client_ms for s in samples]),
        "pipeline_total": summarize([s.timings_ms["total"] for s in samples]),
        "overhead": summarize([s.client_ms - s.timings_ms["total"] for s in samples]),
        "stages": {k: summarize([s.timings_ms[k] for s in samples]) for k in STAGES},
    }
    if all(s.server_ms is not None for s in samples):
        out["server"] = summarize([s.server_ms for s in samples])
        out["upload"] = summarize([s.client_ms - s.server_ms for s in samples])
        out["server_extra"] = summarize([s.server_ms - s.timings_ms["total"] for s in samples])
    else:  # a server without X-Process-Time: upload cannot be split from the overhead
        out["server"] = out["upload"] = out["server_extra"] = None
    return out


def measure_concurrency(url: str, body: bytes, clients: int, per_client: int) -> dict:
    """``clients`` threads, each with its own connection, posting ``per_client`` uploads."""

    def one_client(_: int) -> list[Sample]:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            return [post_upload(client, url, body) for _ in range(per_client)]

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        samples = [s for batch in pool.map(one_client, range(clients)) for s in batch]
    wall_s = time.perf_counter() - start
    ok = [s for s in samples if s.status == 200]
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "clients": clients,
        "requests": len(samples),
        "ok": len(ok),
        "statuses": statuses,
        "wall_s": round(wall_s, 2),
        "throughput_rps": round(len(ok) / wall_s, 3),
        "latency": summarize([s.client_ms for s in ok]),
        "pipeline_total": summarize([s.timings_ms["total"] for s in ok]),
    }


def measure_http(url: str, pid: int | None, settings: Settings, log=print) -> dict:
    uploads = {size: jpeg_bytes(astronaut_at(size)) for size in SIZES}
    resources: dict = {"measured": pid is not None}
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        if pid is not None:
            log(f"idle {settings.idle_s:.0f} s (fresh server, once its workers have warmed up)")
            wait_until_quiet(pid)
            resources["idle_fresh"] = idle_usage(pid, settings.idle_s)
        log(f"GET /health x {settings.health_runs}")
        health = measure_health(client, url, settings.health_runs)
        workers = client.get(f"{url}/health").json().get("queue", {}).get("workers")
        log("warm-up upload (loads the models)")
        checked(post_upload(client, url, uploads[512]))

        for size in SIZES:
            for _ in range(settings.warmup):
                checked(post_upload(client, url, uploads[size]))
        log(f"POST /api/upload x {settings.runs} per size, sizes round-robin")
        # Round-robin, so a burst of other load on the machine skews no single size; the
        # server's memory and CPU are watched during the 1024² requests only.
        samples: dict[int, list[Sample]] = {size: [] for size in SIZES}
        watches: list[ProcessWatch] = []
        for _ in range(settings.runs):
            for size in SIZES:
                if size == 1024 and pid is not None:
                    with ProcessWatch(pid) as watch:
                        samples[size].append(checked(post_upload(client, url, uploads[size])))
                    watches.append(watch)
                else:
                    samples[size].append(checked(post_upload(client, url, uploads[size])))
        e2e = {str(size): end_to_end(samples[size]) for size in SIZES}
        if watches:
            cpu_s, wall_s = sum(w.cpu_s for w in watches), sum(w.wall_s for w in watches)
            resources["busy_1024"] = {
                "rss_peak_mb": round(max(w.peak_rss for w in watches) / 2**20, 1),
                "cpu_percent": round(100.0 * cpu_s / wall_s, 1),
            }
        if pid is not None:
            log(f"idle {settings.idle_s:.0f} s (warm server)")
            resources["idle_warm"] = idle_usage(pid, settings.idle_s)
    log(f"{settings.clients} concurrent clients x {settings.requests_per_client} uploads at 512²")
    concurrency = measure_concurrency(url, uploads[512], settings.clients, settings.requests_per_client)
    return {
        # POST /api/upload's row is the 512² end-to-end requests, not a separate series.
        "api": {"health": health, "upload_512": e2e["512"]["client"]},
        "server_workers": workers,
        "end_to_end": e2e,
        "resources": resources,
        "concurrency": concurrency,
    }


# ---------------------------------------------------------------- in-process measures


def round_robin(cases: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, dict]:
    """Time each case ``runs`` times, interleaved so background load skews no single case."""
    for case in cases.values():
        for _ in range(warmup):
            case()
    samples: dict[str, list[float]] = {key: [] for key in cases}
    for _ in range(runs):
        for key, case in cases.items():
            start = time.perf_counter()
            case()
            samples[key].append((time.perf_counter() - start) * 1000)
    return {key: summarize(values) for key, values in samples.items()}


def measure_in_process(settings: Settings, log=print) -> dict:
    """Stylization per size and available backend, fusion per template, in this process."""
    from pipeline import Config
    from pipeline.fusion import fuse_template
    from pipeline.landmarks import detect_landmarks
    from pipeline.stylize import backend_availability, get_stylizer
    from pipeline.validate import validate_image

    scratch = Path(tempfile.mkdtemp(prefix="toonforge-latency-"))
    try:
        config = replace(Config.from_env(), data_dir=scratch)
        prepared = {}
        for size in SIZES:
            photo = validate_image(jpeg_bytes(astronaut_at(size)), config).image
            prepared[size] = (photo, detect_landmarks(photo, config))

        # One untimed stylization and fusion warm the shared state (graphs, caches) for all sizes;
        # the full run also warms each size and template once more before timing it.
        photo512, face512 = prepared[512]
        styled512 = get_stylizer("cpu", config).stylize(photo512, face512, "toon", 0).image
        fuse_template(face512, styled512, photo512, TEMPLATES[0])

        stylize: dict[str, dict] = {}
        for name, status in backend_availability(config).items():
            entry: dict = {"available": status.available, "reason": status.reason, "sizes": {}}
            stylize[name] = entry
            if not status.available:
                continue
            stylizer = get_stylizer(name, config)
            style = "toon" if "toon" in stylizer.styles else stylizer.styles[0]
            log(f"in-process stylize {name} x {settings.runs} per size")
            cases = {
                str(size): partial(stylizer.stylize, photo, face, style, 0)
                for size, (photo, face) in prepared.items()
            }
            # Only the cpu backend was warmed above; another must load its model untimed.
            entry["sizes"] = round_robin(cases, settings.runs, max(settings.warmup, int(name != "cpu")))

        log(f"in-process fusion x {settings.runs} per template")
        fusion = round_robin(
            {t: partial(fuse_template, face512, styled512, photo512, t) for t in TEMPLATES},
            settings.runs,
            settings.warmup,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"stylize": stylize, "fusion": {"size": 512, "templates": fusion}}


# ---------------------------------------------------------------- report


def _ms(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _delta(measured: float, seed: float) -> str:
    return f"{(measured - seed) / seed:+.0%}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"
    lines = ["| " + " | ".join(head) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(result: dict, pipeline_result: dict | None) -> str:
    """docs/latency.md: every table, measured figures beside the seed's placeholders."""
    s = result["settings"]
    api, e2e, res, conc = result["api"], result["end_to_end"], result["resources"], result["concurrency"]
    out = [
        "# Latency baseline",
        "",
        "Generated by `python benchmarks/latency.py` (raw figures: `benchmarks/results/latest.json`). "
        "Do not edit by hand: rerun `python benchmarks/pipeline_latency.py --json "
        "benchmarks/results/pipeline_latency.json` (last section), then this script.",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {machine_line(result['machine'])}; load average (1/5/15 min) "
        f"{result['load_average']['before']} before, {result['load_average']['after']} after "
        "(a load above the core count means other work shared the CPUs and inflated the figures)",
        f"- Server: {'`python app.py` started by the script' if s['launched'] else s['url']}, "
        f"{result['server_workers']} pipeline worker(s); CPU backend, style `toon`, template `default`",
        "- Input: scikit-image's astronaut portrait resized to N × N, JPEG quality 92",
        f"- Runs: {s['runs']} timed requests per size, after one warm-up upload"
        + (f" and {s['warmup']} more per size" if s["warmup"] else "")
        + f"; {s['health_runs']} health checks; in-process rows: {s['runs']} runs after "
        + (f"{s['warmup']} warm-up each" if s["warmup"] else "one shared warm-up")
        + (" (`--quick`)" if s["quick"] else "")
        + ". Sizes, backends' sizes and templates are timed round-robin, so background load "
        "skews none of them alone.",
        "- \"Seed\" columns are the seed's placeholder baseline (never measured on this code); "
        "\"—\" means the seed had no figure.",
        "",
        "## Definitions",
        "",
        "- **client**: time the client sees, from sending the request to holding the whole response.",
        "- **server**: the server's `X-Process-Time` header: request received to response started.",
        "- **upload** = client − server: connecting, sending the photo, HTTP parsing and the response "
        "transfer, i.e. everything outside the server's own handling.",
        "- **validate … export**: the pipeline's own stage timings (`timings_ms` in the response).",
        "- **overhead** = client − `timings_ms.total`: everything that is not the pipeline — upload, "
        "multipart parsing, option checks, the job queue and building the JSON answer (upload included).",
        "- Percentiles use numpy's linear interpolation; with few runs p95/p99 approach the maximum.",
        "",
        "## API",
        "",
    ]
    health, up = api["health"], api["upload_512"]
    out += _table(
        ["endpoint", "n", "mean ms", "p50 ms", "p95 ms", "p99 ms", "seed p50 ms"],
        [
            ["`GET /health`", str(health["n"]), _ms(health["mean"], 2), _ms(health["p50"], 2),
             _ms(health["p95"], 2), _ms(health["p99"], 2), _ms(SEED["health_p50_ms"])],
            ["`POST /api/upload` (512², the end-to-end requests)", str(up["n"]), _ms(up["mean"]),
             _ms(up["p50"]), _ms(up["p95"]), _ms(up["p99"]), "—"],
        ],
    )
    out += ["", "## End to end per size (HTTP, p50 ms)", ""]
    rows = []
    for size, row in e2e.items():
        seed_total = SEED["end_to_end_ms"].get(size)
        rows.append([
            f"{size}²",
            _ms(row["upload"]["p50"]) if row["upload"] else "—",
            *[_ms(row["stages"][k]["p50"]) for k in STAGES],
            _ms(row["overhead"]["p50"]),
            _ms(row["client"]["p50"]),
            _ms(row["client"]["p95"]),
            _ms(seed_total, 0),
            _delta(row["client"]["p50"], seed_total) if seed_total else "—",
        ])
    out += _table(
        ["size", "upload", "validate", "landmarks", "stylize", "fusion", "export", "overhead",
         "client p50", "client p95", "seed total", "vs seed"],
        rows,
    )
    out += ["", "\"vs seed\" compares the client p50 with the seed's figure. Stage columns are medians "
            "of their own, so they need not add up to the total exactly."]
    ov512 = e2e.get("512", {}).get("overhead")
    if ov512:
        out += ["", f"Overhead at 512²: {_ms(ov512['p50'])} ms p50 "
                f"(seed placeholder {SEED['overhead_512_ms']} ms)."]
        extra = e2e["512"].get("server_extra")
        if extra:
            out[-1] += (f" Of it, {_ms(e2e['512']['upload']['p50'])} ms is upload and "
                        f"{_ms(extra['p50'])} ms is server-side work outside the pipeline.")
    out += ["", "## Stylization per size and backend (in-process, ms)", ""]
    rows, notes = [], []
    for name, entry in result["stylize"].items():
        if not entry["available"]:
            rows.append([name, "unavailable here (see below)", "—", "—", "—", "—", "—"])
            notes.append(f"- `{name}` is not available on this machine, so it was not timed: "
                         f"{entry['reason']}")
            continue
        cells = []
        for size in map(str, SIZES):
            stat = entry["sizes"].get(size)
            cells += [_ms(stat["p50"]), _ms(stat["p95"])] if stat else ["—", "—"]
        rows.append([name, *cells])
    out += _table(["backend", *[f"{n}² {q}" for n in SIZES for q in ("p50", "p95")]], rows)
    if notes:
        out += ["", *notes]
    fus = result["fusion"]
    out += ["", f"## Fusion per template (in-process, {fus['size']}², ms)", ""]
    out += _table(
        ["template", "n", "mean", "p50", "p95"],
        [[t, str(v["n"]), _ms(v["mean"]), _ms(v["p50"]), _ms(v["p95"])]
         for t, v in fus["templates"].items()],
    )
    out += ["", "## Resources (server process, psutil)", ""]
    if res["measured"]:
        cores = result["machine"]["logical_cores"]
        fresh, warm, busy = res["idle_fresh"], res["idle_warm"], res["busy_1024"]
        out += _table(
            ["measure", "value"],
            [
                ["RSS idle, fresh (workers warmed up, before any request)", f"{fresh['rss_mb']:.0f} MB"],
                ["RSS idle, warm (after the requests)", f"{warm['rss_mb']:.0f} MB"],
                ["RSS peak during the 1024² requests", f"{busy['rss_peak_mb']:.0f} MB"],
                ["CPU idle (fresh / warm)",
                 f"{fresh['cpu_percent']:.1f} % / {warm['cpu_percent']:.1f} % of one core"],
                ["CPU busy during the 1024² requests",
                 f"{busy['cpu_percent']:.0f} % of one core "
                 f"({busy['cpu_percent'] / cores:.0f} % of {cores} cores)"],
            ],
        )
    else:
        out += ["Not measured: the server runs elsewhere (`--url`); pass `--server-pid` for a local one."]
    out += ["", f"## Concurrency ({conc['clients']} clients, 512², HTTP)", ""]
    lat = conc["latency"]
    out += _table(
        ["clients", "requests", "ok", "wall s", "throughput req/s", "p50 ms", "p95 ms", "p99 ms"],
        [[str(conc["clients"]), str(conc["requests"]), str(conc["ok"]), f"{conc['wall_s']:.1f}",
          f"{conc['throughput_rps']:.2f}", _ms(lat.get("p50")), _ms(lat.get("p95")), _ms(lat.get("p99"))]],
    )
    out += ["", f"Status codes: {', '.join(f'{k}: {v}' for k, v in sorted(conc['statuses'].items()))}. "
            f"The server runs {result['server_workers']} pipeline job(s) at a time; "
            "the others wait in its queue."]
    if pipeline_result:
        out += [
            "",
            "## In-process pipeline stages (`benchmarks/pipeline_latency.py`, ms)",
            "",
            f"Measured {pipeline_result['date']} (load average before "
            f"{pipeline_result.get('load_average', {}).get('before')}), "
            f"{pipeline_result['settings']['runs']} runs per size after "
            f"{pipeline_result['settings']['warmup']} warm-up; `'torch' in sys.modules`: "
            f"{pipeline_result['torch_imported']}. Indented rows are sub-stages of the row above.",
            "",
            "```",
            format_table(pipeline_result),
            "```",
        ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="measure this running server instead of starting app.py")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for RSS and CPU")
    parser.add_argument("--runs", type=int,
                        help="timed runs per size/backend/template (default 10, --quick 2)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 2 runs, 20 health checks, 1 upload per client, "
                        "no per-size warm-up")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients (default 10)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN)
    parser.add_argument("--pipeline-json", type=Path, default=DEFAULT_PIPELINE_JSON,
                        help="pipeline_latency.py output to include in the markdown, if the file exists")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    if (args.runs is not None and args.runs < 1) or args.clients < 1:
        parser.error("--runs and --clients must be >= 1")
    settings = settings_for(args.quick, args.runs, args.clients)

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[latency {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    load_before = load_average()
    scratch = Path(tempfile.mkdtemp(prefix="toonforge-latency-app-"))
    try:
        if args.url:
            http = measure_http(args.url.rstrip("/"), args.server_pid, settings, log)
        else:
            log("starting app.py")
            env = scratch_env(scratch)  # not the caller's TOONFORGE_* settings
            with launched_app(env=env, log_path=scratch / "app.log", timeout_s=args.startup_timeout) as app:
                log(f"app.py is up at {app.url} (pid {app.pid})")
                http = measure_http(app.url, app.pid, settings, log)
    except (RuntimeError, httpx.HTTPError, psutil.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    in_process = measure_in_process(settings, log)

    result = {
        "benchmark": "latency",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": load_average()},
        "settings": {
            "quick": args.quick,
            "runs": settings.runs,
            "warmup": settings.warmup,
            "health_runs": settings.health_runs,
            "clients": settings.clients,
            "requests_per_client": settings.requests_per_client,
            "launched": not args.url,
            "url": args.url,
            "sizes": list(SIZES),
            "upload_fields": UPLOAD_FIELDS,
        },
        "seed_placeholders": SEED,
        **http,
        **in_process,
    }
    pipeline_result = None
    if args.pipeline_json and args.pipeline_json.is_file():
        pipeline_result = json.loads(args.pipeline_json.read_text(encoding="utf-8"))
    text = markdown(result, pipeline_result)
    for path, content in ((args.json, json.dumps(result, indent=2) + "\n"), (args.markdown, text)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    print(text)
    print(f"Wrote {args.json} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
