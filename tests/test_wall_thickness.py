"""tools/wall_thickness.py measures known walls: a plate, a block, a hollow sphere."""

from __future__ import annotations

import pytest
import trimesh

from pipeline.wall_thickness import MIN_WALL_MM, wall_thickness
from tools.wall_thickness import main


def test_wall_thickness_finds_a_thin_plate_and_passes_a_thick_block():
    plate = trimesh.creation.box(extents=(20.0, 20.0, 0.8))
    block = trimesh.creation.box(extents=(20.0, 20.0, 5.0))
    thin, thick = wall_thickness(plate, 500, max_distance=3.0), wall_thickness(block, 500, max_distance=3.0)
    assert thin.min == pytest.approx(0.8, abs=1e-3) and thin.thinner_than(MIN_WALL_MM) > 300
    assert thick.thinner_than(MIN_WALL_MM) == 0 and thick.min > 3.0  # every ray goes past 3 mm...
    assert wall_thickness(block, 500).min == pytest.approx(5.0, abs=1e-3)  # ...and ends at 5 mm
    shell = trimesh.creation.icosphere(subdivisions=4, radius=10.0).difference(
        trimesh.creation.icosphere(subdivisions=4, radius=9.0)
    )
    assert wall_thickness(shell, 500, max_distance=3.0).p1 == pytest.approx(1.0, abs=0.15)


def test_short_and_full_rays_agree_on_the_thin_walls():
    plate = trimesh.creation.box(extents=(20.0, 20.0, 0.8))
    post = trimesh.creation.box(extents=(4.0, 4.0, 6.0))
    mesh = plate.union(post)
    short, full = wall_thickness(mesh, 800, max_distance=3.0), wall_thickness(mesh, 800)
    assert short.thinner_than(MIN_WALL_MM) == full.thinner_than(MIN_WALL_MM) > 0
    assert short.min == pytest.approx(full.min)


def test_command_line_fails_on_a_thin_wall(tmp_path, capsys):
    path = tmp_path / "plate.stl"
    trimesh.creation.box(extents=(20.0, 20.0, 0.8)).export(path)
    assert main([str(path), "--samples", "200", "--max-distance", "3"]) == 1
    assert "thinner than 1.2" in capsys.readouterr().out
    trimesh.creation.box(extents=(20.0, 20.0, 4.0)).export(path)
    assert main([str(path), "--samples", "200"]) == 0
