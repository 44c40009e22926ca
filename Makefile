# Two commands: `make run` serves the app, `make test` runs every test. Both set up first.
.PHONY: run test setup setup-dev bench

run: setup
	.venv/bin/python app.py $(ARGS)

test: setup-dev
	.venv/bin/python -m pytest $(PYTEST_ARGS)

setup:
	@bash tools/setup.sh

setup-dev:
	@bash tools/setup.sh --dev

bench: setup
	.venv/bin/python benchmarks/pipeline_latency.py
