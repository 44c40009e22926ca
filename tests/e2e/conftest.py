"""End-to-end fixtures: the real app in a subprocess, driven by a real Chromium (Playwright).

* ``app_url``: ``python app.py --port <free port>`` with its own data and Gradio temp dirs,
  started once for this folder (package-scoped fixtures), stopped after its last test, so
  nothing of it (nor Playwright's event loop) outlives the browser tests; its log is kept in
  ``test-artifacts/e2e/app.log`` and must hold no Python traceback.
* ``browser``: headless Chromium (Debian's ``/usr/bin/chromium`` unless
  ``TOONFORGE_CHROMIUM`` names another), WebGL through SwiftShader so the 3D viewer draws.
* ``open_app``: opens the app in a fresh browser context and returns a :class:`AppPage`,
  a small page object with the UI steps (upload, choose a body, generate, read results).
  Console errors are recorded; each test ends with ``assert_no_console_errors()``.

Screenshots of key states go to ``test-artifacts/e2e/`` (git-ignored); a failing test also
leaves ``FAILED-<test>-<n>.png`` there.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from toonforge_testing.launch import launched_app, scratch_env

from .e2e_ui import ARTIFACTS, CHROMIUM_ARGS, STARTUP_TIMEOUT_S, AppPage


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("FAILED-*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="package")
def app_url(tmp_path_factory: pytest.TempPathFactory, artifacts: Path):
    """URL of a freshly started ``python app.py``; stopped after the last browser test."""
    work = tmp_path_factory.mktemp("app")
    # Only this test's settings: no TOONFORGE_* from the caller's shell (backend, height...).
    env = scratch_env(work)
    log_path = artifacts / "app.log"
    try:
        # The UI page itself, not just /health: the browser tests need Gradio mounted.
        with launched_app(env=env, log_path=log_path, timeout_s=STARTUP_TIMEOUT_S, health_path="/") as app:
            yield f"{app.url}/"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback (most recent call last)" not in text, (
        f"the app logged a Python traceback during the browser tests; see {log_path}"
    )


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("TOONFORGE_CHROMIUM") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def open_app(request, browser, app_url, artifacts):
    """``open_app(label, **context_options) -> AppPage``: the app in a new browser context."""
    contexts = []
    pages: list[AppPage] = []
    test_name = re.sub(r"[^\w.-]+", "_", request.node.name)

    def _open(label: str = "page", **context_options) -> AppPage:
        context_options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(**context_options)
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        app = AppPage(page, f"{test_name}-{label}", artifacts, app_url.rstrip("/"))
        page.goto(app_url, wait_until="domcontentloaded")
        page.locator("#generate").wait_for(state="visible", timeout=60_000)
        pages.append(app)
        return app

    yield _open
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for n, app in enumerate(pages):
        if failed:
            try:
                app.page.screenshot(
                    path=str(artifacts / f"FAILED-{test_name}-{n}.png"),
                    full_page=True,
                )
            except Exception:  # noqa: BLE001 - a broken page must not hide the real failure
                pass
    for context in contexts:
        context.close()
