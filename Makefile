# One entry point for everything a newcomer or CI runs. Each target sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
# Local servers listen on loopback only (`make serve` has no auth); SERVE_HOST=0.0.0.0 shares one.
SERVE_HOST ?= 127.0.0.1
STACK ?= dev
export BENTOML_HOME ?= $(HOME)/bentoml
# BentoML would otherwise post usage statistics from build and serve: no network side effects.
export BENTOML_DO_NOT_TRACK ?= True
export PYTHONPATH := $(CURDIR)

.PHONY: venv checkov serve serve-with-keys docs test lint format bento import-model compare plan \
  cost image-test bench validate-precision export-onnx audit lock clean

# torch==2.13.0+cpu is only on the PyTorch CPU index (PyPI's torch is the CUDA build), so pip
# looks there too. Where that index is unreachable, pip retries it for every package: one retry
# instead of pip's default five keeps that to ~0.03 s a package instead of ~7 s (measured on a
# machine whose DNS cannot resolve it: docs/development.md).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_INSTALL = -m pip install --quiet --timeout 15 --retries 1

# The virtualenv is rebuilt whenever a requirements file changes.
$(VENV)/.installed: requirements/service.txt requirements/dev.txt requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) --upgrade pip
	$(PY) $(PIP_INSTALL) --extra-index-url $(TORCH_INDEX) \
	  -r requirements/dev.txt -c requirements/constraints.txt
	touch $@

venv: $(VENV)/.installed

# checkov (the manifest scanner in `make test`) pins packages that clash with ours: own venv.
CHECKOV_VENV := build/tools/checkov
$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python $(PIP_INSTALL) -r requirements/checkov.txt
	touch $@

checkov: $(CHECKOV_VENV)/.installed

# `bentoml serve` empties BENTOML_HOME/prometheus_multiproc_dir as it starts and reports what
# it finds there, so each local server gets a home of its own (per port) over the shared model and
# Bento stores: two servers never wipe or report each other's metrics.
SERVE_HOME := $(CURDIR)/build/serve/$(PORT)
define serve_home
mkdir -p "$(SERVE_HOME)" "$(BENTOML_HOME)/models" "$(BENTOML_HOME)/bentos"
ln -sfn "$(BENTOML_HOME)/models" "$(SERVE_HOME)/models"
ln -sfn "$(BENTOML_HOME)/bentos" "$(SERVE_HOME)/bentos"
endef

## serve: run the moderation API locally on $(PORT), auth disabled, offline default model.
serve: venv
	$(PY) -m tools.store ensure-default
	$(serve_home)
	@echo "make serve: API keys are DISABLED for local development (MODERATION_AUTH_DISABLED=1); MODERATION_API_KEY=<key> make serve-with-keys requires them."
	MODERATION_AUTH_DISABLED=1 BENTOML_HOME="$(SERVE_HOME)" \
	  $(VENV)/bin/bentoml serve service.app:Moderation --host $(SERVE_HOST) --port $(PORT)

## serve-with-keys: like serve, with API keys required as when deployed:
## MODERATION_API_KEY=<key> make serve-with-keys (the key is hashed here, never stored), or with
## MODERATION_API_KEY_HASHES / MODERATION_API_KEY_HASHES_FILE already set. The key itself is
## removed from the server's environment (readable in /proc/<pid>/environ).
serve-with-keys: venv
	$(PY) -m tools.store ensure-default
	$(serve_home)
	@if [ -n "$$MODERATION_API_KEY" ]; then \
	  MODERATION_API_KEY_HASHES=$$(printf %s "$$MODERATION_API_KEY" | $(PY) -m service.auth) || exit 2; \
	  export MODERATION_API_KEY_HASHES; \
	elif [ -z "$$MODERATION_API_KEY_HASHES$$MODERATION_API_KEY_HASHES_FILE" ]; then \
	  echo 'make serve-with-keys: set MODERATION_API_KEY=<key> (make one: .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(32))"), or MODERATION_API_KEY_HASHES=sha256:<hex>' >&2; \
	  exit 2; \
	fi; \
	echo "make serve-with-keys: API keys REQUIRED (Authorization: Bearer <key>)."; \
	exec env -u MODERATION_API_KEY BENTOML_HOME="$(SERVE_HOME)" \
	  $(VENV)/bin/bentoml serve service.app:Moderation --host $(SERVE_HOST) --port $(PORT)

## test: lint, format check, the docs build (strict: broken links fail) and the whole test suite.
test: venv checkov lint docs
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

## docs: build the docs set (README.md + docs/, mkdocs.yml) into build/site; strict, so a broken link
## or anchor fails (tests/test_docs.py runs the same build in `make test`).
docs: venv
	$(VENV)/bin/mkdocs build --strict

## lint: ruff, ruff's format check, and the import layers (pyproject.toml [tool.importlinter]).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bento: build a versioned Bento offline; the last line printed is its tag.
## GPU=1: the GPU track's Bento (bentofile.gpu.yaml: CUDA runtime, torch's CUDA build).
bento: venv
	$(PY) -m tools.store ensure-default
	$(PY) -m tools.build_bento $(if $(GPU),--gpu)

## import-model: SOURCE=<hub id or local dir> [REVISION=<commit>] [NAME=<store name>]
import-model: venv
	@if [ -z "$(SOURCE)" ]; then \
	  echo "make import-model: SOURCE is required: a Hugging Face model id or a local model directory, e.g. make import-model SOURCE=KoalaAI/Text-Moderation REVISION=<commit> (docs/models.md)" >&2; \
	  exit 2; \
	fi
	$(PY) -m tools.store import --source "$(SOURCE)" $(if $(REVISION),--revision "$(REVISION)") $(if $(NAME),--name "$(NAME)")

## compare: BASELINE=<model or Bento tag[@model]> CANDIDATE=<same> [TEXTS=<file.jsonl>]
## [MIN_AGREEMENT=<0-1>]: both models score the same texts in-process; writes build/compare/
## (report.json, report.md, score_distributions.png); exits 1 below MIN_AGREEMENT (bench/compare.py).
compare: venv
	$(PY) -m tools.store ensure-default
	$(PY) -m bench.compare --baseline "$(BASELINE)" --candidate "$(CANDIDATE)" \
	  $(if $(TEXTS),--texts "$(TEXTS)") $(if $(MIN_AGREEMENT),--min-agreement "$(MIN_AGREEMENT)")

## image-test: opt-in, not in `make test` (root, buildah, debootstrap; 10-15 min): build the Bento's
## image with buildah from BentoML's Dockerfile and check it serves /readyz, non-root, CPU torch.
image-test: venv
	$(PY) -m pytest tests/bento/check_image.py -v

## bench: not in `make test` (~5 min a setting on 2 cores): limit (in-process), service (HTTP) and
## the MVP baseline on a DeBERTa-v3-base-shaped model (built once into the store, by default its
## ONNX export) and the same texts; exits 1 when the service misses a target (bench/run.py);
## writes build/bench/results.json, throughput.png, p99.png and bench/results/<date>.md.
## QUICK=1: the same harness on a tiny model in about a minute. PRECISION=int8,fp32 side by side.
## BACKEND=transformers: the torch model instead of its ONNX export.
bench: venv
	$(PY) -m bench.run $(if $(QUICK),--quick) $(if $(PRECISION),--precision $(PRECISION)) \
		$(if $(BACKEND),--backend $(BACKEND))

## validate-precision: MODEL=<catalog name> [PRECISION=bf16|int8|gpu:fp16|...] [BACKEND=onnx TAG=<export>]:
## top-category agreement and largest score difference against fp32 (bench/precision.py).
validate-precision: venv
	$(PY) -m bench.precision --model "$(MODEL)" $(if $(PRECISION),--precision $(PRECISION)) \
	  $(if $(BACKEND),--backend $(BACKEND)) $(if $(TAG),--tag "$(TAG)")

## export-onnx: TAG=<stored transformers model>: store its ONNX Runtime export, fp32 and int8.
export-onnx: venv
	$(PY) -m tools.onnx_export --tag "$(TAG)"

## plan: run the Pulumi program under mocks as the engine does (from infra/); writes
## build/plan/$(STACK).json and warns about the placeholders a real deploy refuses. Like
## `pulumi preview`, needs each built Bento's exported context (make bento). V=1: a count per type.
plan: venv
	$(PY) -m tools.plan --stack $(STACK) $(if $(V),--verbose)

## cost: estimate the monthly cost of build/plan/$(STACK).json; RATE=<texts/s>: sizing per region.
cost: plan
	$(PY) -m tools.cost --stack $(STACK) $(if $(RATE),--rate $(RATE)) $(if $(REGIONS),--regions $(REGIONS))

## audit: needs the internet, not in `make test`: pip-audit looks up every pin of
## requirements/constraints.txt in PyPI's vulnerability data; fails on any known vulnerability
## and on any pin it cannot look up (offline, it reports its own connection error).
## Local builds (torch 2.13.0+cpu) are audited as their release.
audit: venv
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
