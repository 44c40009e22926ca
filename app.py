"""Toonforge web UI (Gradio Blocks). UI wiring only: all image and mesh work is in pipeline/,
the job pool, storage and HTTP API in service/. ``python app.py`` serves UI and API on one port.

Importing this module builds nothing: :func:`main` (or ``build_demo(runtime)``) does. A
module-level ``demo``, for ``gradio app.py`` reload mode, is built on first access (PEP 562).
"""

from __future__ import annotations

import argparse
import html
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from pipeline import STAGES, Config, FigurineResult, Options, ToonforgeError, resolve_options
from pipeline.colorprint import DEFAULT_COLORS, MAX_COLORS, MIN_COLORS, check_colors
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
of yourself to spin, download (GLB) and 3D-print, in one colour (STL) or in your filament
colours (3MF)."""
# The pickers' starting colours when a user chooses their own filaments: common spools
# (white, black, a skin tone, red, blue, yellow, green, brown), the first N of them shown.
STARTER_FILAMENTS = (
    "#ffffff",
    "#1a1a1a",
    "#e8b896",
    "#c0392b",
    "#2e5fa8",
    "#f2c12e",
    "#3a8f47",
    "#6b4226",
)
PALETTE_CSS = """
.swatches { display: flex; flex-wrap: wrap; gap: 6px 14px; }
.swatch { display: flex; align-items: center; gap: 6px; }
.chip { display: inline-block; width: 22px; height: 22px; border-radius: 4px;
        border: 1px solid var(--border-color-primary); }
.palette p { margin: 0 0 4px; font-weight: 600; }
.swatch small { color: var(--body-text-color-subdued); }
"""
# Runs in the browser on every change of the colour controls, so that the palette the
# Generate click sends is never stale: the first N picked colours, or none.
PALETTE_JS = (
    f"(mine, count, ...picked) => mine ? picked.slice(0, Math.max(count ?? {DEFAULT_COLORS}, 0)).join(',') : ''"
)
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
    # Appended for the colour print and the one-colour view: gradio_client callers index the
    # outputs by position, so new ones only ever go at the end.
    "print_preview",
    "one_colour",
    "palette",
    "threemf",
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


def _palette_html(result: FigurineResult) -> str:
    """The filament colours as a row of swatches with hex and share of the surface."""
    colours = result.colour_print.palette if result.colour_print else []
    swatches = "".join(
        f'<div class="swatch" title="{html.escape(c.hex)}: {c.share:.0%} of the surface">'
        f'<span class="chip" style="background:{html.escape(c.hex)}"></span>'
        f"<code>{html.escape(c.hex)}</code><small>{c.share:.0%}</small></div>"
        for c in colours
    )
    return f'<div class="palette"><p>Filaments of the colour print</p><div class="swatches">{swatches}</div></div>'


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
        "print_preview": _optional_path(result.print_preview_path),
        "one_colour": _optional_path(result.grey_glb_path),
        "palette": _palette_html(result),
        "threemf": _optional_path(result.threemf_path),
    }


def _optional_path(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _options(
    template: str,
    style: str,
    backend: str,
    seed: float | None,
    height_mm: float,
    colors: float | None = DEFAULT_COLORS,
    palette: str | None = "",
) -> Options:
    """The UI's widget values as pipeline options (an empty seed box means 0). ``palette`` is
    "#hex,#hex,..." or empty; the pipeline checks both colour values."""
    return Options(
        template,
        style,
        backend,
        int(seed or 0),
        height_mm,
        # checked even when a palette (which sets the count) is given: a bad number is an error
        colors=check_colors(DEFAULT_COLORS if colors is None else colors),
        palette=tuple(palette.split(",")) if palette and palette.strip() else None,
    )


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

    def check_inputs(self, photo, template, style, backend, seed, height_mm, colors, palette) -> None:
        """Fail fast, before taking a worker: missing photo or bad options."""
        if not photo:
            raise gr.Error(
                "Upload a photo or take one with the webcam first.", title="No photo", print_exception=False
            )
        try:
            resolve_options(_options(template, style, backend, seed, height_mm, colors, palette), self.config)
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
        colors: float,
        palette: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> list[Any]:
        """Photo -> cartoon, 3D figurine (GLB, STL, colour 3MF), previews, timings and quality."""
        try:
            options = _options(template, style, backend, seed, height_mm, colors, palette)
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

    @staticmethod
    def show_filaments(mine: bool, count: float) -> list[Any]:
        """The pickers row when the user brings their own filaments, with one picker per
        filament colour."""
        shown = DEFAULT_COLORS if count is None else int(count)
        return [gr.Row(visible=mine), *(gr.ColorPicker(visible=i < shown) for i in range(MAX_COLORS))]

    def forget_session(self, request: gr.Request) -> None:
        owner = _session_key(request)
        if owner:
            self.runtime.store.forget_owner(owner)


# --------------------------------------------------------------------------- layout


@dataclass
class Page:
    """The components that the handlers read or fill in."""

    photo: gr.Image
    bodies: gr.Gallery | None
    body_names: list[str]  # the template shown by each picture of ``bodies``
    template: gr.Radio
    style: gr.Radio
    colors: gr.Number
    my_filaments: gr.Checkbox
    filament_row: gr.Row
    filaments: list[gr.ColorPicker]
    palette_field: gr.Textbox
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
    print_preview: gr.Image
    one_colour: gr.Model3D
    palette: gr.HTML
    threemf: gr.File

    @property
    def inputs(self) -> list[Any]:
        """The generate endpoint's parameters; new ones only ever go at the end."""
        return [
            self.photo,
            self.template,
            self.style,
            self.backend,
            self.seed,
            self.height_mm,
            self.colors,
            self.palette_field,
        ]

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
    pictured = [t for t in templates if (TEMPLATE_PICTURES / f"{t.name}.png").exists()]
    body_names = [t.name for t in pictured]
    bodies = None
    if pictured:
        bodies = gr.Gallery(
            [(str(TEMPLATE_PICTURES / f"{t.name}.png"), t.label) for t in pictured],
            label="Bodies",
            columns=3,
            height=170,
            allow_preview=False,
            selected_index=0 if body_names[0] == templates[0].name else None,
            elem_id="template-pictures",
        )
    template = gr.Radio(
        [(t.label, t.name) for t in templates], value=templates[0].name, label="Body", elem_id="template"
    )
    styles = list(get_stylizer(config.default_backend, config).styles)
    style = gr.Radio(styles, value=styles[0], label="Style", elem_id="style")
    colour_controls = _colour_print_controls()
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
        bodies=bodies,
        body_names=body_names,
        template=template,
        style=style,
        **colour_controls,
        backend=backend,
        seed=seed,
        height_mm=height_mm,
        run_button=run_button,
    )


def _colour_print_controls() -> dict[str, Any]:
    """Filament count and, for users who bring their own, one colour picker per filament."""
    # A number box, not a slider: a slider's bounds are checked by Gradio, with its own message,
    # before any handler runs. Unbounded here, the pipeline's check_colors answers (in
    # check_inputs and generate), with the same message as the HTTP API and the CLI.
    colors = gr.Number(
        value=DEFAULT_COLORS,
        precision=0,
        step=1,
        label="Filament colours",
        info=(
            f"{MIN_COLORS}-{MAX_COLORS} colours for the 3MF colour print; 1 prints in one colour. At 4, skin, "
            "eyes, hair and outfit get one each; 5 or more add a shadow tone to the face."
        ),
        elem_id="colors",
    )
    my_filaments = gr.Checkbox(
        value=False,
        label="Use my filaments",
        info="Map the figurine to the colours of the spools you own.",
        elem_id="my-filaments",
    )
    with gr.Row(visible=False, elem_id="filaments") as filament_row:
        filaments = [
            gr.ColorPicker(
                value=colour,
                label=f"Filament {i + 1}",
                visible=i < DEFAULT_COLORS,
                min_width=72,
                elem_id=f"filament-{i + 1}",
            )
            for i, colour in enumerate(STARTER_FILAMENTS[:MAX_COLORS])
        ]
    # What the Generate click sends: "#hex,#hex,..." or empty (composed by PALETTE_JS).
    palette_field = gr.Textbox(value="", label="Palette", visible=False, elem_id="palette-field")
    return dict(
        colors=colors,
        my_filaments=my_filaments,
        filament_row=filament_row,
        filaments=filaments,
        palette_field=palette_field,
    )


def _output_column() -> dict[str, Any]:
    with gr.Row():
        stylized = gr.Image(label="Cartoon", type="filepath", elem_id="stylized")
        preview = gr.Image(label="Figurine preview", type="filepath", elem_id="preview")
        print_preview = gr.Image(label="Colour print preview", type="filepath", elem_id="print-preview")
    with gr.Row():
        viewer = gr.Model3D(
            label="3D figurine (drag to spin)",
            clear_color=(0.95, 0.95, 0.97, 1.0),
            height=380,
            min_width=240,
            elem_id="viewer",
        )
        one_colour = gr.Model3D(
            label="Printed in one colour (the STL's solid)",
            clear_color=(0.95, 0.95, 0.97, 1.0),
            height=380,
            min_width=240,
            elem_id="one-colour",
        )
    palette = gr.HTML(elem_id="palette", css_template=PALETTE_CSS)
    with gr.Row():
        downloads = gr.File(label="Downloads (GLB, STL)", file_count="multiple", elem_id="downloads")
        threemf = gr.File(label="3MF (colour print)", elem_id="threemf")
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
        print_preview=print_preview,
        one_colour=one_colour,
        palette=palette,
        threemf=threemf,
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
        _wire_body_pictures(page)
        _wire_colour_controls(page, handlers)
        # Queued, though it is quick: Gradio 6.31 shows the gr.Error of an unqueued event as
        # nothing but an HTTP 500 in the console, so "no photo" or a bad colour count said nothing.
        page.run_button.click(
            handlers.check_inputs,
            page.inputs,
            None,
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
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


def _wire_body_pictures(page: Page) -> None:
    """Clicking a body picture selects that body; choosing a body highlights its picture."""
    if page.bodies is None:
        return
    names = page.body_names

    def body_of_picture(evt: gr.SelectData) -> str:
        return names[evt.index]

    def picture_of_body(name: str) -> gr.Gallery:
        return gr.Gallery(selected_index=names.index(name) if name in names else None)

    page.bodies.select(body_of_picture, None, page.template, api_visibility="private", queue=False)
    page.template.change(picture_of_body, page.template, page.bodies, api_visibility="private", queue=False)


def _wire_colour_controls(page: Page, handlers: UiHandlers) -> None:
    """Show one picker per filament while "Use my filaments" is ticked, and keep the palette
    that Generate sends in step with the pickers (in the browser, no round trip)."""
    triggers = [page.my_filaments.change, page.colors.change]
    gr.on(
        triggers,
        handlers.show_filaments,
        [page.my_filaments, page.colors],
        [page.filament_row, *page.filaments],
        api_visibility="private",
        queue=False,
    )
    gr.on(
        [*triggers, *(picker.change for picker in page.filaments)],
        None,
        [page.my_filaments, page.colors, *page.filaments],
        page.palette_field,
        js=PALETTE_JS,
        api_visibility="private",
        queue=False,
    )


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
