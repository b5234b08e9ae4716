# Quick start: `make demo` (offline demo on small models) and `make test` (the test suite).
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: demo test install benchmarks
install: $(STAMP)
$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)

demo: $(STAMP)
	$(VENV)/bin/seeingsounds demo

test: $(STAMP)
	bash scripts/system-deps.sh
	$(VENV)/bin/python -m pytest -q

benchmarks: $(STAMP)
	$(VENV)/bin/python benchmarks/model_size.py
