"""Regenerate the example photos in assets/examples/ from images shipped in scikit-image.

scikit-image's `astronaut` is NASA's public-domain portrait of Eileen Collins; `chelsea` is
a cat photo by Stefan van der Walt (CC0). See assets/README.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "assets" / "examples"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(skimage.data.astronaut())
    astronaut.save(OUT / "astronaut.jpg", quality=92)
    # A tight portrait crop, enlarged: the face fills the frame.
    astronaut.crop((130, 10, 330, 250)).resize((400, 480), Image.Resampling.LANCZOS).save(
        OUT / "astronaut_closeup.jpg", quality=92
    )
    # A tilted head: rotate the whole photo and crop away the corners.
    tilted = astronaut.rotate(14, resample=Image.Resampling.BICUBIC, center=(225, 120))
    tilted.crop((60, 0, 460, 400)).save(OUT / "astronaut_tilted.jpg", quality=92)
    # A mirrored, warmer, darker variant: another pose and lighting for the same face.
    arr = np.asarray(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT), dtype=np.float32)
    arr = np.clip(arr * np.array([0.85, 0.75, 0.65]), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(OUT / "astronaut_warm_mirrored.jpg", quality=92)
    # No person at all: shows the "no face" message.
    Image.fromarray(skimage.data.chelsea()).save(OUT / "cat_no_face.jpg", quality=92)


if __name__ == "__main__":
    main()
