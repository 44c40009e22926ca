"""Toonforge web UI (Gradio Blocks). UI wiring only: all image and mesh work is in pipeline/,
the job pool, storage and HTTP API in service/. ``python app.py`` serves UI and API on one port.

Importing this module builds nothing: :func:`main` (or ``build_demo(runtime)``) does. A
module-level ``demo``, for ``gradio app.py`` reload mode, is built on first access (PEP 562).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from pipeline import STAGES, Config, FigurineResult, Options, ToonforgeError, resolve_options
from pipeline.stylize import backend_availability, get_stylizer
from pipeline.templates import load_template, template_names
from service.config import ServiceConfig
from service.errors import RayUnavailableError
from service.http import create_app
from service.runtime import Runtime
from service.server import serve

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
TEMPLATE_PICTURES = ROOT / "assets" / "templates"
# Gradio's queue looks for work every 1 ms while idle, which cost 9% of a core here with nobody
# connected (and took CPU from the pipeline under load); 20 ms is unnoticeable next to a job.
# There is no public setting: tune_queue sets the private attributes of this Gradio version only.
TUNED_GRADIO_VERSION = "6.31"
QUEUE_POLL_S = 0.02
PROGRESS_POLL_S = 0.05
HEADER = """# Toonforge
Drop in a selfie, pick a body, press **Generate**: you get a cartoon portrait and a 3D figurine
of yourself to spin, download (GLB) and 3D-print (STL)."""
# What a generation fills in, in the order of the click's outputs (names of Page fields).
RESULT_OUTPUTS = (
    "stylized",
    "viewer",
    "preview",
    "downloads",
    "timing_table",
    "timing_chart",
    "quality",
    "report",
)

log = logging.getLogger("toonforge.ui")


def user_error(exc: ToonforgeError) -> gr.Error:
    """The one place where pipeline errors become messages in the browser."""
    return gr.Error(exc.detail, print_exception=False)


def _timings_frame(result: FigurineResult) -> pd.DataFrame:
    rows = [(stage, round(result.timings_ms[stage], 1)) for stage in STAGES]
    return pd.DataFrame(rows, columns=["stage", "ms"])


def _quality_markdown(result: FigurineResult) -> str:
    q = result.quality
    face = result.face
    lines = [
        f"### Quality {q.score}/100 ({q.grade})",
        *[f"- {reason}" for reason in q.reasons],
        "",
        f"Faces found: {face.count} · detection confidence {face.confidence:.2f} · "
        f"pose yaw {face.yaw:.0f}°, pitch {face.pitch:.0f}°, roll {face.roll:.0f}°",
        "",
        f"Backend `{result.backend}`, style `{result.style}`, template `{result.template}`, "
        f"height {result.height_mm:.0f} mm · total {result.timings_ms['total']:.0f} ms",
    ]
    return "\n".join(lines)


def _result_values(result: FigurineResult) -> dict[str, Any]:
    """What each output component shows for ``result``, by :data:`RESULT_OUTPUTS` name."""
    frame = _timings_frame(result)
    return {
        "stylized": str(result.stylized_path),
        "viewer": str(result.glb_path),
        "preview": str(result.preview_path),
        "downloads": [str(result.glb_path), str(result.stl_path)],
        "timing_table": frame,
        "timing_chart": frame,
        "quality": _quality_markdown(result),
        "report": result.report(),
    }


def _options(template: str, style: str, backend: str, seed: float | None, height_mm: float) -> Options:
    """The UI's widget values as pipeline options (an empty seed box means 0)."""
    return Options(template, style, backend, int(seed or 0), height_mm)


def _session_key(request: gr.Request | None) -> str | None:
    """Owner tag for a browser session's results, so that closing the tab deletes them."""
    return request.session_hash if request and request.session_hash else None


# --------------------------------------------------------------------------- handlers


class UiHandlers:
    """The UI's event handlers, bound to the runtime (job pool, limits, storage, metrics) that
    the HTTP API shares."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config

    def _failed(self, exc: ToonforgeError) -> gr.Error:
        self.runtime.metrics.count_error(exc.code, "ui")
        return user_error(exc)

    def check_inputs(self, photo, template, style, backend, seed, height_mm) -> None:
        """Fail fast, before the queue: missing photo or bad options."""
        if not photo:
            raise gr.Error("Upload a photo or take one with the webcam first.", title="No photo")
        try:
            resolve_options(_options(template, style, backend, seed, height_mm), self.config)
        except ToonforgeError as exc:
            raise self._failed(exc) from exc

    def generate(
        self,
        photo: str,
        template: str,
        style: str,
        backend: str,
        seed: float,
        height_mm: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> list[Any]:
        """Photo -> cartoon, 3D figurine (GLB, STL), preview, timings and quality."""
        options = _options(template, style, backend, seed, height_mm)
        try:
            # The same pool, queue bound and result store as the HTTP API.
            result = self.runtime.generate_sync(
                photo,
                options,
                interface="ui",
                owner=_session_key(request),
                progress=lambda fraction, stage: progress(fraction, desc=stage),
            ).result
        except ToonforgeError as exc:
            raise self._failed(exc) from exc
        values = _result_values(result)
        return [values[name] for name in RESULT_OUTPUTS]

    def styles_for(self, backend_name: str) -> gr.Radio:
        """Each backend has its own looks (diffusion adds some)."""
        names = list(get_stylizer(backend_name, self.config).styles)
        return gr.Radio(choices=names, value=names[0])

    def forget_session(self, request: gr.Request) -> None:
        owner = _session_key(request)
        if owner:
            self.runtime.store.forget_owner(owner)


# --------------------------------------------------------------------------- layout


@dataclass
class Page:
    """The components that the handlers read or fill in."""

    photo: gr.Image
    template: gr.Radio
    style: gr.Radio
    backend: gr.Radio
    seed: gr.Number
    height_mm: gr.Slider
    run_button: gr.Button
    stylized: gr.Image
    viewer: gr.Model3D
    preview: gr.Image
    downloads: gr.File
    timing_table: gr.Dataframe
    timing_chart: gr.BarPlot
    quality: gr.Markdown
    report: gr.JSON

    @property
    def inputs(self) -> list[Any]:
        return [self.photo, self.template, self.style, self.backend, self.seed, self.height_mm]

    @property
    def result_outputs(self) -> list[Any]:
        return [getattr(self, name) for name in RESULT_OUTPUTS]


def layout(config: Config) -> Page:
    """Lay out the page inside the open ``gr.Blocks``: inputs left, results right."""
    gr.Markdown(HEADER)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            inputs = _input_column(config)
        with gr.Column(scale=3, min_width=300):
            outputs = _output_column()
    return Page(**inputs, **outputs)


def _backend_choices(config: Config) -> tuple[list[tuple[str, str]], str]:
    """The backend radio's (label, value) choices and the Markdown notes under it."""
    availability = backend_availability(config)
    choices = [
        (name if status.available else f"{name} (unavailable)", name)
        for name, status in availability.items()
    ]
    notes = "\n".join(
        f"- **{name}**: {'ready' if status.available else status.reason}"
        for name, status in availability.items()
    )
    return choices, notes


def _input_column(config: Config) -> dict[str, Any]:
    photo = gr.Image(
        label="Your photo",
        type="filepath",
        sources=["upload", "webcam", "clipboard"],
        height=320,
        elem_id="photo",
    )
    templates = [load_template(name) for name in template_names()]
    pictures = [
        (str(TEMPLATE_PICTURES / f"{t.name}.png"), t.label)
        for t in templates
        if (TEMPLATE_PICTURES / f"{t.name}.png").exists()
    ]
    if pictures:
        gr.Gallery(
            pictures, label="Bodies", columns=3, height=170, allow_preview=False, elem_id="template-pictures"
        )
    template = gr.Radio(
        [(t.label, t.name) for t in templates], value=templates[0].name, label="Body", elem_id="template"
    )
    styles = list(get_stylizer(config.default_backend, config).styles)
    style = gr.Radio(styles, value=styles[0], label="Style", elem_id="style")
    with gr.Accordion("Advanced", open=False):
        choices, notes = _backend_choices(config)
        backend = gr.Radio(
            choices, value=config.default_backend, label="Stylization backend", elem_id="backend"
        )
        gr.Markdown(notes, elem_id="backend-notes")
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
        height_mm = gr.Slider(
            config.min_height_mm,
            config.max_height_mm,
            value=config.default_height_mm,
            step=5,
            label="Printed height (mm)",
        )
    run_button = gr.Button("Generate", variant="primary", elem_id="generate")
    gr.Examples(
        examples=[[str(p)] for p in sorted(EXAMPLES_DIR.glob("*.jpg"))],
        inputs=[photo],
        label="Example photos",
        elem_id="examples",
    )
    return dict(
        photo=photo,
        template=template,
        style=style,
        backend=backend,
        seed=seed,
        height_mm=height_mm,
        run_button=run_button,
    )


def _output_column() -> dict[str, Any]:
    with gr.Row():
        stylized = gr.Image(label="Cartoon", type="filepath", elem_id="stylized")
        preview = gr.Image(label="Figurine preview", type="filepath", elem_id="preview")
    viewer = gr.Model3D(
        label="3D figurine (drag to spin)",
        clear_color=(0.95, 0.95, 0.97, 1.0),
        height=420,
        elem_id="viewer",
    )
    downloads = gr.File(label="Downloads (GLB, STL)", file_count="multiple", elem_id="downloads")
    quality = gr.Markdown(label="Quality report", elem_id="quality")
    with gr.Row():
        timing_table = gr.Dataframe(headers=["stage", "ms"], label="Timing per stage", elem_id="timings")
        timing_chart = gr.BarPlot(
            x="stage", y="ms", label="Timing per stage (ms)", sort=list(STAGES), elem_id="timing-chart"
        )
    with gr.Accordion("Full report (report.json)", open=False):
        report = gr.JSON(label="Report", elem_id="report")
    return dict(
        stylized=stylized,
        viewer=viewer,
        preview=preview,
        downloads=downloads,
        timing_table=timing_table,
        timing_chart=timing_chart,
        quality=quality,
        report=report,
    )


# --------------------------------------------------------------------------- the app


def tune_queue(demo: gr.Blocks, max_size: int) -> bool:
    """Enable ``demo``'s queue and, on Gradio :data:`TUNED_GRADIO_VERSION`, make it poll less
    often while idle. On another version the public defaults stay; returns whether it tuned."""
    demo.queue(max_size=max_size)
    queue = getattr(demo, "_queue", None)
    knobs = ("sleep_when_free", "progress_update_sleep_when_free")
    if not gr.__version__.startswith(f"{TUNED_GRADIO_VERSION}.") or not all(
        hasattr(queue, knob) for knob in knobs
    ):
        log.warning(
            "Gradio %s: its queue keeps the default polling (tuned for %s.x only)",
            gr.__version__,
            TUNED_GRADIO_VERSION,
        )
        return False
    queue.sleep_when_free = QUEUE_POLL_S
    queue.progress_update_sleep_when_free = PROGRESS_POLL_S
    return True


def build_demo(runtime: Runtime) -> gr.Blocks:
    """The whole UI, its handlers bound to ``runtime``."""
    config = runtime.config
    handlers = UiHandlers(runtime)
    with gr.Blocks(title="Toonforge", delete_cache=(600, config.result_ttl_s)) as demo:
        page = layout(config)
        page.backend.change(
            handlers.styles_for, page.backend, page.style, api_visibility="private", queue=False
        )
        page.run_button.click(
            handlers.check_inputs, page.inputs, None, api_visibility="private", queue=False
        ).success(
            handlers.generate,
            page.inputs,
            page.result_outputs,
            api_name="generate",
            concurrency_limit=config.workers,
        )
        demo.unload(handlers.forget_session)
    tune_queue(demo, config.queue_size)
    return demo


def build_app(runtime: Runtime, demo: gr.Blocks, *, host: str, port: int) -> Any:
    """The FastAPI app: HTTP API plus ``demo`` mounted at "/", both on ``runtime``."""
    return create_app(
        runtime.config,
        demo,
        runtime=runtime,
        allowed_paths=[str(EXAMPLES_DIR), str(runtime.config.data_dir)],
        server_name=host,
        server_port=port,
    )


@cache
def _environment_demo() -> gr.Blocks:
    return build_demo(Runtime(Config.from_env()))


def __getattr__(name: str) -> Any:
    """``app.demo``, built from the environment on first access (``gradio app.py``)."""
    if name == "demo":
        return _environment_demo()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve the Toonforge web app (UI and HTTP API on one port).",
        epilog="Without --host/--port: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, else 127.0.0.1:7860.",
    )
    parser.add_argument("--host", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    return parser.parse_args(argv)


def listen_address(args: argparse.Namespace, config: Config) -> tuple[str, int]:
    """Flags first, then the environment (read into ``config``), then 127.0.0.1:7860."""
    host = args.host if args.host is not None else config.server_name
    port = args.port if args.port is not None else config.server_port
    return host, port


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = Config.from_env()
    host, port = listen_address(args, config)
    share = args.share
    if share and config.on_spaces:
        log.warning("--share ignored: a Space already has a public URL")
        share = False
    if config.on_spaces:
        log.info(
            "on Hugging Face Spaces as %s (ZeroGPU: %s); results in %s",
            config.space_id or "an unnamed Space",
            "yes" if config.zero_gpu else "no",
            config.data_dir,
        )
    runtime = Runtime(config, service=ServiceConfig.from_env())  # shared by the UI and the HTTP API
    try:
        runtime.connect()  # Ray mode: join the cluster now, or stop with one clear line
    except RayUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from None
    demo = build_demo(runtime)
    app = build_app(runtime, demo, host=host, port=port)
    serve(app, host=host, port=port, share_token=demo.share_token if share else None)


if __name__ == "__main__":
    main()
