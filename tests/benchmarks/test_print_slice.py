"""benchmarks/print_slice.py reads PrusaSlicer's closing G-code comments."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("print_slice", ROOT / "benchmarks" / "print_slice.py")
print_slice = importlib.util.module_from_spec(spec)
spec.loader.exec_module(print_slice)

GCODE = """G1 X1 Y1
T0
G1 E1
T2
G1 E1
T0
; filament used [mm] = 100.50, 20.25, 3.00
; filament used [g] = 1.50, 0.30, 0.05
; total filament used [g] = 1.85
; estimated printing time (normal mode) = 1d 2h 3m 4s
; support_material = 1
; wipe_tower = 1
; layer_height = 0.3
"""


def test_print_seconds():
    assert print_slice.print_seconds("1d 2h 3m 4s") == 93784
    assert print_slice.print_seconds("4h 27m 33s") == 16053
    assert print_slice.print_seconds("-2147483648s") is None


def test_gcode_summary():
    summary = print_slice.gcode_summary(GCODE)
    assert summary["tools_used"] == [0, 2] and summary["tool_changes"] == 2
    assert summary["filament_used_g"] == [1.5, 0.3, 0.05] and summary["total_filament_g"] == 1.85
    assert summary["supports"] and summary["wipe_tower"] and summary["layer_height_mm"] == 0.3
    assert print_slice.plausible(summary)
    assert not print_slice.plausible({**summary, "estimated_print_time": "1664d 16h 58m 40s"})
