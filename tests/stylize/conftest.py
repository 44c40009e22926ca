"""Fixtures for the stylizer tests. The tiny SDXL fixtures live in tests/tiny_sdxl.py so that
any other conftest can import them the same way."""

from tests.tiny_sdxl import tiny_diffusion_env, tiny_lora_path, tiny_sdxl_dir  # noqa: F401
