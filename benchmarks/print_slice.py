"""Slice the default figurine with PrusaSlicer: estimated print time and filament, per file.

    python benchmarks/print_slice.py [--colors 4] [--json benchmarks/results/print_slice.json]

Runs the pipeline at its defaults (100 mm, default body) on assets/examples/astronaut.jpg,
then slices ``figurine.3mf`` as a multi-tool printer (its embedded settings: one 0.4 mm
extruder per colour, wipe tower, supports on the build plate when needed) and
``figurine.stl`` with PrusaSlicer's defaults plus the same support choice. Reads the
estimates PrusaSlicer writes at the end of the G-code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

EXAMPLE = ROOT / "assets" / "examples" / "astronaut.jpg"


def slice_file(path: Path, gcode: Path, *extra: str) -> tuple[str, float]:
    """G-code text and the slicer's wall time in seconds."""
    slicer = shutil.which("prusa-slicer")
    if slicer is None:
        raise SystemExit("prusa-slicer is not installed: tools/setup.sh --dev installs it")
    start = time.perf_counter()
    proc = subprocess.run(
        [slicer, "--export-gcode", str(path), "--output", str(gcode), *extra],
        capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"prusa-slicer failed on {path.name}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return gcode.read_text(), time.perf_counter() - start


def print_seconds(text: str | None) -> int | None:
    """PrusaSlicer's "1d 2h 3m 4s" as seconds."""
    if not text or text.startswith("-"):
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text))


def plausible(summary: dict) -> bool:
    """PrusaSlicer 2.5's time estimator now and then reports garbage for the same G-code
    (seen here: "-2147483648s" and "1664d"), so an estimate over a week is sliced again."""
    seconds = print_seconds(summary["estimated_print_time"])
    return seconds is not None and 0 < seconds < 7 * 86400


def slice_and_read(path: Path, gcode: Path, *extra: str) -> dict:
    for attempt in range(3):
        text, seconds = slice_file(path, gcode, *extra)
        summary = {**gcode_summary(text), "slice_seconds": round(seconds, 1), "slice_attempts": attempt + 1}
        if plausible(summary):
            break
    summary["estimated_print_seconds"] = print_seconds(summary["estimated_print_time"])
    return summary


def slicer_version() -> str:
    text = subprocess.run(["prusa-slicer", "--help"], capture_output=True, text=True).stdout
    return next((line for line in text.splitlines() if line.startswith("PrusaSlicer-")), "unknown")


def gcode_summary(gcode: str) -> dict:
    """PrusaSlicer's own estimates from the G-code's closing comments."""

    def value(key: str) -> str | None:
        match = re.search(rf"^; {re.escape(key)} = (.*)$", gcode, flags=re.M)
        return match.group(1).strip() if match else None

    def numbers(key: str) -> list[float]:
        text = value(key)
        return [float(x) for x in text.split(",")] if text else []

    tools = sorted({int(t) for t in re.findall(r"^T(\d+)\s*$", gcode, flags=re.M)})
    return {
        "estimated_print_time": value("estimated printing time (normal mode)"),
        "filament_used_mm": numbers("filament used [mm]"),
        "filament_used_cm3": numbers("filament used [cm3]"),
        "filament_used_g": numbers("filament used [g]"),
        "total_filament_g": float(value("total filament used [g]") or 0.0),
        "tools_used": tools,
        "tool_changes": max(len(re.findall(r"^T\d+\s*$", gcode, flags=re.M)) - 1, 0),
        "supports": value("support_material") == "1",
        "wipe_tower": value("wipe_tower") == "1",
        "layer_height_mm": float(value("layer_height") or 0.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--colors", type=int, default=4)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "print_slice.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

    from pipeline.config import Config
    from pipeline.runner import Options, run

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        result = run(EXAMPLE, Options(colors=args.colors), out_dir=out / "figurine", config=Config.from_env())
        assert result.threemf_path is not None and result.colour_print is not None
        tools = ",".join(["0.4"] * args.colors)
        sliced_3mf = slice_and_read(
            result.threemf_path, out / "colour.gcode", "--nozzle-diameter", tools, "--use-relative-e-distances"
        )
        supports = result.colour_print.printability.needs_supports
        stl_extra = ["--support-material", "--support-material-buildplate-only"] if supports else []
        sliced_stl = slice_and_read(result.stl_path, out / "plain.gcode", "--filament-density", "1.24", *stl_extra)
        report = {
            "benchmark": "print_slice",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "slicer": slicer_version(),
            "input": str(EXAMPLE.relative_to(ROOT)),
            "height_mm": result.height_mm,
            "palette": result.colour_print.to_dict()["colors"],
            "threemf_triangles": result.colour_print.triangles,
            "threemf_bytes": result.threemf_path.stat().st_size,
            "printability": result.colour_print.printability.to_dict(),
            "export_threemf_ms": round(result.timings_ms["export.threemf"], 1),
            "threemf": sliced_3mf,
            "stl": sliced_stl,
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name in ("threemf", "stl"):
        r = report[name]
        print(
            f"{name}: {r['estimated_print_time']}, {r['total_filament_g']:.1f} g "
            f"({', '.join(f'{g:.1f}' for g in r['filament_used_g'])}), tools {r['tools_used']}, "
            f"{r['tool_changes']} tool changes, supports {r['supports']}, sliced in {r['slice_seconds']} s"
        )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
