# dtm-platform: `make up` runs the whole system locally with demo data; `make test` runs lint and
# every test against real PostgreSQL and Kafka. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
# uv from PATH, else the PyPI package run as a module (works wherever pip put it).
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help ensure-uv install stack-up stack-down stack-status migrate up test lint format bench

help:
	@echo "make up      - install, start Postgres + Kafka, migrate, run the three services with demo data"
	@echo "make test    - install, start the stack, lint, run the whole test suite"
	@echo "make lint    - ruff (lint + format check), mypy --strict, import-linter"
	@echo "make bench   - benchmarks (registration throughput, reporting lag/query/rebuild)"
	@echo "make stack-down - stop the Postgres and Kafka that 'make up'/'make test' started"

ensure-uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
	  || $(PYTHON) -m pip install --quiet --user uv \
	  || $(PYTHON) -m pip install --quiet --user --break-system-packages uv

install: ensure-uv
	$(UV) sync --frozen --all-groups

stack-up: install
	$(RUN) dtm stack up

stack-down:
	$(RUN) dtm stack down

stack-status:
	$(RUN) dtm stack status

migrate: stack-up
	$(RUN) dtm migrate all

up: stack-up
	$(RUN) dtm up

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

format: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

test: stack-up
	$(MAKE) lint
	$(RUN) pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: stack-up
	$(RUN) python -m bench

-include mk/*.mk
