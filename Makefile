# One entry point for everything a newcomer or CI runs. Each target sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
STACK ?= dev
export BENTOML_HOME ?= $(HOME)/bentoml
# BentoML would otherwise post usage statistics from build and serve: no network side effects.
export BENTOML_DO_NOT_TRACK ?= True
export PYTHONPATH := $(CURDIR)

.PHONY: venv serve test lint format bento import-model plan cost image-test bench \
  validate-precision export-onnx audit lock clean

# The virtualenv is rebuilt whenever a requirements file changes.
$(VENV)/.installed: requirements/service.txt requirements/dev.txt requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	touch $@

venv: $(VENV)/.installed

## serve: run the moderation API locally on $(PORT), auth disabled, offline default model.
serve: venv
	$(PY) -m service.store ensure-default
	@echo "make serve: API keys are DISABLED for local development (MODERATION_AUTH_DISABLED=1)."
	MODERATION_AUTH_DISABLED=1 $(VENV)/bin/bentoml serve service.app:Moderation --port $(PORT)

## test: lint, format check and the whole test suite.
test: venv lint
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bento: build a versioned Bento offline; the last line printed is its tag.
bento: venv
	$(PY) -m service.store ensure-default
	$(PY) -m service.build_bento

## import-model: SOURCE=<hub id or local dir> [REVISION=<commit>] [NAME=<store name>]
import-model: venv
	$(PY) -m service.store import --source "$(SOURCE)" $(if $(REVISION),--revision "$(REVISION)") $(if $(NAME),--name "$(NAME)")

## image-test: opt-in, not in `make test` (root, buildah, debootstrap; 10-15 min): build the Bento's
## image with buildah from BentoML's Dockerfile and check it serves /readyz, non-root, CPU torch.
image-test: venv
	$(PY) -m pytest tests/bento/check_image.py -v

## bench: not in `make test` (~10 min on 2 cores): limit (in-process), service (HTTP) and the MVP
## baseline on a DeBERTa-v3-base-shaped model (built once into the store) and the same texts;
## writes build/bench/results.json, throughput.png, p99.png and bench/results/<date>.md (bench/run.py).
## QUICK=1: the same harness on a tiny model in about a minute. PRECISION=fp32|bf16|int8.
bench: venv
	$(PY) -m bench.run $(if $(QUICK),--quick) $(if $(PRECISION),--precision $(PRECISION))

## validate-precision: MODEL=<catalog name> [PRECISION=bf16|int8] [BACKEND=onnx TAG=<export>]:
## top-category agreement and largest score difference against fp32 (bench/precision.py).
validate-precision: venv
	$(PY) -m bench.precision --model "$(MODEL)" $(if $(PRECISION),--precision $(PRECISION)) \
	  $(if $(BACKEND),--backend $(BACKEND)) $(if $(TAG),--tag "$(TAG)")

## export-onnx: TAG=<stored transformers model>: store its ONNX Runtime export, fp32 and int8.
export-onnx: venv
	$(PY) -m service.onnx_export --tag "$(TAG)"

## plan: run the Pulumi program under mocks; writes build/plan/$(STACK).json.
plan: venv
	$(PY) -m infra.plan --stack $(STACK)

## cost: estimate the monthly cost of build/plan/$(STACK).json.
cost: plan
	$(PY) -m infra.cost --stack $(STACK)

## audit: needs the internet, not in `make test`: pip-audit looks up every pin of
## requirements/constraints.txt in PyPI's vulnerability data; fails on any known vulnerability
## and on any pin it cannot look up. Local builds (torch 2.13.0+cpu) are audited as their release.
AUDIT_PROBE_URL ?= https://pypi.org/pypi/pip-audit/2.10.1/json
audit: venv
	@if ! error=$$($(PY) -c 'import sys, urllib.request as r; r.urlopen(sys.argv[1], timeout=15)' \
	    "$(AUDIT_PROBE_URL)" 2>&1); then \
	  echo "make audit needs the internet: PyPI's vulnerability data ($(AUDIT_PROBE_URL)) did not answer: $${error##*$$'\n'}" >&2; \
	  exit 2; \
	fi
	mkdir -p build
	sed -E 's/\+[[:alnum:].]+$$//' requirements/constraints.txt > build/audit-requirements.txt
	$(VENV)/bin/pip-audit --requirement build/audit-requirements.txt --no-deps --disable-pip \
	  --strict --progress-spinner off

## lock: refresh requirements/constraints.txt from the current virtualenv.
lock: venv
	{ echo "# Full resolved set, used as pip constraints so every machine gets the same versions."; \
	  echo "# Regenerate: make lock"; $(VENV)/bin/pip freeze; } > requirements/constraints.txt

clean:
	rm -rf build .pytest_cache .ruff_cache
