"""In-process latency of every pipeline stage, p50/p95 per input size, CPU backend.

    python benchmarks/pipeline_latency.py [--runs 20] [--sizes 512 768 1024] [--json out.json]

The input is scikit-image's astronaut portrait resized to N x N and JPEG-encoded, so the
validate stage decodes a real upload. The pipeline's working copy is capped at
``working_max_side`` (1024), so 1024 x 1024 is the largest size that reaches the later stages
unchanged. Each size gets ``--warmup`` untimed runs first: the first run loads the MediaPipe
graphs and the OpenGL context, which says nothing about steady-state latency. The timed runs
then go round-robin over the sizes, so background load skews no single size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DEFAULT_SIZES = (512, 768, 1024)
# Targets from the performance issue; sizes without a target are reported without a verdict.
TARGET_P95_MS = {512: 200.0, 1024: 350.0}
MAIN_STAGES = ("validate", "landmarks", "stylize", "fusion", "export", "total")


def machine_info() -> dict:
    """CPU model, core counts, memory and the versions that shape the timings."""
    import cv2
    import psutil

    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:  # not Linux: platform.processor() is the best we have
        pass
    try:
        import mediapipe

        mp_version = mediapipe.__version__
    except ImportError:
        mp_version = None
    return {
        "cpu_model": model or "unknown",
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "mediapipe": mp_version,
    }


def load_average() -> list[float] | None:
    """1/5/15-minute load: other work on the machine inflates every figure, so record it."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not available on this platform
        return None


def machine_line(machine: dict) -> str:
    return (
        f"{machine['cpu_model']}, {machine['physical_cores']} physical / "
        f"{machine['logical_cores']} logical cores, {machine['memory_gb']} GiB RAM, no GPU used, "
        f"Python {machine['python']}, {machine['os']}"
    )


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """mean, p50, p95, p99, min, max in ms (linear interpolation between order statistics)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "n": int(arr.size),
        "mean": round(float(arr.mean()), 2),
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "min": round(float(arr.min()), 2),
        "max": round(float(arr.max()), 2),
    }


def astronaut_at(size: int) -> np.ndarray:
    """The astronaut portrait (512 x 512 originally) resized to ``size`` x ``size``."""
    import skimage.data
    from PIL import Image

    img = Image.fromarray(skimage.data.astronaut())
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def ordered_keys(keys: Iterable[str]) -> list[str]:
    """Main stages in pipeline order, each followed by its sub-stages (in the order the
    pipeline reported them), then total."""
    keys = list(dict.fromkeys(keys))
    out: list[str] = []
    for stage in MAIN_STAGES:
        if stage in keys:
            out.append(stage)
        out += [k for k in keys if k.startswith(stage + ".")]
    out += [k for k in keys if k not in out]
    return out


class SizeBench:
    """One input size: its upload bytes and the timings collected so far."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.upload = jpeg_bytes(astronaut_at(size))
        self.samples: dict[str, list[float]] = {}
        self.working_size: list[int] | None = None
        self.count = 0

    def once(self, options, config, scratch: Path, record: bool) -> None:
        from pipeline import run

        out_dir = scratch / f"{self.size}-{self.count}"
        self.count += 1
        result = run(self.upload, options, out_dir=out_dir, config=config)
        self.working_size = [int(result.stylized.shape[1]), int(result.stylized.shape[0])]
        # Remove each run's files at once so disk growth never shows up in the timings.
        shutil.rmtree(out_dir, ignore_errors=True)
        if record:
            for key, value in result.timings_ms.items():
                self.samples.setdefault(key, []).append(value)

    def summary(self) -> dict:
        stages = {key: summarize(self.samples[key]) for key in ordered_keys(self.samples)}
        target = TARGET_P95_MS.get(self.size)
        return {
            "input_size": [self.size, self.size],
            "working_size": self.working_size,
            "upload_bytes": len(self.upload),
            "runs": len(self.samples.get("total", [])),
            "stages": stages,
            "target_p95_ms": target,
            "meets_target": None if target is None else stages["total"]["p95"] <= target,
        }


def format_table(results: dict) -> str:
    """Stage rows, one p50/p95 column pair per size."""
    sizes = list(results["sizes"])
    keys = ordered_keys(k for s in sizes for k in results["sizes"][s]["stages"])
    head = ["stage"] + [f"{s}² {q}" for s in sizes for q in ("p50", "p95")]
    rows = []
    for key in keys:
        label = f"  {key}" if "." in key else key
        cells = []
        for s in sizes:
            stat = results["sizes"][s]["stages"].get(key)
            cells += [f"{stat['p50']:.1f}", f"{stat['p95']:.1f}"] if stat else ["-", "-"]
        rows.append([label, *cells])
    verdict = ["target (total p95)"]
    for s in sizes:
        info = results["sizes"][s]
        if info["target_p95_ms"] is None:
            verdict += ["", "-"]
        else:
            ok = "ok" if info["meets_target"] else "MISSED"
            verdict += ["", f"≤{info['target_p95_ms']:.0f} {ok}"]
    rows.append(verdict)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = (c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def run_benchmark(
    sizes: Sequence[int] = DEFAULT_SIZES,
    runs: int = 20,
    warmup: int = 2,
    backend: str = "cpu",
    style: str = "toon",
    template: str = "default",
) -> dict:
    """Run the whole benchmark and return the JSON-ready result."""
    from pipeline import Config, Options

    load_before = load_average()
    scratch = Path(tempfile.mkdtemp(prefix="toonforge-bench-"))
    try:
        config = replace(Config.from_env(), data_dir=scratch / "data")
        options = Options(template=template, style=style, backend=backend)
        benches = [SizeBench(size) for size in sizes]
        for bench in benches:
            for _ in range(warmup):
                bench.once(options, config, scratch, record=False)
        # Round-robin over the sizes, so that a burst of other load on the machine lands on
        # every size alike instead of skewing whichever size happened to run at that moment.
        for _ in range(runs):
            for bench in benches:
                bench.once(options, config, scratch, record=True)
        per_size = {str(bench.size): bench.summary() for bench in benches}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "benchmark": "pipeline_latency",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": load_average()},
        "settings": {
            "runs": runs,
            "warmup": warmup,
            "backend": backend,
            "style": style,
            "template": template,
            "input": "skimage.data.astronaut resized to N x N, JPEG quality 92",
            "percentiles": "numpy linear interpolation",
            "order": "warm-up per size, then the sizes round-robin",
        },
        # The CPU path must not pay for the diffusion stack's imports.
        "torch_imported": "torch" in sys.modules,
        "diffusers_imported": "diffusers" in sys.modules,
        "sizes": per_size,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per size (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per size first (default 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--style", default="toon")
    parser.add_argument("--template", default="default")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")

    results = run_benchmark(args.sizes, args.runs, args.warmup, args.backend, args.style, args.template)
    print(f"Machine: {machine_line(results['machine'])}")
    print(f"Date: {results['date']}  runs per size: {args.runs} (after {args.warmup} warm-up)  "
          f"backend: {args.backend}  load average before/after: "
          f"{results['load_average']['before']} / {results['load_average']['after']}")
    print(format_table(results))
    print(f"'torch' in sys.modules: {results['torch_imported']}  "
          f"'diffusers' in sys.modules: {results['diffusers_imported']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
