# Flywheel: one gate, run identically locally and in CI. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
# uv from PATH if present, else a private copy bootstrapped from PyPI into .bootstrap/.
UV := $(shell command -v uv 2>/dev/null || echo .bootstrap/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
CDK := ./node_modules/.bin/cdk
ENV ?= dev
# The project's own packages (pyproject's wheel packages): what mypy checks (strict on lambdas.*) and what
# `bytecode` compiles.
PACKAGES := stacks lambdas pipelines flywheel config naming toolchain
TYPED := $(PACKAGES)
export UV_COMPILE_BYTECODE := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: browser bytecode help install demo security-report access-report access-docs cost-docs diagrams test test-slow synth synth-toolchain lint format typecheck bench clean checkov crosscheck sdk-v2-check

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.bootstrap/bin/uv:
	$(PYTHON) -m venv .bootstrap
	.bootstrap/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

install: $(VENV)/.installed node_modules/.installed bytecode ## install Python (uv, locked) and the CDK CLI (npm, locked)

# uv byte-compiles the venv's packages, not the editable project: with PYTHONDONTWRITEBYTECODE set (CI, many
# containers) every command compiled ~100 of Flywheel's modules from source on each start (0.2-0.3 s of a
# 2 s `flywheel approve`). compileall skips what is current, so this costs ~0.2 s when nothing changed.
bytecode: $(VENV)/.installed ## byte-compile Flywheel's own packages (stale ones only)
	@$(PY) -m compileall -q -j 0 $(PACKAGES)

demo: $(VENV)/.installed bytecode ## the main job: the whole ML loop offline on an embedded AWS (ROWS=100000)
	$(PY) -m flywheel demo --rows $(or $(ROWS),100000)

security-report: $(VENV)/.installed ## synthesize every environment in-process; nag + policy-rule summary
	$(PY) -m flywheel security-report

access-report: $(VENV)/.installed ## who can read/write/decrypt/approve/deploy, evaluated from the synthesized templates
	$(PY) -m flywheel access-report

access-docs: $(VENV)/.installed ## regenerate docs/access.md (the "who can do what" table) from the access report
	$(PY) -m flywheel access-report --env dev --markdown docs/access.md

cost-docs: $(VENV)/.installed ## regenerate docs/cost.md (idle cost per team and baseline, every environment) with flywheel cost
	$(PY) -m flywheel cost --markdown docs/cost.md
# Graphviz renders the SVGs (the Debian package, installed here when `dot` is missing); the test that keeps the
# diagrams current (tests/flywheel/test_diagram.py) compares DOT text and SVG stamps, and needs no Graphviz.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
diagrams: $(VENV)/.installed ## regenerate docs/diagrams/ (DOT + SVG) from the synthesized app; installs Graphviz if missing
	@command -v dot >/dev/null || { echo "installing Graphviz (Debian package graphviz)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz; }
	CDK_VALIDATION=false $(PY) -m flywheel.diagram

test: lint $(VENV)/.installed bytecode ## the gate: lint (ruff, mypy, layer contract), then the tests (offline, sockets blocked)
	CDK_VALIDATION=false $(VENV)/bin/pytest -n 2 -m "not slow" -q

browser: ## headless Chromium for the model-card check (Debian: apt-get install chromium, once)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test-slow: $(VENV)/.installed browser ## the slow/large tests (marker `slow`: the model card in headless Chromium)
	CDK_VALIDATION=false $(VENV)/bin/pytest -m slow -q || [ $$? -eq 5 ]

synth: install ## synthesize every environment into cdk.out (validating synth, cdk-nag on)
	$(CDK) synth -c env=all --quiet

synth-toolchain: install ## synthesize the CI/CD toolchain and the stages it deploys (docs/toolchain.md)
	$(CDK) synth -c target=toolchain --quiet

lint: $(VENV)/.installed ## ruff lint + format check, mypy (strict on lambdas/), the layer contract (lint-imports), actionlint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(TYPED)
	$(VENV)/bin/lint-imports --no-logo --no-cache
	$(VENV)/bin/actionlint -color=false

format: $(VENV)/.installed ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(VENV)/.installed ## mypy
	$(VENV)/bin/mypy $(TYPED)

# checkov lives in its own venv: installed next to the project it downgrades boto3. Never part of `make test`.
CHECKOV_VERSION := 3.3.30
CHECKOV := .bootstrap/checkov/bin/checkov
CHECKOV_OUT := .bootstrap/checkov-out

$(CHECKOV):
	$(PYTHON) -m venv .bootstrap/checkov
	.bootstrap/checkov/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"

checkov: $(VENV)/.installed $(CHECKOV) ## checkov on every environment's synthesized templates (own venv; see docs/security.md)
	rm -rf $(CHECKOV_OUT)
	CDK_VALIDATION=false $(PY) -c "from aws_cdk import App; from config.loader import load_config; \
	from stacks import cdk_json_context; from stacks.stage import add_stages; c = load_config(); \
	app = App(context=cdk_json_context(), outdir='$(CHECKOV_OUT)'); add_stages(app, c.environments, c.teams); app.synth()"
	$(CHECKOV) -d $(CHECKOV_OUT) --framework cloudformation --skip-download --compact --quiet -o json \
	  > $(CHECKOV_OUT)/checkov.json || true
	$(PY) -m tests.security.checkov_report $(CHECKOV_OUT)/checkov.json

# Evidently lives in its own venv too (heavy; never a dependency of the project or of the drift job). Its
# per-column statistics on the committed fixtures are kept in tests/pipelines/fixtures/drift/evidently.json,
# which `make test` compares with ours (tests/pipelines/test_drift_crosscheck.py).
EVIDENTLY_VERSION := 0.7.23
EVIDENTLY := .bootstrap/evidently/bin/python

$(EVIDENTLY):
	$(PYTHON) -m venv .bootstrap/evidently
	.bootstrap/evidently/bin/pip install --quiet "evidently==$(EVIDENTLY_VERSION)" "pandas<3"

crosscheck: $(VENV)/.installed $(EVIDENTLY) ## drift statistics vs. Evidently (own venv): regenerate the reference JSON, then compare
	$(EVIDENTLY) tests/pipelines/evidently_crosscheck.py
	CDK_VALIDATION=false $(VENV)/bin/pytest tests/pipelines/test_drift_crosscheck.py -q -p no:randomly

# The SageMaker SDK v2 in its own venv too (the project builds with v3): a pipeline written with v2 against the
# live local SageMaker (docs/local-sagemaker.md). Never part of `make test`.
SDK_V2_VERSION := 2.257.7
SDK_V2 := .bootstrap/sdk-v2/bin/python

$(SDK_V2):
	$(PYTHON) -m venv .bootstrap/sdk-v2
	.bootstrap/sdk-v2/bin/pip install --quiet "sagemaker==$(SDK_V2_VERSION)"

sdk-v2-check: $(VENV)/.installed $(SDK_V2) ## a SageMaker SDK v2 pipeline (own venv) upserted, started and waited on against the live local SageMaker
	$(PY) tests/flywheel/live/sdk_v2/serve.py $(SDK_V2)

# QUICK=1: small sizes, one run each, every row (documented proxies for the costly ones) -> bench/results/
# benchmarks-quick.md; REPEAT=N runs of each benchmark (default 3; rows hold the medians); BENCH_OUT=path.
bench: $(VENV)/.installed bytecode ## benchmarks, each against a baseline of the same run -> docs/benchmarks.md (QUICK=1, REPEAT=N)
	$(PY) -m bench $(if $(filter 1 yes true,$(QUICK)),--quick) $(if $(REPEAT),--repeat $(REPEAT)) \
	  $(if $(BENCH_OUT),--output $(BENCH_OUT))

clean: ## remove build outputs (keeps the venv)
	rm -rf cdk.out .pytest_cache .ruff_cache .mypy_cache .flywheel
