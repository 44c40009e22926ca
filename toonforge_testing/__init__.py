"""Support shared by tests, benchmarks and tools; nothing at run time imports it.

- :mod:`toonforge_testing.launch`: start ``python app.py`` in a subprocess and stop it again.
- :mod:`toonforge_testing.tiny_sdxl`: tiny random SDXL img2img pipelines built from configs.
"""
