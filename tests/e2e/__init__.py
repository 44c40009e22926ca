"""Browser tests (Playwright + Chromium) of the Gradio app."""
