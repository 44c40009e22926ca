"""Toonforge web UI (Gradio Blocks). UI wiring only: all image and mesh work is in pipeline/,
the job pool, storage and HTTP API in service/. ``python app.py`` serves UI and API on one port."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import gradio as gr
import pandas as pd

from pipeline import STAGES, Config, FigurineResult, Options, ToonforgeError, resolve_options
from pipeline.stylize import backend_availability, get_stylizer
from pipeline.templates import load_template, template_names
from service.http import create_app
from service.runtime import Runtime
from service.server import serve

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
TEMPLATE_PICTURES = ROOT / "assets" / "templates"
# Gradio's queue looks for work every 1 ms while idle, which cost 9% of a core here with nobody
# connected (and took CPU from the pipeline under load); 20 ms is unnoticeable next to a job.
QUEUE_POLL_S = 0.02
PROGRESS_POLL_S = 0.05
HEADER = """# Toonforge
Drop in a selfie, pick a body, press **Generate**: you get a cartoon portrait and a 3D figurine
of yourself to spin, download (GLB) and 3D-print (STL)."""

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


def _options(template: str, style: str, backend: str, seed: float | None, height_mm: float) -> Options:
    """The UI's widget values as pipeline options (an empty seed box means 0)."""
    return Options(template, style, backend, int(seed or 0), height_mm)


def _session_key(request: gr.Request | None) -> str | None:
    """Owner tag for a browser session's results, so that closing the tab deletes them."""
    return request.session_hash if request and request.session_hash else None


def build_demo(config: Config | None = None, runtime: Runtime | None = None) -> gr.Blocks:
    """The whole UI. ``config`` defaults to the runtime's, else the environment's; ``runtime``
    (job pool, limits, storage) defaults to a new one for ``config``."""
    if runtime is None:
        runtime = Runtime(config or Config.from_env())
    config = config or runtime.config
    if runtime.config != config:
        raise ValueError("the runtime was built with a different config")
    availability = backend_availability(config)
    backend_choices = [
        (name if status.available else f"{name} (unavailable)", name)
        for name, status in availability.items()
    ]
    backend_notes = "\n".join(
        f"- **{name}**: {'ready' if status.available else status.reason}"
        for name, status in availability.items()
    )
    templates = [load_template(name) for name in template_names()]
    template_gallery = [
        (str(TEMPLATE_PICTURES / f"{t.name}.png"), t.label)
        for t in templates
        if (TEMPLATE_PICTURES / f"{t.name}.png").exists()
    ]
    styles = list(get_stylizer(config.default_backend, config).styles)

    def failed(exc: ToonforgeError) -> gr.Error:
        runtime.metrics.count_error(exc.code, "ui")
        return user_error(exc)

    def check_inputs(photo, template, style, backend, seed, height_mm):
        """Fail fast, before the queue: missing photo or bad options."""
        if not photo:
            raise gr.Error("Upload a photo or take one with the webcam first.", title="No photo")
        try:
            resolve_options(_options(template, style, backend, seed, height_mm), config)
        except ToonforgeError as exc:
            raise failed(exc) from exc

    def generate(
        photo: str,
        template: str,
        style: str,
        backend: str,
        seed: float,
        height_mm: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ):
        """Photo -> cartoon, 3D figurine (GLB, STL), preview, timings and quality."""
        options = _options(template, style, backend, seed, height_mm)
        try:
            # The same pool, queue bound and result store as the HTTP API.
            result = runtime.generate_sync(
                photo,
                options,
                interface="ui",
                owner=_session_key(request),
                progress=lambda fraction, stage: progress(fraction, desc=stage),
            ).result
        except ToonforgeError as exc:
            raise failed(exc) from exc
        frame = _timings_frame(result)
        return {
            stylized: str(result.stylized_path),
            viewer: str(result.glb_path),
            preview: str(result.preview_path),
            downloads: [str(result.glb_path), str(result.stl_path)],
            timing_table: frame,
            timing_chart: frame,
            quality: _quality_markdown(result),
            report: result.report(),
        }

    def styles_for(backend_name: str) -> gr.Radio:
        """Each backend has its own looks (diffusion adds some)."""
        names = list(get_stylizer(backend_name, config).styles)
        return gr.Radio(choices=names, value=names[0])

    def forget_session(request: gr.Request):
        owner = _session_key(request)
        if owner:
            runtime.store.forget_owner(owner)

    with gr.Blocks(title="Toonforge", delete_cache=(600, config.result_ttl_s)) as demo:
        gr.Markdown(HEADER)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                photo = gr.Image(
                    label="Your photo",
                    type="filepath",
                    sources=["upload", "webcam", "clipboard"],
                    height=320,
                    elem_id="photo",
                )
                if template_gallery:
                    gr.Gallery(
                        template_gallery,
                        label="Bodies",
                        columns=3,
                        height=170,
                        allow_preview=False,
                        elem_id="template-pictures",
                    )
                template = gr.Radio(
                    [(t.label, t.name) for t in templates],
                    value=templates[0].name,
                    label="Body",
                    elem_id="template",
                )
                style = gr.Radio(styles, value=styles[0], label="Style", elem_id="style")
                with gr.Accordion("Advanced", open=False):
                    backend = gr.Radio(
                        backend_choices,
                        value=config.default_backend,
                        label="Stylization backend",
                        elem_id="backend",
                    )
                    gr.Markdown(backend_notes, elem_id="backend-notes")
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
            with gr.Column(scale=3, min_width=300):
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
                    timing_table = gr.Dataframe(
                        headers=["stage", "ms"], label="Timing per stage", elem_id="timings"
                    )
                    timing_chart = gr.BarPlot(
                        x="stage", y="ms", label="Timing per stage (ms)", sort=list(STAGES), elem_id="timing-chart"
                    )
                with gr.Accordion("Full report (report.json)", open=False):
                    report = gr.JSON(label="Report", elem_id="report")

        backend.change(styles_for, backend, style, api_visibility="private", queue=False)
        inputs = [photo, template, style, backend, seed, height_mm]
        run_button.click(check_inputs, inputs, None, api_visibility="private", queue=False).success(
            generate,
            inputs,
            [stylized, viewer, preview, downloads, timing_table, timing_chart, quality, report],
            api_name="generate",
            concurrency_limit=config.workers,
        )
        demo.unload(forget_session)
    demo.queue(max_size=config.queue_size)
    demo._queue.sleep_when_free = QUEUE_POLL_S  # no public setting (Gradio 6.31)
    demo._queue.progress_update_sleep_when_free = PROGRESS_POLL_S
    runtime.attach(demo)
    return demo


app_runtime = Runtime(Config.from_env())  # shared by the UI and, under main(), the HTTP API
demo = build_demo(runtime=app_runtime)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Toonforge web app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(
        app_runtime.config,
        demo,
        runtime=app_runtime,
        allowed_paths=[str(EXAMPLES_DIR), str(app_runtime.config.data_dir)],
        server_name=args.host,
        server_port=args.port,
    )
    serve(app, host=args.host, port=args.port, share_token=demo.share_token if args.share else None)


if __name__ == "__main__":
    main()
