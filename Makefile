# Every target installs what it needs through hack/; nothing is expected to be set up by hand.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
DOCS ?=
PYTEST_ARGS ?=

.PHONY: help bootstrap demo test test-unit test-integration lint format bench controlplane images e2e-kind clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

bootstrap: ## Create .venv from uv.lock (fast when nothing changed)
	@hack/bootstrap.sh

demo: bootstrap ## Index a real corpus (common-licenses + docs/, or DOCS=path) and run three searches
	@hack/demo.sh $(DOCS)

test: bootstrap ## Install what the tests need (PostgreSQL, Redis), lint, then run every test tier
	@hack/test.sh $(PYTEST_ARGS)

test-unit: bootstrap ## Unit tests only
	@$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

test-integration: bootstrap ## Integration tests only (starts private PostgreSQL and Redis)
	@$(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

lint: bootstrap ## ruff and mypy --strict
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@MYPY_CACHE_DIR="$${SEMANTIK_CACHE_DIR:-$$HOME/.cache/semantik}/mypy" $(VENV)/bin/mypy --strict services operator

format: bootstrap ## Apply ruff's fixes and formatting
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

bench: bootstrap ## Benchmarks: print figures and ratios against baselines measured in the same run
	@$(PY) -m bench $(BENCH_ARGS)

controlplane: ## Build (once) and start the cluster tier's control plane; then eval "$$(hack/controlplane.sh env)"
	@hack/controlplane.sh up

images: ## Build the service, operator and test-cluster images with podman (hack/images.sh; cached)
	@hack/images.sh build

e2e-kind: bootstrap ## With Docker: the product end to end on a kind cluster (hack/kind-e2e.sh); make test runs the real-node tier instead
	@hack/kind-e2e.sh

clean: ## Remove the virtual environment and caches inside the clone
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
