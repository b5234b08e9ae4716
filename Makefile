# Quick start: `make demo` (offline demo on small models and real Debian sounds, installed when run as
# root; results in demo-output/) and `make test`.
# `make install` (run by both) installs into $(VENV) only when pyproject.toml or the bootstrap
# script changed since the last install (see scripts/bootstrap.sh --if-needed).
VENV ?= .venv
DEMO_OUT ?= demo-output

.PHONY: demo test install benchmarks
install:
	@bash scripts/bootstrap.sh --if-needed $(VENV)

demo: install
	bash scripts/system-deps.sh --demo
	$(VENV)/bin/seeingsounds demo -o $(DEMO_OUT)

test: install
	bash scripts/system-deps.sh
	$(VENV)/bin/python -m pytest -q

benchmarks: install
	$(VENV)/bin/python benchmarks/model_size.py
