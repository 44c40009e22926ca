"""Command line: ``python -m pipeline PHOTO [PHOTO ...] --out DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from pipeline.colorprint import DEFAULT_COLORS, check_colors, parse_palette
from pipeline.config import Config
from pipeline.errors import ToonforgeError
from pipeline.runner import Options, resolve_options, run
from pipeline.stylize import BACKEND_NAMES
from pipeline.templates import template_names

EXIT_OK, EXIT_USER_ERROR = 0, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Turn face photos into a cartoon portrait and a printable 3D figurine.",
    )
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="each photo's files go to DIR/<photo name>/")
    parser.add_argument("--template", default="default", choices=template_names())
    parser.add_argument("--style", default="toon", help="look of the cartoon (toon, comic)")
    parser.add_argument("--backend", default=None, choices=BACKEND_NAMES,
                        help="stylization backend (default: cpu, or TOONFORGE_BACKEND)")
    parser.add_argument("--height-mm", type=float, default=None,
                        help="printed height of the figurine (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--colors", default=str(DEFAULT_COLORS), metavar="N",
                        help=f"filament colours in figurine.3mf, 1-8 (default {DEFAULT_COLORS}; 1 = plain)")
    parser.add_argument("--palette", default=None, metavar='"#HEX,#HEX"',
                        help="your own filament colours; each triangle takes the nearest (sets --colors)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    options = Options(
        template=args.template,
        style=args.style,
        backend=args.backend,
        seed=args.seed,
        height_mm=args.height_mm,
    )
    try:
        # --colors is read as text so that "four" gets the same one-line error as "9".
        options = replace(options, colors=check_colors(args.colors),
                          palette=parse_palette(args.palette) if args.palette is not None else None)
        options = resolve_options(options, config)
    except ToonforgeError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_USER_ERROR

    failed = 0
    used_names: set[str] = set()
    for photo in args.photos:
        name = photo.stem or "photo"
        while name in used_names:  # two photos with the same stem must not overwrite
            name += "_"
        used_names.add(name)
        try:
            result = run(photo, options, out_dir=args.out / name, config=config)
        except ToonforgeError as exc:
            failed += 1
            print(f"error: {photo}: {exc.detail}", file=sys.stderr)
            continue
        total = result.timings_ms["total"]
        print(f"{photo} -> {result.out_dir} (quality {result.quality.score}/100, {total:.0f} ms)")
    return EXIT_USER_ERROR if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
