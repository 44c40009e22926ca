"""Wall thickness of a printed file: how thin is its thinnest wall?

    python tools/wall_thickness.py figurine.stl [--samples 2000] [--limit-mm 1.2]

Exit status 1 when any sampled point has a wall under the limit. The measure itself is
``pipeline.wall_thickness``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

import trimesh  # noqa: E402

from pipeline.wall_thickness import MIN_WALL_MM, wall_thickness  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mesh", type=Path)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--limit-mm", type=float, default=MIN_WALL_MM)
    parser.add_argument("--max-distance", type=float, default=None, help="follow rays this far (faster)")
    args = parser.parse_args(argv)
    mesh = trimesh.load(args.mesh, force="mesh")
    walls = wall_thickness(mesh, args.samples, max_distance=args.max_distance)
    thin = walls.thinner_than(args.limit_mm)
    print(
        f"min {walls.min:.2f}  p1 {walls.p1:.2f}  "
        f"({walls.samples} rays, {walls.missed} left the solid beyond {walls.max_distance:.1f}); "
        f"{thin} thinner than {args.limit_mm} "
        f"(thinnest at {', '.join(f'{v:.1f}' for v in walls.thinnest_point)})"
    )
    return 1 if thin else 0


if __name__ == "__main__":
    sys.exit(main())
