# fondplan — the README's commands.
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := data/sample/liechtenstein-2021-05-05.osm.pbf data/sample/mulhouse-centre.osm.pbf data/sample/mulhouse-sud-ouest.osm.pbf
PY_PACKAGES := import/osmimport tileserver routing cities

.PHONY: setup demo test lint pytest bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/fondplan db start
	$(BIN)/fondplan import $(SAMPLE)
	$(BIN)/fondplan info
	@echo "serving on http://127.0.0.1:8080 (Ctrl+C stops)"
	$(BIN)/fondplan serve --host 127.0.0.1 --port 8080

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for f in styles/*.json; do node_modules/.bin/gl-style-validate "$$f" || exit 1; done

pytest: setup
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

test: lint pytest

bench: setup
	$(BIN)/python bench/import.py
	$(BIN)/python bench/tiles.py
	$(BIN)/python bench/raster.py
	$(BIN)/python bench/routes.py
	$(BIN)/python bench/routing_fidelity.py
	$(BIN)/python bench/townplan.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf build dist .mypy_cache .ruff_cache .pytest_cache
