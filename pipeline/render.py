"""Offscreen previews with pyrender (EGL on Mesa when there is no display).

EGL contexts must not be created or used from several threads at once, so one dedicated
thread owns the renderer and every render is handed to it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import trimesh

from pipeline.body import FigurinePart

BACKGROUND = (0.96, 0.96, 0.97, 1.0)
PREVIEW_SHADER = Path(__file__).resolve().parent / "shaders" / "preview.frag"


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


class PreviewRenderer:
    """Renders figurine parts; all OpenGL work runs on this object's single thread."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toonforge-render")
        self._gl = None  # pyrender.OffscreenRenderer, created on the render thread

    def render(self, parts: Sequence[FigurinePart], yaw_deg: float = 0.0) -> np.ndarray:
        """RGB uint8 image of the parts seen from the front, turned by ``yaw_deg``."""
        return self._thread.submit(self._render, list(parts), yaw_deg).result()

    def turntable(self, parts: Sequence[FigurinePart], frames: int) -> list[np.ndarray]:
        return [self.render(parts, 360.0 * i / frames) for i in range(frames)]

    def _render(self, parts: list[FigurinePart], yaw_deg: float) -> np.ndarray:
        if self._gl is None:
            if os.environ.get("DISPLAY") is None:
                os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
            # Mesa's CPU rasterizer: drawing on this thread rather than handing tiles to
            # helper threads took a preview from 68 to 53 ms of CPU here, same wall time.
            os.environ.setdefault("LP_NUM_THREADS", "0")
        import pyrender  # imported here: it binds an OpenGL platform on import

        if self._gl is None:
            self._gl = pyrender.OffscreenRenderer(self.size, self.size)
            # pyrender has no public hook for shaders; its renderer reads programs from here.
            self._gl._renderer._program_cache = _preview_shaders(pyrender)
        scene = pyrender.Scene(bg_color=BACKGROUND, ambient_light=(0.3, 0.3, 0.3))
        spin = trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 1, 0])
        lo = np.min([p.mesh.bounds[0] for p in parts], axis=0)
        hi = np.max([p.mesh.bounds[1] for p in parts], axis=0)
        for part in parts:
            if part.textured:
                scene.add(pyrender.Mesh.from_trimesh(part.mesh, smooth=True), pose=spin)
        plain = [p for p in parts if not p.textured]
        if plain:
            scene.add(pyrender.Mesh([flat_coloured(plain, pyrender)]), pose=spin)
        centre = (lo + hi) / 2
        height = float(hi[1] - lo[1])
        fov = np.radians(30.0)
        distance = 0.62 * height / np.tan(fov / 2)
        eye = centre + np.array([0.0, 0.12 * height, distance])
        camera = pyrender.PerspectiveCamera(yfov=fov, aspectRatio=1.0)
        scene.add(camera, pose=_look_at(eye, centre))
        key = pyrender.DirectionalLight(color=np.ones(3), intensity=2.2)
        scene.add(key, pose=_look_at(centre + np.array([0.6, 1.0, 1.0]) * height, centre))
        fill = pyrender.DirectionalLight(color=np.ones(3), intensity=0.9)
        scene.add(fill, pose=_look_at(centre + np.array([-1.0, 0.3, 0.8]) * height, centre))
        colour, _ = self._gl.render(scene)
        return np.ascontiguousarray(colour[..., :3])


def _preview_shaders(pyrender):
    """pyrender's shader cache with our cheaper fragment shader for lit meshes."""

    class PreviewShaders(pyrender.shader_program.ShaderProgramCache):
        def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
            if fragment_shader == "mesh.frag":
                fragment_shader = str(PREVIEW_SHADER)  # an absolute path wins in os.path.join
            return super().get_program(vertex_shader, fragment_shader, geometry_shader, defines)

    return PreviewShaders()


def flat_coloured(parts: list[FigurinePart], pyrender) -> "pyrender.Primitive":
    """Every plain part as one flat-shaded primitive with per-vertex colours: one draw call
    and one buffer upload instead of one per part (most of a render's CPU time here)."""
    triangles = [p.mesh.vertices[p.mesh.faces].reshape(-1, 3) for p in parts]
    normals = [np.repeat(p.mesh.face_normals, 3, axis=0) for p in parts]
    colours = [np.tile(p.linear_rgba(), (len(t), 1)) for p, t in zip(parts, triangles)]
    material = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.7
    )
    return pyrender.Primitive(
        positions=np.concatenate(triangles).astype(np.float32),
        normals=np.concatenate(normals).astype(np.float32),
        color_0=np.concatenate(colours).astype(np.float32),
        material=material,
    )


_lock = threading.Lock()
_renderer: PreviewRenderer | None = None


def get_renderer() -> PreviewRenderer:
    """The process-wide renderer, created on first use."""
    global _renderer
    with _lock:
        if _renderer is None:
            _renderer = PreviewRenderer()
        return _renderer
